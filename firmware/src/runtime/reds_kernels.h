/*
 * reds_kernels.h - int8 kernels of the reds runtime, one public function per file.
 *
 * Every kernel follows TFLM's reference integer kernels exactly (accumulate in int32 ->
 * add bias -> requantise -> add output zero point -> clamp) so its outputs are bit-exact with
 * the tflite-micro interpreter. Kernels never allocate, keep no state and return REDS_ARG_ERROR
 * for NULL pointers, non-positive sizes or a weight view that does not fit its full tensor.
 * Layouts and offsets are documented once in reds_types.h.
 */
#ifndef REDS_KERNELS_H
#define REDS_KERNELS_H

#include <stdint.h>

#include "reds_types.h"

/**
 * FULLY_CONNECTED int8 on a width prefix.
 * @param params      input/output offsets and activation clamp
 * @param quant       per-tensor or per-output-channel multiplier/shift (index = output row)
 * @param batches     number of input rows (>= 1)
 * @param input       [batches, filter->dims.c] int8, contiguous
 * @param filter      [out_full, in_full] weights; dims.n = out_w rows used, dims.c = in_w columns used,
 *                    c_stride = in_full (row stride)
 * @param bias        [>= out_w] int32 or NULL
 * @param output      [batches, out_w] int8, contiguous
 */
reds_status reds_fully_connected_s8(const reds_fc_params *params, const reds_quant *quant,
                                    int32_t batches, const int8_t *input, const reds_filter *filter,
                                    const int32_t *bias, int8_t *output);

/**
 * CONV_2D int8 (NHWC input, OHWI filter) on channel prefixes.
 * @param input_dims  active input {n, h, w, c}; c must equal filter->dims.c
 * @param filter      OHWI weights; dims = {out_c, kh, kw, in_c}, c_stride = C_in_full
 * @param bias        [>= out_c] int32 or NULL
 * @param output_dims active output {n, out_h, out_w, out_c}; out_c must equal filter->dims.n
 * Input positions outside the image (padding) contribute nothing, as in TFLM.
 */
reds_status reds_conv_s8(const reds_conv_params *params, const reds_quant *quant,
                         const reds_dims *input_dims, const int8_t *input, const reds_filter *filter,
                         const int32_t *bias, const reds_dims *output_dims, int8_t *output);

/**
 * DEPTHWISE_CONV_2D int8 on a channel prefix.
 * @param input_dims  active input {n, h, w, c_in}
 * @param filter      [1, kh, kw, C_full] weights; dims = {1, kh, kw, c_out}, c_stride = C_out_full;
 *                    c_out = c_in * params->ch_mult
 * @param output_dims active output {n, out_h, out_w, c_out}
 */
reds_status reds_depthwise_conv_s8(const reds_dw_params *params, const reds_quant *quant,
                                   const reds_dims *input_dims, const int8_t *input,
                                   const reds_filter *filter, const int32_t *bias,
                                   const reds_dims *output_dims, int8_t *output);

/** AVERAGE_POOL_2D int8 (TFLM: rounded-half-away division by the count of in-image taps). */
reds_status reds_avgpool_s8(const reds_pool_params *params, const reds_dims *input_dims,
                            const int8_t *input, const reds_dims *output_dims, int8_t *output);

/** MAX_POOL_2D int8. */
reds_status reds_maxpool_s8(const reds_pool_params *params, const reds_dims *input_dims,
                            const int8_t *input, const reds_dims *output_dims, int8_t *output);

/**
 * MEAN over H and W with keep_dims = false (Keras GlobalAveragePooling2D), int8 -> int8, as TFLM's
 * reference_ops::QuantizedMeanOrSum: out = clamp(requant(sum - zp_in * n, multiplier, shift) + zp_out,
 * -128, 127) with n = H * W and multiplier/shift = QuantizeMultiplier(in_scale / out_scale) folded with
 * 1/n by reds_mean_multiplier() at prepare time. The pinned tflite-micro takes this path even when
 * input and output quantisation are identical, so there is no plain-mean (no requantisation) variant.
 * @param input_dims  {n, h, w, c}; output is [n, c] contiguous
 */
/** Largest H * W reds_mean_s8 accepts: the int32 sum of H * W int8 values (and the zero-point
 *  correction, |zp| <= 128) must not overflow. reds_model_init enforces it at load time. */
#define REDS_MEAN_HW_MAX (INT32_MAX / 256)

reds_status reds_mean_s8(const reds_mean_params *params, const reds_dims *input_dims,
                         const int8_t *input, int8_t *output);

/* Largest softmax depth: the Q12.19 sum of up to 511 exps stays below 2^28, which keeps TFLM's final
 * rounding shift within 31 bits (TFLM's own arithmetic is undefined beyond). */
#define REDS_SOFTMAX_DEPTH_MAX 511

/**
 * SOFTMAX int8 -> int8 over the innermost axis, as TFLM's reference int8 softmax (gemmlowp fixed-point
 * exp and reciprocal); the output has scale 1/256 and zero point -128.
 * @param rows   rows of `depth` values each (h * w of an NHWC tensor; 1 after a dense layer)
 * @param depth  values per row, in [1, REDS_SOFTMAX_DEPTH_MAX]
 */
reds_status reds_softmax_s8(const reds_softmax_params *params, int32_t rows, int32_t depth,
                            const int8_t *input, int8_t *output);

/** TFLM's left shift of int8 ADD inputs (kernels/add_common: 20 for int8, 15 for int16). */
#define REDS_ADD_LEFT_SHIFT 20

/**
 * ADD int8 of two tensors of the same shape (no broadcasting), as TFLM's reference integer Add: per
 * element, (x + offset) << 20 rescaled per input, summed, rescaled to the output, plus the output zero
 * point, clamped. Inputs may alias each other; the output must not alias an input.
 * @param size  elements of each tensor (>= 1)
 * @return REDS_ARG_ERROR for NULL pointers, size < 1, a shift outside [-31, 0] or a clamp outside int8.
 */
reds_status reds_add_s8(const reds_add_params *params, int32_t size, const int8_t *input1,
                        const int8_t *input2, int8_t *output);

/**
 * LEAKY_RELU int8 elementwise, as TFLM's reference QuantizeLeakyRelu: v = x - input zero point;
 * out = clamp(requant(v, identity) + output zero point, -128, 127) for v >= 0, with the alpha
 * multiplier/shift for v < 0. The output may alias the input (each element is read before it is written).
 * @param size  elements (>= 1)
 * @return REDS_ARG_ERROR for NULL pointers, size < 1, a zero point outside int8 or a shift outside
 *         [-31, 30].
 */
reds_status reds_leaky_relu_s8(const reds_leaky_relu_params *params, int32_t size, const int8_t *input,
                               int8_t *output);

#endif /* REDS_KERNELS_H */
