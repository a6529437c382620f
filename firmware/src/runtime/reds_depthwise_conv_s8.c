/*
 * reds_depthwise_conv_s8.c - DEPTHWISE_CONV_2D int8 on a channel prefix of a shared weight tensor.
 * Arithmetic as TFLM reference_integer_ops::DepthwiseConvPerChannel. The in-image tap range is computed
 * once per output pixel; with depth multiplier 1 four adjacent channels are accumulated together, so
 * every tap's pointer arithmetic and loop control is shared by four multiply-accumulates.
 */
#include "reds_dsp.h"
#include "reds_kernels.h"
#include "reds_requant.h"
#include "reds_window.h"

/* Everything the loops need, copied out of the caller's structs once. */
typedef struct {
    const int8_t *in;
    const int8_t *w;
    const int32_t *bias;
    const int32_t *qm;
    const int32_t *qs;
    int32_t q_step, in_h, in_w, in_c, k_h, k_w, cs, mult, off, out_off;
    reds_act act;
} dw_ctx;

static inline int8_t finish(const dw_ctx *c, int32_t acc, int32_t oc)
{
    if (c->bias != NULL) {
        acc += c->bias[oc];
    }
    return reds_requant_clamp(acc, c->qm[oc * c->q_step], c->qs[oc * c->q_step], c->out_off, c->act);
}

/* int32 -> int8 output of one channel. `mode` (a constant at every call site): 0 exact reds_rq_apply;
 * 1 promises reds_rq_fold_ok for every accumulator of the channel, so reds_rq_fast with `rnd` =
 * reds_rq_fold_rnd gives reds_rq_apply's result plus the output zero point; 2 is 1 with the activation
 * clamp [-128, 127] (one SSAT on DSP cores). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int8_t dw_out(int32_t acc, const reds_rq rq, int32_t rnd, int32_t out_off, reds_act act,
                            const int mode)
{
    int32_t v = mode ? reds_rq_fast(acc, rq.multiplier, rq.right, rnd) : reds_rq_apply(acc, rq) + out_off;
#if REDS_DSP
    if (mode == 2) {
        return (int8_t)reds_ssat8(v);
    }
#endif
    v = v < act.min ? act.min : v;
    v = v > act.max ? act.max : v;
    return (int8_t)v;
}

/* Two int8 weights in the 16-bit halves of one register (lo in bits 0-15), so the unrolled 3x3 interior
 * keeps its nine weights in five registers. dw_mla_lo/hi: acc + half * x modulo 2^32; on cores with the
 * DSP extension one SMLABB/SMLATB each (whose wrap-around is the same modulo 2^32). */
static inline int32_t dw_pack(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xffffu));
}

#if REDS_DSP
static inline uint32_t dw_mla_lo(uint32_t acc, int32_t packed, int32_t x)
{
    return (uint32_t)reds_smlabb((uint32_t)packed, (uint32_t)x, (int32_t)acc);
}
static inline uint32_t dw_mla_hi(uint32_t acc, int32_t packed, int32_t x)
{
    return (uint32_t)reds_smlatb((uint32_t)packed, (uint32_t)x, (int32_t)acc);
}
#else
static inline uint32_t dw_mla_lo(uint32_t acc, int32_t packed, int32_t x)
{
    return acc + (uint32_t)((int32_t)(int16_t)(packed & 0xffff) * x);
}
static inline uint32_t dw_mla_hi(uint32_t acc, int32_t packed, int32_t x)
{
    return acc + (uint32_t)((packed >> 16) * x);
}
#endif

#if REDS_DSP && defined(__OPTIMIZE__) /* the asm needs 13 free registers: unoptimised builds lack them */
#define REDS_DW3_PAIRS 1
/* What the stride-1 interior of a 3x3 channel needs (dw3_pairs), with the zero point folded into `rnd`
 * (reds_rq_fold_ok) and the activation clamp [-128, 127]. */
typedef struct {
    int32_t p01, p23, p45, p67, w8; /* weights, two per register as in dw_pack */
    uint32_t c_full;                /* bias + input_offset * (sum of the nine weights) */
    int32_t mult, right, rnd, ch, row;
} dw3_k;

