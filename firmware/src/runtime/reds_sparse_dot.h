/*
 * reds_sparse_dot.h - the loops shared by the row-sparse kernels: the gather-dot product sum_j w[j] *
 * (x[idx[j]] + input_offset) over one row's first n entries, every row of one output position, and
 * the per-row requantisation as TFLM does it.
 */
#ifndef REDS_SPARSE_DOT_H
#define REDS_SPARSE_DOT_H

#include <stdint.h>

#include "reds_requant.h"
#include "reds_sparse_kernels.h"

/* Largest fan-in whose input patch the kernels copy to the stack as int16 with the input offset added:
 * the gather then loads a ready operand instead of adding the offset per MAC (the conv kernel pairs
 * windows in one word per tap: 1 KiB). */
#define REDS_SPARSE_PATCH_MAX 256

/* Four entries per trip, so the loop test and branch cost a quarter per MAC. */
#define REDS_SPARSE_DOT4(X_AT)                                                                             \
    do {                                                                                                   \
        const int8_t *const end4 = w + (n & ~3);                                                           \
        while (w < end4) {                                                                                 \
            acc += (int32_t)w[0] * X_AT(idx[0]) + (int32_t)w[1] * X_AT(idx[1]) +                           \
                   (int32_t)w[2] * X_AT(idx[2]) + (int32_t)w[3] * X_AT(idx[3]);                            \
            w += 4;                                                                                        \
            idx += 4;                                                                                      \
        }                                                                                                  \
        for (int32_t t = n & 3; t > 0; --t) {                                                              \
            acc += (int32_t)*w++ * X_AT(*idx++);                                                           \
        }                                                                                                  \
    } while (0)

/* Operands: an int8 input plus the offset, or the prepared int16 patch as it is. */
#define REDS_SPARSE_X8(i) ((int32_t)x[i] + in_off)
#define REDS_SPARSE_X16(i) ((int32_t)xs[i])

static inline int32_t reds_sparse_dot_u8(const int8_t *w, const uint8_t *idx, int32_t n, const int8_t *x,
                                         int32_t in_off)
{
    int32_t acc = 0;
    REDS_SPARSE_DOT4(REDS_SPARSE_X8);
    return acc;
}

static inline int32_t reds_sparse_dot_u16(const int8_t *w, const uint16_t *idx, int32_t n, const int8_t *x,
                                          int32_t in_off)
{
    int32_t acc = 0;
    REDS_SPARSE_DOT4(REDS_SPARSE_X8);
    return acc;
}

/* xs: the patch as int16 with the input offset already added (padded taps 0). */
static inline int32_t reds_sparse_dot16_u8(const int8_t *w, const uint8_t *idx, int32_t n, const int16_t *xs)
{
    int32_t acc = 0;
    REDS_SPARSE_DOT4(REDS_SPARSE_X16);
    return acc;
}

/* xs[i] = x[i] + in_off for the n inputs at x. */
static inline void reds_sparse_widen(int16_t *xs, const int8_t *x, int32_t n, int32_t in_off)
{
    for (int32_t i = 0; i < n; ++i) {
        xs[i] = (int16_t)((int32_t)x[i] + in_off);
    }
}

/**
 * Whether every row's accumulators (bias included) take reds_rq_fast with the output zero point folded
 * into its rounding constant, i.e. reds_rq_fold_ok for each row with |acc| <= count * 128 * (128 +
 * |in_off|) + |bias[r]|: checked once per call, so the per-output path has no test.
 */
static inline int reds_sparse_fast_ok(const reds_sparse_filter *f, const reds_quant *q, const int32_t *bias,
                                      int32_t in_off, int32_t out_off)
{
    const int64_t x_max = 128 + (in_off < 0 ? -(int64_t)in_off : (int64_t)in_off);
    const int64_t dot = (int64_t)f->count * 128 * x_max;
    const int32_t q_step = q->per_channel ? 1 : 0;
    for (int32_t r = 0; r < f->dims.n; ++r) {
        const int64_t b = bias == NULL ? 0 : bias[r] < 0 ? -(int64_t)bias[r] : (int64_t)bias[r];
        if (!reds_rq_fold_ok(reds_rq_prepare(q->multiplier[r * q_step], q->shift[r * q_step]), dot + b, out_off)) {
            return 0;
        }
    }
    return 1;
}

/* One output under reds_sparse_fast_ok: rnd = reds_rq_fold_rnd of the row, then the clamp. */
static inline int8_t reds_sparse_fast_out(int32_t acc, int32_t mult, int32_t right, int32_t rnd, reds_act act)
{
    const int32_t v = reds_rq_fast(acc, mult, right, rnd);
    return (int8_t)(v < act.min ? act.min : v > act.max ? act.max : v);
}

/* out[r] for every row r of f at one position: bias + the row's gather-dot over the position's (kh, kw,
 * c_in) patch, then the per-channel requantisation (fast: reds_sparse_fast_ok), output offset and clamp.
 * The patch is xs (prepared int16, uint8 indices) when xs is not NULL, else x (int8, contiguous); the
 * choice is made once per row. */
static inline void reds_sparse_rows(const reds_sparse_filter *f, const int8_t *x, const int16_t *xs,
                                    int32_t in_off, const reds_quant *q, const int32_t *bias, int32_t out_off,
                                    reds_act act, int fast, int8_t *out)
{
    const int32_t rows = f->dims.n, n_max = f->n_max, n = f->count, q_step = q->per_channel ? 1 : 0;
    const int8_t *w = f->values;
    const uint8_t *i8 = (const uint8_t *)f->indices;
    const uint16_t *i16 = (const uint16_t *)f->indices;
    for (int32_t r = 0; r < rows; ++r) {
        const int32_t mult = q->multiplier[r * q_step], shift = q->shift[r * q_step];
        const int32_t acc = (bias != NULL ? bias[r] : 0) +
                            (xs != NULL                ? reds_sparse_dot16_u8(w, i8, n, xs)
                             : f->index_bytes == 1     ? reds_sparse_dot_u8(w, i8, n, x, in_off)
                                                       : reds_sparse_dot_u16(w, i16, n, x, in_off));
        if (fast) {
            const int32_t rnd = reds_rq_fold_rnd(reds_rq_prepare(mult, shift), out_off);
            out[r] = reds_sparse_fast_out(acc, mult, -shift, rnd, act);
        } else {
            out[r] = reds_requant_clamp(acc, mult, shift, out_off, act);
        }
        w += n_max;
        i8 += n_max;
        i16 += n_max;
    }
}

#endif /* REDS_SPARSE_DOT_H */
