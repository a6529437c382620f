/*
 * reds_types.h - plain data types shared by the reds int8 kernels and the model runtime.
 *
 * Conventions (stated once, used by every kernel):
 *  - Activations are int8 NHWC, contiguous, with the ACTIVE (possibly narrower than full) shape.
 *  - Weights are int8 constants read in place from the full tensor of the largest level: a narrower
 *    level uses a prefix sub-block, so `reds_filter` carries the full tensor's innermost stride.
 *  - Offsets follow TFLite/CMSIS-NN: input_offset = -input_zero_point (range [-127, 128]),
 *    output_offset = +output_zero_point (range [-128, 127]). Int8 weights are symmetric
 *    (zero point 0), as TFLite requires for int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED.
 *  - Fused activations (NONE / RELU / RELU6) are folded into an int8 clamp [min, max] by the
 *    converter or reds_model_init (TFLite's CalculateActivationRangeQuantized); kernels only clamp.
 *  - Multipliers and shifts are precomputed (TFLite QuantizeMultiplier): multiplier in
 *    [2^30, 2^31 - 1] or 0, shift in [-31, 30]; shift > 0 is a left shift.
 */
#ifndef REDS_TYPES_H
#define REDS_TYPES_H

#include <stddef.h>
#include <stdint.h>

/** Status returned by every kernel and runtime call; never undefined behaviour on bad input. */
typedef enum {
    REDS_OK = 0,
    REDS_ARG_ERROR = 1, /**< NULL pointer, non-positive dimension, stride smaller than width, bad range */
    REDS_BAD_BLOB = 2,  /**< device blob malformed (magic, version, bounds) */
    REDS_BAD_LEVEL = 3, /**< level index outside [0, num_levels) */
} reds_status;

/** Active NHWC shape of an activation tensor (or of a filter view, see reds_filter). */
typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} reds_dims;

/** A (height, width) pair: strides, paddings, dilations, pool window. */
typedef struct {
    int32_t h;
    int32_t w;
} reds_hw;

/** Fused activation as an inclusive int8 clamp, -128 <= min <= max <= 127. */
typedef struct {
    int32_t min;
    int32_t max;
} reds_act;

/**
 * Requantisation of int32 accumulators to the output scale.
 * per_channel != 0: multiplier[i] / shift[i] for output channel i (arrays indexed by the FULL
 * channel index, so a prefix of the full-model arrays serves every narrower level);
 * per_channel == 0: multiplier[0] / shift[0] for every channel.
 */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t per_channel;
} reds_quant;

/**
 * A constant int8 weight tensor viewed as a prefix sub-block of the full tensor.
 *  FULLY_CONNECTED [out, in]:        dims = {n = out_w, h = 1, w = 1, c = in_w}, c_stride = in_full
 *  CONV_2D OHWI [out, kh, kw, in]:   dims = {n = out_c, h = kh, w = kw, c = in_c}, c_stride = C_in_full
 *  DEPTHWISE [1, kh, kw, C]:         dims = {n = 1, h = kh, w = kw, c = C_out}, c_stride = C_out_full
 * Rows of the outer dimensions are reached with the full strides (e.g. OHWI filter o starts at
 * o * kh * kw * c_stride). c_stride >= dims.c is required.
 */
typedef struct {
    const int8_t *data;
    reds_dims dims;
    int32_t c_stride;
} reds_filter;

/** FULLY_CONNECTED: out[b][o] = clamp(requant(sum_i w[o][i] * (in[b][i] + input_offset) + bias[o]) + output_offset). */
typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    reds_act activation;
} reds_fc_params;

/** CONV_2D. padding = top/left padding computed as TFLite does (SAME: max(((out-1)*s + eff_k - in) / 2, 0); VALID: 0). */
typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    reds_hw stride;   /**< >= 1 */
    reds_hw padding;  /**< >= 0 */
    reds_hw dilation; /**< >= 1 */
    reds_act activation;
} reds_conv_params;

/** DEPTHWISE_CONV_2D: output channel oc = ic * ch_mult + m. */
typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult; /**< depth multiplier >= 1 */
    reds_hw stride;
    reds_hw padding;
    reds_hw dilation;
    reds_act activation;
} reds_dw_params;

/** AVERAGE_POOL_2D / MAX_POOL_2D: input and output share scale and zero point (TFLite requires it). */
typedef struct {
    reds_hw stride;
    reds_hw padding;
    reds_hw filter; /**< pool window (kh, kw) >= 1 */
    reds_act activation;
} reds_pool_params;

/**
 * MEAN over H and W (Keras GlobalAveragePooling2D), always requantised as TFLM does (see reds_mean_s8).
 */
typedef struct {
    int32_t input_offset;  /**< -input zero point */
    int32_t output_offset; /**< +output zero point */
    int32_t multiplier;    /**< input_scale / output_scale folded with 1/(H*W) by reds_mean_multiplier */
    int32_t shift;
} reds_mean_params;

/**
 * SOFTMAX int8 -> int8 (beta folded in), TFLM's prepare-time values (CalculateSoftmaxParams): the
 * input difference x - max is rescaled by multiplier * 2^left_shift to Q5.26; differences below
 * diff_min (<= 0) give exp ~ 0 and output -128.
 */
typedef struct {
    int32_t multiplier; /**< QuantizeMultiplier(beta * input_scale * 2^26), in [2^30, 2^31) */
    int32_t left_shift; /**< in [0, 31] */
    int32_t diff_min;   /**< -floor(31 * 2^26 / 2^left_shift) */
} reds_softmax_params;

/**
 * ADD int8 + int8 -> int8 of two tensors of one shape, TFLM's prepare-time values (CalculateOpDataAdd):
 * each input (x + input offset) is shifted left by REDS_ADD_LEFT_SHIFT and rescaled to twice the larger
 * input scale by its multiplier/shift, the sum is rescaled to the output scale by the output
 * multiplier/shift. Every multiplier comes from QuantizeMultiplierSmallerThanOneExp: a shift in [-31, 0].
 */
typedef struct {
    int32_t input1_offset;  /**< -input 1 zero point */
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_offset;  /**< -input 2 zero point */
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t output_offset;  /**< +output zero point */
    int32_t output_multiplier;
    int32_t output_shift;
    reds_act activation;
} reds_add_params;

/**
 * LEAKY_RELU int8 -> int8, TFLM's prepare-time values (CalculateOpDataLeakyRelu): x - input zero point is
 * requantised by the identity multiplier/shift where it is >= 0 and by the alpha one (alpha folded in)
 * where it is < 0; both from QuantizeMultiplier, shift in [-31, 30]. No fused activation: the output is
 * clamped to int8.
 */
typedef struct {
    int32_t input_offset;  /**< -input zero point */
    int32_t output_offset; /**< +output zero point */
    int32_t identity_multiplier; /**< QuantizeMultiplier(input_scale / output_scale) */
    int32_t identity_shift;
    int32_t alpha_multiplier; /**< QuantizeMultiplier(input_scale * alpha / output_scale) */
    int32_t alpha_shift;
} reds_leaky_relu_params;

/** Caller-owned scratch memory (no malloc anywhere in the runtime). */
typedef struct {
    void *buf;
    int32_t size;
} reds_ctx;

#endif /* REDS_TYPES_H */
