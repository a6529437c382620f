/*
 * reds_conv_s8.c - CONV_2D int8 (NHWC, OHWI) on channel prefixes of a shared weight tensor.
 * Arithmetic as TFLM reference_integer_ops::ConvPerChannel; taps outside the image are skipped
 * (TFLM's padding), with the in-image tap range computed once per output pixel.
 */
#include "reds_dsp.h"
#include "reds_kernels.h"
#include "reds_requant.h"
#include "reds_window.h"

/* acc + sum_i w[i] * (x[i] + offset): the TFLM accumulation order, as a pointer loop gcc keeps in registers. */
static inline int32_t dot_s8(const int8_t *w, const int8_t *x, int32_t n, int32_t offset, int32_t acc)
{
    const int8_t *const end = w + n;
    while (w < end) {
        acc += (int32_t)*w++ * ((int32_t)*x++ + offset);
    }
    return acc;
}

/* Four output channels at once (lane j's weights from wj): each input byte is loaded and offset once
 * for four multiply-accumulates. Same per-channel sums, in the same order, as four dot_s8 calls. */
static inline void dot4_s8(const int8_t *w0, const int8_t *w1, const int8_t *w2, const int8_t *w3,
                           const int8_t *x, int32_t n, int32_t offset, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *const end = x + n;
    while (x < end) {
        const int32_t xv = (int32_t)*x++ + offset;
        a0 += (int32_t)*w0++ * xv;
        a1 += (int32_t)*w1++ * xv;
        a2 += (int32_t)*w2++ * xv;
        a3 += (int32_t)*w3++ * xv;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* What one output channel of the pointwise path needs, fetched once per channel. */
typedef struct {
    const int8_t *in;
    int32_t in_c, in_off, rows, out_h, out_w, out_c, x_step, row_step, img_step, out_off, act_min, act_max;
} pw_geom;

/* All pixels of one output channel. `plain` and `one` are constants at every call site, so the compiler
 * emits specialised loops: `plain` promises reds_rq_fast_ok for every accumulator of the channel (then
 * reds_rq_fast, otherwise reds_rq_apply); `one` promises in_c == 1, where the dot product is a single multiply-accumulate
 * (narrow REDS levels: the solver may keep one unit of a group) and a loop around it would cost
 * more than the MAC itself. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void pw_channel(const pw_geom *g, const int8_t *w, int32_t b0, const reds_rq rq,
                              int8_t *out_ch, const int plain, const int one)
{
    const int32_t in_c = g->in_c, in_off = g->in_off, out_c = g->out_c, x_step = g->x_step;
    const int32_t out_off = g->out_off, act_min = g->act_min, act_max = g->act_max;
    /* one: w0 * (x + in_off) + b0 = w0 * x + c0. Summed modulo 2^32 (unsigned, no UB), so the result
     * is the same integer whenever the original order does not overflow, whatever the bias. */
    const int32_t w0 = w[0];
    const int32_t rnd = rq.half + 1; /* 2^(right - 1) when plain */
    const uint32_t c0 = (uint32_t)b0 + (uint32_t)(w0 * in_off);
    for (int32_t r = 0; r < g->rows; ++r) {
        const int8_t *x = g->in + (r / g->out_h) * g->img_step + (r % g->out_h) * g->row_step;
        int8_t *o = out_ch + r * g->out_w * out_c;
        /* Pointers advance only between pixels: none is formed past its array (out_w >= 1). */
        for (int32_t left = g->out_w;;) {
            const int32_t acc = one ? (int32_t)(c0 + (uint32_t)(w0 * (int32_t)x[0]))
                                    : dot_s8(w, x, in_c, in_off, b0);
            int32_t v;
            if (plain) {
                v = reds_rq_fast(acc, rq.multiplier, rq.right, rnd);
            } else {
                v = reds_rq_apply(acc, rq);
            }
            v += out_off;
            v = v < act_min ? act_min : v;
            v = v > act_max ? act_max : v;
            *o = (int8_t)v;
            if (--left == 0) {
                break;
            }
            o += out_c;
            x += x_step;
        }
    }
}

#if REDS_DSP
/* Sum of a weight row, for folding the input offset into the bias: sum w (x + off) + b =
 * sum w x + (b + off * sum w), modulo 2^32, which is TFLM's int32 result whenever its order does not
 * overflow (the plain / rq_fast_ok bound is on that same true value). */
static int32_t row_sum(const int8_t *w, int32_t n)
{
    int32_t s = 0;
    for (int32_t i = 0; i < n; ++i) {
        s += w[i];
    }
    return s;
}

/* Four taps of a 2x2 tile: weight words u0, u1 (rows 0, 1; four int8 each) against pixels a and b given as
 * 16-bit lanes (taps 0, 2) and (1, 3). SXTB16 splits each weight word the same way; SMLAD does two MACs. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void mac_2x2_w4(uint32_t u0, uint32_t u1, uint32_t a02, uint32_t a13, uint32_t b02, uint32_t b13,
                              int32_t a[4])
{
    uint32_t e = reds_sxtb16(u0), o = reds_sxtb16_ror8(u0);
    a[0] = reds_smlad(o, a13, reds_smlad(e, a02, a[0]));
    a[1] = reds_smlad(o, b13, reds_smlad(e, b02, a[1]));
    e = reds_sxtb16(u1);
    o = reds_sxtb16_ror8(u1);
    a[2] = reds_smlad(o, a13, reds_smlad(e, a02, a[2]));
    a[3] = reds_smlad(o, b13, reds_smlad(e, b02, a[3]));
}

/* Four input channels of a 2x2 tile: output channels (w0, w1) x pixels (xa, xb). One LDR per operand,
 * SXTB16 splits it into bytes (0, 2) and (1, 3) as 16-bit lanes, SMLAD does two MACs. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void pw_step4(const int8_t *w0, const int8_t *w1, const int8_t *xa, const int8_t *xb,
                            int32_t a[4])
{
    const uint32_t va = reds_read_s8x4(xa), vb = reds_read_s8x4(xb);
    mac_2x2_w4(reds_read_s8x4(w0), reds_read_s8x4(w1), reds_sxtb16(va), reds_sxtb16_ror8(va), reds_sxtb16(vb),
               reds_sxtb16_ror8(vb), a);
}

/* The four-channel step of pw_step4 as asm text (operands named as in pw_tile_2x2's asm): t0..t5 are
 * scratch; the second weight row is read at w0 + d1, d1 = (w1 - w0) - 4 kept in memory, after w0 moved
 * on by 4. Each weight word is split, used twice and dead before the next. */
#define REDS_PW_STEP4_ASM                                                                                    \
    "ldr %[t0], [%[w0]], #4\n\t"                                                                          \
    "ldr %[t1], [%[xa]], #4\n\t"                                                                          \
    "ldr %[t2], [%[xb]], #4\n\t"                                                                          \
    "sxtb16 %[t3], %[t0]\n\t"                                                                             \
    "sxtb16 %[t0], %[t0], ror #8\n\t"                                                                     \
    "sxtb16 %[t4], %[t1]\n\t"                                                                             \
    "sxtb16 %[t1], %[t1], ror #8\n\t"                                                                     \
    "sxtb16 %[t5], %[t2]\n\t"                                                                             \
    "sxtb16 %[t2], %[t2], ror #8\n\t"                                                                     \
    "smlad %[a0], %[t3], %[t4], %[a0]\n\t"                                                                \
    "smlad %[a0], %[t0], %[t1], %[a0]\n\t"                                                                \
    "smlad %[a1], %[t3], %[t5], %[a1]\n\t"                                                                \
    "smlad %[a1], %[t0], %[t2], %[a1]\n\t"                                                                \
    "ldr %[t0], %[d1]\n\t"                                                                                 \
    "ldr %[t0], [%[w0], %[t0]]\n\t"                                                                       \
    "sxtb16 %[t3], %[t0]\n\t"                                                                             \
    "sxtb16 %[t0], %[t0], ror #8\n\t"                                                                     \
    "smlad %[a2], %[t3], %[t4], %[a2]\n\t"                                                                \
    "smlad %[a2], %[t0], %[t1], %[a2]\n\t"                                                                \
    "smlad %[a3], %[t3], %[t5], %[a3]\n\t"                                                                \
    "smlad %[a3], %[t0], %[t2], %[a3]\n\t"

/* Output channels (w0, w1) x pixels (xa, xb) over n input channels, without the input offset:
 * acc += {w0.xa, w0.xb, w1.xa, w1.xb}. Blocks of four channels run as asm (13 registers: 4 accumulators,
 * 3 pointers, 6 scratch; the distance to the second weight row and the end pointer are read from memory),
 * so it allocates with or without a frame pointer; left to itself gcc spills accumulators inside the loop
 * (at -Os badly): an odd block first, then a loop of two. Three channels left (REDS widths 19, 35, 55, ...)
 * take one more SIMD step on the words ending at them, shifted down one byte so that the channel before
 * them (already summed) becomes a zero lane; one or two left (cheaper so) run one channel at a time. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void pw_tile_2x2(const int8_t *w0, const int8_t *w1, const int8_t *xa, const int8_t *xb,
                               int32_t n, int32_t acc[4])
{
    int32_t a[4] = {acc[0], acc[1], acc[2], acc[3]};
    const int32_t n_all = n, tail = n & 3;
#if defined(__OPTIMIZE__) /* unoptimised builds keep fewer registers free (and need no speed) */
    if (n >= 4) {
        const int32_t d1 = (int32_t)(w1 - w0) - 4;
        uint32_t t0, t1, t2, t3, t4, t5;
        if (n & 4) {
            __asm__(REDS_PW_STEP4_ASM
                    : [a0] "+r"(a[0]), [a1] "+r"(a[1]), [a2] "+r"(a[2]), [a3] "+r"(a[3]), [w0] "+r"(w0),
                      [xa] "+r"(xa), [xb] "+r"(xb), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2),
                      [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5)
                    : [d1] "m"(d1)
                    : "memory");
        }
        if (n >= 8) {
            const int8_t *const end8 = xa + (n & ~7);
            __asm__("1:\n\t" REDS_PW_STEP4_ASM REDS_PW_STEP4_ASM
                    "ldr %[t0], %[end]\n\t"
                    "cmp %[xa], %[t0]\n\t"
                    "bne 1b\n\t"
                    : [a0] "+r"(a[0]), [a1] "+r"(a[1]), [a2] "+r"(a[2]), [a3] "+r"(a[3]), [w0] "+r"(w0),
                      [xa] "+r"(xa), [xb] "+r"(xb), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2),
                      [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5)
                    : [end] "m"(end8), [d1] "m"(d1)
                    : "cc", "memory");
        }
        w1 = w0 + d1 + 4;
        n = tail;
    }
