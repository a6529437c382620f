/*
 * reds_app.c - the serial protocol and the budget policy (see reds_app.h).
 */
#include "reds_app.h"

#include <string.h>

/* ---- tiny formatting (no printf: keeps the MCU build small) ------------------------------------ */

typedef struct {
    char buf[REDS_APP_LINE + 64];
    uint32_t n;
} text;

static void put_s(text *t, const char *s)
{
    while (*s != '\0' && t->n + 1 < sizeof t->buf) {
        t->buf[t->n++] = *s++;
    }
    t->buf[t->n] = '\0';
}

static void put_u(text *t, uint64_t v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0 && i < (int)sizeof tmp);
    char s[25];
    for (int j = 0; j < i; ++j) {
        s[j] = tmp[i - 1 - j];
    }
    s[i] = '\0';
    put_s(t, s);
}

static void put_i(text *t, int32_t v)
{
    if (v < 0) {
        put_s(t, "-");
        put_u(t, (uint64_t)(-(int64_t)v));
    } else {
        put_u(t, (uint64_t)v);
    }
}

static void put_kv(text *t, const char *key, uint64_t v)
{
    put_s(t, " ");
    put_s(t, key);
    put_s(t, "=");
    put_u(t, v);
}

static void emit(reds_app *app, text *t)
{
    put_s(t, "\n");
    app->io.write(app->io.ctx, t->buf);
}

static void reply_err(reds_app *app, const char *what)
{
    text t = {{0}, 0};
    put_s(&t, "err ");
    put_s(&t, what);
    emit(app, &t);
}

/* ---- policy ------------------------------------------------------------------------------------ */

/* The widest level with a measured latency and a nonzero cost[k] (macs or cycles), -1 if none. */
static int32_t widest_measured(const reds_policy_levels *p, int use_cycles)
{
    int32_t ref = -1;
    for (int32_t k = 0; p->measured_us != NULL && k < p->n_levels; ++k) {
        const uint64_t cost = use_cycles ? (p->cycles != NULL ? p->cycles[k] : 0u)
                                         : (p->macs != NULL ? p->macs[k] : 0u);
        if (p->measured_us[k] != 0 && cost != 0) {
            ref = k;
        }
    }
    return ref;
}

/* a * b / c rounded to nearest and saturated (c > 0). b and c are first shifted together until b fits
 * 32 bits, so a * b fits 64 (the ratio b / c loses under 2^-31 of itself). */
static uint32_t scale_u32(uint32_t a, uint64_t b, uint64_t c)
{
    while (b > UINT32_MAX) {
        b >>= 1;
        c >>= 1;
    }
    if (c == 0) {
        return UINT32_MAX;
    }
    const uint64_t q = ((uint64_t)a * b + c / 2u) / c;
    return q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}

uint32_t reds_policy_estimate_us(const reds_policy_levels *p, int32_t k)
{
    if (p == NULL || k < 0 || k >= p->n_levels) {
        return 0;
    }
    if (p->measured_us != NULL && p->measured_us[k] != 0) {
        return p->measured_us[k];
    }
    const uint32_t cyc = p->cycles != NULL ? p->cycles[k] : 0u;
    const int32_t ref_c = widest_measured(p, 1);
    if (cyc != 0 && ref_c >= 0) {
        return scale_u32(p->measured_us[ref_c], cyc, p->cycles[ref_c]);
    }
    if (cyc != 0 && p->clock_mhz != 0) {
        return (uint32_t)(((uint64_t)cyc + p->clock_mhz - 1u) / p->clock_mhz);
    }
    const uint64_t macs = p->macs != NULL ? p->macs[k] : 0u;
    const int32_t ref_m = widest_measured(p, 0);
    if (macs != 0 && ref_m >= 0) {
        return scale_u32(p->measured_us[ref_m], macs, p->macs[ref_m]);
    }
    return 0;
}

int32_t reds_policy_choose(const reds_policy_levels *p, uint32_t budget_us)
{
    int32_t best = 0;
    for (int32_t k = 0; p != NULL && k < p->n_levels; ++k) {
        const uint32_t est = reds_policy_estimate_us(p, k);
        if (est != 0 && est <= budget_us) {
            best = k;
        }
    }
    return best;
}

/* ---- commands ---------------------------------------------------------------------------------- */

/* The policy's view of the backend's levels; macs and cycles are caller storage of REDS_MAX_LEVELS. */
static reds_policy_levels policy_levels(const reds_app *app, uint64_t *macs, uint32_t *cycles)
{
    const reds_backend *be = app->be;
    for (int32_t k = 0; k < be->n_levels; ++k) {
        macs[k] = be->info[k].macs;
        cycles[k] = be->info[k].cycles;
    }
    return (reds_policy_levels){macs, cycles, app->level_us, be->n_levels, app->io.clock_mhz};
}

