/* test_reds_conv_s8.c - CONV_2D vs TFLM goldens (OHWI prefix of a full filter, SAME/VALID, strides 1/2). */
#include <string.h>

#include "golden_conv_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 16384

/* The 1x1 unpadded fast path reads input pixel (oy * stride, ox * stride) unclipped: the kernel must
 * reject output dims whose windows start outside the image (ASan would flag the over-read) and
 * accept the largest valid ones. Input 5x3x2, filter 1x1 2 -> 2. */
static int test_1x1_windows_outside_image(void)
{
    static const int8_t x[5 * 3 * 2] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15,
                                        -16, 17, -18, 19, -20, 21, -22, 23, -24, 25, -26, 27, -28, 29, -30};
    static const int8_t w[2 * 2] = {3, -1, 2, 5};
    const int32_t mult[2] = {1 << 30, 1 << 30}, shift[2] = {0, 0};
    const reds_quant q = {mult, shift, 1};
    const reds_filter f = {w, {2, 1, 1, 2}, 2};
    const reds_dims in = {1, 5, 3, 2};
    int8_t y[8 * 4 * 2];
    int failures = 0;
    struct { int32_t sh, sw, oh, ow; reds_status want; } cases[] = {
        {1, 1, 5, 3, REDS_OK},        {2, 2, 3, 2, REDS_OK},        /* last window at (4, 2) */
        {1, 1, 6, 3, REDS_ARG_ERROR}, {1, 1, 5, 4, REDS_ARG_ERROR}, /* one row / column past the image */
        {2, 2, 4, 2, REDS_ARG_ERROR}, {2, 2, 3, 3, REDS_ARG_ERROR},
        {0x7FFFFFFF, 1, 3, 3, REDS_ARG_ERROR},                      /* (out - 1) * stride overflows int32 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const reds_conv_params p = {0, 0, {cases[i].sh, cases[i].sw}, {0, 0}, {1, 1}, {-128, 127}};
        const reds_dims o = {1, cases[i].oh, cases[i].ow, 2};
        failures += reds_check_status("conv 1x1 window bounds", reds_conv_s8(&p, &q, &in, x, &f, NULL, &o, y),
                                      cases[i].want);
    }
    return failures;
}

/* The 1x1 fast path's specialised loops (1 input channel or a dot product; plain multipliers, a
 * pre-shift, INT32_MIN multipliers; bias or none; strides 1 and 2) against FULLY_CONNECTED on each
 * pixel's channels, the same TFLM arithmetic through an independent loop. Deterministic LCG data. */
static int test_1x1_matches_fully_connected(void)
{
    static int8_t x[6 * 5 * 3], w[5 * 4], y[6 * 5 * 5], want[5];
    static const int32_t mult[5] = {1 << 30, 1518500250, INT32_MIN, 2147483647, 1073741825};
    static const int32_t shift[5] = {-3, 0, -1, 2, -31};
    static const int32_t bias[5] = {1000, -70000, 5, (1 << 30), -(1 << 30)};
    uint32_t seed = 12345u;
    int failures = 0;
    for (int32_t i = 0; i < (int32_t)sizeof x; ++i) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (int8_t)(seed >> 24);
    }
    for (int32_t i = 0; i < (int32_t)sizeof w; ++i) {
        seed = seed * 1664525u + 1013904223u;
        w[i] = (int8_t)(seed >> 24);
    }
    const reds_quant q = {mult, shift, 1};
    for (int32_t in_c = 1; in_c <= 3; in_c += 2) {
        for (int32_t s = 1; s <= 2; ++s) {
            for (int32_t with_bias = 0; with_bias <= 1; ++with_bias) {
                const int32_t *b = with_bias ? bias : NULL;
                const reds_dims in = {1, 6, 5, in_c};
                const reds_dims o = {1, (6 - 1) / s + 1, (5 - 1) / s + 1, 5};
                const reds_filter f = {w, {5, 1, 1, in_c}, 4}; /* row stride 4 = full C_in */
                const reds_conv_params p = {7, -3, {s, s}, {0, 0}, {1, 1}, {-100, 120}};
                const reds_fc_params fp = {7, -3, {-100, 120}};
                failures += reds_check_status("conv 1x1 vs fc", reds_conv_s8(&p, &q, &in, x, &f, b, &o, y), REDS_OK);
                for (int32_t oy = 0; oy < o.h; ++oy) {
                    for (int32_t ox = 0; ox < o.w; ++ox) {
                        const int8_t *px = x + ((oy * s) * in.w + ox * s) * in_c;
                        failures += reds_check_status("fc reference", reds_fully_connected_s8(&fp, &q, 1, px, &f, b, want), REDS_OK);
                        failures += reds_check_equal("conv 1x1 vs fc", in_c * 100 + s * 10 + with_bias,
                                                     y + (oy * o.w + ox) * 5, want, 5);
                    }
                }
            }
        }
    }
    return failures;
}

int main(void)
{
    int failures = 0;
    static int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_CONV_NUM_CASES; ++i) {
        const golden_conv_case *g = &golden_conv_cases[i];
        const reds_conv_params p = {g->input_offset, g->output_offset, {g->stride_h, g->stride_w},
                                    {g->pad_h, g->pad_w}, {g->dilation, g->dilation}, {g->act_min, g->act_max}};
        const reds_quant q = {g->mult, g->shift, 1};
        const reds_dims in = {g->n, g->in_h, g->in_w, g->in_c};
        const reds_dims o = {g->n, g->out_h, g->out_w, g->out_c};
        const reds_filter f = {g->filter, {g->out_c, g->k_h, g->k_w, g->in_c}, g->c_stride};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("conv", reds_conv_s8(&p, &q, &in, g->input, &f, g->bias, &o, out), REDS_OK);
        failures += reds_check_equal("conv", i, out, g->expected, g->expected_len);
    }
    const golden_conv_case *g = &golden_conv_cases[0];
    const reds_conv_params p = {g->input_offset, g->output_offset, {0, 1}, {0, 0}, {1, 1}, {-128, 127}};
    const reds_quant q = {g->mult, g->shift, 1};
    const reds_dims in = {g->n, g->in_h, g->in_w, g->in_c};
    const reds_dims o = {g->n, g->out_h, g->out_w, g->out_c};
    const reds_filter f = {g->filter, {g->out_c, g->k_h, g->k_w, g->in_c}, g->c_stride};
    failures += reds_check_status("conv stride 0", reds_conv_s8(&p, &q, &in, g->input, &f, NULL, &o, out), REDS_ARG_ERROR);
    const reds_dims wrong_c = {g->n, g->in_h, g->in_w, g->in_c + 1};
    const reds_conv_params p1 = {0, 0, {1, 1}, {0, 0}, {1, 1}, {-128, 127}};
    failures += reds_check_status("conv c mismatch", reds_conv_s8(&p1, &q, &wrong_c, g->input, &f, NULL, &o, out), REDS_ARG_ERROR);
    failures += reds_check_status("conv NULL filter", reds_conv_s8(&p1, &q, &in, g->input, NULL, NULL, &o, out), REDS_ARG_ERROR);
    failures += test_1x1_windows_outside_image();
    failures += test_1x1_matches_fully_connected();
    printf("%s: conv_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_CONV_NUM_CASES);
    return failures ? 1 : 0;
}
