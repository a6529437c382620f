/*
 * reds_model.c - blob parser (validates everything once), O(1) level switch, and the op loop.
 */
#include "reds_model.h"

#include <string.h>

#include "reds_kernels.h"
#include "reds_sparse_kernels.h"

#define DIM_MAX 65535u            /* any single dimension */
#define ELEMS_MAX (1u << 24)      /* elements of one activation tensor: keeps kernels' int32 index math safe */
#define REDUCE_MAX (1u << 15)     /* products summed per output: |sum| <= 2^15 * 2^15 = 2^30 */
#define BIAS_MAX (1 << 30)        /* |bias| <= 2^30, so sum + bias never overflows int32 */
#define SMALL_MAX 255u            /* kernel size, stride, dilation, padding, depth multiplier */
#define FAN_IN_MAX 65536u         /* sparse ops: a patch index must fit uint16 */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float rdf32(const uint8_t *p)
{
    const uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* [off, off + n) lies inside [0, total) without overflow. */
static int in_bounds(uint64_t off, uint64_t n, uint64_t total)
{
    return off <= total && n <= total - off;
}

static int is_sparse(uint32_t type)
{
    return type == REDS_OP_SPARSE_CONV_2D || type == REDS_OP_SPARSE_FULLY_CONNECTED;
}

static int is_s8(int32_t v)
{
    return v >= -128 && v <= 127;
}

static uint32_t align16(uint32_t n)
{
    return (n + 15u) & ~15u;
}

/* An int32 array of n entries at byte offset off of the params section, each value in [lo, hi]. */
static int check_i32_array(const reds_model *m, uint32_t params_bytes, uint32_t off, uint32_t n,
                           int32_t lo, int32_t hi)
{
    if ((off & 3u) != 0 || !in_bounds(off, (uint64_t)n * 4u, params_bytes)) {
        return 0;
    }
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t v = (int32_t)rd32(m->params + off + 4u * i);
        if (v < lo || v > hi) {
            return 0;
        }
    }
    return 1;
}