reds_status reds_app_init(reds_app *app, reds_backend *be, reds_io io, int8_t *input, int8_t *output)
{
    if (app == NULL || be == NULL || io.write == NULL || io.micros == NULL || input == NULL || output == NULL) {
        return REDS_ARG_ERROR;
    }
    memset(app, 0, sizeof *app);
    app->be = be;
    app->io = io;
    app->input = input;
    app->output = output;
    app->last_class = -1;
    return REDS_OK;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == ',') {
        ++s;
    }
    return s;
}

/* Magnitudes are capped here while parsing: every caller's range is far smaller, so an oversized value
 * is refused by the caller's range check instead of wrapping (strtol's long is 32 bits on the board). */
#define NUM_CAP ((int64_t)1 << 40)

/* Parse one decimal integer, [+-]digits, that ends at a separator or the end of the line (so "1abc" is
 * not a number); returns 0 when s does not start with one. */
static int parse_int(const char **s, int64_t *out)
{
    const char *p = skip_ws(*s);
    const int neg = *p == '-';
    if (*p == '-' || *p == '+') {
        ++p;
    }
    if (*p < '0' || *p > '9') {
        return 0;
    }
    int64_t v = 0;
    for (; *p >= '0' && *p <= '9'; ++p) {
        v = v < NUM_CAP ? v * 10 + (*p - '0') : NUM_CAP;
    }
    if (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' && *p != ',') {
        return 0;
    }
    *out = neg ? -v : v;
    *s = p;
    return 1;
}

/* Nothing but separators left on the line. */
static int at_end(const char *s)
{
    return *skip_ws(s) == '\0';
}

static int is_cmd(const char *line, const char *cmd, const char **rest)
{
    const size_t n = strlen(cmd);
    if (strncmp(line, cmd, n) != 0 || (line[n] != '\0' && line[n] != ' ' && line[n] != '\r')) {
        return 0;
    }
    *rest = line + n;
    return 1;
}

static void cmd_info(reds_app *app)
{
    const reds_backend *be = app->be;
    text t = {{0}, 0};
    put_s(&t, "ok backend=");
    put_s(&t, reds_backend_name());
    put_kv(&t, "levels", (uint64_t)be->n_levels);
    put_kv(&t, "level", (uint64_t)be->level);
    put_kv(&t, "in", be->info[be->level].in_bytes);
    put_kv(&t, "out", be->info[be->level].out_bytes);
    put_kv(&t, "budget_us", app->budget_us);
    emit(app, &t);
}

static void cmd_levels(reds_app *app)
{
    uint64_t macs[REDS_MAX_LEVELS];
    uint32_t cycles[REDS_MAX_LEVELS];
    const reds_policy_levels pl = policy_levels(app, macs, cycles);
    for (int32_t k = 0; k < app->be->n_levels; ++k) {
        text t = {{0}, 0};
        put_s(&t, "level");
        put_s(&t, " ");
        put_u(&t, (uint64_t)k);
        put_kv(&t, "macs", app->be->info[k].macs);
        put_kv(&t, "cycles", app->be->info[k].cycles);
        put_kv(&t, "in", app->be->info[k].in_bytes);
        put_kv(&t, "out", app->be->info[k].out_bytes);
        put_kv(&t, "us", app->level_us[k]);
        put_kv(&t, "est_us", reds_policy_estimate_us(&pl, k));
        emit(app, &t);
    }
    text t = {{0}, 0};
    put_s(&t, "ok");
    emit(app, &t);
}

static void cmd_level(reds_app *app, const char *rest)
{
    int64_t k;
    if (!parse_int(&rest, &k) || !at_end(rest) || k < 0 || k >= app->be->n_levels ||
        reds_backend_set_level(app->be, (int32_t)k) != REDS_OK) {
        text t = {{0}, 0};
        put_s(&t, "err bad level; valid 0..");
        put_u(&t, (uint64_t)(app->be->n_levels - 1));
        emit(app, &t);
        return;
    }
    app->budget_us = 0; /* an explicit level overrides the policy */
    text t = {{0}, 0};
    put_s(&t, "ok");
    put_kv(&t, "level", (uint64_t)app->be->level);
    emit(app, &t);
}

static void cmd_in(reds_app *app, const char *rest)
{
    const uint32_t need = app->be->info[app->be->level].in_bytes; /* the level that will run */
    int64_t v;
    while (parse_int(&rest, &v)) {
        if (v < -128 || v > 127) {
            app->fed = 0;
            reply_err(app, "input value outside int8 [-128, 127]; input cleared");
            return;
        }
        if (app->fed >= need) {
            app->fed = 0;
            reply_err(app, "too many input values for the active level (see info); input cleared");
            return;
        }
        app->input[app->fed++] = (int8_t)v;
    }
    if (!at_end(rest)) {
        app->fed = 0;
        reply_err(app, "input is not a list of integers; input cleared");
        return;
    }
    text t = {{0}, 0};
    put_s(&t, "ok");
    put_kv(&t, "fed", app->fed);
    put_s(&t, "/");
    put_u(&t, need);
    emit(app, &t);
}

