/*
 * reds_model.h - the reds device model: one blob, one shared int8 weight arena, K levels.
 *
 *   reds_model m;
 *   reds_model_init(&m, blob, blob_len);      validates EVERYTHING once (the libFuzzer target)
 *   reds_set_level(&m, k);                    O(1): bounds check + pointer store
 *   reds_invoke(&m, in, out, scratch, n);     runs the active level; intermediate tensors in scratch
 *
 * The blob is written by reds_tf/convert/c_arena.py; its layout is documented there and mirrored by
 * the REDS_H_* / REDS_L_* / REDS_F_* / REDS_E_* word indices below (every field a little-endian uint32):
 * header, level table, op templates (an op record without its channel counts, shared by the levels),
 * per level an op list (template index, in_c, out_c, buffer slots) and a slot table, the int8 weight
 * arena and the int32 params. TFLM's prepare step (multipliers, shifts, zero points, clamps, padding) ran
 * at build time, so invoke only merges each entry with its template into the kernel structs of
 * reds_types.h and calls the kernel.
 */
#ifndef REDS_MODEL_H
#define REDS_MODEL_H

#include <stdint.h>

#include "reds_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REDS_BLOB_MAGIC 0x53444552u /* "REDS" */
#define REDS_BLOB_VERSION 3u /* 3: shared op templates + per-level op lists with buffer slots */
/* 4: version 3 plus the row-sparse (DRESS) ops and, after each level's slot table, one uint32 count per
 * sparse op of its op list (in op order). The converter writes 3 for blobs without sparse ops, which a
 * version-4 parser reads unchanged. */
#define REDS_BLOB_VERSION_SPARSE 4u
#define REDS_MAX_LEVELS 16
#define REDS_MAX_OPS 256     /* per level */
#define REDS_MAX_SLOTS 16    /* scratch buffers per level */
#define REDS_HEADER_WORDS 16
#define REDS_LEVEL_WORDS 16
#define REDS_OP_WORDS 32     /* one op template */
#define REDS_ENTRY_WORDS 4   /* one op of a level's op list */
#define REDS_NO_BIAS 0xFFFFFFFFu

/** Buffer slots of an op list entry (REDS_E_BUFS bytes 0..2: input, second input, output; byte 3 is 0). */
#define REDS_SLOT_INPUT 0u    /* the caller's input (read-only) */
#define REDS_SLOT_OUTPUT 1u   /* the caller's output, written by the level's last op only */
#define REDS_SLOT_SCRATCH 2u  /* 2 + s: scratch slot s, at the slot table's offset s within scratch */
#define REDS_SLOT_NONE 0xFFu  /* no second input */

/** Header word indices. */
enum {
    REDS_H_MAGIC, REDS_H_VERSION, REDS_H_TOTAL, REDS_H_N_LEVELS, REDS_H_LEVELS_OFF, REDS_H_ARENA_OFF,
    REDS_H_ARENA_BYTES, REDS_H_PARAMS_OFF, REDS_H_PARAMS_BYTES, REDS_H_MAX_SCRATCH, REDS_H_MAX_IN,
    REDS_H_MAX_OUT, REDS_H_TEMPLATES_OFF, REDS_H_N_TEMPLATES, REDS_H_USED /* words from here to REDS_HEADER_WORDS are reserved, must be 0 */
};

/** Level descriptor word indices. */
enum {
    REDS_L_OPS_OFF, REDS_L_N_OPS, REDS_L_IN_BYTES, REDS_L_OUT_BYTES, REDS_L_SCRATCH, REDS_L_MACS_LO,
    REDS_L_MACS_HI, REDS_L_IN_SCALE, REDS_L_IN_ZP, REDS_L_OUT_SCALE, REDS_L_OUT_ZP, REDS_L_IN_H,
    REDS_L_IN_W, REDS_L_IN_C, REDS_L_N_SLOTS,
    REDS_L_CYCLES, /* predicted cycles of one inference in the SIMD build (device cost model), 0 = unknown */
    REDS_L_USED
};

/** Op list entry word indices: the level's channel counts complete the template's record. */
enum { REDS_E_TEMPLATE, REDS_E_IN_C, REDS_E_OUT_C, REDS_E_BUFS };

/** Op record (template) word indices. Shapes are the level's ACTIVE shapes, with REDS_F_IN_C and
 *  REDS_F_OUT_C 0 in a template and taken from the level's entry; w_off indexes the arena. */
enum {
    REDS_F_TYPE, REDS_F_IN_H, REDS_F_IN_W, REDS_F_IN_C, REDS_F_OUT_H, REDS_F_OUT_W, REDS_F_OUT_C,
    REDS_F_K_H, REDS_F_K_W, REDS_F_STRIDE_H, REDS_F_STRIDE_W, REDS_F_PAD_H, REDS_F_PAD_W, REDS_F_DIL_H,
    REDS_F_DIL_W, REDS_F_DEPTH_MULT, REDS_F_W_OFF, REDS_F_W_STRIDE_O, REDS_F_W_STRIDE_P,
    REDS_F_BIAS_OFF, REDS_F_MULT_OFF, REDS_F_SHIFT_OFF, REDS_F_IN_ZP, REDS_F_OUT_ZP, REDS_F_ACT_MIN,
    REDS_F_ACT_MAX, REDS_F_MULT, REDS_F_SHIFT,
    /* ADD only (0 for every other op): input 2's zero point, the inputs' multipliers, and their right
     * shifts (input 1's in bits 0-7, input 2's in bits 8-15, each in [0, 31]); REDS_F_MULT/SHIFT are the
     * output's. Input 1's zero point is REDS_F_IN_ZP. */
    REDS_F_IN2_ZP, REDS_F_IN1_MULT, REDS_F_IN2_MULT, REDS_F_IN_RSHIFTS, REDS_F_USED
};

