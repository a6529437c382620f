/*
 * reds_sparse_conv_s8.c - CONV_2D int8 on row-sparse (DRESS) weights: per output pixel and filter, the
 * filter's first `count` entries in importance order, each gathered from the input window through its
 * flat (kh, kw, c_in) patch index.
 */
#include "reds_requant.h"
#include "reds_sparse_kernels.h"

/* Window fully inside the image, starting at x: patch index i sits at x[i + (i / kwc) * gap], gap being
 * the input elements between the end of one window row and the start of the next (0 for a 1-row
 * kernel or a window as wide as the image, so 1x1 convolutions gather exactly like FULLY_CONNECTED). */
static int32_t dot_inside_u8(const int8_t *w, const uint8_t *idx, int32_t n, const int8_t *x, int32_t in_off,
                             int32_t kwc, int32_t gap)
{
    int32_t acc = 0;
    if (gap == 0) {
        for (int32_t j = 0; j < n; ++j) {
            acc += (int32_t)w[j] * ((int32_t)x[idx[j]] + in_off);
        }
    } else {
        for (int32_t j = 0; j < n; ++j) {
            const int32_t i = idx[j];
            acc += (int32_t)w[j] * ((int32_t)x[i + (i / kwc) * gap] + in_off);
        }
    }
    return acc;
}

static int32_t dot_inside_u16(const int8_t *w, const uint16_t *idx, int32_t n, const int8_t *x,
                              int32_t in_off, int32_t kwc, int32_t gap)
{
    int32_t acc = 0;
    if (gap == 0) {
        for (int32_t j = 0; j < n; ++j) {
            acc += (int32_t)w[j] * ((int32_t)x[idx[j]] + in_off);
        }
    } else {
        for (int32_t j = 0; j < n; ++j) {
            const int32_t i = idx[j];
            acc += (int32_t)w[j] * ((int32_t)x[i + (i / kwc) * gap] + in_off);
        }
    }
    return acc;
}

/* Window crossing the border (padding): each tap's (ky, kx, c) is decoded and taps outside the image are
 * skipped, as TFLM's reference kernel skips them. (iy0, ix0): the window's top-left input position. */
static int32_t dot_border(const int8_t *w, const reds_sparse_filter *f, int32_t r, const int8_t *input,
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
    if (in.n != 1 || out.n != 1 || in.h < 1 || in.w < 1 || in.c < 1 || out.h < 1 || out.w < 1 ||
        out.c < 1 || filter->dims.c != in.c || filter->dims.n != out.c || kh < 1 || kw < 1 || n_max < 1 ||
        n < 0 || n > n_max || (filter->index_bytes != 1 && filter->index_bytes != 2) ||
        params->stride.h < 1 || params->stride.w < 1 || params->padding.h < 0 || params->padding.w < 0 ||
        params->dilation.h != 1 || params->dilation.w != 1 ||
        params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    const int32_t q_step = quant->per_channel ? 1 : 0;
    const int32_t in_off = params->input_offset, out_off = params->output_offset;
    const reds_act act = params->activation;
    const int32_t kwc = kw * in.c, gap = kh > 1 ? (in.w - kw) * in.c : 0;
    int8_t *y = output;
    for (int32_t oy = 0; oy < out.h; ++oy) {
        const int32_t iy0 = oy * params->stride.h - params->padding.h;
        for (int32_t ox = 0; ox < out.w; ++ox) {
            const int32_t ix0 = ox * params->stride.w - params->padding.w;
            const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + kh <= in.h && ix0 + kw <= in.w;
            const int8_t *x = inside ? input + (iy0 * in.w + ix0) * in.c : input;
            for (int32_t r = 0; r < out.c; ++r) {
                const int8_t *w = filter->values + r * n_max;
                int32_t acc;
                if (!inside) {
                    acc = dot_border(w, filter, r, input, &in, iy0, ix0, in_off);
                } else if (filter->index_bytes == 1) {
                    acc = dot_inside_u8(w, (const uint8_t *)filter->indices + r * n_max, n, x, in_off, kwc, gap);
                } else {
                    acc = dot_inside_u16(w, (const uint16_t *)filter->indices + r * n_max, n, x, in_off, kwc, gap);
                }
                if (bias != NULL) {
                    acc += bias[r];
                }
                *y++ = reds_requant_clamp(acc, quant->multiplier[r * q_step], quant->shift[r * q_step], out_off,
                                          act);
            }
        }
    }
    return REDS_OK;
}
