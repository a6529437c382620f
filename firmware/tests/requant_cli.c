/*
 * requant_cli.c - reads lines "R x multiplier shift" or "M multiplier shift n" on stdin and prints
 * reds_requantize(x, m, s) or reds_mean_multiplier(m, s, n); the parity test against requant_ref.py.
 */
#include <stdio.h>

#include "reds_requant.h"

int main(void)
{
    char op;
    long a, b, c;
    while (scanf(" %c %ld %ld %ld", &op, &a, &b, &c) == 4) {
        if (op == 'R') {
            printf("%ld\n", (long)reds_requantize((int32_t)a, (int32_t)b, (int32_t)c));
        } else if (op == 'M') {
            int32_t m, s;
            reds_mean_multiplier((int32_t)a, (int32_t)b, (int32_t)c, &m, &s);
            printf("%ld %ld\n", (long)m, (long)s);
        } else {
            fprintf(stderr, "unknown op '%c' (expected R or M)\n", op);
            return 2;
        }
    }
    return 0;
}
