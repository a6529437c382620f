/*
 * backend_native.c - reds_backend.h over the reds runtime: the arena is the activation scratch.
 */
#if !defined(REDS_BACKEND_TFLM) /* exactly one backend is linked */

#include "reds_backend.h"

#include <string.h>

const char *reds_backend_name(void)
{
    return "native";
}

reds_status reds_backend_init(reds_backend *b, const reds_model_data *model, void *arena, uint32_t arena_len)
{
    if (b == NULL || model == NULL) {
        return REDS_ARG_ERROR;
    }
    memset(b, 0, sizeof *b);
    const reds_status s = reds_model_init(&b->model, model->data, model->len);
    if (s != REDS_OK) {
        return s;
    }
    if (arena_len < b->model.max_scratch || (b->model.max_scratch != 0 && arena == NULL)) {
        return REDS_ARG_ERROR; /* size the arena with the blob header's max_scratch */
    }
    b->n_levels = (int32_t)b->model.n_levels;
    b->level = b->model.level;
    b->max_in = b->model.max_in;
    b->max_out = b->model.max_out;
    b->arena = arena;
    b->arena_len = arena_len;
    for (int32_t k = 0; k < b->n_levels; ++k) {
        const reds_level *lv = &b->model.levels[k];
        b->info[k] = (reds_level_info){lv->in_bytes, lv->out_bytes, lv->macs, lv->cycles, lv->in_scale, lv->in_zp};
    }
    return REDS_OK;
}

reds_status reds_backend_set_level(reds_backend *b, int32_t k)
{
    if (b == NULL) {
        return REDS_ARG_ERROR;
    }
    const reds_status s = reds_set_level(&b->model, k);
    if (s == REDS_OK) {
        b->level = k;
    }
    return s;
}

reds_status reds_backend_invoke(reds_backend *b, const int8_t *in, int8_t *out)
{
    if (b == NULL) {
        return REDS_ARG_ERROR;
    }
    return reds_invoke(&b->model, in, out, b->arena, b->arena_len);
}

#endif /* !REDS_BACKEND_TFLM */
