/* test_reds_mean_s8.c - MEAN over H,W (keep_dims=false) vs TFLM goldens, incl. identical in/out quantisation. */
#include <string.h>

#include "golden_mean_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 4096

int main(void)
{
    int failures = 0;
    int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_MEAN_NUM_CASES; ++i) {
        const golden_mean_case *g = &golden_mean_cases[i];
        const reds_mean_params p = {g->input_offset, g->output_offset, g->multiplier, g->shift};
        const reds_dims in = {g->n, g->h, g->w, g->c};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("mean", reds_mean_s8(&p, &in, g->input, out), REDS_OK);
        failures += reds_check_equal("mean", i, out, g->expected, g->expected_len);
    }
    const reds_mean_params p = {0, 0, 1 << 30, 0};
    const reds_dims empty = {1, 0, 3, 2};
    failures += reds_check_status("mean h=0", reds_mean_s8(&p, &empty, golden_mean_cases[0].input, out), REDS_ARG_ERROR);
    printf("%s: mean_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_MEAN_NUM_CASES);
    return failures ? 1 : 0;
}