/* Interior outputs of one channel, stride 1, two neighbours at a time: windows at x and x + ch share two
 * of their three columns, so one asm block loads 12 inputs for 18 multiply-accumulates (SMLABB/SMLATB
 * on the packed weights; 13 registers). Sums modulo 2^32 as dw_mla_lo/hi. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void dw3_pairs(const int8_t *x, int8_t *o, int32_t pairs, const dw3_k *k)
{
    const int32_t p01 = k->p01, p23 = k->p23, p45 = k->p45, p67 = k->p67, w8 = k->w8, ch = k->ch, row = k->row;
    const uint32_t c = k->c_full;
    const int32_t mult = k->mult, right = k->right, rnd = k->rnd;
    for (; pairs > 0; --pairs) {
        int32_t a, b, t;
        const int8_t *p;
        __asm__("ldrsb %[t], [%[x]]\n\t"
                "smlabb %[a], %[p01], %[t], %[c]\n\t"
                "ldrsb %[t], [%[x], %[ch]]\n\t"
                "smlatb %[a], %[p01], %[t], %[a]\n\t"
                "smlabb %[b], %[p01], %[t], %[c]\n\t"
                "ldrsb %[t], [%[x], %[ch], lsl #1]\n\t"
                "smlabb %[a], %[p23], %[t], %[a]\n\t"
                "smlatb %[b], %[p01], %[t], %[b]\n\t"
                "add %[p], %[x], %[ch], lsl #1\n\t"
                "ldrsb %[t], [%[p], %[ch]]\n\t"
                "smlabb %[b], %[p23], %[t], %[b]\n\t"
                "add %[p], %[x], %[row]\n\t"
                "ldrsb %[t], [%[p]]\n\t"
                "smlatb %[a], %[p23], %[t], %[a]\n\t"
                "ldrsb %[t], [%[p], %[ch]]\n\t"
                "smlabb %[a], %[p45], %[t], %[a]\n\t"
                "smlatb %[b], %[p23], %[t], %[b]\n\t"
                "ldrsb %[t], [%[p], %[ch], lsl #1]\n\t"
                "smlatb %[a], %[p45], %[t], %[a]\n\t"
                "smlabb %[b], %[p45], %[t], %[b]\n\t"
                "add %[p], %[p], %[ch], lsl #1\n\t"
                "ldrsb %[t], [%[p], %[ch]]\n\t"
                "smlatb %[b], %[p45], %[t], %[b]\n\t"
                "add %[p], %[x], %[row], lsl #1\n\t"
                "ldrsb %[t], [%[p]]\n\t"
                "smlabb %[a], %[p67], %[t], %[a]\n\t"
                "ldrsb %[t], [%[p], %[ch]]\n\t"
                "smlatb %[a], %[p67], %[t], %[a]\n\t"
                "smlabb %[b], %[p67], %[t], %[b]\n\t"
                "ldrsb %[t], [%[p], %[ch], lsl #1]\n\t"
                "smlabb %[a], %[w8], %[t], %[a]\n\t"
                "smlatb %[b], %[p67], %[t], %[b]\n\t"
                "add %[p], %[p], %[ch], lsl #1\n\t"
                "ldrsb %[t], [%[p], %[ch]]\n\t"
                "smlabb %[b], %[w8], %[t], %[b]\n\t"
                : [a] "=&r"(a), [b] "=&r"(b), [t] "=&r"(t), [p] "=&r"(p)
                : [x] "r"(x), [ch] "r"(ch), [row] "r"(row), [p01] "r"(p01), [p23] "r"(p23), [p45] "r"(p45),
                  [p67] "r"(p67), [w8] "r"(w8), [c] "r"(c)
                : "memory");
        o[0] = (int8_t)reds_ssat8(reds_rq_fast(a, mult, right, rnd));
        o[ch] = (int8_t)reds_ssat8(reds_rq_fast(b, mult, right, rnd));
        x += 2 * ch;
        o += 2 * ch;
    }
}
#endif

/* Bit k (k < 3) set when origin + k is in [0, size). */
static inline uint32_t dw_valid3(int32_t origin, int32_t size)
{
    int32_t lo = -origin, hi = size - origin;
    lo = lo < 0 ? 0 : (lo > 3 ? 3 : lo);
    hi = hi < 0 ? 0 : (hi > 3 ? 3 : hi);
    return ((1u << hi) - 1u) & ~((1u << lo) - 1u);
}

/* Geometry of the depth-multiplier-1 path, fetched once per call. Output columns [ox_lo, ox_hi) have
 * their whole window inside the image's width. */
typedef struct {
    int32_t out_h, out_w, s_h, s_w, p_h, p_w, dil_h, dil_w, ox_lo, ox_hi;
} dw_geom;

#if REDS_DSP
/* Widest padded input row (in_w + 2 * pad_w) dw3_rows takes; wider images take dw_channel. */
#define REDS_DW_ROW_MAX 64
#define REDS_DW_ROW_STRIDE (REDS_DW_ROW_MAX + 4) /* + the bytes past the last window a word load reads */

/* One padded input row of a channel into its two slots of dw3_rows' buffers (d0 and d0 + 3 rows, at the
 * first image column): the image's row from `src` (stride ch), or `pad` for a row outside the image
 * (src NULL). The padding columns were set to `pad` once. Four pixels per word store. */
static void dw_fill_row(int8_t *d0, const int8_t *src, int32_t in_w, int32_t ch, int8_t pad)
{
    int8_t *const d1 = d0 + 3 * REDS_DW_ROW_STRIDE;
    int32_t x = 0;
    if (src == NULL) { /* whole words: the columns past the image hold the zero point too (or nothing read) */
        const uint32_t v = (uint32_t)(uint8_t)pad * 0x01010101u;
        for (; x < in_w; x += 4) {
            __builtin_memcpy(d0 + x, &v, 4);
            __builtin_memcpy(d1 + x, &v, 4);
        }
        return;
    }
    for (; x + 4 <= in_w; x += 4, src += 4 * ch) {
        const uint32_t v = (uint32_t)(uint8_t)src[0] | (uint32_t)(uint8_t)src[ch] << 8 |
                           (uint32_t)(uint8_t)src[2 * ch] << 16 | (uint32_t)(uint8_t)src[3 * ch] << 24;
        __builtin_memcpy(d0 + x, &v, 4);
        __builtin_memcpy(d1 + x, &v, 4);
    }
    for (; x < in_w; ++x, src += ch) {
        d0[x] = d1[x] = src[0];
    }
}

