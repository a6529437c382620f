/*
 * reds_backend.h - the app's only dependency: init / set_level / invoke over one of two backends.
 *
 *   backend_native.c  the reds runtime (reds_model.h) over the device blob from c_arena.py
 *   backend_tflm.cpp  TFLite Micro: one MicroInterpreter per level over ONE tensor arena, reading the
 *                     converter's multi-root shared-weight bundle (built only by arduino-cli, with
 *                     REDS_BACKEND_TFLM defined and the Arduino TFLM library installed)
 *
 * Exactly one backend is linked. Both switch level by the same integer in O(1).
 */
#ifndef REDS_BACKEND_H
#define REDS_BACKEND_H

#include <stdint.h>

#include "../runtime/reds_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What the app may know about one level. */
typedef struct {
    uint32_t in_bytes;  /**< int8 input elements */
    uint32_t out_bytes; /**< int8 output elements (classes) */
    uint64_t macs;      /**< MACs of one inference (0 when the backend cannot tell) */
    uint32_t cycles;    /**< native: the blob's predicted cycles of our SIMD runtime (0 = unknown); TFLM: 0 */
    float in_scale;     /**< real = in_scale * (q - in_zp) */
    int32_t in_zp;
} reds_level_info;

/** The model a backend runs. */
typedef struct {
    const uint8_t *data;            /**< native: device blob (4-byte aligned); TFLM: multi-root bundle */
    uint32_t len;
    const uint32_t *level_offsets;  /**< TFLM only: data + level_offsets[k] is level k's .tflite */
    int32_t n_levels;               /**< TFLM only */
    const uint64_t *level_macs;     /**< TFLM only, optional (NULL): MACs per level for the policy */
} reds_model_data;

/** Backend state; the caller owns it (a static in the .ino, a local in host/main.c). */
typedef struct {
    int32_t n_levels;
    int32_t level;                  /**< active level */
    uint32_t max_in;                /**< largest input over the levels */
    uint32_t max_out;
    reds_level_info info[REDS_MAX_LEVELS];
    void *arena;                    /**< native: activation scratch; TFLM: the tensor arena */
    uint32_t arena_len;
    reds_model model;               /**< native backend */
    void *impl;                     /**< TFLM backend (its objects live at the start of arena) */
} reds_backend;

/**
 * Parse/allocate once; activates the widest level.
 * @param arena  native: >= reds_backend_arena_bytes() of scratch; TFLM: the tensor arena
 * @return REDS_OK, REDS_ARG_ERROR (NULL pointers, arena too small), REDS_BAD_BLOB (malformed model)
 */
reds_status reds_backend_init(reds_backend *b, const reds_model_data *model, void *arena, uint32_t arena_len);

/** O(1). @return REDS_OK, REDS_BAD_LEVEL for k outside [0, n_levels), REDS_ARG_ERROR for b NULL. */
reds_status reds_backend_set_level(reds_backend *b, int32_t k);

/** Run the active level: in[info[level].in_bytes] -> out[info[level].out_bytes].
 *  @return REDS_OK, or REDS_ARG_ERROR for a NULL pointer. */
reds_status reds_backend_invoke(reds_backend *b, const int8_t *in, int8_t *out);

/** Human-readable backend name ("native" or "tflm"). */
const char *reds_backend_name(void);

#ifdef __cplusplus
}
#endif

#endif /* REDS_BACKEND_H */