#else
    for (; n >= 4; n -= 4) {
        pw_step4(w0, w1, xa, xb, a);
        xa += 4;
        xb += 4;
        w0 += 4;
        w1 += 4;
    }
#endif
    if (tail == 3 && n_all >= 4) {
        const uint32_t va = reds_read_s8x4(xa - 1) >> 8, vb = reds_read_s8x4(xb - 1) >> 8;
        mac_2x2_w4(reds_read_s8x4(w0 - 1) >> 8, reds_read_s8x4(w1 - 1) >> 8, reds_sxtb16(va), reds_sxtb16_ror8(va),
                   reds_sxtb16(vb), reds_sxtb16_ror8(vb), a);
        n = 0;
    }
    for (; n > 0; --n) {
        const int32_t xav = *xa++, xbv = *xb++, w0v = *w0++, w1v = *w1++;
        a[0] += w0v * xav;
        a[1] += w0v * xbv;
        a[2] += w1v * xav;
        a[3] += w1v * xbv;
    }
    acc[0] = a[0];
    acc[1] = a[1];
    acc[2] = a[2];
    acc[3] = a[3];
}

/* Requantisation constants of one output channel of the SIMD pointwise path. */
typedef struct {
    reds_rq rq;
    int32_t c0;  /* bias + input_offset * (sum of the channel's weights) */
    int32_t rnd; /* reds_rq_fold_rnd: rounding and output zero point in one constant */
    int fold;    /* reds_rq_fold_ok holds for every accumulator of the channel */
} pw_chan;

static pw_chan pw_chan_prepare(const reds_quant *quant, const int32_t *bias, const int8_t *w, int32_t oc,
                               int32_t in_c, int32_t in_off, int32_t out_off)
{
    const int32_t q = quant->per_channel ? oc : 0;
    pw_chan c;
    c.rq = reds_rq_prepare(quant->multiplier[q], quant->shift[q]);
    const int32_t b0 = bias != NULL ? bias[oc] : 0;
    c.c0 = (int32_t)((uint32_t)b0 + (uint32_t)in_off * (uint32_t)row_sum(w, in_c));
    /* |acc| <= |bias| + in_c * 128 * 255 (|w| <= 128, |x + off| <= 255). */
    const int64_t bound = (b0 < 0 ? -(int64_t)b0 : (int64_t)b0) + (int64_t)255 * 128 * in_c;
    c.fold = reds_rq_fold_ok(c.rq, bound, out_off);
    c.rnd = c.fold ? reds_rq_fold_rnd(c.rq, out_off) : 0;
    return c;
}

/* One output: `fold` (a constant at every call site) selects reds_rq_fast with the zero point folded in,
 * `sat8` promises the activation clamp is [-128, 127] (one SSAT). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int8_t pw_out(int32_t acc, const pw_chan *c, int32_t out_off, int32_t act_min, int32_t act_max,
                            const int fold, const int sat8)
{
    int32_t v = fold ? reds_rq_fast(acc, c->rq.multiplier, c->rq.right, c->rnd) : reds_rq_apply(acc, c->rq) + out_off;
    if (sat8) { /* clamp to [-128, 127], the usual range: no activation, or ReLU with zero point -128 */
        return (int8_t)reds_ssat8(v);
    }
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

/* All pixels of output channels (oc, oc + d1), d1 in {0, 1}, as 2x2 tiles. A row with an odd number of
 * pixels ends with a tile overlapping the one before (or, for a single pixel, a tile of that pixel twice):
 * the repeated outputs are recomputed and stored again with the same value, so no lane is ever masked. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void pw_pair(const pw_geom *g, const int8_t *w0, const int8_t *w1, const pw_chan *c0,
                           const pw_chan *c1, int32_t d1, int32_t rows, int32_t row_len, int8_t *out_oc,
                           const int fold, const int sat8)
{
    const int32_t in_c = g->in_c, out_c = g->out_c, x_step = g->x_step;
    const int32_t out_off = g->out_off, act_min = g->act_min, act_max = g->act_max;
    const int32_t xb_step = row_len > 1 ? x_step : 0, ob_step = row_len > 1 ? out_c : 0;
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *x = g->in + (r / g->out_h) * g->img_step + (r % g->out_h) * g->row_step;
        int8_t *o = out_oc + r * g->out_w * out_c;
        for (int32_t p = 0; p < row_len; p += 2) {
            if (p + 1 == row_len && p > 0) { /* odd row: last tile = pixels row_len - 2, row_len - 1 */
                x -= x_step;
                o -= out_c;
            }
            int32_t acc[4] = {c0->c0, c0->c0, c1->c0, c1->c0};
            pw_tile_2x2(w0, w1, x, x + xb_step, in_c, acc);
            o[0] = pw_out(acc[0], c0, out_off, act_min, act_max, fold, sat8);
            o[ob_step] = pw_out(acc[1], c0, out_off, act_min, act_max, fold, sat8);
            o[d1] = pw_out(acc[2], c1, out_off, act_min, act_max, fold, sat8);
            o[ob_step + d1] = pw_out(acc[3], c1, out_off, act_min, act_max, fold, sat8);
            x += 2 * x_step;
            o += 2 * out_c;
        }
    }
}

