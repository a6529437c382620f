/*
 * reds_sparse_conv_s8.c - CONV_2D int8 on row-sparse (DRESS) weights: per output pixel and filter, the
 * filter's first `count` entries in importance order, each gathered from the input window through its
 * flat (kh, kw, c_in) patch index.
 */
#include "reds_dsp.h"
#include "reds_sparse_dot.h"
#include "reds_sparse_kernels.h"

/* Up to this fan-in four windows (two pair words per tap) fit the REDS_SPARSE_PATCH_MAX-word patch. */
#define QUAD_MAX (REDS_SPARSE_PATCH_MAX / 2)

/* The multi-window gather loops stay out of line under GCC: inlined into the kernel's pixel and row
 * loops, the caller's live state pushes their accumulators to the stack inside the loop (measured: 4.5
 * instead of 2.5 instructions per MAC on the Cortex-M4); a call per row costs a few per output. */
#if defined(__GNUC__)
#define OUT_OF_LINE __attribute__((noinline))
#else
#define OUT_OF_LINE
#endif

/* a0 += w * low half of p, a1 += w * high half (SMLABB / SMLABT on DSP builds). */
#if REDS_DSP
#define MAC2(a0, a1, wv, p)                                                                                \
    do {                                                                                                   \
        a0 = reds_smlabb((uint32_t)(wv), (p), a0);                                                         \
        a1 = reds_smlabt((uint32_t)(wv), (p), a1);                                                         \
    } while (0)
#else
#define MAC2(a0, a1, wv, p)                                                                                \
    do {                                                                                                   \
        a0 += (wv) * (int32_t)(int16_t)(uint16_t)((p) & 0xFFFFu);                                          \
        a1 += (wv) * (int32_t)(int16_t)(uint16_t)((p) >> 16);                                              \
    } while (0)
#endif

/* What the multi-window row loops share over a call: the filter, the paired patches (xb: windows 2, 3,
 * or NULL for two windows), the quantisation (fast: reds_sparse_fast_ok) and the outputs y[p] of the
 * current group of pixels. One pointer to it keeps each row's call cheap. */
typedef struct {
    const int8_t *values;
    const uint8_t *indices;
    int32_t n_max, count, q_step, out_off, fast;
    const int32_t *mult, *shift, *bias;
    reds_act act;
    const uint32_t *xa, *xb;
    int8_t *y[4];
} rows_ctx;

/* Row r's accumulators a0..a3 (bias included; a2, a3 only when four) requantised into c->y[p][r],
 * straight-line so they stay in registers. */
static inline void finish(const rows_ctx *c, int32_t r, int four, int32_t a0, int32_t a1, int32_t a2,
                          int32_t a3)
{
    const int32_t mult = c->mult[r * c->q_step], shift = c->shift[r * c->q_step], out_off = c->out_off;
    const reds_act act = c->act;
    /* loaded before the int8 stores, which may alias *c as far as the compiler knows */
    int8_t *const y0 = c->y[0], *const y1 = c->y[1], *const y2 = c->y[2], *const y3 = c->y[3];
    if (c->fast) {
        /* reds_rq_fold_rnd in 32 bits: reds_rq_fold_ok keeps the sum inside int32 */
        const int32_t right = -shift, rnd = (int32_t)((1u << (right - 1)) + ((uint32_t)out_off << right));
        y0[r] = reds_sparse_fast_out(a0, mult, right, rnd, act);
        y1[r] = reds_sparse_fast_out(a1, mult, right, rnd, act);
        if (four) {
            y2[r] = reds_sparse_fast_out(a2, mult, right, rnd, act);
            y3[r] = reds_sparse_fast_out(a3, mult, right, rnd, act);
        }
    } else {
        y0[r] = reds_requant_clamp(a0, mult, shift, out_off, act);
        y1[r] = reds_requant_clamp(a1, mult, shift, out_off, act);
        if (four) {
            y2[r] = reds_requant_clamp(a2, mult, shift, out_off, act);
            y3[r] = reds_requant_clamp(a3, mult, shift, out_off, act);
        }
    }
}

/* Row r's gather-dot over two windows at once: xa[i] holds tap i of both as int16 (first window in the
 * low half), so each weight, index and operand word is loaded once for two MACs. */
