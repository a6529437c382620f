/* test_reds_leaky_relu_s8.c - LEAKY_RELU int8 vs TFLM goldens (alpha below and above 1, inputs -128 and
 * 127, clamped outputs), in place, plus the argument checks. */
#include <string.h>

#include "golden_leaky_relu_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 4096

int main(void)
{
    int failures = 0;
    int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_LEAKY_NUM_CASES; ++i) {
        const golden_leaky_case *g = &golden_leaky_cases[i];
        const reds_leaky_relu_params p = {g->input_offset,     g->output_offset,   g->identity_multiplier,
                                          g->identity_shift,   g->alpha_multiplier, g->alpha_shift};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("leaky", reds_leaky_relu_s8(&p, g->size, g->input, out), REDS_OK);
        failures += reds_check_equal("leaky", i, out, g->expected, g->expected_len);
        memcpy(out, g->input, (size_t)g->size); /* in place: output aliases input */
        failures += reds_check_status("leaky in place", reds_leaky_relu_s8(&p, g->size, out, out), REDS_OK);
        failures += reds_check_equal("leaky in place", i, out, g->expected, g->expected_len);
    }
    const golden_leaky_case *g = &golden_leaky_cases[0];
    const reds_leaky_relu_params ok = {0, 0, 1 << 30, 1, 1 << 30, -1};
    reds_leaky_relu_params bad = ok;
    failures += reds_check_status("leaky ok", reds_leaky_relu_s8(&ok, 1, g->input, out), REDS_OK);
    failures += reds_check_status("leaky size 0", reds_leaky_relu_s8(&ok, 0, g->input, out), REDS_ARG_ERROR);
    failures += reds_check_status("leaky NULL", reds_leaky_relu_s8(&ok, 1, NULL, out), REDS_ARG_ERROR);
    bad.alpha_shift = 31; /* not from QuantizeMultiplier */
    failures += reds_check_status("leaky shift", reds_leaky_relu_s8(&bad, 1, g->input, out), REDS_ARG_ERROR);
    bad = ok;
    bad.identity_shift = -32;
    failures += reds_check_status("leaky shift", reds_leaky_relu_s8(&bad, 1, g->input, out), REDS_ARG_ERROR);
    bad = ok;
    bad.input_offset = 129; /* not -(an int8 zero point) */
    failures += reds_check_status("leaky offset", reds_leaky_relu_s8(&bad, 1, g->input, out), REDS_ARG_ERROR);
    bad = ok;
    bad.output_offset = 128;
    failures += reds_check_status("leaky offset", reds_leaky_relu_s8(&bad, 1, g->input, out), REDS_ARG_ERROR);
    /* Identity x 2 (multiplier 2^30 = 0.5 in Q31, shift 2) and alpha 1/4 (shift -1): 127 -> 254 clamps to
     * 127, -128 -> -32, 3 -> 6. */
    const int8_t x[3] = {127, -128, 3};
    const reds_leaky_relu_params quarter = {0, 0, 1 << 30, 2, 1 << 30, -1};
    int8_t y[3];
    failures += reds_check_status("leaky hand", reds_leaky_relu_s8(&quarter, 3, x, y), REDS_OK);
    const int8_t want[3] = {127, -32, 6};
    failures += reds_check_equal("leaky hand", 0, y, want, 3);
    printf("%s: leaky_relu_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_LEAKY_NUM_CASES);
    return failures ? 1 : 0;
}