#if defined(__OPTIMIZE__) /* the asm needs 13 free registers: unoptimised builds lack them */
#define REDS_PW_FLAT 1
/* Two int32 read by one LDRD. */
typedef struct {
    int32_t a, b;
} pw_pair32;

/* What pw_flat's asm reads (memory operands of a copy on pw_flat's stack, so that the asm needs no base
 * register of its own: 13 registers leave the frame pointer free). */
typedef struct {
    const int8_t *w0;       /* weight row of the first channel */
    int32_t d1;             /* (w1 - w0) - 4, w1 the second channel's row */
    pw_pair32 in_c_n4;      /* in_c, in_c & ~3 */
    const int8_t *x_end;    /* first pixel after the last tile */
    pw_pair32 c01;          /* the channels' pw_chan c0 */
    pw_pair32 m_rnd0;       /* first channel's requantisation (reds_rq_fast_x2): multiplier, rnd */
    int32_t right0;         /* and right */
    pw_pair32 m_rnd1;       /* second channel's */
    int32_t right1;
    struct {
        int8_t *o;          /* output of the next tile's first pixel, first channel */
        int32_t out_c;      /* output pixel stride */
    } o_out_c;
    const int8_t *end;      /* scratch: where the tile's blocks of four end */
} pw_flat_ctx;

/* pw_flat's asm text in parts. Tile setup: xa = xb (the previous tile's end), xb = xa + in_c, the
 * accumulators from c0 / c1, the end of the blocks of four. */
#define REDS_PW_FLAT_SETUP                                                                                   \
    "1:\n\t"                                                                                               \
    "mov %[xa], %[xb]\n\t"                                                                                 \
    "ldrd %[t0], %[t1], %[in_c_n4]\n\t"                                                                    \
    "add %[xb], %[xa], %[t0]\n\t"                                                                          \
    "add %[t1], %[xa], %[t1]\n\t"                                                                          \
    "str %[t1], %[end]\n\t"                                                                           \
    "ldr %[w0], %[w0p]\n\t"                                                                            \
    "ldrd %[a0], %[a2], %[c01]\n\t"                                                                   \
    "mov %[a1], %[a0]\n\t"                                                                                 \
    "mov %[a3], %[a2]\n\t"
/* An odd block of four (in_c & 4), then pairs of blocks; after the odd one there may be none left. */
#define REDS_PW_FLAT_ODD                                                                                     \
    REDS_PW_STEP4_ASM                                                                      \
    "ldr %[t0], %[end]\n\t"                                                                           \
    "cmp %[xa], %[t0]\n\t"                                                                                 \
    "beq 3f\n\t"
#define REDS_PW_FLAT_PAIRS                                                                                   \
    "2:\n\t" REDS_PW_STEP4_ASM REDS_PW_STEP4_ASM                          \
    "ldr %[t0], %[end]\n\t"                                                                           \
    "cmp %[xa], %[t0]\n\t"                                                                                 \
    "bne 2b\n\t"                                                                                           \
    "3:\n\t"
/* Tails (in_c & 3), each leaving xb on the next tile's first pixel; the second weight row's bytes are
 * at w0 + d1 + 4. One channel: four MLA. */
#define REDS_PW_FLAT_TAIL1                                                                                   \
    "ldrsb %[t1], [%[xa]]\n\t"                                                                             \
    "ldrsb %[t2], [%[xb]], #1\n\t"                                                                         \
    "ldrsb %[t4], [%[w0]]\n\t"                                                                             \
    "ldr %[t3], %[d1]\n\t"                                                                            \
    "add %[t3], %[t3], %[w0]\n\t"                                                                          \
    "ldrsb %[t3], [%[t3], #4]\n\t"                                                                         \
    "mla %[a0], %[t4], %[t1], %[a0]\n\t"                                                                   \
    "mla %[a1], %[t4], %[t2], %[a1]\n\t"                                                                   \
    "mla %[a2], %[t3], %[t1], %[a2]\n\t"                                                                   \
    "mla %[a3], %[t3], %[t2], %[a3]\n\t"
/* Two channels: each operand's two bytes paired into 16-bit lanes (LDRSB, LDRSB, PKHBT), one SMLAD per
 * output. */
#define REDS_PW_FLAT_PAIR(dst, base, off)                                                                    \
    "ldrsb %[" dst "], [%[" base "], #" off "]\n\t"                                                        \
    "ldrsb %[t0], [%[" base "], #" off " + 1]\n\t"                                                         \
    "pkhbt %[" dst "], %[" dst "], %[t0], lsl #16\n\t"
#define REDS_PW_FLAT_TAIL2                                                                                   \
    REDS_PW_FLAT_PAIR("t1", "xa", "0")                                                                     \
    REDS_PW_FLAT_PAIR("t2", "xb", "0")                                                                     \
    "adds %[xb], %[xb], #2\n\t" REDS_PW_FLAT_PAIR("t3", "w0", "0")                                         \
    "smlad %[a0], %[t3], %[t1], %[a0]\n\t"                                                                 \
    "smlad %[a1], %[t3], %[t2], %[a1]\n\t"                                                                 \
    "ldr %[t4], %[d1]\n\t"                                                                            \
    "add %[t4], %[t4], %[w0]\n\t" REDS_PW_FLAT_PAIR("t3", "t4", "4")                                       \
    "smlad %[a2], %[t3], %[t1], %[a2]\n\t"                                                                 \
    "smlad %[a3], %[t3], %[t2], %[a3]\n\t"
/* Three channels: the words ending at them, shifted down a byte (the summed channel before them becomes a
 * zero lane), one SIMD step. */
#define REDS_PW_FLAT_TAIL3                                                                                   \
    "ldr %[t0], [%[w0], #-1]\n\t"                                                                          \
    "ldr %[t1], [%[xa], #-1]\n\t"                                                                          \
    "ldr %[t2], [%[xb], #-1]\n\t"                                                                          \
    "adds %[xb], %[xb], #3\n\t"                                                                            \
    "lsr %[t0], %[t0], #8\n\t"                                                                             \
    "lsr %[t1], %[t1], #8\n\t"                                                                             \
    "lsr %[t2], %[t2], #8\n\t"                                                                             \
    "sxtb16 %[t3], %[t0]\n\t"                                                                              \
    "sxtb16 %[t0], %[t0], ror #8\n\t"                                                                      \
    "sxtb16 %[t4], %[t1]\n\t"                                                                              \
    "sxtb16 %[t1], %[t1], ror #8\n\t"                                                                      \
    "sxtb16 %[t5], %[t2]\n\t"                                                                              \
    "sxtb16 %[t2], %[t2], ror #8\n\t"                                                                      \
    "smlad %[a0], %[t3], %[t4], %[a0]\n\t"                                                                 \
    "smlad %[a0], %[t0], %[t1], %[a0]\n\t"                                                                 \
    "smlad %[a1], %[t3], %[t5], %[a1]\n\t"                                                                 \
    "smlad %[a1], %[t0], %[t2], %[a1]\n\t"                                                                 \
    "ldr %[t0], %[d1]\n\t"                                                                            \
    "add %[t0], %[t0], %[w0]\n\t"                                                                          \
    "ldr %[t0], [%[t0], #3]\n\t"                                                                           \
    "lsr %[t0], %[t0], #8\n\t"                                                                             \
    "sxtb16 %[t3], %[t0]\n\t"                                                                              \
    "sxtb16 %[t0], %[t0], ror #8\n\t"                                                                      \
    "smlad %[a2], %[t3], %[t4], %[a2]\n\t"                                                                 \
    "smlad %[a2], %[t0], %[t1], %[a2]\n\t"                                                                 \
    "smlad %[a3], %[t3], %[t5], %[a3]\n\t"                                                                 \
    "smlad %[a3], %[t0], %[t2], %[a3]\n\t"