/* Validate one op record (a template merged with a level's channel counts). */
static int check_op(const reds_model *m, const uint32_t *f, uint32_t arena_bytes, uint32_t params_bytes,
                    int sparse_ok)
{
    const uint32_t type = f[REDS_F_TYPE];
    const int leaky = type == REDS_OP_LEAKY_RELU, sparse = is_sparse(type);
    if ((sparse && !sparse_ok) ||
        (type != REDS_OP_ADD && (f[REDS_F_IN2_ZP] | f[REDS_F_IN_RSHIFTS] |
                                 (leaky || sparse ? 0u : f[REDS_F_IN1_MULT] | f[REDS_F_IN2_MULT])) != 0)) {
        return 0;
    }
    for (int i = REDS_F_IN_H; i <= REDS_F_OUT_C; ++i) {
        if (f[i] < 1 || f[i] > DIM_MAX) {
            return 0;
        }
    }
    for (int i = REDS_F_K_H; i <= REDS_F_DEPTH_MULT; ++i) {
        const int may_be_zero = (i == REDS_F_PAD_H || i == REDS_F_PAD_W);
        if (f[i] > SMALL_MAX || (!may_be_zero && f[i] < 1)) {
            return 0;
        }
    }
    const uint64_t in_n = (uint64_t)f[REDS_F_IN_H] * f[REDS_F_IN_W] * f[REDS_F_IN_C];
    const uint64_t out_n = (uint64_t)f[REDS_F_OUT_H] * f[REDS_F_OUT_W] * f[REDS_F_OUT_C];
    if (in_n > ELEMS_MAX || out_n > ELEMS_MAX) {
        return 0;
    }
    const int32_t in_zp = (int32_t)f[REDS_F_IN_ZP], out_zp = (int32_t)f[REDS_F_OUT_ZP];
    const int32_t amin = (int32_t)f[REDS_F_ACT_MIN], amax = (int32_t)f[REDS_F_ACT_MAX];
    if (!is_s8(in_zp) || !is_s8(out_zp) || !is_s8(amin) || !is_s8(amax) || amin > amax) {
        return 0;
    }
    const uint32_t kh = f[REDS_F_K_H], kw = f[REDS_F_K_W], ic = f[REDS_F_IN_C], oc = f[REDS_F_OUT_C];
    const uint32_t sp = f[REDS_F_W_STRIDE_P], so = f[REDS_F_W_STRIDE_O];
    const int weighted = type == REDS_OP_CONV_2D || type == REDS_OP_DEPTHWISE_CONV_2D ||
                         type == REDS_OP_FULLY_CONNECTED || sparse;
    /* Fields an op does not use must be 0, so invoke never forms a pointer from an unchecked offset. */
    for (int i = weighted ? REDS_F_MULT : REDS_F_W_OFF; i <= (weighted ? REDS_F_SHIFT : REDS_F_SHIFT_OFF); ++i) {
        if (f[i] != 0) {
            return 0;
        }
    }
    if (type != REDS_OP_MEAN && type != REDS_OP_SOFTMAX && type != REDS_OP_ADD && !leaky &&
        (f[REDS_F_MULT] | f[REDS_F_SHIFT]) != 0) {
        return 0;
    }
    /* Spatial ops: every window starts inside the image, as TFLite's SAME/VALID output sizes guarantee
     * ((out - 1) * stride - pad < in); kernels' fast paths (1x1 unpadded conv) rely on it. Kernels step
     * one output row as stride * W * C input elements in int32, which a stride beyond the image (valid
     * when one output row remains) could overflow. */
    if (type != REDS_OP_FULLY_CONNECTED && type != REDS_OP_SPARSE_FULLY_CONNECTED && type != REDS_OP_MEAN &&
        ((uint64_t)(f[REDS_F_OUT_H] - 1u) * f[REDS_F_STRIDE_H] >= (uint64_t)f[REDS_F_IN_H] + f[REDS_F_PAD_H] ||
         (uint64_t)(f[REDS_F_OUT_W] - 1u) * f[REDS_F_STRIDE_W] >= (uint64_t)f[REDS_F_IN_W] + f[REDS_F_PAD_W] ||
         (uint64_t)f[REDS_F_STRIDE_H] * f[REDS_F_IN_W] * f[REDS_F_IN_C] > INT32_MAX)) {
        return 0;
    }
    uint64_t extent = 0; /* last weight byte read + 1, relative to w_off */
    uint64_t reduce = 0; /* products summed per output */
    switch (type) {
    case REDS_OP_CONV_2D:
        /* The kernel reaches filter o at o * kh * kw * c_stride: the record must say exactly that
         * (compared in 64 bits, so a huge c_stride cannot wrap onto a plausible o-stride). */
        if (f[REDS_F_DEPTH_MULT] != 1 || sp < ic || (uint64_t)so != (uint64_t)kh * kw * sp) {
            return 0;
        }
        extent = (uint64_t)(oc - 1u) * so + (uint64_t)(kh * kw - 1u) * sp + ic;
        reduce = (uint64_t)kh * kw * ic;
        break;
    case REDS_OP_DEPTHWISE_CONV_2D:
        if (oc != ic * f[REDS_F_DEPTH_MULT] || sp < oc) {
            return 0;
        }
        extent = (uint64_t)(kh * kw - 1u) * sp + oc;
        reduce = (uint64_t)kh * kw;
        break;
    case REDS_OP_FULLY_CONNECTED:
        if (f[REDS_F_IN_H] != 1 || f[REDS_F_IN_W] != 1 || f[REDS_F_OUT_H] != 1 || f[REDS_F_OUT_W] != 1 ||
            kh != 1 || kw != 1 || so < ic) {
            return 0;
        }
        extent = (uint64_t)(oc - 1u) * so + ic;
        reduce = ic;
        break;
    case REDS_OP_SPARSE_CONV_2D:
    case REDS_OP_SPARSE_FULLY_CONNECTED: {
        /* values [oc, n_max] int8 at w_off and indices [oc, n_max] at idx_off, every stored index inside
         * the (kh, kw, ic) patch (also those beyond every level's count: a later level may reach them). */
        const uint32_t ib = f[REDS_F_IDX_BYTES], io = f[REDS_F_IDX_OFF];
        const uint64_t fan = (uint64_t)kh * kw * ic, n = (uint64_t)oc * so;
        if (f[REDS_F_DEPTH_MULT] != 1 || f[REDS_F_DIL_H] != 1 || f[REDS_F_DIL_W] != 1 || sp != 0 || so < 1 ||
            so > fan || fan > FAN_IN_MAX || (ib != 1 && ib != 2) || (io & (ib - 1u)) != 0 ||
            !in_bounds(io, n * ib, arena_bytes) ||
            (type == REDS_OP_SPARSE_FULLY_CONNECTED &&
             (f[REDS_F_IN_H] != 1 || f[REDS_F_IN_W] != 1 || f[REDS_F_OUT_H] != 1 || f[REDS_F_OUT_W] != 1 ||
              kh != 1 || kw != 1))) {
            return 0;
        }
        const uint8_t *idx = (const uint8_t *)m->arena + io;
        for (uint64_t i = 0; i < n; ++i) {
            const uint32_t v = ib == 1 ? idx[i] : (uint32_t)idx[2u * i] | ((uint32_t)idx[2u * i + 1u] << 8);
            if (v >= fan) {
                return 0;
            }
        }
        extent = n;
        reduce = so;
        break;
    }
    case REDS_OP_AVERAGE_POOL_2D:
    case REDS_OP_MAX_POOL_2D:
        /* Every window must hold at least one in-image tap (average pool divides by their count). */
        if (oc != ic || f[REDS_F_PAD_H] >= kh || f[REDS_F_PAD_W] >= kw || in_zp != out_zp) {
            return 0;
        }
        return 1;
    case REDS_OP_MEAN: {
        const int32_t shift = (int32_t)f[REDS_F_SHIFT];
        return oc == ic && f[REDS_F_OUT_H] == 1 && f[REDS_F_OUT_W] == 1 && shift >= -31 && shift <= 30 &&
               (uint64_t)f[REDS_F_IN_H] * f[REDS_F_IN_W] <= REDS_MEAN_HW_MAX;
    }
    case REDS_OP_SOFTMAX: {
        /* Same shape in and out, TFLM's fixed output quantisation (1/256, -128), a multiplier from
         * QuantizeMultiplier (>= 2^30) and a non-negative left shift. */
        const int32_t mult = (int32_t)f[REDS_F_MULT], shift = (int32_t)f[REDS_F_SHIFT];
        return oc == ic && f[REDS_F_OUT_H] == f[REDS_F_IN_H] && f[REDS_F_OUT_W] == f[REDS_F_IN_W] &&
               ic <= REDS_SOFTMAX_DEPTH_MAX && out_zp == -128 && mult >= (1 << 30) && shift >= 0 &&
               shift <= 31 && kh == 1 && kw == 1;
    }
    case REDS_OP_ADD: {
        /* Elementwise on one shape (no broadcasting), no window; every multiplier from
         * QuantizeMultiplierSmallerThanOneExp (shift in [-31, 0]), as reds_add_s8 requires. */
        const uint32_t rs = f[REDS_F_IN_RSHIFTS];
        const int32_t shift = (int32_t)f[REDS_F_SHIFT];
        return oc == ic && f[REDS_F_OUT_H] == f[REDS_F_IN_H] && f[REDS_F_OUT_W] == f[REDS_F_IN_W] && kh == 1 &&
               kw == 1 && f[REDS_F_STRIDE_H] == 1 && f[REDS_F_STRIDE_W] == 1 && f[REDS_F_PAD_H] == 0 &&
               f[REDS_F_PAD_W] == 0 && f[REDS_F_DIL_H] == 1 && f[REDS_F_DIL_W] == 1 &&
               is_s8((int32_t)f[REDS_F_IN2_ZP]) && (rs & 0xFFu) <= 31u && ((rs >> 8) & 0xFFu) <= 31u &&
               (rs >> 16) == 0 && shift >= -31 && shift <= 0;
    }
    case REDS_OP_LEAKY_RELU: {
        /* Elementwise on one shape, no window, no fused activation (the kernel clamps to int8); both
         * multipliers from QuantizeMultiplier (shift in [-31, 30]), as reds_leaky_relu_s8 requires. */
        const int32_t shift = (int32_t)f[REDS_F_SHIFT], alpha_shift = (int32_t)f[REDS_F_ALPHA_SHIFT];
        return oc == ic && f[REDS_F_OUT_H] == f[REDS_F_IN_H] && f[REDS_F_OUT_W] == f[REDS_F_IN_W] && kh == 1 &&
               kw == 1 && f[REDS_F_STRIDE_H] == 1 && f[REDS_F_STRIDE_W] == 1 && f[REDS_F_PAD_H] == 0 &&
               f[REDS_F_PAD_W] == 0 && f[REDS_F_DIL_H] == 1 && f[REDS_F_DIL_W] == 1 &&
               f[REDS_F_DEPTH_MULT] == 1 && amin == -128 && amax == 127 && shift >= -31 && shift <= 30 &&
               alpha_shift >= -31 && alpha_shift <= 30;
    }
    default:
        return 0;
    }
    /* CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: weights, requantisation arrays, bias. The kernels take
     * c_stride as int32 and index weights with int32 math, so strides and the extent must fit in it. */
    if (reduce > REDUCE_MAX || sp > INT32_MAX || so > INT32_MAX || extent > INT32_MAX ||
        !in_bounds(f[REDS_F_W_OFF], extent, arena_bytes) ||
        !check_i32_array(m, params_bytes, f[REDS_F_MULT_OFF], oc, INT32_MIN, INT32_MAX) ||
        !check_i32_array(m, params_bytes, f[REDS_F_SHIFT_OFF], oc, -31, 30)) {
        return 0;
    }
    return f[REDS_F_BIAS_OFF] == REDS_NO_BIAS ||
           check_i32_array(m, params_bytes, f[REDS_F_BIAS_OFF], oc, -BIAS_MAX, BIAS_MAX);
}