OUT_OF_LINE static void row2(const rows_ctx *c, int32_t r)
{
    const int8_t *w = c->values + r * c->n_max;
    const uint8_t *idx = c->indices + r * c->n_max;
    const uint32_t *xp = c->xa;
    const int32_t n = c->count, init = c->bias != NULL ? c->bias[r] : 0;
    int32_t acc0 = init, acc1 = init;
    const int8_t *const end4 = w + (n & ~3);
    while (w < end4) {
        const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        const uint32_t p0 = xp[idx[0]], p1 = xp[idx[1]];
        const uint32_t p2 = xp[idx[2]], p3 = xp[idx[3]];
        MAC2(acc0, acc1, w0, p0);
        MAC2(acc0, acc1, w1, p1);
        MAC2(acc0, acc1, w2, p2);
        MAC2(acc0, acc1, w3, p3);
        w += 4;
        idx += 4;
    }
    for (int32_t t = n & 3; t > 0; --t) {
        const int32_t wv = *w++;
        const uint32_t p = xp[*idx++];
        MAC2(acc0, acc1, wv, p);
    }
    finish(c, r, 0, acc0, acc1, 0, 0);
}

/* row2 over four windows: xa holds the first two, xb the last two, so each weight and index is loaded
 * once for four MACs. */
OUT_OF_LINE static void row4(const rows_ctx *c, int32_t r)
{
    const int8_t *w = c->values + r * c->n_max;
    const uint8_t *idx = c->indices + r * c->n_max;
    const uint32_t *xa = c->xa, *xb = c->xb;
    const int32_t init = c->bias != NULL ? c->bias[r] : 0;
    int32_t acc0 = init, acc1 = init, acc2 = init, acc3 = init;
    /* One entry per trip: the four accumulators, two bases and the operands fill the registers. */
    for (const int8_t *const end = w + c->count; w < end;) {
        const int32_t wv = *w++;
        const uint32_t i = *idx++;
        const uint32_t pa = xa[i], pb = xb[i];
        MAC2(acc0, acc1, wv, pa);
        MAC2(acc2, acc3, wv, pb);
    }
    finish(c, r, 1, acc0, acc1, acc2, acc3);
}

/* A window that is not contiguous in the input, of a filter without a prepared patch (fan-in above
 * REDS_SPARSE_PATCH_MAX or uint16 indices): each tap's (ky, kx, c) is decoded and taps outside the image
 * are skipped, as TFLM skips them. (iy0, ix0): the window's top-left input position. */
static int32_t dot_decoded(const int8_t *w, const reds_sparse_filter *f, int32_t r, const int8_t *input,
                           const reds_dims *in, int32_t iy0, int32_t ix0, int32_t in_off)
{
    const int32_t ic = in->c, kwc = f->dims.w * ic, n = f->count;
    const uint8_t *i8 = (const uint8_t *)f->indices + r * f->n_max;
    const uint16_t *i16 = (const uint16_t *)f->indices + r * f->n_max;
    int32_t acc = 0;
    for (int32_t j = 0; j < n; ++j) {
        const int32_t i = f->index_bytes == 1 ? (int32_t)i8[j] : (int32_t)i16[j];
        const int32_t ky = i / kwc, rem = i - ky * kwc, kx = rem / ic;
        const int32_t iy = iy0 + ky, ix = ix0 + kx;
        if (iy >= 0 && iy < in->h && ix >= 0 && ix < in->w) {
            acc += (int32_t)w[j] * ((int32_t)input[(iy * in->w + ix) * ic + rem - kx * ic] + in_off);
        }
    }
    return acc;
}

/* Input (iy, ix)'s channels, or NULL outside the image (a padded tap). */
static const int8_t *tap_at(const int8_t *input, const reds_dims *in, int32_t iy, int32_t ix)
{
    return iy >= 0 && iy < in->h && ix >= 0 && ix < in->w ? input + (iy * in->w + ix) * in->c : NULL;
}

/* The windows at (ay, ax) and (by, bx) as one (kh, kw, c) patch: patch[i] holds tap i of both as int16
 * with the input offset added, the first window in the low half. A tap outside the image holds 0, so it
 * adds nothing, as TFLM's skipped tap. */
static void fill_pair(uint32_t *patch, const int8_t *input, const reds_dims *in, int32_t kh, int32_t kw,
                      int32_t ay, int32_t ax, int32_t by, int32_t bx, int32_t in_off)
{
    for (int32_t ky = 0; ky < kh; ++ky) {
        for (int32_t kx = 0; kx < kw; ++kx) {
            const int8_t *a = tap_at(input, in, ay + ky, ax + kx), *b = tap_at(input, in, by + ky, bx + kx);
            uint32_t *dst = patch + (ky * kw + kx) * in->c;
            for (int32_t i = 0; i < in->c; ++i) {
                const uint32_t lo = a != NULL ? (uint16_t)((int32_t)a[i] + in_off) : 0u;
                const uint32_t hi = b != NULL ? (uint16_t)((int32_t)b[i] + in_off) : 0u;
                dst[i] = lo | hi << 16;
            }
        }
    }
}

