/*
 * reds_sparse_conv_s8.c - CONV_2D int8 on row-sparse (DRESS) weights: per output pixel and filter, the
 * filter's first `count` entries in importance order, each gathered from the input window through its
 * flat (kh, kw, c_in) patch index.
 */
#include <string.h>

#include "reds_sparse_dot.h"
#include "reds_sparse_kernels.h"

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

/* The window at (iy0, ix0) as a contiguous (kh, kw, c) int16 patch with the input offset added; a tap
 * outside the image holds 0, so it adds nothing, as TFLM's skipped tap. */
static void fill_patch(int16_t *patch, const int8_t *input, const reds_dims *in, int32_t kh, int32_t kw,
                       int32_t iy0, int32_t ix0, int32_t in_off)
{
    for (int32_t ky = 0; ky < kh; ++ky) {
        const int32_t iy = iy0 + ky;
        for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx;
            int16_t *dst = patch + (ky * kw + kx) * in->c;
            if (iy >= 0 && iy < in->h && ix >= 0 && ix < in->w) {
                reds_sparse_widen(dst, input + (iy * in->w + ix) * in->c, in->c, in_off);
            } else {
                memset(dst, 0, sizeof(int16_t) * (size_t)in->c);
            }
        }
    }
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
    /* Every window becomes an int16 patch when it fits (amortised over out_c rows); otherwise a window
     * inside the image is gathered in place when contiguous (one input row, or the image's full width). */
    const int patched = filter->index_bytes == 1 && kh * kw * in.c <= REDS_SPARSE_PATCH_MAX;
    const int contiguous = kh == 1 || kw == in.w;
    int16_t patch[REDS_SPARSE_PATCH_MAX];
    int8_t *y = output;
    for (int32_t oy = 0; oy < out.h; ++oy) {
        const int32_t iy0 = oy * params->stride.h - params->padding.h;
        for (int32_t ox = 0; ox < out.w; ++ox, y += out.c) {
            const int32_t ix0 = ox * params->stride.w - params->padding.w;
            const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + kh <= in.h && ix0 + kw <= in.w;
            if (patched) {
                fill_patch(patch, input, &in, kh, kw, iy0, ix0, in_off);
                reds_sparse_rows(filter, NULL, patch, in_off, quant, bias, out_off, act, y);
            } else if (inside && contiguous) {
                reds_sparse_rows(filter, input + (iy0 * in.w + ix0) * in.c, NULL, in_off, quant, bias, out_off,
                                 act, y);
            } else {
                const int32_t q_step = quant->per_channel ? 1 : 0;
                for (int32_t r = 0; r < out.c; ++r) {
                    int32_t acc = dot_decoded(filter->values + r * n_max, filter, r, input, &in, iy0, ix0, in_off);
                    if (bias != NULL) {
                        acc += bias[r];
                    }
                    y[r] = reds_requant_clamp(acc, quant->multiplier[r * q_step], quant->shift[r * q_step],
                                              out_off, act);
                }
            }
        }
    }
    return REDS_OK;
}