/** LEAKY_RELU's alpha branch (x < input zero point): its multiplier and signed shift (in [-31, 30]), in two
 *  of the words ADD uses for its inputs (words 28 and 31 stay 0); REDS_F_MULT/SHIFT are the identity
 *  branch's, REDS_F_IN_ZP/OUT_ZP the zero points, and the clamp words must be -128 and 127. */
enum { REDS_F_ALPHA_MULT = REDS_F_IN1_MULT, REDS_F_ALPHA_SHIFT = REDS_F_IN2_MULT };

/** SPARSE_CONV_2D / SPARSE_FULLY_CONNECTED (reds_sparse_kernels.h): REDS_F_W_OFF is the arena offset of
 *  the int8 values [out_c, n_max], REDS_F_W_STRIDE_O is n_max, REDS_F_W_STRIDE_P is 0, and two of ADD's
 *  words hold the arena offset of the column indices [out_c, n_max] and their width in bytes (1: uint8,
 *  2: uint16). The count of entries a level uses per row is in that level's count table. */
enum { REDS_F_IDX_OFF = REDS_F_IN1_MULT, REDS_F_IDX_BYTES = REDS_F_IN2_MULT };

/** Op types stored in REDS_F_TYPE (part of the blob format: never renumber). */
typedef enum {
    REDS_OP_CONV_2D = 1,
    REDS_OP_DEPTHWISE_CONV_2D = 2,
    REDS_OP_FULLY_CONNECTED = 3,
    REDS_OP_AVERAGE_POOL_2D = 4,
    REDS_OP_MAX_POOL_2D = 5,
    REDS_OP_MEAN = 6,
    REDS_OP_SOFTMAX = 7, /* mult/shift words: input multiplier and left shift (beta folded in) */
    REDS_OP_ADD = 8,     /* two inputs of one shape (entry: second input slot); see REDS_F_IN2_ZP */
    REDS_OP_LEAKY_RELU = 9, /* elementwise on the level's shape; see REDS_F_ALPHA_MULT */
    REDS_OP_SPARSE_CONV_2D = 10,         /* blob version 4; see REDS_F_IDX_OFF */
    REDS_OP_SPARSE_FULLY_CONNECTED = 11, /* blob version 4; see REDS_F_IDX_OFF */
} reds_op_type;

/** What the app needs to know about one level (copied out of the blob by reds_model_init). */
typedef struct {
    const uint8_t *ops;   /**< first op list entry */
    const uint8_t *slots; /**< slot table: each scratch slot's byte offset in scratch */
    const uint8_t *counts; /**< count table: entries per row of each sparse op, in op order */
    uint32_t n_ops;
    uint32_t in_bytes;    /**< int8 input elements (h * w * c) */
    uint32_t out_bytes;   /**< int8 output elements (classes) */
    uint32_t scratch;     /**< bytes of scratch reds_invoke needs for this level */
    uint64_t macs;        /**< multiply-accumulates of one inference */
    uint32_t cycles;      /**< predicted Cortex-M4 cycles of one inference (converter), 0 = unknown */
    float in_scale;       /**< input quantisation: real = in_scale * (q - in_zp) */
    int32_t in_zp;
    float out_scale;
    int32_t out_zp;
} reds_level;

/** A parsed model. Holds pointers into the caller's blob (which must outlive it); no allocation. */
typedef struct {
    const uint8_t *blob;
    const int8_t *arena;    /**< shared int8 weights */
    const uint8_t *params;  /**< int32 biases / multipliers / shifts */
    const uint8_t *templates; /**< op templates */
    uint32_t n_levels;
    uint32_t max_scratch;   /**< scratch bytes enough for every level */
    uint32_t max_in;
    uint32_t max_out;
    int32_t level;          /**< active level */
    const reds_level *active;
    reds_level levels[REDS_MAX_LEVELS];
} reds_model;

/**
 * Parse and validate a blob: magic, version, every offset, count, enum, template index, shape, stride,
 * zero point, clamp, shift and bias range, every op as its template merged with the level's channel
 * counts, every buffer slot (a slot read holds a tensor of exactly the op's input size written earlier
 * in the level; the slot table and scratch size are exactly what the tensors need), and every limit a
 * kernel checks, so that no blob can make reds_invoke
 * read out of bounds or overflow, and a blob accepted here never makes reds_invoke refuse: given
 * non-NULL buffers and the level's scratch, every level returns REDS_OK.
 * The blob must be 4-byte aligned. Activates the widest level (n_levels - 1).
 * @return REDS_OK, REDS_ARG_ERROR (NULL or misaligned pointer), REDS_BAD_BLOB (anything malformed).
 */
reds_status reds_model_init(reds_model *m, const uint8_t *blob, uint32_t len);

/** Activate level k in O(1). @return REDS_OK, REDS_BAD_LEVEL (k outside [0, n_levels)) or
 *  REDS_ARG_ERROR (m NULL). */
reds_status reds_set_level(reds_model *m, int32_t k);

/**
 * Run the active level: input [in_bytes] int8 -> output [out_bytes] int8.
 * @param scratch      at least m->active->scratch bytes (may be NULL when that is 0)
 * @return REDS_OK, REDS_ARG_ERROR (NULL pointers, scratch too small), or a kernel's status.
 */
reds_status reds_invoke(const reds_model *m, const int8_t *input, int8_t *output, void *scratch,
                        uint32_t scratch_len);

#ifdef __cplusplus
}
#endif

#endif /* REDS_MODEL_H */
