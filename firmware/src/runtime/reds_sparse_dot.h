/*
 * reds_sparse_dot.h - the loops shared by the row-sparse kernels: the gather-dot product sum_j w[j] *
 * (x[idx[j]] + input_offset) over one row's first n entries (uint8 or uint16 column indices), and every
 * row of one output position, requantised as TFLM does.
 */
#ifndef REDS_SPARSE_DOT_H
#define REDS_SPARSE_DOT_H

#include <stdint.h>

#include "reds_requant.h"
#include "reds_sparse_kernels.h"

/* Four entries per trip, so the loop test and branch cost a quarter per MAC (about 5.5 instructions per
 * MAC on Cortex-M4 instead of 7: two loads, the gathered load, the offset add and the MLA remain). */
static inline int32_t reds_sparse_dot_u8(const int8_t *w, const uint8_t *idx, int32_t n, const int8_t *x,
                                         int32_t in_off)
{
    int32_t acc = 0;
    const int8_t *const end4 = w + (n & ~3);
    while (w < end4) {
        acc += (int32_t)w[0] * ((int32_t)x[idx[0]] + in_off);
        acc += (int32_t)w[1] * ((int32_t)x[idx[1]] + in_off);
        acc += (int32_t)w[2] * ((int32_t)x[idx[2]] + in_off);
        acc += (int32_t)w[3] * ((int32_t)x[idx[3]] + in_off);
        w += 4;
        idx += 4;
    }
    for (int32_t t = n & 3; t > 0; --t) {
        acc += (int32_t)*w++ * ((int32_t)x[*idx++] + in_off);
    }
    return acc;
}

static inline int32_t reds_sparse_dot_u16(const int8_t *w, const uint16_t *idx, int32_t n, const int8_t *x,
                                          int32_t in_off)
{
    int32_t acc = 0;
    const int8_t *const end4 = w + (n & ~3);
    while (w < end4) {
        acc += (int32_t)w[0] * ((int32_t)x[idx[0]] + in_off);
        acc += (int32_t)w[1] * ((int32_t)x[idx[1]] + in_off);
        acc += (int32_t)w[2] * ((int32_t)x[idx[2]] + in_off);
        acc += (int32_t)w[3] * ((int32_t)x[idx[3]] + in_off);
        w += 4;
        idx += 4;
    }
    for (int32_t t = n & 3; t > 0; --t) {
        acc += (int32_t)*w++ * ((int32_t)x[*idx++] + in_off);
    }
    return acc;
}

/* out[r] for every row r of f at one position whose (kh, kw, c_in) patch is contiguous at x: bias + the
 * row's gather-dot, then the per-channel requantisation, output offset and clamp. The index width is
 * tested once per row, not per MAC. */
static inline void reds_sparse_rows(const reds_sparse_filter *f, const int8_t *x, int32_t in_off,
                                    const reds_quant *q, const int32_t *bias, int32_t out_off, reds_act act,
                                    int8_t *out)
{
    const int32_t rows = f->dims.n, n_max = f->n_max, n = f->count, q_step = q->per_channel ? 1 : 0;
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *w = f->values + r * n_max;
        int32_t acc = f->index_bytes == 1
                          ? reds_sparse_dot_u8(w, (const uint8_t *)f->indices + r * n_max, n, x, in_off)
                          : reds_sparse_dot_u16(w, (const uint16_t *)f->indices + r * n_max, n, x, in_off);
        if (bias != NULL) {
            acc += bias[r];
        }
        out[r] = reds_requant_clamp(acc, q->multiplier[r * q_step], q->shift[r * q_step], out_off, act);
    }
}

#endif /* REDS_SPARSE_DOT_H */