static void load_words(const uint8_t *p, uint32_t *w, int n)
{
    for (int i = 0; i < n; ++i) {
        w[i] = rd32(p + 4 * i);
    }
}

/* Validate level k's op list against the templates and its buffer slots; fill m->levels[k]. */
/* Validate level k's count table (one uint32 per sparse op, after the slot table): each count at most its
 * op's n_max and, where level k - 1 runs the same sparse template at the same position, at least that
 * level's count (nested levels). Returns the table, or NULL. */
static const uint8_t *check_counts(const reds_model *m, const uint32_t *h, const uint8_t *list, uint32_t n_ops,
                                   uint32_t n_slots, uint32_t k)
{
    const uint32_t ops_off = (uint32_t)(list - m->blob);
    uint32_t n_sparse = 0;
    for (uint32_t j = 0; j < n_ops; ++j) {
        const uint8_t *f = m->templates + rd32(list + j * REDS_ENTRY_WORDS * 4u) * (REDS_OP_WORDS * 4u);
        n_sparse += is_sparse(rd32(f + 4u * REDS_F_TYPE)) ? 1u : 0u;
    }
    if (!in_bounds(ops_off, ((uint64_t)n_ops * REDS_ENTRY_WORDS + n_slots + n_sparse) * 4u, h[REDS_H_TOTAL])) {
        return NULL;
    }
    const uint8_t *counts = list + (n_ops * REDS_ENTRY_WORDS + n_slots) * 4u;
    const reds_level *prev = k > 0 ? &m->levels[k - 1u] : NULL;
    uint32_t s = 0, ps = 0;
    for (uint32_t j = 0; j < n_ops; ++j) {
        const uint32_t t = rd32(list + j * REDS_ENTRY_WORDS * 4u);
        const uint8_t *f = m->templates + t * (REDS_OP_WORDS * 4u);
        const int sparse = is_sparse(rd32(f + 4u * REDS_F_TYPE));
        uint32_t pt = 0xFFFFFFFFu;
        int psparse = 0;
        if (prev != NULL && j < prev->n_ops) {
            pt = rd32(prev->ops + j * REDS_ENTRY_WORDS * 4u);
            psparse = is_sparse(rd32(m->templates + pt * (REDS_OP_WORDS * 4u) + 4u * REDS_F_TYPE));
        }
        if (sparse) {
            const uint32_t c = rd32(counts + 4u * s);
            if (c > rd32(f + 4u * REDS_F_W_STRIDE_O) || (psparse && pt == t && c < rd32(prev->counts + 4u * ps))) {
                return NULL;
            }
            ++s;
        }
        ps += psparse ? 1u : 0u;
    }
    return counts;
}

