/*
 * reds_depthwise_conv_s8.c - DEPTHWISE_CONV_2D int8 on a channel prefix of a shared weight tensor.
 * Arithmetic order as TFLM reference_integer_ops::DepthwiseConvPerChannel.
 */
#include "reds_kernels.h"
#include "reds_requant.h"

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
    const int32_t q_step = quant->per_channel ? 1 : 0;
    for (int32_t b = 0; b < input_dims->n; ++b) {
        const int8_t *in_img = input + b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                int8_t *out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t ic = 0; ic < in_c; ++ic) {
                    for (int32_t m = 0; m < mult; ++m) {
                        const int32_t oc = ic * mult + m;
                        int32_t acc = 0;
                        for (int32_t ky = 0; ky < k_h; ++ky) {
                            const int32_t y = y0 + ky * params->dilation.h;
                            if (y < 0 || y >= in_h) {
                                continue;
                            }
                            for (int32_t kx = 0; kx < k_w; ++kx) {
                                const int32_t x = x0 + kx * params->dilation.w;
                                if (x < 0 || x >= in_w) {
                                    continue;
                                }
                                /* Filter tap (ky, kx) of channel oc in the FULL [1, kh, kw, C_full] tensor. */
                                const int32_t w = filter->data[(ky * k_w + kx) * cs + oc];
                                acc += w * ((int32_t)in_img[(y * in_w + x) * in_c + ic] +
                                            params->input_offset);
                            }
                        }
                        if (bias != NULL) {
                            acc += bias[oc];
                        }
                        out_px[oc] = reds_requant_clamp(acc, quant->multiplier[oc * q_step],
                                                        quant->shift[oc * q_step],
                                                        params->output_offset, params->activation);
                    }
                }
            }
        }
    }
    return REDS_OK;
}