static void cmd_run(reds_app *app)
{
    reds_backend *be = app->be;
    if (app->budget_us != 0) {
        uint64_t macs[REDS_MAX_LEVELS];
        uint32_t cycles[REDS_MAX_LEVELS];
        const reds_policy_levels pl = policy_levels(app, macs, cycles);
        (void)reds_backend_set_level(be, reds_policy_choose(&pl, app->budget_us));
    }
    const int32_t level = be->level;
    const reds_level_info *info = &be->info[level];
    if (app->fed != info->in_bytes) {
        text t = {{0}, 0};
        put_s(&t, "err need");
        put_kv(&t, "in", info->in_bytes);
        put_kv(&t, "fed", app->fed);
        emit(app, &t);
        return;
    }
    const uint32_t t0 = app->io.micros(app->io.ctx);
    const reds_status s = reds_backend_invoke(be, app->input, app->output);
    const uint32_t us = app->io.micros(app->io.ctx) - t0;
    app->fed = 0;
    if (s != REDS_OK) {
        reply_err(app, "invoke failed");
        return;
    }
    app->level_us[level] = us != 0 ? us : 1u;
    int32_t best = 0;
    for (uint32_t i = 1; i < info->out_bytes; ++i) {
        if (app->output[i] > app->output[best]) {
            best = (int32_t)i;
        }
    }
    app->last_class = best;
    app->last_out = info->out_bytes;
    text t = {{0}, 0};
    put_s(&t, "ok");
    put_kv(&t, "class", (uint64_t)best);
    put_kv(&t, "level", (uint64_t)level);
    put_kv(&t, "us", us);
    emit(app, &t);
}

static void cmd_out(reds_app *app)
{
    if (app->last_class < 0) {
        reply_err(app, "no run yet");
        return;
    }
    /* One reply line of any length, written in pieces: the buffer holds a line, not every output. */
    text t = {{0}, 0};
    put_s(&t, "ok out");
    for (uint32_t i = 0; i < app->last_out; ++i) {
        if (t.n > sizeof t.buf - sizeof " -128\n") {
            app->io.write(app->io.ctx, t.buf);
            t.n = 0;
        }
        put_s(&t, " ");
        put_i(&t, app->output[i]);
    }
    emit(app, &t);
}

static void cmd_budget(reds_app *app, const char *rest, int energy)
{
    int64_t a, mw = 1;
    if (!parse_int(&rest, &a) || a < 0 || a > UINT32_MAX ||
        (energy && (!parse_int(&rest, &mw) || mw < 1 || mw > UINT32_MAX)) || !at_end(rest)) {
        reply_err(app, energy ? "usage: ebudget MICROJOULES MILLIWATTS (integers, 0..4294967295 and 1..4294967295)"
                              : "usage: budget MICROSECONDS (an integer, 0..4294967295)");
        return;
    }
    /* E = P * t: t[us] = E[uJ] * 1000 / P[mW]; both below 2^32, so the product fits in 64 bits. */
    const uint64_t us = energy ? (uint64_t)a * 1000u / (uint64_t)mw : (uint64_t)a;
    app->budget_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    text t = {{0}, 0};
    put_s(&t, "ok");
    put_kv(&t, "budget_us", app->budget_us);
    emit(app, &t);
}

void reds_app_handle_line(reds_app *app, const char *line)
{
    const char *rest;
    if (app == NULL || app->be == NULL || line == NULL) {
        return;
    }
    line = skip_ws(line);
    if (*line == '\0' || *line == '#') {
        return;
    }
    if (is_cmd(line, "info", &rest)) {
        cmd_info(app);
    } else if (is_cmd(line, "levels", &rest)) {
        cmd_levels(app);
    } else if (is_cmd(line, "level", &rest)) {
        cmd_level(app, rest);
    } else if (is_cmd(line, "in", &rest)) {
        cmd_in(app, rest);
    } else if (is_cmd(line, "run", &rest)) {
        cmd_run(app);
    } else if (is_cmd(line, "out", &rest)) {
        cmd_out(app);
    } else if (is_cmd(line, "budget", &rest)) {
        cmd_budget(app, rest, 0);
    } else if (is_cmd(line, "ebudget", &rest)) {
        cmd_budget(app, rest, 1);
    } else {
        reply_err(app, "unknown command; try info, levels, level K, in V.., run, out, budget US, ebudget UJ MW");
    }
}

void reds_app_feed_char(reds_app *app, char c)
{
    if (app == NULL || app->be == NULL) {
        return; /* not initialised (the sketch keeps reading Serial after a failed init) */
    }
    if (c == '\n') {
        app->line[app->line_len] = '\0';
        if (app->line_overflow) {
            reply_err(app, "line too long (max 255 characters); split 'in' over several lines");
        } else {
            reds_app_handle_line(app, app->line);
        }
        app->line_len = 0;
        app->line_overflow = 0;
    } else if (app->line_len + 1 < REDS_APP_LINE) {
        app->line[app->line_len++] = c;
    } else {
        app->line_overflow = 1;
    }
}