static int check_level(reds_model *m, const uint32_t *h, const uint32_t *l, uint32_t k)
{
    const uint8_t *blob = m->blob;
    const uint32_t n_ops = l[REDS_L_N_OPS], n_slots = l[REDS_L_N_SLOTS], last = n_ops - 1u;
    if (n_ops < 1 || n_ops > REDS_MAX_OPS || n_slots > REDS_MAX_SLOTS || (l[REDS_L_OPS_OFF] & 3u) != 0 ||
        !in_bounds(l[REDS_L_OPS_OFF], ((uint64_t)n_ops * REDS_ENTRY_WORDS + n_slots) * 4u, h[REDS_H_TOTAL]) ||
        !is_s8((int32_t)l[REDS_L_IN_ZP]) || !is_s8((int32_t)l[REDS_L_OUT_ZP]) ||
        (uint64_t)l[REDS_L_IN_H] * l[REDS_L_IN_W] * l[REDS_L_IN_C] != l[REDS_L_IN_BYTES]) {
        return 0;
    }
    for (int i = REDS_L_USED; i < REDS_LEVEL_WORDS; ++i) {
        if (l[i] != 0) {
            return 0;
        }
    }
    /* held[s]: elements of the tensor slot s holds now (0: none yet); grown[s]: the largest written. */
    uint32_t held[REDS_SLOT_SCRATCH + REDS_MAX_SLOTS] = {0}, grown[REDS_MAX_SLOTS] = {0};
    held[REDS_SLOT_INPUT] = l[REDS_L_IN_BYTES];
    const uint8_t *list = blob + l[REDS_L_OPS_OFF];
    for (uint32_t j = 0; j < n_ops; ++j) {
        uint32_t e[REDS_ENTRY_WORDS], f[REDS_OP_WORDS];
        load_words(list + j * REDS_ENTRY_WORDS * 4u, e, REDS_ENTRY_WORDS);
        if (e[REDS_E_TEMPLATE] >= h[REDS_H_N_TEMPLATES]) {
            return 0;
        }
        load_words(blob + h[REDS_H_TEMPLATES_OFF] + e[REDS_E_TEMPLATE] * REDS_OP_WORDS * 4u, f, REDS_OP_WORDS);
        if (f[REDS_F_IN_C] != 0 || f[REDS_F_OUT_C] != 0) {
            return 0; /* channel counts belong to the level */
        }
        f[REDS_F_IN_C] = e[REDS_E_IN_C];
        f[REDS_F_OUT_C] = e[REDS_E_OUT_C];
        if (!check_op(m, f, h[REDS_H_ARENA_BYTES], h[REDS_H_PARAMS_BYTES],
                      h[REDS_H_VERSION] == REDS_BLOB_VERSION_SPARSE)) {
            return 0;
        }
        const uint32_t b = e[REDS_E_BUFS], in = b & 0xFFu, in2 = (b >> 8) & 0xFFu, out = (b >> 16) & 0xFFu;
        const uint32_t in_n = f[REDS_F_IN_H] * f[REDS_F_IN_W] * f[REDS_F_IN_C];
        const uint32_t out_n = f[REDS_F_OUT_H] * f[REDS_F_OUT_W] * f[REDS_F_OUT_C];
        /* Reads: a slot that holds exactly the input's elements (the output slot is never read). Write: a
         * scratch slot other than the inputs, or the output slot by the last op. */
        const int two = f[REDS_F_TYPE] == REDS_OP_ADD;
        if ((b >> 24) != 0 || in >= REDS_SLOT_SCRATCH + n_slots || held[in] != in_n || in == REDS_SLOT_OUTPUT ||
            (!two && in2 != REDS_SLOT_NONE) ||
            (two && (in2 >= REDS_SLOT_SCRATCH + n_slots || held[in2] != in_n || in2 == REDS_SLOT_OUTPUT ||
                     out == in2)) ||
            (j == last) != (out == REDS_SLOT_OUTPUT) ||
            (j != last && (out < REDS_SLOT_SCRATCH || out >= REDS_SLOT_SCRATCH + n_slots || out == in))) {
            return 0;
        }
        held[out] = out_n;
        if (out >= REDS_SLOT_SCRATCH && out_n > grown[out - REDS_SLOT_SCRATCH]) {
            grown[out - REDS_SLOT_SCRATCH] = out_n;
        }
    }
    /* The slot table and scratch are exact: slot s starts where slot s - 1's largest tensor ends (16-byte
     * aligned); every slot is used. */
    const uint8_t *slots = list + n_ops * REDS_ENTRY_WORDS * 4u;
    uint32_t scratch = 0;
    for (uint32_t s = 0; s < n_slots; ++s) {
        if (grown[s] == 0 || rd32(slots + 4u * s) != scratch) {
            return 0;
        }
        scratch += align16(grown[s]); /* <= 16 * 2^24 in total: no overflow */
    }
    const uint32_t elems = held[REDS_SLOT_OUTPUT];
    if (elems != l[REDS_L_OUT_BYTES] || scratch != l[REDS_L_SCRATCH] || scratch > h[REDS_H_MAX_SCRATCH] ||
        l[REDS_L_IN_BYTES] > h[REDS_H_MAX_IN] || elems > h[REDS_H_MAX_OUT]) {
        return 0;
    }
    const uint8_t *counts = check_counts(m, h, list, n_ops, n_slots, k);
    if (counts == NULL) {
        return 0;
    }
    const uint8_t *lw = blob + h[REDS_H_LEVELS_OFF] + k * REDS_LEVEL_WORDS * 4u;
    reds_level *lv = &m->levels[k];
    lv->ops = list;
    lv->slots = slots;
    lv->counts = counts;
    lv->n_ops = n_ops;
    lv->in_bytes = l[REDS_L_IN_BYTES];
    lv->out_bytes = elems;
    lv->scratch = scratch;
    lv->macs = ((uint64_t)l[REDS_L_MACS_HI] << 32) | l[REDS_L_MACS_LO];
    lv->cycles = l[REDS_L_CYCLES];
    lv->in_scale = rdf32(lw + 4u * REDS_L_IN_SCALE);
    lv->in_zp = (int32_t)l[REDS_L_IN_ZP];
    lv->out_scale = rdf32(lw + 4u * REDS_L_OUT_SCALE);
    lv->out_zp = (int32_t)l[REDS_L_OUT_ZP];
    return 1;
}

