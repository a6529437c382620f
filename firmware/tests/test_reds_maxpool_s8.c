/* test_reds_maxpool_s8.c - MAX_POOL_2D vs TFLM goldens. */
#include <string.h>

#include "golden_maxpool_s8.h"
#include "reds_kernels.h"
#include "test_util.h"

#define MAX_OUT 16384

int main(void)
{
    int failures = 0;
    static int8_t out[MAX_OUT];
    for (int32_t i = 0; i < GOLDEN_MAXPOOL_NUM_CASES; ++i) {
        const golden_maxpool_case *g = &golden_maxpool_cases[i];
        const reds_pool_params p = {{g->stride_h, g->stride_w}, {g->pad_h, g->pad_w}, {g->f_h, g->f_w}, {g->act_min, g->act_max}};
        const reds_dims in = {g->n, g->in_h, g->in_w, g->c};
        const reds_dims o = {g->n, g->out_h, g->out_w, g->c};
        memset(out, 0x55, sizeof(out));
        failures += reds_check_status("maxpool", reds_maxpool_s8(&p, &in, g->input, &o, out), REDS_OK);
        failures += reds_check_equal("maxpool", i, out, g->expected, g->expected_len);
    }
    const reds_pool_params bad = {{1, 1}, {0, 0}, {0, 1}, {-128, 127}};
    const reds_dims d = {1, 2, 2, 1};
    failures += reds_check_status("maxpool filter 0", reds_maxpool_s8(&bad, &d, golden_maxpool_cases[0].input, &d, out), REDS_ARG_ERROR);
    printf("%s: maxpool_s8 %d golden cases\n", failures ? "FAILED" : "OK", GOLDEN_MAXPOOL_NUM_CASES);
    return failures ? 1 : 0;
}