/* Bytes between the rings of the channels of one dw3_rows group (three slots and their copies). */
#define REDS_DW_RING (6 * REDS_DW_ROW_STRIDE)

/* Four gathered pixels into a ring slot and its copy. */
static inline void dw_store2(int8_t *d, uint32_t v)
{
    __builtin_memcpy(d, &v, 4);
    __builtin_memcpy(d + 3 * REDS_DW_ROW_STRIDE, &v, 4);
}

/* Four pixels (src, src + ch, ...) of four adjacent channels into the channels' rings at d (REDS_DW_RING
 * apart): one word load per pixel gives its four channels, and a 4x4 byte transpose (UXTB16 / AND into
 * pairs, PKHBT / PKHTB into rows) turns them into one word per channel. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void dw_fill_block4(int8_t *d, const int8_t *src, int32_t ch)
{
    const uint32_t a = reds_read_s8x4(src), b = reds_read_s8x4(src + ch), c = reds_read_s8x4(src + 2 * ch),
                   e = reds_read_s8x4(src + 3 * ch);
    const uint32_t ab02 = reds_uxtb16(a) | reds_uxtb16(b) << 8;     /* a0 b0 a2 b2 */
    const uint32_t ab13 = reds_uxtb16_ror8(a) | (b & 0xff00ff00u); /* a1 b1 a3 b3 */
    const uint32_t ce02 = reds_uxtb16(c) | reds_uxtb16(e) << 8;
    const uint32_t ce13 = reds_uxtb16_ror8(c) | (e & 0xff00ff00u);
    dw_store2(d, reds_pkhbt_lsl16(ab02, ce02));
    dw_store2(d + REDS_DW_RING, reds_pkhbt_lsl16(ab13, ce13));
    dw_store2(d + 2 * REDS_DW_RING, reds_pkhtb_asr16(ce02, ab02));
    dw_store2(d + 3 * REDS_DW_RING, reds_pkhtb_asr16(ce13, ab13));
}

/* dw_fill_row for four adjacent channels at once (src points at the first; the group's rings
 * REDS_DW_RING apart from d0), four pixels per dw_fill_block4; a row whose width is not a multiple of four
 * ends with a block overlapping the one before (its pixels are written again with the same values). */
static void dw_fill_row4(int8_t *d0, const int8_t *src, int32_t in_w, int32_t ch, int8_t pad)
{
    if (src == NULL) {
        for (int32_t j = 0; j < 4; ++j) {
            dw_fill_row(d0 + j * REDS_DW_RING, NULL, in_w, ch, pad);
        }
        return;
    }
    int32_t x = 0;
    for (; x + 4 <= in_w; x += 4) {
        dw_fill_block4(d0 + x, src + x * ch, ch);
    }
    if (x < in_w) {
        if (in_w >= 4) {
            dw_fill_block4(d0 + in_w - 4, src + (in_w - 4) * ch, ch);
            return;
        }
        for (; x < in_w; ++x) {
            for (int32_t j = 0; j < 4; ++j) {
                d0[j * REDS_DW_RING + x] = d0[j * REDS_DW_RING + 3 * REDS_DW_ROW_STRIDE + x] = src[x * ch + j];
            }
        }
    }
}

/* dw3_rows' constants: (2 w0, 2 w2) per tap row, 2 w1 of rows 0 and 1 in one register (SMLAxB / SMLAxT),
 * 2 w1 of row 2, 2 (bias + input_offset * sum w), and the requantisation (reds_rq_fast_x2) with the output
 * channel stride. */
typedef struct {
    uint32_t k02[3], k1_01, k1_2;
    int32_t c2, mult, rnd, right, ch;
} dw3_w;

#if defined(__OPTIMIZE__) /* the asm needs 14 free registers: unoptimised builds lack them */
/* One tap row of two neighbouring outputs (a0 at x, a1 at x + 1) as asm text: the word of pixels
 * x .. x + 3 at `addr`, split by SXTB16 into d = (p1, p3) and v = (p0, p2) (the word itself is dead);
 * SMLAD with (2 w0, 2 w2) and one SMLAxy with 2 w1 each. `acc0`/`acc1` are what a0/a1 add to. */
#define REDS_DW3_ROW_ASM(addr, k, k1, b0, b1, acc0, acc1)                                                    \
    "ldr %[v], " addr "\n\t"                                                                               \
    "sxtb16 %[d], %[v], ror #8\n\t"                                                                        \
    "sxtb16 %[v], %[v]\n\t"                                                                                \
    "smlad %[a0], %[v], %[" k "], %[" acc0 "]\n\t"                                                         \
    "smla" b0 " %[a0], %[d], %[" k1 "], %[a0]\n\t"                                                         \
    "smlad %[a1], %[d], %[" k "], %[" acc1 "]\n\t"                                                         \
    "smla" b1 " %[a1], %[v], %[" k1 "], %[a1]\n\t"
#endif

