/*
 * reds_sparse_kernels.h - int8 kernels over row-sparse (DRESS) weights, one public function per file.
 *
 * Every output row r keeps its weights in importance order: values[r][j] and the flat column they
 * belong to, indices[r][j], for j < n_max; a level runs the first `count` entries of every row (an
 * ELLPACK-like layout: equal row lengths, no row pointers). The arithmetic is TFLM's reference kernel's
 * on the zero-expanded dense weights: acc = bias + sum_j values[r][j] * (x[col(indices[r][j])] +
 * input_offset), then the per-channel requantisation, output offset and clamp; a dropped weight is 0,
 * so skipping it changes no sum and the outputs are bit-exact with the expanded dense model.
 * Both kernels use up to 512 bytes of stack (an int16 copy of the input window, REDS_SPARSE_PATCH_MAX in
 * reds_sparse_dot.h) and no other memory.
 */
#ifndef REDS_SPARSE_KERNELS_H
#define REDS_SPARSE_KERNELS_H

#include <stdint.h>

#include "reds_types.h"

/**
 * Row-sparse weights of a CONV_2D (OHWI) or FULLY_CONNECTED ([out, in]) layer.
 * dims: {n = rows (out_c), h = kh, w = kw, c = in_c}; FULLY_CONNECTED has h = w = 1. A column index
 * addresses the flat (kh, kw, in_c) patch, row-major (TFLite's OHWI order), so fan_in = h * w * c.
 * values/indices: [dims.n, n_max], row stride n_max; indices are uint8 (index_bytes 1) or little-endian
 * uint16 (index_bytes 2), each < fan_in. count: entries used per row, 0 <= count <= n_max.
 */
typedef struct {
    const int8_t *values;
    const void *indices;
    int32_t index_bytes;
    int32_t n_max;
    int32_t count;
    reds_dims dims;
} reds_sparse_filter;

/**
 * FULLY_CONNECTED int8 (batch 1) on row-sparse weights.
 * @param input   [filter->dims.c] int8
 * @param bias    [filter->dims.n] int32 or NULL
 * @param output  [filter->dims.n] int8
 * @return REDS_ARG_ERROR for NULL pointers, non-positive sizes, count outside [0, n_max], an index
 *         width other than 1 or 2, or a clamp min > max. Indices are trusted (reds_model_init checks them).
 */
reds_status reds_sparse_fully_connected_s8(const reds_fc_params *params, const reds_quant *quant,
                                           const int8_t *input, const reds_sparse_filter *filter,
                                           const int32_t *bias, int8_t *output);

/**
 * CONV_2D int8 (NHWC input, dilation 1) on row-sparse weights. Taps outside the image (padding)
 * contribute nothing, as in TFLM.
 * @param input_dims   {1, h, w, c}; c must equal filter->dims.c
 * @param output_dims  {1, out_h, out_w, out_c}; out_c must equal filter->dims.n
 * @return REDS_ARG_ERROR as reds_sparse_fully_connected_s8, or for a dilation other than 1, a
 *         non-positive stride or a negative padding.
 */
reds_status reds_sparse_conv_s8(const reds_conv_params *params, const reds_quant *quant,
                                const reds_dims *input_dims, const int8_t *input,
                                const reds_sparse_filter *filter, const int32_t *bias,
                                const reds_dims *output_dims, int8_t *output);

#endif /* REDS_SPARSE_KERNELS_H */
