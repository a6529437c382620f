/*
 * backend_tflm.cpp - reds_backend.h over TensorFlow Lite Micro (Arduino TFLM library).
 *
 * One MicroInterpreter per level, all sharing ONE MicroAllocator over ONE tensor arena (TFLM's
 * multi-tenant allocation: persistent buffers of every level, one shared non-persistent head, so only
 * one level may run at a time). Level k's model is the converter's multi-root bundle at
 * data + level_offsets[k]; its weights are shared flatbuffer vectors. Switching = choosing an index.
 *
 * Compiled only when REDS_BACKEND_TFLM is defined (arduino-cli with the TFLM library); the host build
 * and CI use backend_native.c. Its objects are placement-new'd at the start of the arena: no globals.
 */
#if defined(REDS_BACKEND_TFLM)

#include <new>
#include <string.h>

#include "reds_backend.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

using Resolver = tflite::MicroMutableOpResolver<9>;

struct TflmState {
    Resolver resolver;
    tflite::MicroInterpreter *interp[REDS_MAX_LEVELS];
    alignas(tflite::MicroInterpreter) unsigned char slots[REDS_MAX_LEVELS][sizeof(tflite::MicroInterpreter)];
};

uintptr_t align_up(uintptr_t p, uintptr_t a) { return (p + a - 1) & ~(a - 1); }

}  // namespace

extern "C" const char *reds_backend_name(void) { return "tflm"; }

extern "C" reds_status reds_backend_init(reds_backend *b, const reds_model_data *model, void *arena,
                                         uint32_t arena_len)
{
    if (b == nullptr || model == nullptr || model->data == nullptr || model->level_offsets == nullptr ||
        arena == nullptr || model->n_levels < 1 || model->n_levels > REDS_MAX_LEVELS) {
        return REDS_ARG_ERROR;
    }
    memset(b, 0, sizeof *b);
    const uintptr_t base = reinterpret_cast<uintptr_t>(arena);
    const uintptr_t state_at = align_up(base, alignof(TflmState));
    const uintptr_t tensors_at = align_up(state_at + sizeof(TflmState), 16);
    if (tensors_at - base >= arena_len) {
        return REDS_ARG_ERROR;
    }
    TflmState *st = new (reinterpret_cast<void *>(state_at)) TflmState();
    st->resolver.AddAveragePool2D();
    st->resolver.AddConv2D();
    st->resolver.AddDepthwiseConv2D();
    st->resolver.AddFullyConnected();
    st->resolver.AddMaxPool2D();
    st->resolver.AddMean();
    st->resolver.AddReshape();
    st->resolver.AddSlice();
    st->resolver.AddSoftmax();
    tflite::MicroAllocator *alloc = tflite::MicroAllocator::Create(
        reinterpret_cast<uint8_t *>(tensors_at), arena_len - static_cast<size_t>(tensors_at - base));
    if (alloc == nullptr) {
        return REDS_ARG_ERROR;
    }
    for (int32_t k = 0; k < model->n_levels; ++k) {
        if (model->level_offsets[k] + 8u > model->len) {
            return REDS_BAD_BLOB;
        }
        const tflite::Model *m = tflite::GetModel(model->data + model->level_offsets[k]);
        if (m->version() != TFLITE_SCHEMA_VERSION) {
            return REDS_BAD_BLOB;
        }
        st->interp[k] = new (st->slots[k]) tflite::MicroInterpreter(m, st->resolver, alloc);
        if (st->interp[k]->AllocateTensors() != kTfLiteOk) {
            return REDS_ARG_ERROR; /* arena too small: TFLM printed the bytes it needs */
        }
        const TfLiteTensor *in = st->interp[k]->input(0);
        const TfLiteTensor *out = st->interp[k]->output(0);
        b->info[k].in_bytes = static_cast<uint32_t>(in->bytes);
        b->info[k].out_bytes = static_cast<uint32_t>(out->bytes);
        b->info[k].macs = model->level_macs != nullptr ? model->level_macs[k] : 0;
        b->info[k].cycles = 0; /* the blob's predictions are for the native runtime, not TFLM's kernels */
        b->info[k].in_scale = in->params.scale;
        b->info[k].in_zp = in->params.zero_point;
        b->max_in = b->info[k].in_bytes > b->max_in ? b->info[k].in_bytes : b->max_in;
        b->max_out = b->info[k].out_bytes > b->max_out ? b->info[k].out_bytes : b->max_out;
    }
    b->n_levels = model->n_levels;
    b->level = model->n_levels - 1;
    b->arena = arena;
    b->arena_len = arena_len;
    b->impl = st;
    return REDS_OK;
}

extern "C" reds_status reds_backend_set_level(reds_backend *b, int32_t k)
{
    if (b == nullptr) {
        return REDS_ARG_ERROR;
    }
    if (static_cast<uint32_t>(k) >= static_cast<uint32_t>(b->n_levels)) {
        return REDS_BAD_LEVEL;
    }
    b->level = k;
    return REDS_OK;
}

extern "C" reds_status reds_backend_invoke(reds_backend *b, const int8_t *in, int8_t *out)
{
    if (b == nullptr || b->impl == nullptr || in == nullptr || out == nullptr) {
        return REDS_ARG_ERROR;
    }
    tflite::MicroInterpreter *it = static_cast<TflmState *>(b->impl)->interp[b->level];
    memcpy(it->input(0)->data.int8, in, b->info[b->level].in_bytes);
    if (it->Invoke() != kTfLiteOk) {
        return REDS_ARG_ERROR;
    }
    memcpy(out, it->output(0)->data.int8, b->info[b->level].out_bytes);
    return REDS_OK;
}

#endif /* REDS_BACKEND_TFLM */
