/*
 * reds_depthwise_conv_s8.c - DEPTHWISE_CONV_2D int8 on a channel prefix of a shared weight tensor.
 * Arithmetic as TFLM reference_integer_ops::DepthwiseConvPerChannel. The in-image tap range is computed
 * once per output pixel; with depth multiplier 1 four adjacent channels are accumulated together, so
 * every tap's pointer arithmetic and loop control is shared by four multiply-accumulates.
 */
#include "reds_kernels.h"
#include "reds_requant.h"
#include "reds_window.h"

/* Everything the loops need, copied out of the caller's structs once. */
typedef struct {
    const int8_t *in;
    const int8_t *w;
    const int32_t *bias;
    const int32_t *qm;
    const int32_t *qs;
    int32_t q_step, in_h, in_w, in_c, k_h, k_w, cs, mult, off, out_off;
    reds_act act;
} dw_ctx;

static inline int8_t finish(const dw_ctx *c, int32_t acc, int32_t oc)
{
    if (c->bias != NULL) {
        acc += c->bias[oc];
    }
    return reds_requant_clamp(acc, c->qm[oc * c->q_step], c->qs[oc * c->q_step], c->out_off, c->act);
}

/* One output pixel, depth multiplier 1: taps [ky0, ky1) x [kx0, kx1) of the window at (y0, x0). */
static void pixel_mult1(const dw_ctx *c, int32_t y0, int32_t x0, int32_t ky0, int32_t ky1, int32_t kx0,
                        int32_t kx1, int32_t dil_h, int32_t dil_w, int8_t *out_px)
{
    const int32_t ch = c->in_c, cs = c->cs, off = c->off, x_step = dil_w * ch;
    int32_t oc = 0;
    for (; oc + 4 <= ch; oc += 4) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        const int32_t taps = kx1 - kx0;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int8_t *x = c->in + ((y0 + ky * dil_h) * c->in_w + x0 + kx0 * dil_w) * ch + oc;
            const int8_t *w = c->w + (ky * c->k_w + kx0) * cs + oc;
            int32_t kx = 0;
            /* Rows of up to 3 taps (3x3 kernels) run unrolled, longer rows in a loop; the sums are
             * the same, in the same order per channel. */
            if (taps > 3) {
                for (; kx < taps - 3; ++kx, x += x_step, w += cs) {
                    a0 += (int32_t)w[0] * ((int32_t)x[0] + off);
                    a1 += (int32_t)w[1] * ((int32_t)x[1] + off);
                    a2 += (int32_t)w[2] * ((int32_t)x[2] + off);
                    a3 += (int32_t)w[3] * ((int32_t)x[3] + off);
                }
            }
            switch (taps - kx) {
            case 3:
                a0 += (int32_t)w[0] * ((int32_t)x[0] + off);
                a1 += (int32_t)w[1] * ((int32_t)x[1] + off);
                a2 += (int32_t)w[2] * ((int32_t)x[2] + off);
                a3 += (int32_t)w[3] * ((int32_t)x[3] + off);
                x += x_step;
                w += cs;
                /* fall through */
            case 2:
                a0 += (int32_t)w[0] * ((int32_t)x[0] + off);
                a1 += (int32_t)w[1] * ((int32_t)x[1] + off);
                a2 += (int32_t)w[2] * ((int32_t)x[2] + off);
                a3 += (int32_t)w[3] * ((int32_t)x[3] + off);
                x += x_step;
                w += cs;
                /* fall through */
            case 1:
                a0 += (int32_t)w[0] * ((int32_t)x[0] + off);
                a1 += (int32_t)w[1] * ((int32_t)x[1] + off);
                a2 += (int32_t)w[2] * ((int32_t)x[2] + off);
                a3 += (int32_t)w[3] * ((int32_t)x[3] + off);
                break;
            default:
                break;
            }
        }
        /* All four results before any store: an int8 store may alias *c and would force reloads. */
        const int8_t r0 = finish(c, a0, oc), r1 = finish(c, a1, oc + 1);
        const int8_t r2 = finish(c, a2, oc + 2), r3 = finish(c, a3, oc + 3);
        out_px[oc] = r0;
        out_px[oc + 1] = r1;
        out_px[oc + 2] = r2;
        out_px[oc + 3] = r3;
    }
    for (; oc < ch; ++oc) {
        int32_t acc = 0;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int8_t *x = c->in + ((y0 + ky * dil_h) * c->in_w + x0 + kx0 * dil_w) * ch + oc;
            const int8_t *w = c->w + (ky * c->k_w + kx0) * cs + oc;
            for (int32_t kx = kx0; kx < kx1; ++kx, x += x_step, w += cs) {
                acc += (int32_t)w[0] * ((int32_t)x[0] + off);
            }
        }
        out_px[oc] = finish(c, acc, oc);
    }
}