/* Requantise one accumulator with (m, rnd) in (t0, t1) and right in t2: (rnd - [acc < 0]) +
 * SMMLAR(2 acc, m) >> right, SSAT. */
#define REDS_PW_FLAT_RQ(a)                                                                                   \
    "lsl %[" a "], %[" a "], #1\n\t"                                                                       \
    "add %[t3], %[t1], %[" a "], asr #31\n\t"                                                              \
    "smmlar %[" a "], %[" a "], %[t0], %[t3]\n\t"                                                          \
    "asr %[" a "], %[" a "], %[t2]\n\t"                                                                    \
    "ssat %[" a "], #8, %[" a "]\n\t"
/* The four outputs, stored; next tile until xb reaches x_end. */
#define REDS_PW_FLAT_OUT                                                                                     \
    "ldrd %[t0], %[t1], %[m_rnd0]\n\t"                                                                   \
    "ldr %[t2], %[right0]\n\t" REDS_PW_FLAT_RQ("a0") REDS_PW_FLAT_RQ("a1")                               \
    "ldrd %[t0], %[t1], %[m_rnd1]\n\t"                                                                   \
    "ldr %[t2], %[right1]\n\t" REDS_PW_FLAT_RQ("a2") REDS_PW_FLAT_RQ("a3")                               \
    "ldrd %[t0], %[t1], %[o_out_c]\n\t"                                                                   \
    "strb %[a0], [%[t0]]\n\t"                                                                              \
    "strb %[a2], [%[t0], #1]\n\t"                                                                          \
    "add %[t0], %[t0], %[t1]\n\t"                                                                          \
    "strb %[a1], [%[t0]]\n\t"                                                                              \
    "strb %[a3], [%[t0], #1]\n\t"                                                                          \
    "add %[t0], %[t0], %[t1]\n\t"                                                                          \
    "str %[t0], %[o_out_c]\n\t"                                                                           \
    "ldr %[t1], %[x_end]\n\t"                                                                           \
    "cmp %[xb], %[t1]\n\t"                                                                                 \
    "bne 1b\n\t"
#define REDS_PW_FLAT_ASM(odd, tail)                                                                          \
    __asm__ volatile(REDS_PW_FLAT_SETUP odd REDS_PW_FLAT_PAIRS tail REDS_PW_FLAT_OUT                        \
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w0] "=&r"(w0),     \
                       [xa] "=&r"(xa), [xb] "+r"(xb), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2),    \
                       [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5), [end] "+m"(c.end),                 \
                       [o_out_c] "+m"(c.o_out_c)                                                          \
                     : [in_c_n4] "m"(c.in_c_n4), [w0p] "m"(c.w0), [c01] "m"(c.c01), [d1] "m"(c.d1),           \
                       [x_end] "m"(c.x_end), [m_rnd0] "m"(c.m_rnd0), [right0] "m"(c.right0),              \
                       [m_rnd1] "m"(c.m_rnd1), [right1] "m"(c.right1)                                    \
                     : "cc", "memory")

/* 2x2 tiles (channels (w0, w1) x pixels (x, x + in_c)) of contiguous pixels from x to k->x_end, each summed,
 * requantised (reds_rq_fast_x2 with the zero point folded, SSAT to [-128, 127]) and stored to o, o + 1,
 * o + out_c, o + out_c + 1, as one asm loop: tile setup, the blocks of four channels (REDS_PW_STEP4_ASM),
 * the tail and the requantisation in 13 registers, constants read from a copy of `k`. One loop per (in_c & 4,
 * in_c & 3), so no tile branches on them. In C, gcc kept the two channels' constants and pointers in stack
 * slots around each tile. Sums modulo 2^32 as pw_tile_2x2's. in_c >= 4. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void pw_flat(const pw_flat_ctx *k, const int8_t *x)
{
    pw_flat_ctx c = *k;
    int32_t a0, a1, a2, a3;
    uint32_t t0, t1, t2, t3, t4, t5;
    const int8_t *w0, *xa, *xb = x;
    switch (c.in_c_n4.a & 7) {
    case 0:
        REDS_PW_FLAT_ASM("", "");
        break;
    case 1:
        REDS_PW_FLAT_ASM("", REDS_PW_FLAT_TAIL1);
        break;
    case 2:
        REDS_PW_FLAT_ASM("", REDS_PW_FLAT_TAIL2);
        break;
    case 3:
        REDS_PW_FLAT_ASM("", REDS_PW_FLAT_TAIL3);
        break;
    case 4:
        REDS_PW_FLAT_ASM(REDS_PW_FLAT_ODD, "");
        break;
    case 5:
        REDS_PW_FLAT_ASM(REDS_PW_FLAT_ODD, REDS_PW_FLAT_TAIL1);
        break;
    case 6:
        REDS_PW_FLAT_ASM(REDS_PW_FLAT_ODD, REDS_PW_FLAT_TAIL2);
        break;
    default:
        REDS_PW_FLAT_ASM(REDS_PW_FLAT_ODD, REDS_PW_FLAT_TAIL3);
        break;
    }
}
#endif /* __OPTIMIZE__ */

/* Pointwise on a DSP core: output channels in pairs (outermost, so the pair's constants are prepared
 * once; an odd last channel pairs with the one before it, recomputing that one), pixels in pairs, 2x2
 * accumulators sharing every loaded word twice. Rows of pixels are contiguous in the input when the
 * convolution is stride 1 over the whole image (then all n * h * w pixels form one row). */
static void pw_simd(const pw_geom *g, const reds_quant *quant, const int8_t *filter, int32_t cs,
                    const int32_t *bias, int8_t *output)
{
    const int32_t in_c = g->in_c, out_c = g->out_c;
    const int flat = g->x_step == in_c && g->row_step == g->out_w * in_c && g->img_step == g->out_h * g->row_step;
    const int32_t rows = flat ? 1 : g->rows, row_len = flat ? g->rows * g->out_w : g->out_w;
    const int32_t d1 = out_c > 1 ? 1 : 0;
    const int sat8 = g->act_min == -128 && g->act_max == 127;
    for (int32_t oc = 0; oc < out_c; oc += 2) {
        const int32_t o0 = oc + d1 < out_c ? oc : oc - 1; /* odd count: last pair is (out_c - 2, out_c - 1) */
        const int8_t *const w0 = filter + o0 * cs, *const w1 = w0 + d1 * cs;
        const pw_chan c0 = pw_chan_prepare(quant, bias, w0, o0, in_c, g->in_off, g->out_off);
        const pw_chan c1 = pw_chan_prepare(quant, bias, w1, o0 + d1, in_c, g->in_off, g->out_off);
#if REDS_PW_FLAT
        if (flat && c0.fold && c1.fold && sat8 && in_c >= 4 && d1 == 1 && row_len >= 2) {
            pw_flat_ctx k = {w0,
                             (int32_t)(w1 - w0) - 4,
                             {in_c, in_c & ~3},
                             g->in + 2 * (row_len >> 1) * in_c,
                             {c0.c0, c1.c0},
                             {c0.rq.multiplier, c0.rnd},
                             c0.rq.right,
                             {c1.rq.multiplier, c1.rnd},
                             c1.rq.right,
                             {output + o0, out_c},
                             NULL};
            pw_flat(&k, g->in);
            if (row_len & 1) { /* odd: a last tile of the last two pixels, the one before stored again */
                k.x_end = g->in + row_len * in_c;
                k.o_out_c.o = output + o0 + (row_len - 2) * out_c;
                pw_flat(&k, g->in + (row_len - 2) * in_c);
            }
            continue;
        }
#endif
        if (c0.fold && c1.fold && sat8) {
            pw_pair(g, w0, w1, &c0, &c1, d1, rows, row_len, output + o0, 1, 1);
        } else if (c0.fold && c1.fold) {
            pw_pair(g, w0, w1, &c0, &c1, d1, rows, row_len, output + o0, 1, 0);
        } else {
            pw_pair(g, w0, w1, &c0, &c1, d1, rows, row_len, output + o0, 0, 0);
        }
    }
}
#endif /* REDS_DSP */