/* Outputs o[0], o[ch], ... o[(2 pairs - 1) ch] of one row from three padded rows at p, p + 1 row,
 * p + 2 rows, two neighbours per step, requantised as they are summed (reds_rq_fast_x2 with the zero
 * point folded into rnd, SSAT to [-128, 127]). The asm keeps the nine weights, the constant, the multiplier,
 * the output stride and both pointers in registers (14 in all) and reads (rnd, right) with one LDRD and
 * the end from memory; gcc spilled and stored the sums to a buffer instead. Sums modulo 2^32 as
 * dw_mla_lo/hi. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void dw3_row(const int8_t *p, int8_t *o, int32_t pairs, const dw3_w *k)
{
#if defined(__OPTIMIZE__)
    const uint32_t k0 = k->k02[0], k1 = k->k02[1], k2 = k->k02[2], k1_01 = k->k1_01, k1_2 = k->k1_2;
    const int32_t c2 = k->c2, m = k->mult, ch = k->ch;
    const struct {
        int32_t rnd, right;
    } rr = {k->rnd, k->right};
    const int8_t *const end = p + 2 * pairs;
    int32_t a0, a1;
    uint32_t v, d;
    __asm__ volatile("1:\n\t" REDS_DW3_ROW_ASM("[%[p]], #2", "k0", "k1_01", "bb", "tb", "c2", "c2")
                         REDS_DW3_ROW_ASM("[%[p], %[r1]]", "k1", "k1_01", "bt", "tt", "a0", "a1")
                             REDS_DW3_ROW_ASM("[%[p], %[r2]]", "k2", "k1_2", "bb", "tb", "a0", "a1")
                     "ldrd %[d], %[v], %[rr]\n\t"
                     "add %[d], %[d], %[a0], asr #31\n\t"
                     "smmlar %[a0], %[a0], %[m], %[d]\n\t"
                     "ldr %[d], %[rr]\n\t"
                     "add %[d], %[d], %[a1], asr #31\n\t"
                     "smmlar %[a1], %[a1], %[m], %[d]\n\t"
                     "asr %[a0], %[a0], %[v]\n\t"
                     "asr %[a1], %[a1], %[v]\n\t"
                     "ssat %[a0], #8, %[a0]\n\t"
                     "ssat %[a1], #8, %[a1]\n\t"
                     "strb %[a0], [%[o]]\n\t"
                     "strb %[a1], [%[o], %[ch]]\n\t"
                     "add %[o], %[o], %[ch], lsl #1\n\t"
                     "ldr %[d], %[end]\n\t"
                     "cmp %[p], %[d]\n\t"
                     "bne 1b\n\t"
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [v] "=&r"(v), [d] "=&r"(d), [p] "+r"(p), [o] "+r"(o)
                     : [k0] "r"(k0), [k1] "r"(k1), [k2] "r"(k2), [k1_01] "r"(k1_01), [k1_2] "r"(k1_2),
                       [c2] "r"(c2), [m] "r"(m), [ch] "r"(ch), [rr] "m"(rr), [end] "m"(end),
                       [r1] "i"(REDS_DW_ROW_STRIDE - 2), [r2] "i"(2 * REDS_DW_ROW_STRIDE - 2)
                     : "cc", "memory");
#else
    for (; pairs > 0; --pairs, p += 2, o += 2 * k->ch) {
        uint32_t v = reds_read_s8x4(p), e = reds_sxtb16(v), d = reds_sxtb16_ror8(v);
        int32_t a0 = reds_smlabb(d, k->k1_01, reds_smlad(e, k->k02[0], k->c2));
        int32_t a1 = reds_smlatb(e, k->k1_01, reds_smlad(d, k->k02[0], k->c2));
        v = reds_read_s8x4(p + REDS_DW_ROW_STRIDE);
        e = reds_sxtb16(v);
        d = reds_sxtb16_ror8(v);
        a0 = reds_smlabt(d, k->k1_01, reds_smlad(e, k->k02[1], a0));
        a1 = reds_smlatt(e, k->k1_01, reds_smlad(d, k->k02[1], a1));
        v = reds_read_s8x4(p + 2 * REDS_DW_ROW_STRIDE);
        e = reds_sxtb16(v);
        d = reds_sxtb16_ror8(v);
        a0 = reds_smlabb(d, k->k1_2, reds_smlad(e, k->k02[2], a0));
        a1 = reds_smlatb(e, k->k1_2, reds_smlad(d, k->k02[2], a1));
        o[0] = (int8_t)reds_ssat8(reds_rq_fast_x2(a0, k->mult, k->right, k->rnd));
        o[k->ch] = (int8_t)reds_ssat8(reds_rq_fast_x2(a1, k->mult, k->right, k->rnd));
    }
#endif
}

/* All outputs of channels oc .. oc + nch - 1 (nch <= 4) of a 3x3, stride-1, undilated depthwise with
 * padding <= 1 and at least two output columns, each under reds_rq_fold_ok and the activation clamp
 * [-128, 127]. The channels' padded input rows are gathered into their rings in `rows` (dw_fill_row4 for
 * four channels, else dw_fill_row per channel; the padding columns hold the input zero point), and rows
 * outside the image are the zero point too: such taps add w * (zp + off) = 0, exactly what TFLM's skipped
 * taps add, so every window, borders included, runs the same loop. With the offset folded into the
 * constant (sum w (x + off) + b = sum w x + (b + off sum w)) and the requantisation's doubling into the
 * weights (reds_rq_fast_x2; 2 |acc| < 2^31), two neighbouring outputs take per tap row one word of four
 * pixels (p0..p3), split by SXTB16 into (p0, p2) and (p1, p3): SMLAD with (2 w0, 2 w2) and one SMLAxB with
 * 2 w1 each (dw3_row). Sums modulo 2^32: the same integer as TFLM's. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void dw3_rows(const dw_ctx *c, const dw_geom *g, int32_t n, int32_t oc, int32_t nch, int8_t *output,
                     int8_t *rows)
{
    const int32_t ch = c->in_c, cs = c->cs, out_w = g->out_w, out_h = g->out_h, p_h = g->p_h, p_w = g->p_w;
    dw3_w k[4];
    for (int32_t j = 0; j < nch; ++j) {
        const int8_t *const wc = c->w + oc + j;
        uint32_t k02[3], k1[3];
        int32_t wsum = 0;
        for (int32_t r = 0; r < 3; ++r) {
            const int32_t a = wc[3 * r * cs], b = wc[(3 * r + 1) * cs], d = wc[(3 * r + 2) * cs];
            k02[r] = ((uint32_t)(2 * d) << 16) | ((uint32_t)(2 * a) & 0xffffu);
            k1[r] = (uint32_t)(2 * b) & 0xffffu;
            wsum += a + b + d;
        }
        const int32_t b0 = c->bias != NULL ? c->bias[oc + j] : 0;
        const reds_rq rq = reds_rq_prepare(c->qm[(oc + j) * c->q_step], c->qs[(oc + j) * c->q_step]);
        const dw3_w kj = {{k02[0], k02[1], k02[2]}, k1[0] | (k1[1] << 16), k1[2],
                          (int32_t)(2u * ((uint32_t)b0 + (uint32_t)(c->off * wsum))), rq.multiplier,
                          reds_rq_fold_rnd(rq, c->out_off), rq.right, ch};
        k[j] = kj;
    }
    const int32_t pairs = out_w >> 1, odd = out_w & 1, in_h = c->in_h, in_w = c->in_w, row_in = in_w * ch;
    const int8_t pad = (int8_t)-c->off; /* the input zero point */
    for (int32_t b = 0; b < n; ++b) {
        const int8_t *const in_b = c->in + b * in_h * row_in + oc;
        int8_t *o = output + b * out_h * out_w * ch + oc;
        /* Padded row r (image row r - p_h) goes to slot r % 3 (and its copy 3 rows on); once rows r - 2 .. r
         * are in, output row r - 2 reads them from slot (r - 2) % 3 = (r + 1) % 3, the next slot to fill. */
        int32_t slot = 0;
        for (int32_t r = 0, y = -p_h; r < out_h + 2; ++r, ++y) {
            const int8_t *const src = y >= 0 && y < in_h ? in_b + y * row_in : NULL;
            int8_t *const d = rows + slot * REDS_DW_ROW_STRIDE + p_w;
            if (nch == 4) {
                dw_fill_row4(d, src, in_w, ch, pad);
            } else {
                for (int32_t j = 0; j < nch; ++j) {
                    dw_fill_row(d + j * REDS_DW_RING, src != NULL ? src + j : NULL, in_w, ch, pad);
                }
            }
            slot = slot == 2 ? 0 : slot + 1;
            if (r >= 2) {
                /* An odd row's last pair also writes the next output row's first pixel, which that row
                 * rewrites later; the very last row ends with a pair overlapping the one before instead. */
                const int last = b == n - 1 && r == out_h + 1;
                for (int32_t j = 0; j < nch; ++j) {
                    const int8_t *const p = rows + j * REDS_DW_RING + slot * REDS_DW_ROW_STRIDE;
                    dw3_row(p, o + j, pairs + (odd && !last), &k[j]);
                    if (odd && last) {
                        dw3_row(p + out_w - 2, o + j + (out_w - 2) * ch, 1, &k[j]);
                    }
                }
                o += out_w * ch;
            }
        }
    }
}
#endif /* REDS_DSP */

