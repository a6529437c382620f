/* test_reds_fully_connected_s8.c - FULLY_CONNECTED vs TFLM goldens (strided prefix of a full tensor). */
#include <string.h>

#include "golden_fully_connected_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 4096

int main(void)
{
    int failures = 0;
    int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_FC_NUM_CASES; ++i) {
        const golden_fc_case *g = &golden_fc_cases[i];
        const reds_fc_params p = {g->input_offset, g->output_offset, {g->act_min, g->act_max}};
        const reds_quant q = {g->mult, g->shift, g->per_channel};
        const reds_filter f = {g->filter, {g->out_w, 1, 1, g->in_w}, g->in_stride};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("fc", reds_fully_connected_s8(&p, &q, g->batches, g->input, &f, g->bias, out), REDS_OK);
        failures += reds_check_equal("fc", i, out, g->expected, g->expected_len);
    }
    /* Bad arguments are reported, never dereferenced. */
    const golden_fc_case *g = &golden_fc_cases[0];
    const reds_fc_params p = {g->input_offset, g->output_offset, {g->act_min, g->act_max}};
    const reds_quant q = {g->mult, g->shift, g->per_channel};
    const reds_filter narrow_stride = {g->filter, {g->out_w, 1, 1, g->in_w}, g->in_w - 1};
    const reds_fc_params bad_act = {0, 0, {10, -10}};
    failures += reds_check_status("fc stride<width", reds_fully_connected_s8(&p, &q, 1, g->input, &narrow_stride, NULL, out), REDS_ARG_ERROR);
    failures += reds_check_status("fc NULL input", reds_fully_connected_s8(&p, &q, 1, NULL, &narrow_stride, NULL, out), REDS_ARG_ERROR);
    const reds_filter ok = {g->filter, {g->out_w, 1, 1, g->in_w}, g->in_stride};
    failures += reds_check_status("fc batches=0", reds_fully_connected_s8(&p, &q, 0, g->input, &ok, NULL, out), REDS_ARG_ERROR);
    failures += reds_check_status("fc act min>max", reds_fully_connected_s8(&bad_act, &q, 1, g->input, &ok, NULL, out), REDS_ARG_ERROR);
    printf("%s: fully_connected_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_FC_NUM_CASES);
    return failures ? 1 : 0;
}