/* One output pixel, any depth multiplier: output channel oc reads input channel oc / mult. */
static void pixel_generic(const dw_ctx *c, int32_t y0, int32_t x0, int32_t ky0, int32_t ky1, int32_t kx0,
                          int32_t kx1, int32_t dil_h, int32_t dil_w, int8_t *out_px)
{
    const int32_t out_c = c->in_c * c->mult;
    for (int32_t oc = 0; oc < out_c; ++oc) {
        const int32_t ic = oc / c->mult;
        int32_t acc = 0;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int8_t *x = c->in + ((y0 + ky * dil_h) * c->in_w + x0 + kx0 * dil_w) * c->in_c + ic;
            const int8_t *w = c->w + (ky * c->k_w + kx0) * c->cs + oc;
            for (int32_t kx = kx0; kx < kx1; ++kx, x += dil_w * c->in_c, w += c->cs) {
                acc += (int32_t)w[0] * ((int32_t)x[0] + c->off);
            }
        }
        out_px[oc] = finish(c, acc, oc);
    }
}

reds_status reds_depthwise_conv_s8(const reds_dw_params *params, const reds_quant *quant,
                                   const reds_dims *input_dims, const int8_t *input,
                                   const reds_filter *filter, const int32_t *bias,
                                   const reds_dims *output_dims, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input_dims == NULL || input == NULL || filter == NULL || filter->data == NULL ||
        output_dims == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter->dims.h, k_w = filter->dims.w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t mult = params->ch_mult;
    const int32_t cs = filter->c_stride;
    if (input_dims->n < 1 || input_dims->n != output_dims->n || in_h < 1 || in_w < 1 || in_c < 1 ||
        k_h < 1 || k_w < 1 || out_h < 1 || out_w < 1 || mult < 1 || out_c != in_c * mult ||
        filter->dims.c != out_c || cs < out_c || params->stride.h < 1 || params->stride.w < 1 ||
        params->dilation.h < 1 || params->dilation.w < 1 || params->padding.h < 0 ||
        params->padding.w < 0 || params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    dw_ctx c = {input, filter->data, bias, quant->multiplier, quant->shift, quant->per_channel ? 1 : 0,
                in_h, in_w, in_c, k_h, k_w, cs, mult, params->input_offset, params->output_offset,
                params->activation};
    const int32_t dil_h = params->dilation.h, dil_w = params->dilation.w;
    for (int32_t b = 0; b < input_dims->n; ++b) {
        c.in = input + b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            int32_t ky0, ky1;
            reds_valid_taps(y0, k_h, dil_h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                int32_t kx0, kx1;
                reds_valid_taps(x0, k_w, dil_w, in_w, &kx0, &kx1);
                const int32_t ky_end = kx1 > kx0 ? ky1 : ky0; /* no tap inside: bias only */
                int8_t *out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
                if (mult == 1) {
                    pixel_mult1(&c, y0, x0, ky0, ky_end, kx0, kx1, dil_h, dil_w, out_px);
                } else {
                    pixel_generic(&c, y0, x0, ky0, ky_end, kx0, kx1, dil_h, dil_w, out_px);
                }
            }
        }
    }
    return REDS_OK;
}
