/*
 * reds_dsp.h - the Armv7E-M DSP-extension instructions the int8 kernels use (Cortex-M4/M7/M33), as
 * inline asm any GCC that targets these cores accepts (GCC 7 included): no CMSIS headers, no ACLE
 * intrinsics, which older toolchains lack.
 *
 * REDS_DSP is 1 when the target has the DSP extension (__ARM_FEATURE_DSP) and REDS_PORTABLE is not
 * defined; then the conv / depthwise / fully-connected kernels take their SIMD paths (4 int8 per load,
 * SXTB16 + SMLAD: two multiply-accumulates per instruction). Otherwise they run their portable C,
 * which is the reference: both paths give identical outputs (tests/firmware checks it in unicorn).
 * Build with -DREDS_PORTABLE to get the portable path on a DSP core (benchmarks compare the two).
 */
#ifndef REDS_DSP_H
#define REDS_DSP_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(REDS_PORTABLE)
#define REDS_DSP 1
#else
#define REDS_DSP 0
#endif

#if REDS_DSP
/** Four int8 at any address as one little-endian word (Armv7E-M loads words unaligned). */
static inline uint32_t reds_read_s8x4(const int8_t *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4); /* one LDR; __builtin_ works under -ffreestanding */
    return v;
}

/** Bytes 0 and 2 of x sign-extended into the two 16-bit halves. */
static inline uint32_t reds_sxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}

/** Bytes 1 and 3 of x sign-extended into the two 16-bit halves. */
static inline uint32_t reds_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/** Bytes 0 and 2 of x zero-extended into the two 16-bit halves; _ror8: bytes 1 and 3. */
static inline uint32_t reds_uxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("uxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t reds_uxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/** Low half of a, high half of b: (a & 0xffff) | (b << 16). */
static inline uint32_t reds_pkhbt_lsl16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/** High half of a, high half of b as the low half: (a & 0xffff0000) | (b >> 16). */
static inline uint32_t reds_pkhtb_asr16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/** Halves of a plus bytes 0 and 2 of x sign-extended (16-bit lanes, modulo 2^16). */
static inline uint32_t reds_sxtab16(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/** Halves of a plus bytes 1 and 3 of x sign-extended. */
static inline uint32_t reds_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* The multiply-accumulates on 16-bit signed halves, each acc + products modulo 2^32:
 * reds_smlad: lo(a) * lo(b) + hi(a) * hi(b); reds_smlaXY: X(a) * Y(b), X, Y = b(ottom, lo) or t(op, hi). */
#define REDS_DSP_MLA(name, insn)                                                   \
    static inline int32_t name(uint32_t a, uint32_t b, int32_t acc)                \
    {                                                                              \
        int32_t r;                                                                 \
        __asm__(insn " %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));      \
        return r;                                                                  \
    }
REDS_DSP_MLA(reds_smlad, "smlad")
REDS_DSP_MLA(reds_smlabb, "smlabb")
REDS_DSP_MLA(reds_smlatb, "smlatb")
REDS_DSP_MLA(reds_smlabt, "smlabt")
REDS_DSP_MLA(reds_smlatt, "smlatt")
#undef REDS_DSP_MLA

/** c + ((a * b + 2^31) >> 32): the rounding high multiply, accumulated (the high word, so c is added exactly). */
static inline int32_t reds_smmlar(int32_t a, int32_t b, int32_t c)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

/** x saturated to [-128, 127]. */
static inline int32_t reds_ssat8(int32_t x)
{
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));
    return r;
}

/** x saturated to [0, 255]. */
static inline int32_t reds_usat8(int32_t x)
{
    int32_t r;
    __asm__("usat %0, #8, %1" : "=r"(r) : "r"(x));
    return r;
}

#endif /* REDS_DSP */

#endif /* REDS_DSP_H */
