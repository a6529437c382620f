/*
 * reds_requant.h - TFLite's int32 -> int8 requantisation, bit-exact with TFLM's default
 * (double-rounding) MultiplyByQuantizedMultiplier. Python twin: firmware/tests/requant_ref.py.
 *
 * Signed overflow is avoided with unsigned arithmetic where TFLM relies on two's-complement
 * wrap-around; right shifts of negative values are arithmetic on every compiler we target
 * (gcc, clang, arm-none-eabi-gcc), as in TFLM itself.
 */
#ifndef REDS_REQUANT_H
#define REDS_REQUANT_H

#include <stdint.h>

#include "reds_dsp.h"
#include "reds_types.h"

/**
 * gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturating INT32_MIN * INT32_MIN.
 * TFLM computes (ab + nudge) / 2^31 truncated toward zero with nudge = ab >= 0 ? 2^30 : 1 - 2^30.
 * For ab < 0 that is ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31), the same expression
 * as for ab >= 0, so one add and one arithmetic shift give identical results in fewer instructions
 * (the parity test against requant_ref.py, which keeps TFLM's literal form, checks this).
 */
static inline int32_t reds_sat_round_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/** gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero, exponent in [0, 31]. */
static inline int32_t reds_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/** TFLM MultiplyByQuantizedMultiplier(int32 x, multiplier, shift): shift > 0 shifts left first. */
static inline int32_t reds_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    /* x * 2^left wraps like the int32 multiply in TFLM (no UB through the unsigned path). */
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return reds_rounding_divide_by_pot(reds_sat_round_doubling_high_mul(shifted, multiplier), right);
}

/**
 * One output channel's requantisation constants, derived once from (multiplier, shift) so that loops
 * producing many outputs of the same channel do not recompute them per output. reds_rq_apply gives
 * exactly reds_requantize's result.
 */
typedef struct {
    int32_t multiplier;
    int32_t left;  /**< left shift before the multiply (shift > 0) */
    int32_t right; /**< rounding right shift after it (shift <= 0), in [0, 31] */
    int32_t mask;  /**< 2^right - 1 */
    int32_t half;  /**< mask >> 1: the rounding threshold for non-negative values */
} reds_rq;

static inline reds_rq reds_rq_prepare(int32_t multiplier, int32_t shift)
{
    reds_rq q;
    q.multiplier = multiplier;
    q.left = shift > 0 ? shift : 0;
    q.right = shift > 0 ? 0 : -shift;
    q.mask = (int32_t)(((int64_t)1 << q.right) - 1);
    q.half = q.mask >> 1;
    return q;
}

/** reds_requantize(x, multiplier, shift) with the constants of reds_rq_prepare(multiplier, shift). */
static inline int32_t reds_rq_apply(int32_t x, const reds_rq q)
{
    const int32_t hm = reds_sat_round_doubling_high_mul((int32_t)((uint32_t)x << q.left), q.multiplier);
    const int32_t threshold = q.half + (hm < 0 ? 1 : 0);
    return (hm >> q.right) + ((hm & q.mask) > threshold ? 1 : 0);
}

/**
 * Whether reds_rq_fast may stand in for reds_rq_apply(acc, q) for every |acc| <= acc_bound: no pre-shift,
 * a rounding shift of at least one bit, a non-negative multiplier (TFLite's are in [2^30, 2^31) or 0) and
 * |acc| < 2^30. Then |hm| <= |acc| < 2^30 (the high multiply cannot saturate), so hm + rnd - 1 cannot
 * overflow, and hm has the sign of acc or is 0.
 */
static inline int reds_rq_fast_ok(const reds_rq q, int64_t acc_bound)
{
    return q.left == 0 && q.right >= 1 && q.multiplier >= 0 && acc_bound < ((int64_t)1 << 30);
}

#if REDS_DSP
/** reds_rq_fast (below) given 2 * acc (which fits in int32 under reds_rq_fast_ok): kernels that can fold the
 * doubling into their weights and bias call this directly. */