/* All outputs of channel oc, depth multiplier 1. Channel outermost: the channel's weights, bias and
 * requantisation constants are fetched once and stay in registers for all its pixels, so the fixed cost
 * per output is the requantisation only. Windows wholly inside the image of a 3x3, undilated kernel
 * (the DS-CNN case) run fully unrolled with the input offset folded into the bias:
 * sum w * (x + off) + b = sum w * x + (b + off * sum w), summed modulo 2^32 (unsigned, no UB), so the
 * result is the same integer whenever TFLM's order does not overflow. Border windows keep the
 * per-tap offset and clip their taps to the image (TFLM's padding). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void dw_channel(const dw_ctx *c, const dw_geom *g, int32_t n, int32_t oc, int8_t *output,
                              const int mode, const int fast3)
{
    const int32_t ch = c->in_c, cs = c->cs, off = c->off, in_w = c->in_w, in_h = c->in_h;
    const int32_t out_off = c->out_off;
    const reds_act act = c->act;
    const reds_rq rq = reds_rq_prepare(c->qm[oc * c->q_step], c->qs[oc * c->q_step]);
    const int32_t rnd = mode ? reds_rq_fold_rnd(rq, out_off) : 0;
    const int32_t b0 = c->bias != NULL ? c->bias[oc] : 0;
    const int8_t *const wc = c->w + oc;
    int32_t w0 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0, w5 = 0, w6 = 0, w7 = 0, w8 = 0;
    /* b0 + off * (sum of the taps inside) */
    uint32_t c_full = 0, c_left = 0, c_right = 0, c_top = 0, c_bottom = 0;
    int32_t p01 = 0, p23 = 0, p45 = 0, p67 = 0;     /* interior weights two per register */
    if (fast3) {
        w0 = wc[0];
        w1 = wc[cs];
        w2 = wc[2 * cs];
        w3 = wc[3 * cs];
        w4 = wc[4 * cs];
        w5 = wc[5 * cs];
        w6 = wc[6 * cs];
        w7 = wc[7 * cs];
        w8 = wc[8 * cs];
        c_full = (uint32_t)b0 + (uint32_t)(off * (w0 + w1 + w2 + w3 + w4 + w5 + w6 + w7 + w8));
        c_left = (uint32_t)b0 + (uint32_t)(off * (w1 + w2 + w4 + w5 + w7 + w8));
        c_right = (uint32_t)b0 + (uint32_t)(off * (w0 + w1 + w3 + w4 + w6 + w7));
        c_top = (uint32_t)b0 + (uint32_t)(off * (w3 + w4 + w5 + w6 + w7 + w8));
        c_bottom = (uint32_t)b0 + (uint32_t)(off * (w0 + w1 + w2 + w3 + w4 + w5));
        p01 = dw_pack(w0, w1);
        p23 = dw_pack(w2, w3);
        p45 = dw_pack(w4, w5);
        p67 = dw_pack(w6, w7);
    }
    const int32_t row = in_w * ch, ch2 = 2 * ch, x_step = g->s_w * ch;
