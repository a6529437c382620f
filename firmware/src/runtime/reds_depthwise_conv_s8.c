/*
 * reds_depthwise_conv_s8.c - DEPTHWISE_CONV_2D int8 on a channel prefix of a shared weight tensor.
 * Arithmetic as TFLM reference_integer_ops::DepthwiseConvPerChannel; the in-image tap range is computed
 * once per output pixel and a 3x3 window wholly inside the image runs unrolled.
 */
#include "reds_kernels.h"
#include "reds_requant.h"
#include "reds_window.h"

reds_status reds_depthwise_conv_s8(const reds_dw_params *params, const reds_quant *quant,
                                   const reds_dims *input_dims, const int8_t *input,
                                   const reds_filter *filter, const int32_t *bias,
                                   const reds_dims *output_dims, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input_dims == NULL || input == NULL || filter == NULL || filter->data == NULL ||
        output_dims == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter->dims.h, k_w = filter->dims.w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t mult = params->ch_mult;
    const int32_t cs = filter->c_stride;
    if (input_dims->n < 1 || input_dims->n != output_dims->n || in_h < 1 || in_w < 1 || in_c < 1 ||
        k_h < 1 || k_w < 1 || out_h < 1 || out_w < 1 || mult < 1 || out_c != in_c * mult ||
        filter->dims.c != out_c || cs < out_c || params->stride.h < 1 || params->stride.w < 1 ||
        params->dilation.h < 1 || params->dilation.w < 1 || params->padding.h < 0 ||
        params->padding.w < 0 || params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    /* Locals, not params->..., so the int8 output stores do not force reloads in the loops. */
    const int32_t q_step = quant->per_channel ? 1 : 0;
    const int32_t *const qm = quant->multiplier;
    const int32_t *const qs = quant->shift;
    const int32_t out_off = params->output_offset;
    const reds_act act = params->activation;
    const int32_t dil_h = params->dilation.h, dil_w = params->dilation.w;
    const int32_t off = params->input_offset;
    const int32_t is_3x3 = k_h == 3 && k_w == 3 && dil_h == 1 && dil_w == 1;
    const int32_t row = in_w * in_c; /* input row stride */
    for (int32_t b = 0; b < input_dims->n; ++b) {
        const int8_t *in_img = input + b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            int32_t ky0, ky1;
            reds_valid_taps(y0, k_h, dil_h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                int32_t kx0, kx1;
                reds_valid_taps(x0, k_w, dil_w, in_w, &kx0, &kx1);
                const int32_t ky_end = kx1 > kx0 ? ky1 : ky0; /* no tap inside: bias only */
                /* The common case of a 3x3 window wholly inside the image runs unrolled. */
                const int32_t full_3x3 = is_3x3 && ky0 == 0 && ky_end == 3 && kx0 == 0 && kx1 == 3;
                int8_t *out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int32_t ic = mult == 1 ? oc : oc / mult;
                    const int8_t *w = filter->data + oc; /* tap t of channel oc is w[t * cs] */
                    int32_t acc = 0;
                    if (full_3x3) {
                        const int8_t *x = in_img + (y0 * in_w + x0) * in_c + ic;
                        acc += w[0] * (x[0] + off) + w[cs] * (x[in_c] + off) + w[2 * cs] * (x[2 * in_c] + off);
                        x += row;
                        acc += w[3 * cs] * (x[0] + off) + w[4 * cs] * (x[in_c] + off) +
                               w[5 * cs] * (x[2 * in_c] + off);
                        x += row;
                        acc += w[6 * cs] * (x[0] + off) + w[7 * cs] * (x[in_c] + off) +
                               w[8 * cs] * (x[2 * in_c] + off);
                    } else {
                        for (int32_t ky = ky0; ky < ky_end; ++ky) {
                            const int8_t *x = in_img + ((y0 + ky * dil_h) * in_w + x0 + kx0 * dil_w) * in_c + ic;
                            const int8_t *wr = w + (ky * k_w + kx0) * cs;
                            for (int32_t kx = kx0; kx < kx1; ++kx) {
                                acc += (int32_t)wr[0] * ((int32_t)x[0] + off);
                                x += dil_w * in_c;
                                wr += cs;
                            }
                        }
                    }
                    if (bias != NULL) {
                        acc += bias[oc];
                    }
                    out_px[oc] = reds_requant_clamp(acc, qm[oc * q_step], qs[oc * q_step], out_off, act);
                }
            }
        }
    }
    return REDS_OK;
}