static inline int32_t reds_rq_fast_x2(int32_t acc2, int32_t multiplier, int32_t right, int32_t rnd)
{
    /* (acc * m + 2^30) >> 31 == (2 acc * m + 2^31) >> 32: SMMLAR (rounding high multiply, accumulated)
     * adds it to rnd - [acc < 0]. That is reds_rq_fast's rnd - [hm < 0] because hm has acc's sign or is 0
     * (m >= 0), and where hm = 0 > acc the two give the same floor: rnd - 1 and rnd lie in one multiple
     * of 2^right (rnd = 2^(right-1) + k 2^right, right >= 1). */
    return reds_smmlar(acc2, multiplier, rnd + (acc2 >> 31)) >> right;
}
#endif

/**
 * reds_rq_apply for the accumulators reds_rq_fast_ok admits, in fewer instructions: RoundingDivideByPOT
 * (round half away from zero) is floor((hm + 2^(right-1) - [hm < 0]) / 2^right), and hm - [hm < 0] is
 * hm + (hm >> 31). `rnd` is 2^(right-1). The parity tests against TFLM and requant_ref.py check it.
 */
static inline int32_t reds_rq_fast(int32_t acc, int32_t multiplier, int32_t right, int32_t rnd)
{
#if REDS_DSP
    return reds_rq_fast_x2(acc * 2, multiplier, right, rnd);
#else
    const int32_t hm = (int32_t)(((int64_t)acc * multiplier + ((int64_t)1 << 30)) >> 31);
    return (hm + (hm >> 31) + rnd) >> right;
#endif
}

/**
 * Whether the output zero point may be folded into reds_rq_fast's rounding constant (reds_rq_fold_rnd)
 * for every |acc| <= acc_bound: reds_rq_fast_ok holds and hm + rnd + out_off * 2^right cannot overflow.
 * Then reds_rq_fast(acc, multiplier, right, reds_rq_fold_rnd(q, out_off)) is reds_rq_apply(acc, q) +
 * out_off exactly, as floor division by 2^right moves a multiple of 2^right out of the sum unchanged.
 */
static inline int reds_rq_fold_ok(const reds_rq q, int64_t acc_bound, int32_t out_off)
{
    const int64_t off = out_off < 0 ? -(int64_t)out_off : (int64_t)out_off;
    return reds_rq_fast_ok(q, acc_bound) && q.right <= 31 &&
           acc_bound + ((int64_t)1 << q.right) * (off + 1) < ((int64_t)1 << 31);
}

/** 2^(right-1) + out_off * 2^right, for reds_rq_fast under reds_rq_fold_ok. */
static inline int32_t reds_rq_fold_rnd(const reds_rq q, int32_t out_off)
{
    return (int32_t)(((int64_t)1 << (q.right - 1)) + (int64_t)out_off * ((int64_t)1 << q.right));
}

/** Requantise an accumulator, add the output zero point and clamp to the fused activation. */
static inline int8_t reds_requant_clamp(int32_t acc, int32_t multiplier, int32_t shift,
                                        int32_t output_offset, reds_act act)
{
    int32_t v = reds_requantize(acc, multiplier, shift) + output_offset;
    v = v < act.min ? act.min : v;
    v = v > act.max ? act.max : v;
    return (int8_t)v;
}

/**
 * Fold TFLM's 1/num_elements into a MEAN multiplier (prepare-time; reference_ops::QuantizedMeanOrSum):
 * shift_n = min(floor(log2 n), 32, 31 + shift); multiplier' = (multiplier << shift_n) / n;
 * shift' = shift - shift_n. n >= 1.
 */
static inline void reds_mean_multiplier(int32_t multiplier, int32_t shift, int32_t n,
                                        int32_t *out_multiplier, int32_t *out_shift)
{
    int32_t s = 0;
    while (((int64_t)1 << (s + 1)) <= (int64_t)n) {
        ++s;
    }
    if (s > 32) {
        s = 32;
    }
    if (s > 31 + shift) {
        s = 31 + shift;
    }
    *out_multiplier = (int32_t)(((int64_t)multiplier << s) / (int64_t)n);
    *out_shift = shift - s;
}

#endif /* REDS_REQUANT_H */
