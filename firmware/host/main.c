/*
 * host/main.c - the reds app on stdin/stdout: `reds_host MODEL.blob` speaks the same line protocol as
 * the Nano 33 BLE sketch (see src/app/reds_app.h), over the native backend.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../src/app/reds_app.h"

static void host_write(void *ctx, const char *s)
{
    (void)ctx;
    fputs(s, stdout);
    fflush(stdout);
}

static uint32_t host_micros(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.blob   (written by reds_tf.convert.c_arena)\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        fprintf(stderr, "error: cannot open %s\n", argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *blob = malloc(len > 0 ? (size_t)len : 1u); /* malloc is suitably aligned for the blob */
    if (blob == NULL || len <= 0 || fread(blob, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "error: cannot read %s\n", argv[1]);
        return 2;
    }
    fclose(f);

    /* Parse once to learn the buffer sizes, then give the backend exactly what the header asks for. */
    reds_model probe;
    reds_status s = reds_model_init(&probe, blob, (uint32_t)len);
    if (s != REDS_OK) {
        fprintf(stderr, "error: %s is not a valid reds blob (status %d); regenerate it with c_arena.write\n",
                argv[1], (int)s);
        return 1;
    }
    void *scratch = malloc(probe.max_scratch + 1u);
    int8_t *input = malloc(probe.max_in);
    int8_t *output = malloc(probe.max_out);
    reds_backend be;
    const reds_model_data md = {blob, (uint32_t)len, NULL, 0, NULL};
    reds_app app;
    const reds_io io = {host_write, host_micros, NULL};
    if (scratch == NULL || input == NULL || output == NULL ||
        reds_backend_init(&be, &md, scratch, probe.max_scratch) != REDS_OK ||
        reds_app_init(&app, &be, io, input, output) != REDS_OK) {
        fprintf(stderr, "error: backend/app init failed\n");
        return 1;
    }
    int c;
    while ((c = getchar()) != EOF) {
        reds_app_feed_char(&app, (char)c);
    }
    free(output);
    free(input);
    free(scratch);
    free(blob);
    return 0;
}