/* The window's top-left input position of output pixel p (row-major over the output). */
static void window_at(const reds_conv_params *params, int32_t out_w, int32_t p, int32_t *iy0, int32_t *ix0)
{
    const int32_t oy = p / out_w, ox = p - oy * out_w;
    *iy0 = oy * params->stride.h - params->padding.h;
    *ix0 = ox * params->stride.w - params->padding.w;
}

reds_status reds_sparse_conv_s8(const reds_conv_params *params, const reds_quant *quant,
                                const reds_dims *input_dims, const int8_t *input,
                                const reds_sparse_filter *filter, const int32_t *bias,
                                const reds_dims *output_dims, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input_dims == NULL || input == NULL || filter == NULL || filter->values == NULL ||
        filter->indices == NULL || output_dims == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const reds_dims in = *input_dims, out = *output_dims;
    const int32_t kh = filter->dims.h, kw = filter->dims.w, n_max = filter->n_max, n = filter->count;
    const int32_t in_off = params->input_offset, out_off = params->output_offset;
    if (in.n != 1 || out.n != 1 || in.h < 1 || in.w < 1 || in.c < 1 || out.h < 1 || out.w < 1 ||
        out.c < 1 || filter->dims.c != in.c || filter->dims.n != out.c || kh < 1 || kw < 1 || n_max < 1 ||
        n < 0 || n > n_max || (filter->index_bytes != 1 && filter->index_bytes != 2) ||
        params->stride.h < 1 || params->stride.w < 1 || params->padding.h < 0 || params->padding.w < 0 ||
        params->dilation.h != 1 || params->dilation.w != 1 ||
        params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    const reds_act act = params->activation;
    /* A filter with a prepared patch (uint8 indices, fan-in up to REDS_SPARSE_PATCH_MAX) runs output
     * pixels in fours (fan-in up to QUAD_MAX) or pairs, their windows paired per tap in one int16-pair
     * word: every weight and index is loaded once for four (two) MACs and each row's setup and
     * requantisation constants serve four (two) outputs, in 1 KiB of stack either way. Otherwise a window
     * inside the image is gathered in place when contiguous (one input row, or the image's full width),
     * else tap by tap. */
    const int32_t fan = kh * kw * in.c;
    const int patched = filter->index_bytes == 1 && fan <= REDS_SPARSE_PATCH_MAX;
    const int contiguous = kh == 1 || kw == in.w;
    const int32_t pixels = out.h * out.w;
    const int fast = reds_sparse_fast_ok(filter, quant, bias, in_off, out_off);
    if (patched) {
        uint32_t patch[REDS_SPARSE_PATCH_MAX];
        const int32_t step = fan <= QUAD_MAX ? 4 : 2;
        rows_ctx c = {filter->values, (const uint8_t *)filter->indices, n_max, n, quant->per_channel ? 1 : 0,
                      out_off, fast, quant->multiplier, quant->shift, bias, act, patch,
                      step == 4 ? patch + fan : NULL, {NULL, NULL, NULL, NULL}};
        for (int32_t p = 0; p < pixels; p += step) {
            /* Past the last pixel a slot repeats it: the same window, so the same bytes written again. */
            int32_t wy[4], wx[4];
            for (int32_t s = 0; s < step; ++s) {
                const int32_t ps = p + s < pixels ? p + s : pixels - 1;
                c.y[s] = output + ps * out.c;
                window_at(params, out.w, ps, &wy[s], &wx[s]);
            }
            fill_pair(patch, input, &in, kh, kw, wy[0], wx[0], wy[1], wx[1], in_off);
            if (step == 4) {
                fill_pair(patch + fan, input, &in, kh, kw, wy[2], wx[2], wy[3], wx[3], in_off);
            }
            for (int32_t r = 0; r < out.c; ++r) {
                if (step == 4) {
                    row4(&c, r);
                } else {
                    row2(&c, r);
                }
            }
        }
        return REDS_OK;
    }
    for (int32_t p = 0; p < pixels; ++p) {
        int8_t *y = output + p * out.c;
        int32_t iy0, ix0;
        window_at(params, out.w, p, &iy0, &ix0);
        const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + kh <= in.h && ix0 + kw <= in.w;
        if (inside && contiguous) {
            reds_sparse_rows(filter, input + (iy0 * in.w + ix0) * in.c, NULL, in_off, quant, bias, out_off, act,
                             fast, y);
        } else {
            const int32_t q_step = quant->per_channel ? 1 : 0;
            for (int32_t r = 0; r < out.c; ++r) {
                int32_t acc = dot_decoded(filter->values + r * n_max, filter, r, input, &in, iy0, ix0, in_off);
                if (bias != NULL) {
                    acc += bias[r];
                }
                y[r] = reds_requant_clamp(acc, quant->multiplier[r * q_step], quant->shift[r * q_step], out_off,
                                          act);
            }
        }
    }
    return REDS_OK;
}
