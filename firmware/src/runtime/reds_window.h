/*
 * reds_window.h - internal helper of the convolution and pooling kernels: the range of filter taps
 * that fall inside the image, so the inner loops carry no per-tap bounds checks. Skipping the
 * outside taps is exactly TFLM's handling of padding (they contribute nothing).
 */
#ifndef REDS_WINDOW_H
#define REDS_WINDOW_H

#include <stdint.h>

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

#endif /* REDS_WINDOW_H */
