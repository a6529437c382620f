/*
 * reds_add_s8.c - ADD int8 of two same-shape tensors, as TFLM's reference integer Add (int8 path of
 * kernels/add: inputs shifted left by 20, rescaled to twice the larger input scale, summed, rescaled to
 * the output scale with MultiplyByQuantizedMultiplierSmallerThanOneExp, offset, clamped).
 */
#include "reds_kernels.h"
#include "reds_requant.h"

static int shift_ok(int32_t shift)
{
    return shift >= -31 && shift <= 0;
}

static int offset_ok(int32_t offset) /* -zero point or +zero point of an int8 tensor */
{
    return offset >= -128 && offset <= 128;
}

reds_status reds_add_s8(const reds_add_params *params, int32_t size, const int8_t *input1,
                        const int8_t *input2, int8_t *output)
{
    if (params == NULL || input1 == NULL || input2 == NULL || output == NULL || size < 1 ||
        !shift_ok(params->input1_shift) || !shift_ok(params->input2_shift) ||
        !shift_ok(params->output_shift) || !offset_ok(params->input1_offset) ||
        !offset_ok(params->input2_offset) || !offset_ok(params->output_offset) || params->activation.min < -128 || params->activation.max > 127 ||
        params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    /* |x + offset| <= 255 (offsets are -zero points in int8), so the shifted value stays below 2^28 and
     * each rescaled value below it too: the sum cannot overflow int32. */
    for (int32_t i = 0; i < size; ++i) {
        const int32_t a = (input1[i] + params->input1_offset) * (1 << REDS_ADD_LEFT_SHIFT);
        const int32_t b = (input2[i] + params->input2_offset) * (1 << REDS_ADD_LEFT_SHIFT);
        const int32_t sum = reds_requantize(a, params->input1_multiplier, params->input1_shift) +
                            reds_requantize(b, params->input2_multiplier, params->input2_shift);
        int32_t out = reds_requantize(sum, params->output_multiplier, params->output_shift) +
                      params->output_offset;
        out = out < params->activation.min ? params->activation.min : out;
        out = out > params->activation.max ? params->activation.max : out;
        output[i] = (int8_t)out;
    }
    return REDS_OK;
}