#if REDS_DW3_PAIRS
    const dw3_k k3 = {p01, p23, p45, p67, w8, c_full, rq.multiplier, rq.right, rnd, ch, row};
#endif
    for (int32_t b = 0; b < n; ++b) {
        const int8_t *const in_b = c->in + b * in_h * row + oc;
        int8_t *out_b = output + b * g->out_h * g->out_w * ch + oc;
        for (int32_t oy = 0; oy < g->out_h; ++oy) {
            const int32_t y0 = oy * g->s_h - g->p_h;
            int8_t *o = out_b + oy * g->out_w * ch;
            if (!fast3) {
                int32_t ky0, ky1;
                reds_valid_taps(y0, c->k_h, g->dil_h, in_h, &ky0, &ky1);
                for (int32_t ox = 0; ox < g->out_w; ++ox, o += ch) {
                    const int32_t x0 = ox * g->s_w - g->p_w;
                    int32_t kx0, kx1;
                    reds_valid_taps(x0, c->k_w, g->dil_w, in_w, &kx0, &kx1);
                    int32_t acc = b0;
                    if (kx1 > kx0) {
                        for (int32_t ky = ky0; ky < ky1; ++ky) {
                            const int8_t *xp = in_b + ((y0 + ky * g->dil_h) * in_w + x0 + kx0 * g->dil_w) * ch;
                            const int8_t *wp = wc + (ky * c->k_w + kx0) * cs;
                            for (int32_t kx = kx0; kx < kx1; ++kx, xp += g->dil_w * ch, wp += cs) {
                                acc += (int32_t)wp[0] * ((int32_t)xp[0] + off);
                            }
                        }
                    }
                    *o = dw_out(acc, rq, rnd, out_off, act, mode);
                }
                continue;
            }
            /* 3x3: bit 3 * ky + kx of a tap mask says the tap is inside the image. */
            const uint32_t rb = dw_valid3(y0, in_h); /* bit ky: tap row ky inside */
            const uint32_t row_mask = ((rb & 1u) | ((rb & 2u) << 2) | ((rb & 4u) << 4)) * 7u;
            const int32_t inner = rb == 7u; /* all three tap rows inside the image */
            const int32_t run = inner && g->ox_lo < g->ox_hi;
            const int32_t run_lo = run ? g->ox_lo : g->out_w, run_hi = run ? g->ox_hi : g->out_w;
            for (int32_t ox = 0; ox < g->out_w; ++ox, o += ch) {
                if (ox == run_lo) {
                    /* The row's interior run: pointers advance, no per-tap index math or checks. */
                    const int8_t *x = in_b + (y0 * in_w + ox * g->s_w - g->p_w) * ch;
#if REDS_DW3_PAIRS
                    if (mode == 2 && g->s_w == 1) {
                        const int32_t pairs = (run_hi - ox) >> 1;
                        dw3_pairs(x, o, pairs, &k3);
                        ox += 2 * pairs;
                        o += 2 * pairs * ch;
                        x += 2 * pairs * ch;
                    }
#endif
                    for (; ox < run_hi; ++ox, o += ch, x += x_step) {
                        const int8_t *const x1 = x + row, *const x2 = x1 + row;
                        uint32_t acc = c_full;
                        acc = dw_mla_lo(acc, p01, x[0]);
                        acc = dw_mla_hi(acc, p01, x[ch]);
                        acc = dw_mla_lo(acc, p23, x[ch2]);
                        acc = dw_mla_hi(acc, p23, x1[0]);
                        acc = dw_mla_lo(acc, p45, x1[ch]);
                        acc = dw_mla_hi(acc, p45, x1[ch2]);
                        acc = dw_mla_lo(acc, p67, x2[0]);
                        acc = dw_mla_hi(acc, p67, x2[ch]);
                        acc += (uint32_t)(w8 * x2[ch2]);
                        *o = dw_out((int32_t)acc, rq, rnd, out_off, act, mode);
                    }
                    if (ox == g->out_w) {
                        break;
                    }
                }
                /* Border window: the taps inside the image, each with its input offset (TFLM's order). */
                const int32_t x0 = ox * g->s_w - g->p_w;
                const uint32_t cb = dw_valid3(x0, in_w);
                const int32_t base = (y0 * in_w + x0) * ch;
                if (inner && cb == 6u) {
                    /* Left edge (SAME padding 1): taps kx = 1, 2 of all three rows, offset folded. */
                    const int8_t *const x = in_b + base + ch, *const x1 = x + row, *const x2 = x1 + row;
                    const int32_t sum =
                        w1 * x[0] + w2 * x[ch] + w4 * x1[0] + w5 * x1[ch] + w7 * x2[0] + w8 * x2[ch];
                    *o = dw_out((int32_t)(c_left + (uint32_t)sum), rq, rnd, out_off, act, mode);
                    continue;
                }
                if (cb == 7u && (rb == 6u || rb == 3u)) {
                    /* Top (bottom) row under SAME padding 1: tap rows 1, 2 (0, 1), all three columns. */
                    const int32_t top = rb == 6u;
                    const int8_t *const x = in_b + base + (top ? row : 0), *const x1 = x + row;
                    const int32_t sum = top ? w3 * x[0] + w4 * x[ch] + w5 * x[ch2] + w6 * x1[0] +
                                                  w7 * x1[ch] + w8 * x1[ch2]
                                            : w0 * x[0] + w1 * x[ch] + w2 * x[ch2] + w3 * x1[0] +
                                                  w4 * x1[ch] + w5 * x1[ch2];
                    *o = dw_out((int32_t)((top ? c_top : c_bottom) + (uint32_t)sum), rq, rnd, out_off, act, mode);
                    continue;
                }
                if (inner && cb == 3u) {
                    /* Right edge: taps kx = 0, 1 of all three rows. */
                    const int8_t *const x = in_b + base, *const x1 = x + row, *const x2 = x1 + row;
                    const int32_t sum =
                        w0 * x[0] + w1 * x[ch] + w3 * x1[0] + w4 * x1[ch] + w6 * x2[0] + w7 * x2[ch];
                    *o = dw_out((int32_t)(c_right + (uint32_t)sum), rq, rnd, out_off, act, mode);
                    continue;
                }
                const uint32_t m = row_mask & (cb * 0x49u); /* column bits in all rows */
                int32_t acc = b0;
#define REDS_DW_TAP(bit, wv, idx)                                      \
    if (m & (1u << (bit))) {                                           \
        acc += (wv) * ((int32_t)in_b[base + (idx)] + off);             \
    }
                REDS_DW_TAP(0, w0, 0)
                REDS_DW_TAP(1, w1, ch)
                REDS_DW_TAP(2, w2, ch2)
                REDS_DW_TAP(3, w3, row)
                REDS_DW_TAP(4, w4, row + ch)
                REDS_DW_TAP(5, w5, row + ch2)
                REDS_DW_TAP(6, w6, 2 * row)
                REDS_DW_TAP(7, w7, 2 * row + ch)
                REDS_DW_TAP(8, w8, 2 * row + ch2)
#undef REDS_DW_TAP
                *o = dw_out(acc, rq, rnd, out_off, act, mode);
            }
        }
    }
}

