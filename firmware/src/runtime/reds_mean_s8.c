/*
 * reds_mean_s8.c - MEAN over H and W (keep_dims = false) int8, as TFLM's
 * reference_ops::QuantizedMeanOrSum (the path TFLM takes for every int8 MEAN with keep_dims = false).
 */
#include "reds_kernels.h"
#include "reds_requant.h"

reds_status reds_mean_s8(const reds_mean_params *params, const reds_dims *input_dims,
                         const int8_t *input, int8_t *output)
{
    if (params == NULL || input_dims == NULL || input == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t hw = input_dims->h * input_dims->w;
    const int32_t ch = input_dims->c;
    if (input_dims->n < 1 || input_dims->h < 1 || input_dims->w < 1 || ch < 1 ||
        hw > REDS_MEAN_HW_MAX) {
        return REDS_ARG_ERROR;
    }
    const reds_act full_range = {-128, 127};
    for (int32_t b = 0; b < input_dims->n; ++b) {
        const int8_t *in_img = input + b * hw * ch;
        for (int32_t c = 0; c < ch; ++c) {
            int32_t sum = 0;
            for (int32_t p = 0; p < hw; ++p) {
                sum += in_img[p * ch + c];
            }
            /* sum - zp_in * n, with input_offset = -zp_in */
            const int32_t shifted = sum + params->input_offset * hw;
            output[b * ch + c] = reds_requant_clamp(shifted, params->multiplier, params->shift,
                                                    params->output_offset, full_range);
        }
    }
    return REDS_OK;
}
