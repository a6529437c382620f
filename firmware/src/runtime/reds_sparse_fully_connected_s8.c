/*
 * reds_sparse_fully_connected_s8.c - FULLY_CONNECTED int8 on row-sparse (DRESS) weights: each row's
 * first `count` entries in importance order, gathered through their column indices.
 */
#include "reds_requant.h"
#include "reds_sparse_kernels.h"

/* Two loops, one per index width, so the width is not tested once per MAC. */
static int32_t dot_u8(const int8_t *w, const uint8_t *idx, int32_t n, const int8_t *x, int32_t in_off)
{
    int32_t acc = 0;
    for (int32_t j = 0; j < n; ++j) {
        acc += (int32_t)w[j] * ((int32_t)x[idx[j]] + in_off);
    }
    return acc;
}

static int32_t dot_u16(const int8_t *w, const uint16_t *idx, int32_t n, const int8_t *x, int32_t in_off)
{
    int32_t acc = 0;
    for (int32_t j = 0; j < n; ++j) {
        acc += (int32_t)w[j] * ((int32_t)x[idx[j]] + in_off);
    }
    return acc;
}

reds_status reds_sparse_fully_connected_s8(const reds_fc_params *params, const reds_quant *quant,
                                           const int8_t *input, const reds_sparse_filter *filter,
                                           const int32_t *bias, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input == NULL || filter == NULL || filter->values == NULL || filter->indices == NULL ||
        output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t rows = filter->dims.n, n_max = filter->n_max, n = filter->count;
    if (rows < 1 || filter->dims.c < 1 || filter->dims.h != 1 || filter->dims.w != 1 || n_max < 1 ||
        n < 0 || n > n_max || (filter->index_bytes != 1 && filter->index_bytes != 2) ||
        params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    const int32_t q_step = quant->per_channel ? 1 : 0;
    const int32_t in_off = params->input_offset, out_off = params->output_offset;
    const reds_act act = params->activation;
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *w = filter->values + r * n_max;
        int32_t acc = filter->index_bytes == 1
                          ? dot_u8(w, (const uint8_t *)filter->indices + r * n_max, n, input, in_off)
                          : dot_u16(w, (const uint16_t *)filter->indices + r * n_max, n, input, in_off);
        if (bias != NULL) {
            acc += bias[r];
        }
        output[r] = reds_requant_clamp(acc, quant->multiplier[r * q_step], quant->shift[r * q_step], out_off, act);
    }
    return REDS_OK;
}