/* First output index whose window starts at or after 0, and one past the last whose window ends inside
 * `in` (taps origin .. origin + (k - 1) * dil); lo >= hi when there is none. */
static void dw_inner(int32_t out, int32_t s, int32_t p, int32_t k, int32_t dil, int32_t in, int32_t *lo,
                     int32_t *hi)
{
    const int32_t span = (k - 1) * dil;
    int32_t l = (p + s - 1) / s; /* o * s - p >= 0 */
    int32_t h = in - 1 - span + p >= 0 ? (in - 1 - span + p) / s + 1 : 0; /* o * s - p + span <= in - 1 */
    l = l < out ? l : out;
    h = h < out ? h : out;
    *lo = l;
    *hi = h > l ? h : l;
}

/* Whether reds_rq_fold_ok holds for every accumulator of channel oc. */
static int dw_fold_ok(const dw_ctx *c, int32_t oc)
{
    /* |acc| <= |bias| + sum |w| * |x + off| with |w| <= 128, |x + off| <= 255. */
    const int32_t b0 = c->bias != NULL ? c->bias[oc] : 0;
    const int64_t bound = (b0 < 0 ? -(int64_t)b0 : (int64_t)b0) + (int64_t)255 * 128 * c->k_h * c->k_w;
    return reds_rq_fold_ok(reds_rq_prepare(c->qm[oc * c->q_step], c->qs[oc * c->q_step]), bound, c->out_off);
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void dw_mult1(const dw_ctx *c, const reds_dw_params *params, int32_t n, int32_t out_h, int32_t out_w,
                     int8_t *output)
{
    dw_geom g = {out_h, out_w, params->stride.h, params->stride.w, params->padding.h, params->padding.w,
                 params->dilation.h, params->dilation.w, 0, 0};
    dw_inner(out_w, g.s_w, g.p_w, c->k_w, g.dil_w, c->in_w, &g.ox_lo, &g.ox_hi);
    const int fast3 = c->k_h == 3 && c->k_w == 3 && g.dil_h == 1 && g.dil_w == 1;
    const int sat8 = REDS_DSP && c->act.min == -128 && c->act.max == 127;
#if REDS_DSP
    /* dw3_rows' shapes: stride 1, padding <= 1, padded rows that fit its buffer, an int8 zero point */
    const int rows3 = fast3 && g.s_h == 1 && g.s_w == 1 && g.p_h <= 1 && g.p_w <= 1 &&
                      c->in_w + 2 * g.p_w <= REDS_DW_ROW_MAX && out_w >= 2 && out_w + 3 <= REDS_DW_ROW_STRIDE &&
                      c->off >= -127 && c->off <= 128;
    /* dw3_rows' rings (four channels): the columns its windows read outside the image (left padding, and
     * right of the image up to the last window's end) hold the input zero point, set once here; the image
     * columns are rewritten per row (rows outside the image with the zero point). */
    int8_t rows[4 * REDS_DW_RING];
    if (rows3) {
        for (int32_t i = 0; i < 4 * REDS_DW_RING; i += REDS_DW_ROW_STRIDE) {
            for (int32_t x = 0; x < g.p_w; ++x) {
                rows[i + x] = (int8_t)-c->off;
            }
            for (int32_t x = g.p_w + c->in_w; x < out_w + 2; ++x) {
                rows[i + x] = (int8_t)-c->off;
            }
        }
    }
#endif
    for (int32_t oc = 0; oc < c->in_c;) {
        const int fold = dw_fold_ok(c, oc);
#if REDS_DSP
        if (rows3 && sat8 && fold) {
            /* up to four adjacent channels that all take dw3_rows */
            int32_t nch = 1;
            while (nch < 4 && oc + nch < c->in_c && dw_fold_ok(c, oc + nch)) {
                ++nch;
            }
            dw3_rows(c, &g, n, oc, nch, output, rows);
            oc += nch;
            continue;
        }
#endif
        if (fast3) {
            if (fold && sat8) {
                dw_channel(c, &g, n, oc, output, 2, 1);
            } else if (fold) {
                dw_channel(c, &g, n, oc, output, 1, 1);
            } else {
                dw_channel(c, &g, n, oc, output, 0, 1);
            }
        } else if (fold) {
            dw_channel(c, &g, n, oc, output, 1, 0);
        } else {
            dw_channel(c, &g, n, oc, output, 0, 0);
        }
        ++oc;
    }
}

/* One output pixel, any depth multiplier: output channel oc reads input channel oc / mult. */
static void pixel_generic(const dw_ctx *c, int32_t y0, int32_t x0, int32_t ky0, int32_t ky1, int32_t kx0,
                          int32_t kx1, int32_t dil_h, int32_t dil_w, int8_t *out_px)
{
    const int32_t out_c = c->in_c * c->mult;
    for (int32_t oc = 0; oc < out_c; ++oc) {
        const int32_t ic = oc / c->mult;
        int32_t acc = 0;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int8_t *x = c->in + ((y0 + ky * dil_h) * c->in_w + x0 + kx0 * dil_w) * c->in_c + ic;
            const int8_t *w = c->w + (ky * c->k_w + kx0) * c->cs + oc;
            for (int32_t kx = kx0; kx < kx1; ++kx, x += dil_w * c->in_c, w += c->cs) {
                acc += (int32_t)w[0] * ((int32_t)x[0] + c->off);
            }
        }
        out_px[oc] = finish(c, acc, oc);
    }
}