#if REDS_DSP
/* How pw1_run clamps (a constant at every call site): PW1_SAT8, the clamp is [-128, 127] (one SSAT);
 * PW1_FLOOR, it is [act_min, 127] (ReLU whose zero point is above -128): act_min is folded into the
 * rounding constant, so the shifted value is v - act_min, and USAT to [0, 255], + act_min, SSAT give
 * min(max(v, act_min), 127) in three instructions; PW1_CLAMP, any other [act_min, act_max]. */
enum { PW1_SAT8, PW1_FLOOR, PW1_CLAMP };

#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int8_t pw1_out(int32_t v, int32_t act_min, int32_t act_max, const int mode)
{
    if (mode == PW1_FLOOR) {
        return (int8_t)reds_ssat8(reds_usat8(v) + act_min);
    }
    v = reds_ssat8(v);
    if (mode == PW1_CLAMP) {
        v = v < act_min ? act_min : v;
        v = v > act_max ? act_max : v;
    }
    return (int8_t)v;
}

/* One output channel of a pointwise convolution with one input channel on a DSP core, all pixels
 * contiguous (stride 1 over the whole image): four pixels per word. acc = b0 + w0 (x + in_off) = c0 + w0 x,
 * and the requantisation's doubling (reds_rq_fast_x2) is folded into the 16-bit weight lane and the
 * constant, as 2 |acc| < 2^31 under reds_rq_fold_ok: per output one SMLAxB, the requantisation, the clamp
 * (pw1_out) and STRB. `fold_off` is the offset folded into the rounding constant: the output zero point,
 * minus act_min for PW1_FLOOR. Sums modulo 2^32, as pw_channel's. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void pw1_run(const int8_t *x, int32_t n, int8_t *o, int32_t out_c, int32_t w0, int32_t b0,
                           int32_t in_off, const reds_rq rq, int32_t fold_off, int32_t act_min, int32_t act_max,
                           const int mode)
{
    const uint32_t w2 = (uint32_t)(2 * w0) & 0xffffu;
    const int32_t c2 = (int32_t)(2u * ((uint32_t)b0 + (uint32_t)(w0 * in_off)));
    const int32_t m = rq.multiplier, right = rq.right, rnd = reds_rq_fold_rnd(rq, fold_off);
    int32_t i = 0;
    for (; i + 4 <= n; i += 4, o += 4 * out_c) {
        const uint32_t v = reds_read_s8x4(x + i), e = reds_sxtb16(v), od = reds_sxtb16_ror8(v);
        o[0] = pw1_out(reds_rq_fast_x2(reds_smlabb(e, w2, c2), m, right, rnd), act_min, act_max, mode);
        o[out_c] = pw1_out(reds_rq_fast_x2(reds_smlabb(od, w2, c2), m, right, rnd), act_min, act_max, mode);
        o[2 * out_c] = pw1_out(reds_rq_fast_x2(reds_smlatb(e, w2, c2), m, right, rnd), act_min, act_max, mode);
        o[3 * out_c] = pw1_out(reds_rq_fast_x2(reds_smlatb(od, w2, c2), m, right, rnd), act_min, act_max, mode);
    }
    for (; i < n; ++i, o += out_c) {
        o[0] = pw1_out(reds_rq_fast_x2(reds_smlabb((uint32_t)(int32_t)x[i], w2, c2), m, right, rnd), act_min,
                       act_max, mode);
    }
}

#endif /* REDS_DSP */

/* Pointwise (1x1, unpadded) convolution: every output is one dot product over in_c channels.
 * Output channel outermost: the channel's weight row, bias and requantisation constants are fetched
 * once and stay in registers for all its pixels, so the fixed cost per output is the requantisation
 * arithmetic only (it dominates narrow levels, e.g. 1 input channel = 1 MAC per output). Same sums
 * in the same order as the general path. Unlike the general path this one does not clip windows to
 * the image, so it checks itself that every window starts inside: (out - 1) * stride <= in - 1 in
 * both dimensions (TFLite's VALID output size guarantees it). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static reds_status conv_1x1(const reds_conv_params *params, const reds_quant *quant, const reds_dims *in,
                            const int8_t *input, const reds_filter *filter, const int32_t *bias,
                            const reds_dims *out, int8_t *output)
{
    /* 64-bit products: out and stride come from the caller and may be large. */
    if ((int64_t)(out->h - 1) * params->stride.h >= (int64_t)in->h ||
        (int64_t)(out->w - 1) * params->stride.w >= (int64_t)in->w) {
        return REDS_ARG_ERROR;
    }
    const pw_geom g = {input, in->c, params->input_offset, in->n * out->h, out->h, out->w, out->c,
                       params->stride.w * in->c,             /* next output column */
                       params->stride.h * in->w * in->c,     /* next output row, same image */
                       in->h * in->w * in->c,                /* next image */
                       params->output_offset, params->activation.min, params->activation.max};
#if REDS_DSP
    if (g.in_c > 1) {
        pw_simd(&g, quant, filter->data, filter->c_stride, bias, output);
        return REDS_OK;
    }
#endif
    const int32_t q_step = quant->per_channel ? 1 : 0;
#if REDS_DSP
    /* in_c == 1 here: every pixel of the batch in one contiguous run (stride 1, output = input size) */
    const int flat1 = g.x_step == 1 && g.row_step == g.out_w && g.img_step == g.out_h * g.row_step;
    const int sat8 = g.act_min == -128 && g.act_max == 127;
#endif
    for (int32_t oc = 0; oc < g.out_c; ++oc) {
        const int8_t *const w = filter->data + oc * filter->c_stride;
        const reds_rq rq = reds_rq_prepare(quant->multiplier[oc * q_step], quant->shift[oc * q_step]);
        const int32_t b0 = bias != NULL ? bias[oc] : 0;
        /* |acc| <= |bias| + in_c * 128 * 255 (|w| <= 128, |x + off| <= 255). */
        const int64_t bound = (b0 < 0 ? -(int64_t)b0 : (int64_t)b0) + (int64_t)255 * 128 * g.in_c;
        const int plain = reds_rq_fast_ok(rq, bound);
#if REDS_DSP
        const int32_t n1 = g.rows * g.out_w, amin = g.act_min, amax = g.act_max;
        if (flat1 && sat8 && reds_rq_fold_ok(rq, bound, g.out_off)) {
            pw1_run(input, n1, output + oc, g.out_c, w[0], b0, g.in_off, rq, g.out_off, -128, 127, PW1_SAT8);
            continue;
        }
        if (flat1 && amax == 127 && reds_rq_fold_ok(rq, bound, g.out_off - amin)) {
            pw1_run(input, n1, output + oc, g.out_c, w[0], b0, g.in_off, rq, g.out_off - amin, amin, amax, PW1_FLOOR);
            continue;
        }
        if (flat1 && reds_rq_fold_ok(rq, bound, g.out_off)) {
            pw1_run(input, n1, output + oc, g.out_c, w[0], b0, g.in_off, rq, g.out_off, amin, amax, PW1_CLAMP);
            continue;
        }
#endif
        if (g.in_c == 1) {
            if (plain) {
                pw_channel(&g, w, b0, rq, output + oc, 1, 1);
            } else {
                pw_channel(&g, w, b0, rq, output + oc, 0, 1);
            }
        } else if (plain) {
            pw_channel(&g, w, b0, rq, output + oc, 1, 0);
        } else {
            pw_channel(&g, w, b0, rq, output + oc, 0, 0);
        }
    }
    return REDS_OK;
}

