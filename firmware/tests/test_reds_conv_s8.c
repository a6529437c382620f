/* test_reds_conv_s8.c - CONV_2D vs TFLM goldens (OHWI prefix of a full filter, SAME/VALID, strides 1/2). */
#include <string.h>

#include "golden_conv_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 16384

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
    printf("%s: conv_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_CONV_NUM_CASES);
    return failures ? 1 : 0;
}
