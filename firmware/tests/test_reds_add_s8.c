/* test_reds_add_s8.c - ADD int8 (same shapes) vs TFLM goldens, plus the argument checks. */
#include <string.h>

#include "golden_add_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 4096

int main(void)
{
    int failures = 0;
    int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_ADD_NUM_CASES; ++i) {
        const golden_add_case *g = &golden_add_cases[i];
        const reds_add_params p = {g->input1_offset,    g->input1_multiplier, g->input1_shift,
                                   g->input2_offset,    g->input2_multiplier, g->input2_shift,
                                   g->output_offset,    g->output_multiplier, g->output_shift,
                                   {g->act_min, g->act_max}};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("add", reds_add_s8(&p, g->size, g->input, g->input2, out), REDS_OK);
        failures += reds_check_equal("add", i, out, g->expected, g->expected_len);
    }
    const golden_add_case *g = &golden_add_cases[0];
    const reds_add_params ok = {0, 1 << 30, -1, 0, 1 << 30, -1, 0, 1 << 30, -1, {-128, 127}};
    reds_add_params bad = ok;
    failures += reds_check_status("add ok", reds_add_s8(&ok, 1, g->input, g->input2, out), REDS_OK);
    failures += reds_check_status("add size 0", reds_add_s8(&ok, 0, g->input, g->input2, out), REDS_ARG_ERROR);
    failures += reds_check_status("add NULL", reds_add_s8(&ok, 1, g->input, NULL, out), REDS_ARG_ERROR);
    bad.input2_shift = 1; /* a left shift: not from QuantizeMultiplierSmallerThanOneExp */
    failures += reds_check_status("add shift", reds_add_s8(&bad, 1, g->input, g->input2, out), REDS_ARG_ERROR);
    bad = ok;
    bad.input1_offset = 129; /* not an int8 zero point: (x + offset) << 20 could overflow */
    failures += reds_check_status("add offset", reds_add_s8(&bad, 1, g->input, g->input2, out), REDS_ARG_ERROR);
    bad = ok;
    bad.activation.min = 5;
    bad.activation.max = 4;
    failures += reds_check_status("add clamp", reds_add_s8(&bad, 1, g->input, g->input2, out), REDS_ARG_ERROR);
    printf("%s: add_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_ADD_NUM_CASES);
    return failures ? 1 : 0;
}
