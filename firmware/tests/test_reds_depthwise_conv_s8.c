/* test_reds_depthwise_conv_s8.c - DEPTHWISE_CONV_2D vs TFLM goldens (channel prefix, channel stride C_full). */
#include <string.h>

#include "golden_depthwise_conv_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 16384

int main(void)
{
    int failures = 0;
    static int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_DW_NUM_CASES; ++i) {
        const golden_dw_case *g = &golden_dw_cases[i];
        const reds_dw_params p = {g->input_offset, g->output_offset, g->ch_mult, {g->stride_h, g->stride_w},
                                  {g->pad_h, g->pad_w}, {g->dilation, g->dilation}, {g->act_min, g->act_max}};
        const reds_quant q = {g->mult, g->shift, 1};
        const reds_dims in = {g->n, g->in_h, g->in_w, g->in_c};
        const reds_dims o = {g->n, g->out_h, g->out_w, g->out_c};
        const reds_filter f = {g->filter, {1, g->k_h, g->k_w, g->out_c}, g->c_stride};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("dw", reds_depthwise_conv_s8(&p, &q, &in, g->input, &f, g->bias, &o, out), REDS_OK);
        failures += reds_check_equal("dw", i, out, g->expected, g->expected_len);
    }
    const golden_dw_case *g = &golden_dw_cases[0];
    const reds_dw_params p = {0, 0, 3, {1, 1}, {0, 0}, {1, 1}, {-128, 127}};
    const reds_quant q = {g->mult, g->shift, 1};
    const reds_dims in = {g->n, g->in_h, g->in_w, g->in_c};
    const reds_dims o = {g->n, g->out_h, g->out_w, g->out_c};
    const reds_filter f = {g->filter, {1, g->k_h, g->k_w, g->out_c}, g->c_stride};
    failures += reds_check_status("dw ch_mult mismatch", reds_depthwise_conv_s8(&p, &q, &in, g->input, &f, NULL, &o, out), REDS_ARG_ERROR);
    printf("%s: depthwise_conv_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_DW_NUM_CASES);
    return failures ? 1 : 0;
}
