/*
 * reds_app.h - serial line protocol and budget policy over reds_backend.h. I/O through function
 * pointers, so the same code runs on the Nano 33 BLE (Serial, micros()) and on the host (stdio).
 *
 * Protocol: one command per line; every reply is one line starting with "ok" or "err". Numbers are
 * decimal integers ending at a space, comma or the line's end ("1abc" is refused); a command with
 * arguments left over is refused.
 *   info             ok backend=native levels=4 level=3 in=490 out=12 budget_us=0
 *   levels           one line per level: "level k macs=M cycles=C in=B out=B us=T est_us=E" (C = the
 *                    blob's predicted cycles, T = last measured, E = the policy's estimate; 0 = unknown)
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
    uint32_t clock_mhz; /**< CPU clock in MHz, 0 = unknown: predicted cycles are then used only as ratios */
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

/** What the budget policy knows of the levels: arrays of n_levels entries, 0 meaning unknown. */
typedef struct {
    const uint64_t *macs;        /**< MACs per level; NULL = none known */
    const uint32_t *cycles;      /**< predicted device cycles per level (the blob's); NULL = none known */
    const uint32_t *measured_us; /**< last measured latency per level; NULL = none measured */
    int32_t n_levels;
    uint32_t clock_mhz;          /**< CPU clock, 0 = unknown */
} reds_policy_levels;

/**
 * A level's latency estimate in microseconds, 0 = unknown. In order: its measured latency; the widest
 * measured level's latency scaled by the ratio of predicted cycles (the cost model knows that narrow
 * layers cost more per MAC; the measurement carries the board's wait states and clock); its predicted
 * cycles at clock_mhz (before anything is measured); the widest measured level scaled by the MAC ratio.
 */
uint32_t reds_policy_estimate_us(const reds_policy_levels *p, int32_t k);

/**
 * Budget policy: the largest level whose latency estimate fits budget_us. Unknown levels are not
 * chosen, except level 0 when nothing fits (the cheapest level always runs) or p is NULL.
 */
int32_t reds_policy_choose(const reds_policy_levels *p, uint32_t budget_us);

#ifdef __cplusplus
}
#endif

#endif /* REDS_APP_H */
