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
 * The requantisation of one output row, chosen once per row and applied to every position of it:
 * reds_rq_fast (one high multiply, rounding shift) when reds_rq_fast_ok holds for every accumulator
 * the row can produce, else TFLM's full MultiplyByQuantizedMultiplier.
 */
typedef struct {
    int32_t mult, shift, bias, fast, rnd;
} reds_sparse_rq;

/* acc_lim: 2^30 minus the largest |sum_j w[j] * (x + in_off)| of a row (reds_sparse_acc_lim). */
static inline reds_sparse_rq reds_sparse_rq_row(int32_t mult, int32_t shift, const int32_t *bias, int32_t r,
                                                int64_t acc_lim)
{
    reds_sparse_rq q;
    q.mult = mult;
    q.shift = shift;
    q.bias = bias != NULL ? bias[r] : 0;
    const int64_t b = q.bias < 0 ? -(int64_t)q.bias : (int64_t)q.bias;
    q.fast = shift <= -1 && shift >= -31 && b < acc_lim;
    q.rnd = q.fast ? (int32_t)((uint32_t)1 << (-shift - 1)) : 0;
    return q;
}

static inline int8_t reds_sparse_out(int32_t acc, const reds_sparse_rq *q, int32_t out_off, reds_act act)
{
    acc += q->bias;
    int32_t v = (q->fast ? reds_rq_fast(acc, q->mult, -q->shift, q->rnd) : reds_requantize(acc, q->mult, q->shift)) +
                out_off;
    v = v < act.min ? act.min : v;
    v = v > act.max ? act.max : v;
    return (int8_t)v;
}

/* 2^30 - n * 128 * (128 + |in_off|): the headroom for |bias| under which reds_rq_fast is exact. */
static inline int64_t reds_sparse_acc_lim(int32_t n, int32_t in_off)
{
    const int64_t x_max = 128 + (in_off < 0 ? -(int64_t)in_off : (int64_t)in_off);
    return ((int64_t)1 << 30) - (int64_t)n * 128 * x_max;
}

/* out[r] for every row r of f at one position: bias + the row's gather-dot over the position's (kh, kw,
 * c_in) patch, then the per-channel requantisation, output offset and clamp. The patch is xs (prepared
 * int16, uint8 indices) when xs is not NULL, else x (int8, contiguous); the choice is made once per row. */
static inline void reds_sparse_rows(const reds_sparse_filter *f, const int8_t *x, const int16_t *xs,
                                    int32_t in_off, const reds_quant *q, const int32_t *bias, int32_t out_off,
                                    reds_act act, int8_t *out)
{
    const int32_t rows = f->dims.n, n_max = f->n_max, n = f->count, q_step = q->per_channel ? 1 : 0;
    const int8_t *w = f->values;
    const uint8_t *i8 = (const uint8_t *)f->indices;
    const uint16_t *i16 = (const uint16_t *)f->indices;
    const int64_t lim = reds_sparse_acc_lim(n, in_off);
    for (int32_t r = 0; r < rows; ++r) {
        const reds_sparse_rq rq = reds_sparse_rq_row(q->multiplier[r * q_step], q->shift[r * q_step], bias, r, lim);
        const int32_t acc = xs != NULL                ? reds_sparse_dot16_u8(w, i8, n, xs)
                            : f->index_bytes == 1     ? reds_sparse_dot_u8(w, i8, n, x, in_off)
                                                      : reds_sparse_dot_u16(w, i16, n, x, in_off);
        out[r] = reds_sparse_out(acc, &rq, out_off, act);
        w += n_max;
        i8 += n_max;
        i16 += n_max;
    }
}

#endif /* REDS_SPARSE_DOT_H */
