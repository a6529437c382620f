/*
 * startup.c - minimal Cortex-M4 start-up for the reds bench image: vector table, FPU enable,
 * .data copy / .bss clear, then main(). Also the two libc routines gcc may emit for struct copies,
 * because the image links with -nostdlib.
 */
#include <stddef.h>
#include <stdint.h>

extern uint32_t __StackTop, __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__;
int main(void);
void Reset_Handler(void);
static void Default_Handler(void);

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int v, size_t n);

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__StackTop), Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler,
    0, Default_Handler, Default_Handler,
};

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int v, size_t n)
{
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)v;
    }
    return dst;
}

void Reset_Handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10/CP11 (FPU) */
    __asm volatile("dsb\n isb");
    memcpy(&__data_start__, &__data_load__, (size_t)((uint8_t *)&__data_end__ - (uint8_t *)&__data_start__));
    memset(&__bss_start__, 0, (size_t)((uint8_t *)&__bss_end__ - (uint8_t *)&__bss_start__));
    (void)main();
    for (;;) {
        __asm volatile("bkpt #0");
    }
}

static void Default_Handler(void)
{
    for (;;) {
        __asm volatile("bkpt #1");
    }
}
