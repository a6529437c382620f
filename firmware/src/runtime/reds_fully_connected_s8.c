/*
 * reds_fully_connected_s8.c - FULLY_CONNECTED int8 on a width prefix of a shared weight tensor.
 * Arithmetic order as TFLM reference_integer_ops::FullyConnected(PerChannel).
 */
#include "reds_dsp.h"
#include "reds_kernels.h"
#include "reds_requant.h"

#if REDS_DSP
/* Rows (w0, w1) . (x + input_offset) over n inputs, added to acc[0..1]: four inputs per step, SXTAB16
 * adds the offset while splitting the input word into bytes (0, 2) and (1, 3) as 16-bit lanes
 * (|x + offset| <= 255 fits), SXTB16 splits the weight words, SMLAD does two MACs. */
static void fc_rows_2(const int8_t *w0, const int8_t *w1, const int8_t *x, int32_t n, int32_t in_off,
                      int32_t acc[2])
{
    const uint32_t off2 = ((uint32_t)in_off << 16) | ((uint32_t)in_off & 0xffffu);
    int32_t a0 = acc[0], a1 = acc[1];
    const int8_t *const end4 = x + (n & ~3);
    while (x < end4) {
        const uint32_t v = reds_read_s8x4(x), u0 = reds_read_s8x4(w0), u1 = reds_read_s8x4(w1);
        const uint32_t xe = reds_sxtab16(off2, v), xo = reds_sxtab16_ror8(off2, v);
        a0 = reds_smlad(reds_sxtb16_ror8(u0), xo, reds_smlad(reds_sxtb16(u0), xe, a0));
        a1 = reds_smlad(reds_sxtb16_ror8(u1), xo, reds_smlad(reds_sxtb16(u1), xe, a1));
        x += 4;
        w0 += 4;
        w1 += 4;
    }
    for (int32_t t = n & 3; t > 0; --t) {
        const int32_t xv = *x++ + in_off;
        a0 += *w0++ * xv;
        a1 += *w1++ * xv;
    }
    acc[0] = a0;
    acc[1] = a1;
}
#endif

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
#if REDS_DSP
    /* Rows in pairs; an odd last row pairs with the one before it, which is recomputed and stored again
     * with the same value. Sums modulo 2^32 in another order than TFLM's: the same int32 result. */
    const int32_t d1 = out_w > 1 ? 1 : 0;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *const in_row = input + b * in_w;
        int8_t *const out_row = output + b * out_w;
        for (int32_t o = 0; o < out_w; o += 2) {
            const int32_t o0 = o + d1 < out_w ? o : o - 1, o1 = o0 + d1;
            int32_t acc[2] = {bias != NULL ? bias[o0] : 0, bias != NULL ? bias[o1] : 0};
            fc_rows_2(filter->data + o0 * filter->c_stride, filter->data + o1 * filter->c_stride, in_row, in_w,
                      in_off, acc);
            out_row[o0] = reds_requant_clamp(acc[0], quant->multiplier[o0 * q_step], quant->shift[o0 * q_step],
                                             out_off, act);
            out_row[o1] = reds_requant_clamp(acc[1], quant->multiplier[o1 * q_step], quant->shift[o1 * q_step],
                                             out_off, act);
        }
    }
#else
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
#endif
    return REDS_OK;
}