reds_status reds_depthwise_conv_s8(const reds_dw_params *params, const reds_quant *quant,
                                   const reds_dims *input_dims, const int8_t *input,
                                   const reds_filter *filter, const int32_t *bias,
                                   const reds_dims *output_dims, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input_dims == NULL || input == NULL || filter == NULL || filter->data == NULL ||
        output_dims == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter->dims.h, k_w = filter->dims.w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t mult = params->ch_mult;
    const int32_t cs = filter->c_stride;
    if (input_dims->n < 1 || input_dims->n != output_dims->n || in_h < 1 || in_w < 1 || in_c < 1 ||
        k_h < 1 || k_w < 1 || out_h < 1 || out_w < 1 || mult < 1 || out_c != in_c * mult ||
        filter->dims.c != out_c || cs < out_c || params->stride.h < 1 || params->stride.w < 1 ||
        params->dilation.h < 1 || params->dilation.w < 1 || params->padding.h < 0 ||
        params->padding.w < 0 || params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    dw_ctx c = {input, filter->data, bias, quant->multiplier, quant->shift, quant->per_channel ? 1 : 0,
                in_h, in_w, in_c, k_h, k_w, cs, mult, params->input_offset, params->output_offset,
                params->activation};
    if (mult == 1) {
        dw_mult1(&c, params, input_dims->n, out_h, out_w, output);
        return REDS_OK;
    }
    const int32_t dil_h = params->dilation.h, dil_w = params->dilation.w;
    for (int32_t b = 0; b < input_dims->n; ++b) {
        c.in = input + b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            int32_t ky0, ky1;
            reds_valid_taps(y0, k_h, dil_h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                int32_t kx0, kx1;
                reds_valid_taps(x0, k_w, dil_w, in_w, &kx0, &kx1);
                const int32_t ky_end = kx1 > kx0 ? ky1 : ky0; /* no tap inside: bias only */
                int8_t *out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
                pixel_generic(&c, y0, x0, ky0, ky_end, kx0, kx1, dil_h, dil_w, out_px);
            }
        }
    }
    return REDS_OK;
}