reds_status reds_model_init(reds_model *m, const uint8_t *blob, uint32_t len)
{
    const uint32_t one = 1;
    if (m == NULL || blob == NULL || ((uintptr_t)blob & 3u) != 0) {
        return REDS_ARG_ERROR;
    }
    memset(m, 0, sizeof *m);
    if (*(const uint8_t *)&one != 1 || len < REDS_HEADER_WORDS * 4u) {
        return REDS_BAD_BLOB; /* big-endian hosts cannot read the int32 arrays in place */
    }
    uint32_t h[REDS_HEADER_WORDS];
    load_words(blob, h, REDS_HEADER_WORDS);
    const uint32_t total = h[REDS_H_TOTAL];
    if (h[REDS_H_MAGIC] != REDS_BLOB_MAGIC ||
        (h[REDS_H_VERSION] != REDS_BLOB_VERSION && h[REDS_H_VERSION] != REDS_BLOB_VERSION_SPARSE) || total > len ||
        h[REDS_H_N_LEVELS] < 1 || h[REDS_H_N_LEVELS] > REDS_MAX_LEVELS ||
        h[REDS_H_LEVELS_OFF] != REDS_HEADER_WORDS * 4u ||
        !in_bounds(h[REDS_H_LEVELS_OFF], (uint64_t)h[REDS_H_N_LEVELS] * REDS_LEVEL_WORDS * 4u, total) ||
        (h[REDS_H_TEMPLATES_OFF] & 3u) != 0 || h[REDS_H_N_TEMPLATES] < 1 ||
        h[REDS_H_N_TEMPLATES] > (uint32_t)REDS_MAX_LEVELS * REDS_MAX_OPS ||
        !in_bounds(h[REDS_H_TEMPLATES_OFF], (uint64_t)h[REDS_H_N_TEMPLATES] * REDS_OP_WORDS * 4u, total) ||
        (h[REDS_H_ARENA_OFF] & 15u) != 0 || !in_bounds(h[REDS_H_ARENA_OFF], h[REDS_H_ARENA_BYTES], total) ||
        (h[REDS_H_PARAMS_OFF] & 15u) != 0 || !in_bounds(h[REDS_H_PARAMS_OFF], h[REDS_H_PARAMS_BYTES], total)) {
        return REDS_BAD_BLOB;
    }
    for (int i = REDS_H_USED; i < REDS_HEADER_WORDS; ++i) {
        if (h[i] != 0) {
            return REDS_BAD_BLOB;
        }
    }
    m->blob = blob;
    m->arena = (const int8_t *)(blob + h[REDS_H_ARENA_OFF]);
    m->params = blob + h[REDS_H_PARAMS_OFF];
    m->templates = blob + h[REDS_H_TEMPLATES_OFF];
    for (uint32_t k = 0; k < h[REDS_H_N_LEVELS]; ++k) {
        uint32_t l[REDS_LEVEL_WORDS];
        load_words(blob + h[REDS_H_LEVELS_OFF] + k * REDS_LEVEL_WORDS * 4u, l, REDS_LEVEL_WORDS);
        if (!check_level(m, h, l, k)) {
            goto bad;
        }
    }
    /* The header's maxima are what callers size buffers by: they must be exact, not just bounds. */
    uint32_t max_scratch = 0, max_in = 0, max_out = 0;
    for (uint32_t k = 0; k < h[REDS_H_N_LEVELS]; ++k) {
        max_scratch = m->levels[k].scratch > max_scratch ? m->levels[k].scratch : max_scratch;
        max_in = m->levels[k].in_bytes > max_in ? m->levels[k].in_bytes : max_in;
        max_out = m->levels[k].out_bytes > max_out ? m->levels[k].out_bytes : max_out;
    }
    if (max_scratch != h[REDS_H_MAX_SCRATCH] || max_in != h[REDS_H_MAX_IN] || max_out != h[REDS_H_MAX_OUT]) {
        goto bad;
    }
    m->n_levels = h[REDS_H_N_LEVELS];
    m->max_scratch = h[REDS_H_MAX_SCRATCH];
    m->max_in = h[REDS_H_MAX_IN];
    m->max_out = h[REDS_H_MAX_OUT];
    m->level = (int32_t)m->n_levels - 1;
    m->active = &m->levels[m->level];
    return REDS_OK;
bad:
    memset(m, 0, sizeof *m);
    return REDS_BAD_BLOB;
}

