/*
 * reds_maxpool_s8.c - MAX_POOL_2D int8, as TFLM reference_integer_ops::MaxPool:
 * maximum over the in-image taps, then the activation clamp.
 */
#include "reds_kernels.h"
#include "reds_window.h"

reds_status reds_maxpool_s8(const reds_pool_params *params, const reds_dims *input_dims,
                            const int8_t *input, const reds_dims *output_dims, int8_t *output)
{
    if (!reds_pool_args_valid(params, input_dims, input, output_dims, output)) {
        return REDS_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    for (int32_t b = 0; b < input_dims->n; ++b) {
        const int8_t *in_img = input + b * in_h * in_w * ch;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            int32_t ky0, ky1;
            reds_valid_taps(y0, params->filter.h, 1, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                int32_t kx0, kx1;
                reds_valid_taps(x0, params->filter.w, 1, in_w, &kx0, &kx1);
                int8_t *out_px = output + ((b * out_h + oy) * out_w + ox) * ch;
                for (int32_t c = 0; c < ch; ++c) {
                    int32_t m = -128;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            const int32_t v = in_img[((y0 + ky) * in_w + (x0 + kx)) * ch + c];
                            m = v > m ? v : m;
                        }
                    }
                    m = m < params->activation.min ? params->activation.min : m;
                    m = m > params->activation.max ? params->activation.max : m;
                    out_px[c] = (int8_t)m;
                }
            }
        }
    }
    return REDS_OK;
}