#if REDS_DSP
/* Largest window (k_h * k_w * in_c) the SIMD general convolution gathers on the stack, two pixels at a
 * time as int16 (2 * 2 * 128 bytes): first layers (3x3x1 = 9, 10x4x1 = 40, 3x3x3 = 27) fit. */
#define REDS_CONV_COL_MAX 128

/* Window of one output pixel as int16 (x + input_offset), taps outside the image as 0 (they add
 * nothing, as TFLM skips them). Blocks of four taps k..k+3 are stored as two words (k, k+2) and
 * (k+1, k+3): the lane order SXTB16 gives a word of four weights. Gathered in tap order first (the
 * in-image test once per tap, not per value), then swapped into that lane order. */
static void conv_gather(const reds_conv_params *p, const reds_dims *in, const int8_t *img, int32_t k_h,
                        int32_t k_w, int32_t y0, int32_t x0, int16_t *col)
{
    const int32_t in_c = in->c, off = p->input_offset, n = k_h * k_w * in_c;
    int16_t *dst = col;
    if (p->dilation.w == 1 && y0 >= 0 && y0 + (k_h - 1) * p->dilation.h < in->h && x0 >= 0 &&
        x0 + k_w <= in->w) {
        /* The whole window inside the image: each tap row is one contiguous run of the input. */
        const int32_t run = k_w * in_c;
        for (int32_t ky = 0; ky < k_h; ++ky) {
            const int8_t *src = img + ((y0 + ky * p->dilation.h) * in->w + x0) * in_c;
            for (int32_t i = 0; i < run; ++i) {
                *dst++ = (int16_t)(src[i] + off);
            }
        }
    } else {
        for (int32_t ky = 0; ky < k_h; ++ky) {
            const int32_t y = y0 + ky * p->dilation.h;
            const int row_in = y >= 0 && y < in->h;
            for (int32_t kx = 0; kx < k_w; ++kx) {
                const int32_t x = x0 + kx * p->dilation.w;
                const int8_t *src = img + (y * in->w + x) * in_c;
                const int inside = row_in && x >= 0 && x < in->w;
                for (int32_t ci = 0; ci < in_c; ++ci) {
                    *dst++ = (int16_t)(inside ? src[ci] + off : 0);
                }
            }
        }
    }
    for (int32_t k = 0; k + 4 <= n; k += 4) {
        const int16_t t = col[k + 1];
        col[k + 1] = col[k + 2];
        col[k + 2] = t;
    }
}

/* Output channels (w0, w1) x gathered pixels (ca, cb) over k taps: int8 weights split by SXTB16, int16
 * columns read two per word, SMLAD. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void conv_tile_2x2(const int8_t *w0, const int8_t *w1, const int16_t *ca, const int16_t *cb,
                                 int32_t k, int32_t a[4])
{
    const int8_t *const end4 = w0 + (k & ~3);
    while (w0 < end4) {
        uint32_t pa02, pa13, pb02, pb13;
        __builtin_memcpy(&pa02, ca, 4);
        __builtin_memcpy(&pa13, ca + 2, 4);
        __builtin_memcpy(&pb02, cb, 4);
        __builtin_memcpy(&pb13, cb + 2, 4);
        mac_2x2_w4(reds_read_s8x4(w0), reds_read_s8x4(w1), pa02, pa13, pb02, pb13, a);
        w0 += 4;
        w1 += 4;
        ca += 4;
        cb += 4;
    }
    for (int32_t t = k & 3; t > 0; --t) {
        const int32_t xa = *ca++, xb = *cb++, v0 = *w0++, v1 = *w1++;
        a[0] += v0 * xa;
        a[1] += v0 * xb;
        a[2] += v1 * xa;
        a[3] += v1 * xb;
    }
}

/* One output of the SIMD general convolution; `mode` as in pw_out: 0 exact, 1 folded zero point,
 * 2 folded and clamped by SSAT to [-128, 127]. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int8_t conv_out(int32_t acc, int32_t mult, int32_t shift, int32_t out_off, reds_act act,
                              const int mode)
{
    int32_t v;
    if (mode) {
        const int32_t right = -shift; /* >= 1 under reds_rq_fold_ok */
        v = reds_rq_fast(acc, mult, right, (int32_t)((1u << (right - 1)) + ((uint32_t)out_off << right)));
        if (mode == 2) {
            return (int8_t)reds_ssat8(v);
        }
    } else {
        v = reds_requantize(acc, mult, shift) + out_off;
    }
    v = v < act.min ? act.min : v;
    v = v > act.max ? act.max : v;
    return (int8_t)v;
}

/* All outputs, pixels in pairs (outermost: each pair's windows are gathered once for every output
 * channel), output channels in pairs; an odd last pixel or channel pairs with the one before it and its
 * repeated outputs are stored again with the same value. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void conv_simd_run(const reds_conv_params *p, const reds_quant *quant, const reds_dims *in,
                                 const int8_t *input, const reds_filter *f, const int32_t *bias,
                                 const reds_dims *out, int8_t *output, const int mode)
{
    int16_t col[2][REDS_CONV_COL_MAX];
    const int32_t k_h = f->dims.h, k_w = f->dims.w, k = k_h * k_w * in->c, out_c = out->c;
    const int32_t px = out->h * out->w, n_px = in->n * px, d_px = n_px > 1 ? 1 : 0, d_oc = out_c > 1 ? 1 : 0;
    const int32_t q_step = quant->per_channel ? 1 : 0, out_off = p->output_offset;
    const reds_act act = p->activation;
    for (int32_t i = 0; i < n_px; i += 2) {
        const int32_t pa = i + d_px < n_px ? i : i - 1;
        for (int32_t j = 0; j < 2; ++j) {
            const int32_t q = pa + j * d_px, b = q / px, oy = (q % px) / out->w, ox = q % out->w;
            conv_gather(p, in, input + b * in->h * in->w * in->c, k_h, k_w, oy * p->stride.h - p->padding.h,
                        ox * p->stride.w - p->padding.w, col[j]);
        }
        int8_t *const oa = output + pa * out_c, *const ob = oa + d_px * out_c;
        for (int32_t oc = 0; oc < out_c; oc += 2) {
            const int32_t o0 = oc + d_oc < out_c ? oc : oc - 1, o1 = o0 + d_oc;
            const int8_t *const w0 = f->data + o0 * k, *const w1 = f->data + o1 * k;
            const int32_t b0 = bias != NULL ? bias[o0] : 0, b1 = bias != NULL ? bias[o1] : 0;
            int32_t acc[4] = {b0, b0, b1, b1};
            conv_tile_2x2(w0, w1, col[0], col[1], k, acc);
            const int32_t m0 = quant->multiplier[o0 * q_step], s0 = quant->shift[o0 * q_step];
            const int32_t m1 = quant->multiplier[o1 * q_step], s1 = quant->shift[o1 * q_step];
            oa[o0] = conv_out(acc[0], m0, s0, out_off, act, mode);
            ob[o0] = conv_out(acc[1], m0, s0, out_off, act, mode);
            oa[o1] = conv_out(acc[2], m1, s1, out_off, act, mode);
            ob[o1] = conv_out(acc[3], m1, s1, out_off, act, mode);
        }
    }
}

#if defined(__OPTIMIZE__) /* the asm needs 12 free registers: unoptimised builds lack them */
#define REDS_CONV9 1
/* Output channels per conv9 table: 32 x 36 bytes of stack. */
#define REDS_CONV9_CHUNK 32
/* Words per channel in a conv9 table: bias; weights (w0, w2), (w1, w3), (w4, w6), (w5, w7), w8 as int16
 * lanes; multiplier, rnd, right (reds_rq_fast_x2 with the zero point folded). */