reds_status reds_set_level(reds_model *m, int32_t k)
{
    if (m == NULL) {
        return REDS_ARG_ERROR;
    }
    if ((uint32_t)k >= m->n_levels) { /* also rejects k < 0 */
        return REDS_BAD_LEVEL;
    }
    m->level = k;
    m->active = &m->levels[k];
    return REDS_OK;
}

static reds_status run_op(const reds_model *m, const uint32_t *f, uint32_t count, const int8_t *in,
                          const int8_t *in2, int8_t *out)
{
    const reds_dims in_dims = {1, (int32_t)f[REDS_F_IN_H], (int32_t)f[REDS_F_IN_W], (int32_t)f[REDS_F_IN_C]};
    const reds_dims out_dims = {1, (int32_t)f[REDS_F_OUT_H], (int32_t)f[REDS_F_OUT_W], (int32_t)f[REDS_F_OUT_C]};
    const reds_hw stride = {(int32_t)f[REDS_F_STRIDE_H], (int32_t)f[REDS_F_STRIDE_W]};
    const reds_hw pad = {(int32_t)f[REDS_F_PAD_H], (int32_t)f[REDS_F_PAD_W]};
    const reds_hw dil = {(int32_t)f[REDS_F_DIL_H], (int32_t)f[REDS_F_DIL_W]};
    const reds_act act = {(int32_t)f[REDS_F_ACT_MIN], (int32_t)f[REDS_F_ACT_MAX]};
    const int32_t in_off = -(int32_t)f[REDS_F_IN_ZP], out_off = (int32_t)f[REDS_F_OUT_ZP];
    const reds_quant q = {(const int32_t *)(const void *)(m->params + f[REDS_F_MULT_OFF]),
                          (const int32_t *)(const void *)(m->params + f[REDS_F_SHIFT_OFF]), 1};
    const int32_t *bias = f[REDS_F_BIAS_OFF] == REDS_NO_BIAS
                              ? NULL
                              : (const int32_t *)(const void *)(m->params + f[REDS_F_BIAS_OFF]);
    reds_filter w = {m->arena + f[REDS_F_W_OFF], {1, 1, 1, 1}, (int32_t)f[REDS_F_W_STRIDE_P]};
    switch (f[REDS_F_TYPE]) {
    case REDS_OP_CONV_2D: {
        const reds_conv_params p = {in_off, out_off, stride, pad, dil, act};
        w.dims = (reds_dims){out_dims.c, (int32_t)f[REDS_F_K_H], (int32_t)f[REDS_F_K_W], in_dims.c};
        return reds_conv_s8(&p, &q, &in_dims, in, &w, bias, &out_dims, out);
    }
    case REDS_OP_DEPTHWISE_CONV_2D: {
        const reds_dw_params p = {in_off, out_off, (int32_t)f[REDS_F_DEPTH_MULT], stride, pad, dil, act};
        w.dims = (reds_dims){1, (int32_t)f[REDS_F_K_H], (int32_t)f[REDS_F_K_W], out_dims.c};
        return reds_depthwise_conv_s8(&p, &q, &in_dims, in, &w, bias, &out_dims, out);
    }
    case REDS_OP_FULLY_CONNECTED: {
        const reds_fc_params p = {in_off, out_off, act};
        w.dims = (reds_dims){out_dims.c, 1, 1, in_dims.c};
        w.c_stride = (int32_t)f[REDS_F_W_STRIDE_O]; /* FC: the row stride */
        return reds_fully_connected_s8(&p, &q, 1, in, &w, bias, out);
    }
    case REDS_OP_SPARSE_CONV_2D:
    case REDS_OP_SPARSE_FULLY_CONNECTED: {
        const reds_sparse_filter sf = {m->arena + f[REDS_F_W_OFF], m->arena + f[REDS_F_IDX_OFF],
                                       (int32_t)f[REDS_F_IDX_BYTES], (int32_t)f[REDS_F_W_STRIDE_O], (int32_t)count,
                                       {out_dims.c, (int32_t)f[REDS_F_K_H], (int32_t)f[REDS_F_K_W], in_dims.c}};
        if (f[REDS_F_TYPE] == REDS_OP_SPARSE_FULLY_CONNECTED) {
            const reds_fc_params p = {in_off, out_off, act};
            return reds_sparse_fully_connected_s8(&p, &q, in, &sf, bias, out);
        }
        const reds_conv_params p = {in_off, out_off, stride, pad, dil, act};
        return reds_sparse_conv_s8(&p, &q, &in_dims, in, &sf, bias, &out_dims, out);
    }
    case REDS_OP_AVERAGE_POOL_2D:
    case REDS_OP_MAX_POOL_2D: {
        const reds_pool_params p = {stride, pad, {(int32_t)f[REDS_F_K_H], (int32_t)f[REDS_F_K_W]}, act};
        return f[REDS_F_TYPE] == REDS_OP_AVERAGE_POOL_2D ? reds_avgpool_s8(&p, &in_dims, in, &out_dims, out)
                                                         : reds_maxpool_s8(&p, &in_dims, in, &out_dims, out);
    }
    case REDS_OP_MEAN: {
        const reds_mean_params p = {in_off, out_off, (int32_t)f[REDS_F_MULT], (int32_t)f[REDS_F_SHIFT]};
        return reds_mean_s8(&p, &in_dims, in, out);
    }
    case REDS_OP_SOFTMAX: {
        const int32_t shift = (int32_t)f[REDS_F_SHIFT];
        const reds_softmax_params p = {(int32_t)f[REDS_F_MULT], shift, -(int32_t)((31LL << 26) >> shift)};
        return reds_softmax_s8(&p, in_dims.h * in_dims.w, in_dims.c, in, out);
    }
    case REDS_OP_ADD: {
        const uint32_t rs = f[REDS_F_IN_RSHIFTS];
        const reds_add_params p = {in_off, (int32_t)f[REDS_F_IN1_MULT], -(int32_t)(rs & 0xFFu),
                                   -(int32_t)f[REDS_F_IN2_ZP], (int32_t)f[REDS_F_IN2_MULT],
                                   -(int32_t)((rs >> 8) & 0xFFu), out_off, (int32_t)f[REDS_F_MULT],
                                   (int32_t)f[REDS_F_SHIFT], act};
        return reds_add_s8(&p, in_dims.h * in_dims.w * in_dims.c, in, in2, out);
    }
    case REDS_OP_LEAKY_RELU: {
        const reds_leaky_relu_params p = {in_off, out_off, (int32_t)f[REDS_F_MULT], (int32_t)f[REDS_F_SHIFT],
                                          (int32_t)f[REDS_F_ALPHA_MULT], (int32_t)f[REDS_F_ALPHA_SHIFT]};
        return reds_leaky_relu_s8(&p, in_dims.h * in_dims.w * in_dims.c, in, out);
    }
    default:
        return REDS_BAD_BLOB; /* unreachable after reds_model_init */
    }
}

