/*
 * reds_sparse_fully_connected_s8.c - FULLY_CONNECTED int8 on row-sparse (DRESS) weights: each row's
 * first `count` entries in importance order, gathered through their column indices.
 */
#include "reds_sparse_dot.h"
#include "reds_sparse_kernels.h"

reds_status reds_sparse_fully_connected_s8(const reds_fc_params *params, const reds_quant *quant,
                                           const int8_t *input, const reds_sparse_filter *filter,
                                           const int32_t *bias, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input == NULL || filter == NULL || filter->values == NULL || filter->indices == NULL ||
        output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t n_max = filter->n_max, n = filter->count;
    if (filter->dims.n < 1 || filter->dims.c < 1 || filter->dims.h != 1 || filter->dims.w != 1 || n_max < 1 ||
        n < 0 || n > n_max || (filter->index_bytes != 1 && filter->index_bytes != 2) ||
        params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    /* Up to REDS_SPARSE_PATCH_MAX inputs with uint8 indices: widened once, shared by every row. */
    int16_t xs[REDS_SPARSE_PATCH_MAX];
    const int widen = filter->index_bytes == 1 && filter->dims.c <= REDS_SPARSE_PATCH_MAX;
    if (widen) {
        reds_sparse_widen(xs, input, filter->dims.c, params->input_offset);
    }
    reds_sparse_rows(filter, input, widen ? xs : NULL, params->input_offset, quant, bias, params->output_offset,
                     params->activation, output);
    return REDS_OK;
}
