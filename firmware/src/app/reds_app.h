/*
 * reds_app.h - serial line protocol and budget policy over reds_backend.h. I/O through function
 * pointers, so the same code runs on the Nano 33 BLE (Serial, micros()) and on the host (stdio).
 *
 * Protocol: one command per line; every reply is one line starting with "ok" or "err". Numbers are
 * decimal integers ending at a space, comma or the line's end ("1abc" is refused); a command with
 * arguments left over is refused.
 *   info             ok backend=native levels=4 level=3 in=490 out=12 budget_us=0
 *   levels           one line per level: "level k macs=M in=B out=B us=T" (T = last measured, 0 = never)
 *   level K          set the level (turns the budget policy off)  -> ok level=K | err bad level ...
 *   in V V V ...     append int8 input values (several lines allowed) -> ok fed=N/NEED, NEED being the
 *                    active level's input size (more values than that: err, input cleared)
 *   run              run on the fed input (policy picks the level if a budget is set)
 *                    -> ok class=C level=K us=T      (the input buffer is then cleared)
 *   out              the last run's int8 outputs, all on one line however many -> ok out V V V ...
 *   budget US        latency budget per inference in microseconds (0..2^32-1); 0 = off
 *   ebudget UJ MW    energy budget: UJ microjoules per inference at MW milliwatts (UJ 0..2^32-1,
 *                    MW 1..2^32-1) -> budget UJ*1000/MW us, saturated at 2^32-1
 */
#ifndef REDS_APP_H
#define REDS_APP_H

#include <stdint.h>

#include "../backend/reds_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REDS_APP_LINE 256

typedef struct {
    void (*write)(void *ctx, const char *text); /**< write text; a long reply comes in pieces, the last ends in "\n" */
    uint32_t (*micros)(void *ctx);              /**< free-running microsecond clock */
    void *ctx;
} reds_io;

typedef struct {
    reds_backend *be;
    reds_io io;
    int8_t *input;      /**< >= be->max_in bytes, caller-owned */
    int8_t *output;     /**< >= be->max_out bytes, caller-owned */
    uint32_t fed;       /**< input values received since the last run */
    uint32_t budget_us; /**< 0 = policy off */
    uint32_t level_us[REDS_MAX_LEVELS]; /**< last measured latency per level, 0 = not yet */
    int32_t last_class; /**< -1 before the first run */
    uint32_t last_out;  /**< outputs of the last run */
    uint32_t line_len;
    int32_t line_overflow;
    char line[REDS_APP_LINE];
} reds_app;

/** Bind the app to a backend, I/O and caller-owned input/output buffers. */
reds_status reds_app_init(reds_app *app, reds_backend *be, reds_io io, int8_t *input, int8_t *output);

/** Feed one received character; a '\n' executes the line. A NULL or never initialised (zeroed) app
 *  ignores it. */
void reds_app_feed_char(reds_app *app, char c);

/** Execute one command line (without the newline). A NULL or never initialised app, or a NULL line,
 *  is ignored. */
void reds_app_handle_line(reds_app *app, const char *line);

/**
 * Budget policy: the largest level whose estimated latency fits budget_us. A level's estimate is its
 * measured latency, else the measured latency of the widest measured level scaled by the MAC ratio
 * (inference time is about proportional to MACs), else unknown. Unknown levels are not chosen, except
 * level 0 when nothing fits (the cheapest level always runs) or an array is NULL.
 */
int32_t reds_policy_choose(const uint64_t *macs, const uint32_t *measured_us, int32_t n_levels,
                           uint32_t budget_us);

#ifdef __cplusplus
}
#endif

#endif /* REDS_APP_H */
