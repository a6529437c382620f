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

/* The whole file in an exactly sized heap buffer (malloc's alignment suits the blob), or NULL with
 * nothing left open or allocated. */
static uint8_t *read_file(const char *path, uint32_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n <= (long)INT32_MAX && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    *len = (uint32_t)n;
    return buf;
}

/* Serve the protocol on stdin/stdout until EOF; every path frees what it allocated. */
static int serve(const uint8_t *blob, uint32_t len, const char *path)
{
    /* Parse once to learn the buffer sizes, then give the backend exactly what the header asks for. */
    reds_model probe;
    const reds_status s = reds_model_init(&probe, blob, len);
    if (s != REDS_OK) {
        fprintf(stderr, "error: %s is not a valid reds blob (status %d); regenerate it with c_arena.write\n", path,
                (int)s);
        return 1;
    }
    void *scratch = malloc(probe.max_scratch + 1u);
    int8_t *input = malloc(probe.max_in);
    int8_t *output = malloc(probe.max_out);
    reds_backend be;
    const reds_model_data md = {blob, len, NULL, 0, NULL};
    reds_app app;
    const reds_io io = {host_write, host_micros, NULL, 0u}; /* host clock unknown: cycles as ratios */
    int rc = 1;
    if (scratch == NULL || input == NULL || output == NULL ||
        reds_backend_init(&be, &md, scratch, probe.max_scratch) != REDS_OK ||
        reds_app_init(&app, &be, io, input, output) != REDS_OK) {
        fprintf(stderr, "error: backend/app init failed\n");
    } else {
        int c;
        while ((c = getchar()) != EOF) {
            reds_app_feed_char(&app, (char)c);
        }
        rc = 0;
    }
    free(output);
    free(input);
    free(scratch);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.blob   (written by reds_tf.convert.c_arena)\n", argv[0]);
        return 2;
    }
    uint32_t len = 0;
    uint8_t *blob = read_file(argv[1], &len);
    if (blob == NULL) {
        fprintf(stderr, "error: cannot read %s (missing, empty or over 2 GiB)\n", argv[1]);
        return 2;
    }
    const int rc = serve(blob, len, argv[1]);
    free(blob);
    return rc;
}
