/*
 * fuzz_reds_model_init.c - libFuzzer target for the device-side blob parser.
 *
 * Any byte string goes to reds_model_init. When it is accepted, every level also runs once (zero input)
 * when its work is small, so the target checks the real promise: a blob that passes validation
 * cannot make reds_invoke read or write out of bounds or overflow (ASan + UBSan abort on either), nor
 * make it refuse (the target aborts when an accepted level does not return REDS_OK).
 *   make -C firmware fuzz FUZZ_RUNS=1000000     (seeds: the .blob files in fuzz/seeds, from c_arena)
 */
#include <stdlib.h>
#include <string.h>

#include "reds_model.h"

#define WORK_MAX 2000000u /* multiply-accumulates per level worth running inside the fuzzer */

static uint32_t rd(const uint8_t *p, int word)
{
    const uint8_t *q = p + 4 * word;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}

/* Upper bound of the inner-loop work of one level (validated dims are <= 65535, so no overflow in 64 bit).
 * Each op is its template with the level entry's channel counts, as reds_invoke reads it. */
static uint64_t level_work(const reds_model *m, const reds_level *lv)
{
    uint64_t work = 0;
    for (uint32_t j = 0; j < lv->n_ops; ++j) {
        const uint8_t *e = lv->ops + j * REDS_ENTRY_WORDS * 4u;
        const uint8_t *f = m->templates + rd(e, REDS_E_TEMPLATE) * REDS_OP_WORDS * 4u;
        const uint32_t in_c = rd(e, REDS_E_IN_C), out_c = rd(e, REDS_E_OUT_C);
        const uint64_t out = (uint64_t)rd(f, REDS_F_OUT_H) * rd(f, REDS_F_OUT_W) * out_c;
        const uint64_t in = (uint64_t)rd(f, REDS_F_IN_H) * rd(f, REDS_F_IN_W) * in_c;
        const uint32_t type = rd(f, REDS_F_TYPE);
        /* per output: a kh x kw window (times C_in for CONV_2D), the whole input for FC, n_max stored
         * entries of a row for the sparse ops */
        const int sparse = type == REDS_OP_SPARSE_CONV_2D || type == REDS_OP_SPARSE_FULLY_CONNECTED;
        const uint64_t per_out = sparse                            ? rd(f, REDS_F_W_STRIDE_O)
                                 : type == REDS_OP_FULLY_CONNECTED ? in
                                 : (uint64_t)rd(f, REDS_F_K_H) * rd(f, REDS_F_K_W) *
                                       (type == REDS_OP_CONV_2D ? in_c : 1u);
        work += out * per_out + in;
    }
    return work;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) {
        return 0;
    }
    /* An exactly sized, aligned heap copy: ASan catches any read past the end. */
    uint8_t *blob = malloc(size ? size : 1u);
    if (blob == NULL) {
        return 0;
    }
    memcpy(blob, data, size);
    reds_model m;
    if (reds_model_init(&m, blob, (uint32_t)size) == REDS_OK) {
        int8_t *in = calloc(m.max_in ? m.max_in : 1u, 1);
        int8_t *out = calloc(m.max_out ? m.max_out : 1u, 1);
        void *scratch = malloc(m.max_scratch ? m.max_scratch : 1u);
        for (int32_t k = 0; k < (int32_t)m.n_levels && in && out && scratch; ++k) {
            if (reds_set_level(&m, k) != REDS_OK) {
                abort(); /* every level below n_levels must be selectable */
            }
            if (level_work(&m, m.active) <= WORK_MAX && reds_invoke(&m, in, out, scratch, m.max_scratch) != REDS_OK) {
                abort(); /* init accepted it, so invoke must run it */
            }
        }
        if (reds_set_level(&m, (int32_t)m.n_levels) != REDS_BAD_LEVEL) {
            abort();
        }
        free(scratch);
        free(out);
        free(in);
    }
    free(blob);
    return 0;
}
