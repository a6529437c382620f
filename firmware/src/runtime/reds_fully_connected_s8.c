/*
 * reds_fully_connected_s8.c - FULLY_CONNECTED int8 on a width prefix of a shared weight tensor.
 * Arithmetic order as TFLM reference_integer_ops::FullyConnected(PerChannel).
 */
#include "reds_kernels.h"
#include "reds_requant.h"

reds_status reds_fully_connected_s8(const reds_fc_params *params, const reds_quant *quant,
                                    int32_t batches, const int8_t *input, const reds_filter *filter,
                                    const int32_t *bias, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input == NULL || filter == NULL || filter->data == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t in_w = filter->dims.c;
    const int32_t out_w = filter->dims.n;
    if (batches < 1 || in_w < 1 || out_w < 1 || filter->c_stride < in_w ||
        params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    /* Locals, not params->..., so the int8 output stores do not force reloads in the loops. */
    const int32_t q_step = quant->per_channel ? 1 : 0;
    const int32_t in_off = params->input_offset, out_off = params->output_offset;
    const reds_act act = params->activation;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *in_row = input + b * in_w;
        for (int32_t o = 0; o < out_w; ++o) {
            /* Row o of the FULL [out_full, in_full] tensor; only its first in_w columns are live. */
            const int8_t *w_row = filter->data + o * filter->c_stride;
            int32_t acc = 0;
            const int8_t *w = w_row, *x = in_row, *const end = w_row + in_w;
            while (w < end) { /* pointer loop: gcc keeps it at 5 instructions per MAC */
                acc += (int32_t)*w++ * ((int32_t)*x++ + in_off);
            }
            if (bias != NULL) {
                acc += bias[o];
            }
            output[b * out_w + o] =
                reds_requant_clamp(acc, quant->multiplier[o * q_step], quant->shift[o * q_step], out_off, act);
        }
    }
    return REDS_OK;
}
