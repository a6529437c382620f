/*
 * reds_softmax_s8.c - SOFTMAX int8 -> int8 over the innermost axis, bit-exact with TFLM's reference
 * int8 softmax (output scale 1/256, zero point -128).
 *
 * The arithmetic is gemmlowp's fixed point as TFLM uses it: input differences x - max rescaled to Q5.26
 * (5 integer bits), exp of a non-positive Q5.26 value as a Q0.31 number (a Taylor polynomial around
 * -1/8 on [-1/4, 0) times exp(-2^e) for every set bit of the dropped multiple of 1/4), the exps summed
 * as Q12.19, the sum's reciprocal by three Newton-Raphson steps in Q2.29, and the output
 * round(exp * reciprocal / 2^(bits over unit + 23)) - 128. Every product is a saturating rounding
 * doubling high multiply (reds_sat_round_doubling_high_mul), every division by a power of two rounds
 * half away from zero (reds_rounding_divide_by_pot), so each step rounds exactly where TFLM's does.
 */
#include "reds_kernels.h"
#include "reds_requant.h"

#define ONE_Q0 INT32_MAX          /* 1.0 as Q0.31 (saturated: Q0.31 cannot hold 1 exactly) */
#define QUARTER_Q5 (1 << 24)      /* 1/4 as Q5.26 */
#define EIGHTH_Q0 (1 << 28)       /* 1/8 as Q0.31 */
#define ONE_Q2 (1 << 29)          /* 1.0 as Q2.29 */
#define SUM_INT_BITS 12           /* the sum of exps is Q12.19 */
#define EXP_M1_8 1895147668       /* exp(-1/8), Q0.31 */
#define ONE_THIRD 715827883       /* 1/3, Q0.31 */
#define C48_17 1515870810         /* 48/17, Q2.29 */
#define CM32_17 (-1010580540)     /* -32/17, Q2.29 */

/* exp(-2^e) as Q0.31 for e = -2 .. 4: the factors for the bits of the dropped multiple of 1/4. */
static const int32_t exp_pow2[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};

static int32_t mul(int32_t a, int32_t b)
{
    return reds_sat_round_doubling_high_mul(a, b);
}

/* x * 2^e saturated to int32, e in [1, 30] (gemmlowp SaturatingRoundingMultiplyByPOT, e > 0). */
static int32_t sat_shl(int32_t x, int32_t e)
{
    const int32_t limit = (int32_t)((1u << (31 - e)) - 1u);
    if (x > limit) {
        return INT32_MAX;
    }
    if (x < -limit) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << e);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor expansion around -1/8 to the 4th power. */
static int32_t exp_quarter(int32_t a)
{
    const int32_t x = a + EIGHTH_Q0;
    const int32_t x2 = mul(x, x);
    const int32_t x3 = mul(x2, x);
    const int32_t x4 = mul(x2, x2);
    const int32_t x4_over_4 = reds_rounding_divide_by_pot(x4, 2);
    /* x^4/24 + x^3/6 + x^2/2 = ((x^4/4 + x^3) / 3 + x^2) / 2 */
    const int32_t poly = reds_rounding_divide_by_pot(mul(x4_over_4 + x3, ONE_THIRD) + x2, 1);
    return EXP_M1_8 + mul(EXP_M1_8, x + poly);
}

/* exp(a) for a <= 0 given as Q5.26; the result is Q0.31. */
static int32_t exp_neg(int32_t a)
{
    if (a == 0) {
        return ONE_Q0;
    }
    const int32_t mod = (a & (QUARTER_Q5 - 1)) - QUARTER_Q5; /* a mod 1/4, shifted into [-1/4, 0) */
    int32_t r = exp_quarter(sat_shl(mod, 5));                /* Q5.26 -> Q0.31 */
    const int32_t dropped = mod - a;                         /* a non-negative multiple of 1/4 */
    for (int32_t e = 0; e < 7; ++e) {
        if (dropped & (1 << (24 + e))) {
            r = mul(r, exp_pow2[e]);
        }
    }
    return r;
}

/* 1 / (1 + a) for a in [0, 1) as Q0.31, by Newton-Raphson on the half denominator (Q2.29). */
static int32_t one_over_one_plus(int32_t a)
{
    const int64_t sum = (int64_t)a + ONE_Q0;
    const int32_t half = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* rounding half sum */
    int32_t x = C48_17 + mul(half, CM32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t err = ONE_Q2 - mul(half, x);
        x = x + sat_shl(mul(x, err), 2); /* Q4.27 product back to Q2.29 */
    }
    return sat_shl(x, 1); /* x / 2 read as Q1.30, rescaled to Q0.31 */
}

static int32_t leading_zeros(uint32_t v)
{
    int32_t n = 0;
    while (n < 32 && (v & 0x80000000u) == 0u) {
        v <<= 1;
        ++n;
    }
    return n;
}

/* The input difference x - max (<= 0) rescaled by beta * input_scale to Q5.26. */
static int32_t scaled_diff(int32_t diff, const reds_softmax_params *p)
{
    return mul((int32_t)((uint32_t)diff << p->left_shift), p->multiplier);
}

reds_status reds_softmax_s8(const reds_softmax_params *params, int32_t rows, int32_t depth,
                            const int8_t *input, int8_t *output)
{
    if (params == NULL || input == NULL || output == NULL || rows < 1 || depth < 1 ||
        depth > REDS_SOFTMAX_DEPTH_MAX || params->multiplier < 0 || params->left_shift < 0 ||
        params->left_shift > 31 || params->diff_min > 0) {
        return REDS_ARG_ERROR;
    }
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *in = input + r * depth;
        int8_t *out = output + r * depth;
        int32_t max = INT8_MIN;
        for (int32_t c = 0; c < depth; ++c) {
            max = in[c] > max ? in[c] : max;
        }
        int32_t sum = 0; /* Q12.19; depth <= REDS_SOFTMAX_DEPTH_MAX keeps it below 2^28 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = in[c] - max;
            if (diff >= params->diff_min) {
                sum += reds_rounding_divide_by_pot(exp_neg(scaled_diff(diff, params)), SUM_INT_BITS);
            }
        }
        /* sum = 2^(bits_over_unit) * (1 + frac): reciprocal of (1 + frac) in Q0.31 */
        const int32_t headroom = leading_zeros((uint32_t)sum);
        const int32_t bits_over_unit = SUM_INT_BITS - headroom;
        const int32_t frac = (int32_t)(((uint32_t)sum << headroom) - 0x80000000u);
        const int32_t recip = one_over_one_plus(frac);
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = in[c] - max;
            int32_t v = INT8_MIN;
            if (diff >= params->diff_min) {
                const int32_t p = mul(recip, exp_neg(scaled_diff(diff, params)));
                v = reds_rounding_divide_by_pot(p, bits_over_unit + 31 - 8) + INT8_MIN;
                v = v > INT8_MAX ? INT8_MAX : v;
            }
            out[c] = (int8_t)v;
        }
    }
    return REDS_OK;
}
