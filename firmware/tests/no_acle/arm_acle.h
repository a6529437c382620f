/*
 * Stand-in for the toolchain's arm_acle.h, first on the include path of `make -C firmware m4-gnu99`:
 * the GCC 7 that the Arduino mbed core ships may lack ACLE intrinsics (__smlabb, __sxtb16, ...), so
 * firmware sources must not use them. Use inline asm that GCC 7 accepts instead (see
 * src/runtime/reds_depthwise_conv_s8.c).
 */
#error "arm_acle.h: ACLE intrinsics may be missing from the Arduino mbed core's GCC 7; use inline asm"
