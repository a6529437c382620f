/*
 * reds_sparse_dot.h - the loops shared by the row-sparse kernels: the gather-dot product sum_j w[j] *
 * (x[idx[j]] + input_offset) over one row's first n entries, and every row of one output position,
 * requantised as TFLM does.
 */
#ifndef REDS_SPARSE_DOT_H
#define REDS_SPARSE_DOT_H

#include <stdint.h>

#include "reds_requant.h"
#include "reds_sparse_kernels.h"

/* Largest fan-in whose input patch the kernels copy to the stack as int16 with the input offset added
 * (512 bytes): the gather then loads a ready operand instead of adding the offset per MAC. */
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
    const int32_t *mult = q->multiplier, *shift = q->shift;
    for (int32_t r = 0; r < rows; ++r) {
        int32_t acc = xs != NULL                ? reds_sparse_dot16_u8(w, i8, n, xs)
                      : f->index_bytes == 1     ? reds_sparse_dot_u8(w, i8, n, x, in_off)
                                                : reds_sparse_dot_u16(w, i16, n, x, in_off);
        if (bias != NULL) {
            acc += bias[r];
        }
        out[r] = reds_requant_clamp(acc, *mult, *shift, out_off, act);
        w += n_max;
        i8 += n_max;
        i16 += n_max;
        mult += q_step;
        shift += q_step;
    }
}

#endif /* REDS_SPARSE_DOT_H */
