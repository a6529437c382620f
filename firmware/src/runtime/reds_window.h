/*
 * reds_window.h - internal helper of the convolution and pooling kernels: the range of filter taps
 * that fall inside the image, so the inner loops carry no per-tap bounds checks. Skipping the
 * outside taps is exactly TFLM's handling of padding (they contribute nothing).
 */
#ifndef REDS_WINDOW_H
#define REDS_WINDOW_H

#include <stdint.h>

#include "reds_types.h"

/**
 * Taps k in [*k0, *k1) of a window starting at `origin` (may be negative) with `k` taps spaced
 * `dil` apart satisfy 0 <= origin + k * dil < in_size. *k1 <= *k0 means no tap is inside.
 */
static inline void reds_valid_taps(int32_t origin, int32_t k, int32_t dil, int32_t in_size,
                                   int32_t *k0, int32_t *k1)
{
    const int32_t lo = origin < 0 ? (-origin + dil - 1) / dil : 0;
    const int32_t room = in_size - origin; /* taps need origin + t * dil <= in_size - 1 */
    int32_t hi = room > 0 ? (room + dil - 1) / dil : 0;
    hi = hi < k ? hi : k;
    *k0 = lo;
    *k1 = hi;
}

/** Argument check shared by the pooling kernels: non-null buffers, positive dims, same batch and
 *  channels in and out, positive strides and filter, non-negative padding, ordered clamp. */
static inline int reds_pool_args_valid(const reds_pool_params *params, const reds_dims *input_dims,
                                       const int8_t *input, const reds_dims *output_dims,
                                       const int8_t *output)
{
    if (params == NULL || input_dims == NULL || input == NULL || output_dims == NULL ||
        output == NULL) {
        return 0;
    }
    return input_dims->n >= 1 && input_dims->n == output_dims->n && input_dims->h >= 1 &&
           input_dims->w >= 1 && input_dims->c >= 1 && output_dims->c == input_dims->c &&
           output_dims->h >= 1 && output_dims->w >= 1 && params->stride.h >= 1 &&
           params->stride.w >= 1 && params->filter.h >= 1 && params->filter.w >= 1 &&
           params->padding.h >= 0 && params->padding.w >= 0 &&
           params->activation.min <= params->activation.max;
}

#endif /* REDS_WINDOW_H */
