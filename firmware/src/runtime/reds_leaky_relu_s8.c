/*
 * reds_leaky_relu_s8.c - LEAKY_RELU int8, as TFLM's reference QuantizeLeakyRelu (kernels/leaky_relu: the
 * input minus its zero point is rescaled by one of two prepared multipliers, identity for values >= 0,
 * alpha for values < 0, then offset by the output zero point and clamped to int8).
 */
#include "reds_kernels.h"
#include "reds_requant.h"

static int shift_ok(int32_t shift)
{
    return shift >= -31 && shift <= 30;
}

reds_status reds_leaky_relu_s8(const reds_leaky_relu_params *params, int32_t size, const int8_t *input,
                               int8_t *output)
{
    if (params == NULL || input == NULL || output == NULL || size < 1 || params->input_offset < -127 ||
        params->input_offset > 128 || params->output_offset < -128 || params->output_offset > 127 ||
        !shift_ok(params->identity_shift) || !shift_ok(params->alpha_shift)) {
        return REDS_ARG_ERROR;
    }
    const reds_rq identity = reds_rq_prepare(params->identity_multiplier, params->identity_shift);
    const reds_rq alpha = reds_rq_prepare(params->alpha_multiplier, params->alpha_shift);
    for (int32_t i = 0; i < size; ++i) {
        const int32_t v = input[i] + params->input_offset; /* in [-255, 255] */
        /* The output offset is added in int64: TFLM adds it in int32, which could only overflow (undefined
         * there) when a left shift near 30 drives the requantised value to the int32 edge. */
        int64_t out = (int64_t)reds_rq_apply(v, v >= 0 ? identity : alpha) + params->output_offset;
        out = out < -128 ? -128 : out;
        out = out > 127 ? 127 : out;
        output[i] = (int8_t)out;
    }
    return REDS_OK;
}