#define REDS_CONV9_WORDS 9

/* One pixel of a 9-tap-window convolution (3x3, one input channel: first layers of grayscale images) for
 * the output channels whose table `t` lists (REDS_CONV9_WORDS each; `end` past the last): the window
 * (x + input_offset as int16 pairs (x0, x2), (x1, x3), (x4, x6), (x5, x7) and x8 in the top half of
 * `x8`) stays in five registers while one asm loop takes each channel's split weights from the table, four
 * SMLAD and one SMLABT, and requantises (SSAT to [-128, 127]): 18 instructions per output. Sums as
 * conv_tile_2x2's. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void conv9_pixel(uint32_t x02, uint32_t x13, uint32_t x46, uint32_t x57, uint32_t x8, const int32_t *t,
                        const int32_t *end, int8_t *o)
{
    int32_t acc;
    uint32_t t0, t1;
    __asm__ volatile("1:\n\t"
                     "ldrd %[acc], %[t0], [%[t]], #36\n\t"
                     "smlad %[acc], %[t0], %[x02], %[acc]\n\t"
                     "ldrd %[t0], %[t1], [%[t], #-28]\n\t"
                     "smlad %[acc], %[t0], %[x13], %[acc]\n\t"
                     "smlad %[acc], %[t1], %[x46], %[acc]\n\t"
                     "ldrd %[t0], %[t1], [%[t], #-20]\n\t"
                     "smlad %[acc], %[t0], %[x57], %[acc]\n\t"
                     "smlabt %[acc], %[t1], %[x8], %[acc]\n\t"
                     "ldrd %[t0], %[t1], [%[t], #-12]\n\t"
                     "lsl %[acc], %[acc], #1\n\t"
                     "add %[t1], %[t1], %[acc], asr #31\n\t"
                     "smmlar %[acc], %[acc], %[t0], %[t1]\n\t"
                     "ldr %[t0], [%[t], #-4]\n\t"
                     "asr %[acc], %[acc], %[t0]\n\t"
                     "ssat %[acc], #8, %[acc]\n\t"
                     "strb %[acc], [%[o]], #1\n\t"
                     "cmp %[t], %[end]\n\t"
                     "bne 1b\n\t"
                     : [acc] "=&r"(acc), [t0] "=&r"(t0), [t1] "=&r"(t1), [t] "+r"(t), [o] "+r"(o)
                     : [x02] "r"(x02), [x13] "r"(x13), [x46] "r"(x46), [x57] "r"(x57), [x8] "r"(x8),
                       [end] "r"(end)
                     : "cc", "memory");
}

/* All outputs of a 9-tap-window convolution with contiguous weight rows under reds_rq_fold_ok and the
 * clamp [-128, 127]: output channels in chunks of REDS_CONV9_CHUNK (weights split and constants tabled
 * once), each
 * pixel's window built once per chunk for conv9_pixel. A 3x3 window of one channel whose three rows can be
 * read as words inside the image (the word's fourth byte too) is built from three loads: SXTAB16 adds the
 * input offset to bytes (0, 2) or (1, 3) of a row, PKHBT pairs the taps; at the border tap by tap (taps
 * outside the image as 0); any other 9-tap window is gathered by conv_gather. */
static void conv9_run(const reds_conv_params *p, const reds_quant *quant, const reds_dims *in, const int8_t *input,
                      const reds_filter *f, const int32_t *bias, const reds_dims *out, int8_t *output)
{
    int32_t t[REDS_CONV9_CHUNK * REDS_CONV9_WORDS];
    int16_t col[REDS_CONV_COL_MAX];
    const int32_t out_c = out->c, in_w = in->w, in_h = in->h;
    const int words = f->dims.h == 3 && f->dims.w == 3 && in->c == 1 && p->dilation.h == 1 && p->dilation.w == 1;
    const uint32_t oo = ((uint32_t)p->input_offset & 0xffffu) * 0x10001u; /* input offset in both halves */
    for (int32_t c0 = 0; c0 < out_c; c0 += REDS_CONV9_CHUNK) {
        const int32_t nch = out_c - c0 < REDS_CONV9_CHUNK ? out_c - c0 : REDS_CONV9_CHUNK;
        for (int32_t j = 0; j < nch; ++j) {
            const int32_t q = quant->per_channel ? c0 + j : 0;
            const reds_rq rq = reds_rq_prepare(quant->multiplier[q], quant->shift[q]);
            const int8_t *const wj = f->data + (c0 + j) * 9;
            int32_t *const tj = t + REDS_CONV9_WORDS * j;
            tj[0] = bias != NULL ? bias[c0 + j] : 0;
            for (int32_t i = 0; i < 2; ++i) {
                const uint32_t v = reds_read_s8x4(wj + 4 * i);
                tj[1 + 2 * i] = (int32_t)reds_sxtb16(v);
                tj[2 + 2 * i] = (int32_t)reds_sxtb16_ror8(v);
            }
            tj[5] = wj[8];
            tj[6] = rq.multiplier;
            tj[7] = reds_rq_fold_rnd(rq, p->output_offset);
            tj[8] = rq.right;
        }
        const int32_t *const t_end = t + REDS_CONV9_WORDS * nch;
        int8_t *o = output + c0;
        for (int32_t b = 0; b < in->n; ++b) {
            const int8_t *const img = input + b * in_h * in_w * in->c;
            for (int32_t oy = 0; oy < out->h; ++oy) {
                const int32_t y0 = oy * p->stride.h - p->padding.h;
                for (int32_t ox = 0; ox < out->w; ++ox, o += out_c) {
                    const int32_t x0 = ox * p->stride.w - p->padding.w;
                    if (words && y0 >= 0 && y0 + 3 <= in_h && x0 >= 0 && x0 + 4 <= in_w) {
                        const int8_t *const src = img + y0 * in_w + x0;
                        const uint32_t v0 = reds_read_s8x4(src), v1 = reds_read_s8x4(src + in_w),
                                       v2 = reds_read_s8x4(src + 2 * in_w);
                        const uint32_t e1 = reds_sxtab16(oo, v1), e2 = reds_sxtab16(oo, v2); /* (x3, x5), (x6, x8) */
                        conv9_pixel(reds_sxtab16(oo, v0), reds_pkhbt_lsl16(reds_sxtab16_ror8(oo, v0), e1),
                                    reds_pkhbt_lsl16(reds_sxtab16_ror8(oo, v1), e2),
                                    reds_pkhbt_lsl16(e1 >> 16, reds_sxtab16_ror8(oo, v2)), e2, t, t_end, o);
                        continue;
                    }
                    if (words) { /* 3x3 of one channel at the border: taps outside the image are 0 */
                        uint32_t v[9];
                        for (int32_t ky = 0; ky < 3; ++ky) {
                            for (int32_t kx = 0; kx < 3; ++kx) {
                                const int32_t y = y0 + ky, xx = x0 + kx;
                                v[3 * ky + kx] = y >= 0 && y < in_h && xx >= 0 && xx < in_w
                                                     ? (uint32_t)(img[y * in_w + xx] + p->input_offset) & 0xffffu
                                                     : 0u;
                            }
                        }
                        conv9_pixel(v[0] | v[2] << 16, v[1] | v[3] << 16, v[4] | v[6] << 16, v[5] | v[7] << 16,
                                    v[8] << 16, t, t_end, o);
                        continue;
                    }
                    conv_gather(p, in, img, f->dims.h, f->dims.w, y0, x0, col);
                    uint32_t x[4];
                    __builtin_memcpy(x, col, 16);
                    conv9_pixel(x[0], x[1], x[2], x[3], (uint32_t)(uint16_t)col[8] << 16, t, t_end, o);
                }
            }
        }
    }
}
#endif /* __OPTIMIZE__ */

