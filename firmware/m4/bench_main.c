/*
 * bench_main.c - entry points that benchmarks/mcu_cycles.py calls inside unicorn (Cortex-M4).
 * Each bench_* function runs one kernel on buffers the host placed in emulator RAM, with the
 * DS-CNN shapes at a given width, reading the weights through the full tensor's strides exactly
 * as a nested level does. Requantisation constants are typical values; they do not change the
 * instruction count. The model API (reds_model_init / reds_set_level / reds_invoke) is linked in
 * and called directly by the host.
 */
#include <stdint.h>

#include "reds_kernels.h"
#include "reds_model.h"
#include "reds_sparse_kernels.h"

/** One per-tensor multiplier/shift (per_channel = 0 runs the same loop as per-channel). */
static const int32_t bench_mult[1] = {1518500250};
static const int32_t bench_shift[1] = {-8};

int32_t bench_fc(const int8_t *w, const int8_t *in, int8_t *out, int32_t in_w, int32_t out_w,
                 int32_t in_full);
int32_t bench_conv(const int8_t *w, const int8_t *in, int8_t *out, const int32_t *shape);
int32_t bench_dw(const int8_t *w, const int8_t *in, int8_t *out, const int32_t *shape);
int32_t bench_mean(const int8_t *in, int8_t *out, int32_t h, int32_t w, int32_t c);
int32_t bench_sparse_conv(const int8_t *values, const void *indices, const int8_t *in, int8_t *out,
                          const int32_t *shape);
int32_t bench_sparse_fc(const int8_t *values, const void *indices, const int8_t *in, int8_t *out,
                        const int32_t *shape);

/** FULLY_CONNECTED [out_w x in_w] prefix of an [.. x in_full] tensor, batch 1. */
int32_t bench_fc(const int8_t *w, const int8_t *in, int8_t *out, int32_t in_w, int32_t out_w,
                 int32_t in_full)
{
    const reds_fc_params p = {3, -5, {-128, 127}};
    const reds_quant q = {bench_mult, bench_shift, 0};
    const reds_filter f = {w, {out_w, 1, 1, in_w}, in_full};
    return (int32_t)reds_fully_connected_s8(&p, &q, 1, in, &f, 0, out);
}

/** shape = {in_h, in_w, in_c, out_c, k_h, k_w, stride, pad_h, pad_w, out_h, out_w, c_in_full}. */
int32_t bench_conv(const int8_t *w, const int8_t *in, int8_t *out, const int32_t *shape)
{
    const reds_conv_params p = {3, -5, {shape[6], shape[6]}, {shape[7], shape[8]}, {1, 1}, {-128, 127}};
    const reds_quant q = {bench_mult, bench_shift, 0};
    const reds_dims id = {1, shape[0], shape[1], shape[2]};
    const reds_dims od = {1, shape[9], shape[10], shape[3]};
    const reds_filter f = {w, {shape[3], shape[4], shape[5], shape[2]}, shape[11]};
    return (int32_t)reds_conv_s8(&p, &q, &id, in, &f, 0, &od, out);
}

/** shape as bench_conv; out_c = in_c, c_in_full is the depthwise channel stride C_full. */
int32_t bench_dw(const int8_t *w, const int8_t *in, int8_t *out, const int32_t *shape)
{
    const reds_dw_params p = {3, -5, 1, {shape[6], shape[6]}, {shape[7], shape[8]}, {1, 1}, {-128, 127}};
    const reds_quant q = {bench_mult, bench_shift, 0};
    const reds_dims id = {1, shape[0], shape[1], shape[2]};
    const reds_dims od = {1, shape[9], shape[10], shape[2]};
    const reds_filter f = {w, {1, shape[4], shape[5], shape[2]}, shape[11]};
    return (int32_t)reds_depthwise_conv_s8(&p, &q, &id, in, &f, 0, &od, out);
}

int32_t bench_mean(const int8_t *in, int8_t *out, int32_t h, int32_t w, int32_t c)
{
    const reds_mean_params p = {3, -5, 1518500250, -6};
    const reds_dims id = {1, h, w, c};
    return (int32_t)reds_mean_s8(&p, &id, in, out);
}

/** Row-sparse CONV_2D: shape as bench_conv with words 11..13 = n_max, count, index bytes (1 or 2). */
int32_t bench_sparse_conv(const int8_t *values, const void *indices, const int8_t *in, int8_t *out,
                          const int32_t *shape)
{
    const reds_conv_params p = {3, -5, {shape[6], shape[6]}, {shape[7], shape[8]}, {1, 1}, {-128, 127}};
    const reds_quant q = {bench_mult, bench_shift, 0};
    const reds_dims id = {1, shape[0], shape[1], shape[2]};
    const reds_dims od = {1, shape[9], shape[10], shape[3]};
    const reds_sparse_filter f = {values, indices, shape[13], shape[11], shape[12],
                                  {shape[3], shape[4], shape[5], shape[2]}};
    return (int32_t)reds_sparse_conv_s8(&p, &q, &id, in, &f, 0, &od, out);
}

/** Row-sparse FULLY_CONNECTED: shape = {in_c, out_c, n_max, count, index bytes}. */
int32_t bench_sparse_fc(const int8_t *values, const void *indices, const int8_t *in, int8_t *out,
                        const int32_t *shape)
{
    const reds_fc_params p = {3, -5, {-128, 127}};
    const reds_quant q = {bench_mult, bench_shift, 0};
    const reds_sparse_filter f = {values, indices, shape[4], shape[2], shape[3], {shape[1], 1, 1, shape[0]}};
    return (int32_t)reds_sparse_fully_connected_s8(&p, &q, in, &f, 0, out);
}

/** sizeof(reds_model): the static RAM a sketch reserves for the model (read by mcu_cycles.py). */
const uint32_t bench_sizeof_reds_model = (uint32_t)sizeof(reds_model);

/* Keeps every entry point in the image (--gc-sections) and gives Reset_Handler something to run. */
__attribute__((used, section(".bench_entry"))) static const void *const bench_entry_points[] = {
    (const void *)bench_fc,        (const void *)bench_conv,     (const void *)bench_dw,
    (const void *)bench_mean,      (const void *)reds_model_init, (const void *)reds_set_level,
    (const void *)reds_invoke,     (const void *)&bench_sizeof_reds_model, (const void *)bench_sparse_conv,
    (const void *)bench_sparse_fc,
};

int main(void)
{
    return bench_entry_points[0] != 0 ? 0 : 1;
}
