/* test_reds_sparse_s8.c - row-sparse CONV_2D / FULLY_CONNECTED vs the dense kernels (themselves checked
 * against TFLM goldens) on the zero-expanded weights: every count from 0 to n_max, uint8 and uint16
 * indices, SAME and VALID padding, strides 1 and 2, 1x1 and 3x3 kernels, each of the conv kernel's
 * window paths (contiguous, copied patch, decoded taps). */
#include <stdlib.h>
#include <string.h>

#include "reds_kernels.h"
#include "reds_sparse_kernels.h"
#include "test_util.h"

static uint32_t next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* A random permutation of [0, fan) per row (the importance order); values random int8. */
static void make_rows(uint32_t *seed, int32_t rows, int32_t fan, int32_t n_max, int8_t *vals, uint16_t *idx)
{
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)fan);
    for (int32_t r = 0; r < rows; ++r) {
        for (int32_t i = 0; i < fan; ++i) {
            perm[i] = i;
        }
        for (int32_t i = fan - 1; i > 0; --i) {
            const int32_t j = (int32_t)(next(seed) % (uint32_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int32_t j = 0; j < n_max; ++j) {
            vals[r * n_max + j] = (int8_t)(next(seed) & 0xFF);
            idx[r * n_max + j] = (uint16_t)perm[j];
        }
    }
    free(perm);
}

/* Dense OHWI (or [out, in]) weights holding each row's first `count` entries, zeros elsewhere. */
static void expand(int32_t rows, int32_t fan, int32_t n_max, int32_t count, const int8_t *vals,
                   const uint16_t *idx, int8_t *dense)
{
    memset(dense, 0, (size_t)rows * (size_t)fan);
    for (int32_t r = 0; r < rows; ++r) {
        for (int32_t j = 0; j < count; ++j) {
            dense[r * fan + idx[r * n_max + j]] = vals[r * n_max + j];
        }
    }
}

static int conv_case(uint32_t seed, int32_t h, int32_t w, int32_t c, int32_t oc, int32_t k, int32_t s,
                     int same)
{
    const int32_t oh = same ? (h + s - 1) / s : (h - k) / s + 1, ow = same ? (w + s - 1) / s : (w - k) / s + 1;
    const int32_t ph = same ? ((oh - 1) * s + k - h > 0 ? ((oh - 1) * s + k - h) / 2 : 0) : 0;
    const int32_t pw = same ? ((ow - 1) * s + k - w > 0 ? ((ow - 1) * s + k - w) / 2 : 0) : 0;
    const int32_t fan = k * k * c, n_max = fan - fan / 5;
    int8_t *x = malloc((size_t)(h * w * c)), *vals = malloc((size_t)(oc * n_max)), *dense = malloc((size_t)(oc * fan));
    uint16_t *idx16 = malloc(sizeof(uint16_t) * (size_t)(oc * n_max));
    uint8_t *idx8 = malloc((size_t)(oc * n_max));
    int32_t *mult = malloc(sizeof(int32_t) * (size_t)oc), *shift = malloc(sizeof(int32_t) * (size_t)oc);
    int32_t *bias = malloc(sizeof(int32_t) * (size_t)oc);
    int8_t *want = malloc((size_t)(oh * ow * oc)), *got = malloc((size_t)(oh * ow * oc));
    for (int32_t i = 0; i < h * w * c; ++i) {
        x[i] = (int8_t)(next(&seed) & 0xFF);
    }
    for (int32_t o = 0; o < oc; ++o) {
        mult[o] = 1073741824 + (int32_t)(next(&seed) % 1000000u);
        shift[o] = -7 - (int32_t)(next(&seed) % 3u);
        bias[o] = (int32_t)(next(&seed) % 20001u) - 10000;
    }
    make_rows(&seed, oc, fan, n_max, vals, idx16);
    for (int32_t i = 0; i < oc * n_max; ++i) {
        idx8[i] = (uint8_t)idx16[i];
    }
    const reds_conv_params p = {7, -3, {s, s}, {ph, pw}, {1, 1}, {-100, 127}};
    const reds_quant q = {mult, shift, 1};
    const reds_dims id = {1, h, w, c}, od = {1, oh, ow, oc};
    int failures = 0;
    for (int32_t count = 0; count <= n_max; count += count < 3 ? 1 : n_max / 4 + 1) {
        expand(oc, fan, n_max, count, vals, idx16, dense);
        const reds_filter df = {dense, {oc, k, k, c}, c};
        failures += reds_check_status("dense conv", reds_conv_s8(&p, &q, &id, x, &df, bias, &od, want), REDS_OK);
        for (int32_t b = 1; b <= 2; ++b) {
            if (b == 1 && fan > 256) {
                continue;
            }
            const reds_sparse_filter sf = {vals, b == 1 ? (const void *)idx8 : (const void *)idx16, b, n_max, count,
                                           {oc, k, k, c}};
            memset(got, 0x55, (size_t)(oh * ow * oc));
            failures += reds_check_status("sparse conv", reds_sparse_conv_s8(&p, &q, &id, x, &sf, bias, &od, got),
                                          REDS_OK);
            failures += reds_check_equal("sparse conv", count, got, want, oh * ow * oc);
        }
    }
    const reds_sparse_filter over = {vals, idx16, 2, n_max, n_max + 1, {oc, k, k, c}};
    failures += reds_check_status("sparse conv count > n_max",
                                  reds_sparse_conv_s8(&p, &q, &id, x, &over, bias, &od, got), REDS_ARG_ERROR);
    free(x), free(vals), free(dense), free(idx16), free(idx8), free(mult), free(shift), free(bias), free(want),
        free(got);
    return failures;
}

static int fc_case(uint32_t seed, int32_t in, int32_t out)
{
    const int32_t n_max = in - in / 3;
    int8_t *x = malloc((size_t)in), *vals = malloc((size_t)(out * n_max)), *dense = malloc((size_t)(out * in));
    uint16_t *idx16 = malloc(sizeof(uint16_t) * (size_t)(out * n_max));
    uint8_t *idx8 = malloc((size_t)(out * n_max));
    int32_t *mult = malloc(sizeof(int32_t) * (size_t)out), *shift = malloc(sizeof(int32_t) * (size_t)out);
    int8_t *want = malloc((size_t)out), *got = malloc((size_t)out);
    for (int32_t i = 0; i < in; ++i) {
        x[i] = (int8_t)(next(&seed) & 0xFF);
    }
    for (int32_t o = 0; o < out; ++o) {
        mult[o] = 1073741824 + (int32_t)(next(&seed) % 1000000u);
        shift[o] = -8;
    }
    make_rows(&seed, out, in, n_max, vals, idx16);
    for (int32_t i = 0; i < out * n_max; ++i) {
        idx8[i] = (uint8_t)idx16[i];
    }
    const reds_fc_params p = {-5, 4, {-128, 127}};
    const reds_quant q = {mult, shift, 1};
    int failures = 0;
    for (int32_t count = 0; count <= n_max; count += count < 3 ? 1 : n_max / 4 + 1) {
        expand(out, in, n_max, count, vals, idx16, dense);
        const reds_filter df = {dense, {out, 1, 1, in}, in};
        failures += reds_check_status("dense fc", reds_fully_connected_s8(&p, &q, 1, x, &df, NULL, want), REDS_OK);
        for (int32_t b = 1; b <= 2; ++b) {
            if (b == 1 && in > 256) {
                continue;
            }
            const reds_sparse_filter sf = {vals, b == 1 ? (const void *)idx8 : (const void *)idx16, b, n_max, count,
                                           {out, 1, 1, in}};
            failures += reds_check_status("sparse fc", reds_sparse_fully_connected_s8(&p, &q, x, &sf, NULL, got),
                                          REDS_OK);
            failures += reds_check_equal("sparse fc", count, got, want, out);
        }
    }
    const reds_sparse_filter bad_width = {vals, idx16, 4, n_max, 1, {out, 1, 1, in}};
    failures += reds_check_status("sparse fc index width 4",
                                  reds_sparse_fully_connected_s8(&p, &q, x, &bad_width, NULL, got), REDS_ARG_ERROR);
    failures += reds_check_status("sparse fc NULL input",
                                  reds_sparse_fully_connected_s8(&p, &q, NULL, &bad_width, NULL, got), REDS_ARG_ERROR);
    free(x), free(vals), free(dense), free(idx16), free(idx8), free(mult), free(shift), free(want), free(got);
    return failures;
}

int main(void)
{
    int failures = 0;
    failures += conv_case(1u, 9, 7, 1, 8, 3, 2, 1);   /* first conv: 3x3 s2 SAME, fan_in 9 */
    failures += conv_case(2u, 6, 5, 12, 10, 1, 1, 0); /* pointwise */
    failures += conv_case(3u, 7, 8, 4, 6, 3, 1, 1);   /* 3x3 s1 SAME */
    failures += conv_case(4u, 8, 6, 5, 3, 3, 2, 0);   /* 3x3 s2 VALID */
    failures += conv_case(5u, 5, 5, 32, 4, 3, 1, 1);  /* fan_in 288: uint16 indices, taps decoded */
    failures += conv_case(8u, 6, 3, 2, 5, 3, 1, 0);   /* window as wide as the image: contiguous */
    failures += fc_case(6u, 64, 10);
    failures += fc_case(7u, 300, 7);
    printf("%s: sparse conv / fully connected vs dense on zero-expanded weights\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