/* General convolution on a DSP core when every output channel's window of weights is contiguous
 * (c_stride == in_c, which holds for a first layer: its input channels never narrow) and fits
 * REDS_CONV_COL_MAX. Returns 0 (and computes nothing) otherwise. */
static int conv_simd(const reds_conv_params *p, const reds_quant *quant, const reds_dims *in,
                     const int8_t *input, const reds_filter *f, const int32_t *bias, const reds_dims *out,
                     int8_t *output)
{
    const int32_t k = f->dims.h * f->dims.w * in->c;
    if (f->c_stride != in->c || k > REDS_CONV_COL_MAX) {
        return 0;
    }
    int fold = 1;
    for (int32_t oc = 0; oc < out->c && fold; ++oc) {
        const int32_t q = quant->per_channel ? oc : 0, b = bias != NULL ? bias[oc] : 0;
        /* |acc| <= |bias| + k * 128 * 255 (|w| <= 128, |x + off| <= 255). */
        const int64_t bound = (b < 0 ? -(int64_t)b : (int64_t)b) + (int64_t)255 * 128 * k;
        fold = reds_rq_fold_ok(reds_rq_prepare(quant->multiplier[q], quant->shift[q]), bound, p->output_offset);
    }
    if (fold && p->activation.min == -128 && p->activation.max == 127) {
#if REDS_CONV9
        if (k == 9) {
            conv9_run(p, quant, in, input, f, bias, out, output);
            return 1;
        }
#endif
        conv_simd_run(p, quant, in, input, f, bias, out, output, 2);
    } else if (fold) {
        conv_simd_run(p, quant, in, input, f, bias, out, output, 1);
    } else {
        conv_simd_run(p, quant, in, input, f, bias, out, output, 0);
    }
    return 1;
}
#endif /* REDS_DSP */

reds_status reds_conv_s8(const reds_conv_params *params, const reds_quant *quant,
                         const reds_dims *input_dims, const int8_t *input, const reds_filter *filter,
                         const int32_t *bias, const reds_dims *output_dims, int8_t *output)
{
    if (params == NULL || quant == NULL || quant->multiplier == NULL || quant->shift == NULL ||
        input_dims == NULL || input == NULL || filter == NULL || filter->data == NULL ||
        output_dims == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter->dims.h, k_w = filter->dims.w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t cs = filter->c_stride;
    if (input_dims->n < 1 || input_dims->n != output_dims->n || in_h < 1 || in_w < 1 || in_c < 1 ||
        k_h < 1 || k_w < 1 || out_h < 1 || out_w < 1 || out_c < 1 || filter->dims.c != in_c ||
        filter->dims.n != out_c || cs < in_c || params->stride.h < 1 || params->stride.w < 1 ||
        params->dilation.h < 1 || params->dilation.w < 1 || params->padding.h < 0 ||
        params->padding.w < 0 || params->activation.min > params->activation.max) {
        return REDS_ARG_ERROR;
    }
    /* Locals, not params->..., so the int8 output stores (which may alias anything) do not force
     * reloads in the loops. */
    const int32_t q_step = quant->per_channel ? 1 : 0;
    const int32_t *const mult = quant->multiplier;
    const int32_t *const shift = quant->shift;
    const int32_t in_off = params->input_offset, out_off = params->output_offset;
    const reds_act act = params->activation;
    const int32_t filter_o_stride = k_h * k_w * cs; /* full OHWI stride between output channels */
    if (k_h == 1 && k_w == 1 && params->padding.h == 0 && params->padding.w == 0) {
        return conv_1x1(params, quant, input_dims, input, filter, bias, output_dims, output);
    }
#if REDS_DSP
    if (conv_simd(params, quant, input_dims, input, filter, bias, output_dims, output)) {
        return REDS_OK;
    }
#endif
    /* When a filter row's taps are contiguous (the view is full-width in C_in, or one tap per row)
     * a whole row of the window is one dot product. */
    const int32_t rows_contiguous = params->dilation.w == 1 && (cs == in_c || k_w == 1);
    for (int32_t b = 0; b < input_dims->n; ++b) {
        const int8_t *in_img = input + b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            int32_t ky0, ky1;
            reds_valid_taps(y0, k_h, params->dilation.h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                int32_t kx0, kx1;
                reds_valid_taps(x0, k_w, params->dilation.w, in_w, &kx0, &kx1);
                const int32_t ky_end = kx1 > kx0 ? ky1 : ky0; /* no tap inside: bias only */
                int8_t *out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
                int32_t oc = 0;
                for (; oc < out_c; oc += 4) {
                    /* Blocks of four output channels; the last block may be narrower. */
                    const int32_t n_oc = out_c - oc < 4 ? out_c - oc : 4;
                    const int8_t *w_oc = filter->data + oc * filter_o_stride;
                    int32_t acc[4] = {0, 0, 0, 0};
                    const int32_t run = rows_contiguous ? (kx1 - kx0) * in_c : in_c;
                    const int32_t n_runs = rows_contiguous ? 1 : kx1 - kx0;
                    const int32_t x_run_step = params->dilation.w * in_c;
                    /* A last, narrower block (a level may keep 1-3 channels) runs as four lanes too, the
                     * missing lanes repeating its last channel and being discarded: per useful MAC that
                     * is cheaper than one channel at a time. */
                    const int32_t l1 = (n_oc > 1 ? 1 : 0) * filter_o_stride;
                    const int32_t l2 = (n_oc > 2 ? 2 : n_oc - 1) * filter_o_stride;
                    const int32_t l3 = (n_oc > 3 ? 3 : n_oc - 1) * filter_o_stride;
                    for (int32_t ky = ky0; ky < ky_end; ++ky) {
                        const int32_t y = y0 + ky * params->dilation.h;
                        const int8_t *x_row = in_img + (y * in_w + x0 + kx0 * params->dilation.w) * in_c;
                        const int8_t *w_row = w_oc + (ky * k_w + kx0) * cs;
                        for (int32_t r = 0; r < n_runs; ++r, x_row += x_run_step, w_row += cs) {
                            dot4_s8(w_row, w_row + l1, w_row + l2, w_row + l3, x_row, run, in_off, acc);
                        }
                    }
                    int8_t res[4];
                    for (int32_t j = 0; j < n_oc; ++j) {
                        const int32_t o = oc + j;
                        const int32_t a = bias != NULL ? acc[j] + bias[o] : acc[j];
                        res[j] = reds_requant_clamp(a, mult[o * q_step], shift[o * q_step], out_off, act);
                    }
                    for (int32_t j = 0; j < n_oc; ++j) {
                        out_px[oc + j] = res[j];
                    }
                }
            }
        }
    }
    return REDS_OK;
}