reds_status reds_invoke(const reds_model *m, const int8_t *input, int8_t *output, void *scratch,
                        uint32_t scratch_len)
{
    if (m == NULL || m->active == NULL || input == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const reds_level *lv = m->active;
    if (scratch_len < lv->scratch || (lv->scratch != 0 && scratch == NULL)) {
        return REDS_ARG_ERROR;
    }
    int8_t *buf = (int8_t *)scratch;
    const uint8_t *count = lv->counts; /* the next sparse op's count */
    for (uint32_t j = 0; j < lv->n_ops; ++j) {
        const uint8_t *e = lv->ops + j * REDS_ENTRY_WORDS * 4u;
        uint32_t f[REDS_F_USED];
        load_words(m->templates + rd32(e) * (REDS_OP_WORDS * 4u), f, REDS_F_USED);
        f[REDS_F_IN_C] = rd32(e + 4u * REDS_E_IN_C);
        f[REDS_F_OUT_C] = rd32(e + 4u * REDS_E_OUT_C);
        const uint32_t b = rd32(e + 4u * REDS_E_BUFS), in = b & 0xFFu, in2 = (b >> 8) & 0xFFu;
        const uint32_t out = (b >> 16) & 0xFFu;
        /* Slots as reds_model_init checked them: the input slot is read-only, the output slot the last. */
        const int8_t *src = in == REDS_SLOT_INPUT ? input : buf + rd32(lv->slots + 4u * (in - REDS_SLOT_SCRATCH));
        const int8_t *src2 = in2 == REDS_SLOT_NONE    ? NULL
                             : in2 == REDS_SLOT_INPUT ? input
                                                      : buf + rd32(lv->slots + 4u * (in2 - REDS_SLOT_SCRATCH));
        int8_t *dst = out == REDS_SLOT_OUTPUT ? output : buf + rd32(lv->slots + 4u * (out - REDS_SLOT_SCRATCH));
        const uint32_t c = is_sparse(f[REDS_F_TYPE]) ? rd32(count) : 0u;
        count += is_sparse(f[REDS_F_TYPE]) ? 4u : 0u;
        const reds_status s = run_op(m, f, c, src, src2, dst);
        if (s != REDS_OK) {
            return s;
        }
    }
    return REDS_OK;
}
