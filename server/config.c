/*
 * The daemon's configuration: INI text into a cvd_conf (see config.h, docs/CONFIG.md).
 *
 * inih does the parse (ini_parse_stream), fed by reader() below rather than by its own
 * file or string reader, because Debian's inih (55) has no line number in the handler
 * (INI_HANDLER_LINENO is 0), a 200-byte line buffer that splits longer lines into several,
 * 50-byte section names, no callback for a section without directives, and Python-style
 * continuation lines (an indented "rate = 1" after "block = 64" would become a second value
 * of block). So reader() takes one physical line at a time and
 *   - counts it (the line of every message),
 *   - refuses bytes that are not text (a binary file stops at its first control byte),
 *   - reads section headers itself (any length; empty sections still checked) and hands
 *     inih an empty line in their place, as for blank lines and comments,
 *   - hands inih every "directive = value" line as "directive=value", indentation and
 *     comments removed (so nothing is a continuation, and ';' and '#' both start a comment),
 *   - and, when that does not fit inih's buffer, hands it "directive=" and keeps the value
 *     aside for the handler (a model path may be up to CVD_CONF_PATH_MAX bytes).
 * No inih setting is touched, so parses in several threads at once are fine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config.h"

const char cvd_conf_default_text[] =
    "; convd's built-in configuration, used when no configuration file is found:\n"
    "; the demo models compiled into the daemon, served on 127.0.0.1 only.\n"
    "[server]\n"
    "workers = 0\n"
    "metrics = 127.0.0.1:9400\n"
    "\n"
    "[model drive]\n"
    "path = builtin:drive\n"
    "\n"
    "[model vibration-denoise]\n"
    "path = builtin:vibration-denoise\n"
    "\n"
    "[listen audio]\n"
    "address = 127.0.0.1:7400\n"
    "protocol = raw\n"
    "model = drive\n"
    "format = f32le\n"
    "channels = 1\n"
    "rate = 48000\n"
    "block = 64\n"
    "\n"
    "[listen framed]\n"
    "address = 127.0.0.1:7401\n"
    "protocol = framed\n"
    "model = drive\n"
    "\n"
    "[listen sensors]\n"
    "address = 127.0.0.1:7402\n"
    "protocol = line\n"
    "model = vibration-denoise\n"
    "rate = 1000\n"
    "block = 1\n";

/* ---- names ------------------------------------------------------------------------------ */

static const char *const proto_names[] = {"raw", "framed", "line", NULL};
static const char *const level_names[] = {"error", "warning", "info", "debug", NULL};
static const int level_values[] = {CVD_LOG_ERROR, CVD_LOG_WARNING, CVD_LOG_INFO, CVD_LOG_DEBUG};
static const char *const slow_names[] = {"drop", "disconnect", NULL};
static const char *const nonfinite_names[] = {"reject", "pass", NULL};
static const char *const bool_names[] = {"no", "yes", NULL};

static int choice_index(const char *const *names, const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; names[i] != NULL; i++)
        if (strcasecmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *cvd_proto_name(cvd_proto p)
{
    return (unsigned)p < 3 ? proto_names[p] : "?";
}

const char *cvd_sample_fmt_name(cvd_sample_fmt f)
{
    return cvd_sample_bytes((int)f) ? cvd_sample_format_name((int)f) : "?";
}

const char *cvd_log_level_name(int level)
{
    for (int i = 0; i < 4; i++)
        if (level_values[i] == level)
            return level_names[i];
    return "?";
}

int cvd_proto_parse(const char *s, cvd_proto *out)
{
    int i = choice_index(proto_names, s);
    if (i < 0)
        return -1;
    if (out)
        *out = (cvd_proto)i;
    return 0;
}

int cvd_sample_fmt_parse(const char *s, cvd_sample_fmt *out)
{
    cvd_sample_format f;
    if (cvd_sample_format_parse(s, &f) < 0)
        return -1;
    if (out)
        *out = f;
    return 0;
}

int cvd_log_level_parse(const char *s)
{
    int i = choice_index(level_names, s);
    return i < 0 ? -1 : level_values[i];
}

/* ---- directives --------------------------------------------------------------------------- */

enum { SEC_NONE, SEC_SERVER, SEC_MODEL, SEC_LISTEN, SEC_STREAM };

enum {
    S_WORKERS,
    S_LOG_LEVEL,
    S_METRICS,
    S_MAX_CLIENTS,
    S_MAX_MESSAGE,
    S_HANDSHAKE_TIMEOUT,
    S_IDLE_TIMEOUT,
    S_SHUTDOWN_TIMEOUT,
    S_QUEUE_LIMIT,
    S_SLOW_SUBSCRIBER,
    S_NONFINITE,
};
static const char *const server_keys[] = {
    "workers",     "log_level",         "metrics",      "max_clients",
    "max_message", "handshake_timeout", "idle_timeout", "shutdown_timeout",
    "queue_limit", "slow_subscriber",   "nonfinite",    NULL};

enum { M_PATH, M_HOP };
static const char *const model_keys[] = {"path", "hop", NULL};

enum { L_ADDRESS, L_PROTOCOL, L_MODEL, L_FORMAT, L_CHANNELS, L_RATE, L_BLOCK };
static const char *const listen_keys[] = {"address",  "protocol", "model", "format",
                                          "channels", "rate",     "block", NULL};

enum {
    A_INPUT,
    A_OUTPUT,
    A_RATE,
    A_CHANNELS,
    A_BLOCK,
    A_MODEL,
    A_PUBLISH,
    A_SOURCE,
    A_JITTER,
    A_REALTIME,
    A_INPUT_CHANNELS,
    A_OUTPUT_CHANNELS
};
static const char *const stream_keys[] = {
    "input",  "output",   "rate",           "channels",        "block", "model", "publish",
    "source", "jitter",   "realtime",       "input_channels",  "output_channels", NULL};

static const char *const *keys_of(int kind)
{
    switch (kind) {
    case SEC_SERVER:
        return server_keys;
    case SEC_MODEL:
        return model_keys;
    case SEC_LISTEN:
        return listen_keys;
    case SEC_STREAM:
        return stream_keys;
    default:
        return NULL;
    }
}

static const char *section_label(int kind)
{
    return kind == SEC_SERVER  ? "[server]"
           : kind == SEC_MODEL ? "[model NAME]"
           : kind == SEC_LISTEN ? "[listen NAME]"
                                : "[stream NAME]";
}

#define MAX_KEYS 16

/* Lines of the directives of one [listen] section that are checked once the file is read. */
typedef struct listen_lines {
    int address, protocol, model, format;
} listen_lines;

/* Lines of the directives of one [stream] section that are checked once the file is read. */
typedef struct stream_lines {
    int input, output, model, publish, source, jitter;
} stream_lines;

typedef struct pstate {
    const char *file; /* FILE in messages */
    const char *dir;  /* relative model paths are joined to it; may be NULL */
    cvd_conf *c;
    cvd_err *err;
    int code;     /* the reported error's code, 0 while there is none */
    int err_line; /* its line (0: none) */

    /* reader() */
    const char *p, *end;
    int lineno;
    char *long_value; /* this line's value, when it did not fit inih's buffer */

    /* the current section */
    int kind, index;
    char label[160];    /* "[listen audio]" for messages */
    int seen[MAX_KEYS]; /* line of each of its directives, 0 if not (yet) seen */
    int server_line;    /* line of [server], 0 if none */
    int metrics_line;   /* line of server's metrics directive */
    listen_lines *ll;   /* per listener */
    stream_lines *sl;   /* per stream */
    int cap_models, cap_listens, cap_streams;
} pstate;

/* Keeps the error with the smallest line (line 0, no line, only when there is no other). */
static int fail(pstate *ps, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(pstate *ps, int code, int line, const char *fmt, ...)
{
    char msg[CVD_ERR_MSG_MAX];
    va_list ap;

    if (ps->code != 0 && (line <= 0 || ps->err_line <= 0 || ps->err_line <= line))
        return ps->code;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        cvd_err_set(ps->err, code, "%s:%d: %s", ps->file, line, msg);
    else
        cvd_err_set(ps->err, code, "%s: %s", ps->file, msg);
    ps->code = code;
    ps->err_line = line;
    return code;
}

static int nomem(pstate *ps)
{
    return fail(ps, CVD_ENOMEM, 0, "out of memory");
}

/* Text from the user, cut to fit a message: at most 60 bytes, "..." after a cut. */
typedef struct shown {
    char s[72];
} shown;

static shown show_n(const char *v, size_t n)
{
    shown o;
    if (n > 60) {
        memcpy(o.s, v, 57);
        memcpy(o.s + 57, "...", 4);
    } else {
        memcpy(o.s, v, n);
        o.s[n] = '\0';
    }
    return o;
}

static shown show(const char *v)
{
    return show_n(v, strlen(v));
}

static int is_name_char(int ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

/* [A-Za-z0-9_.-]{1,64} */
static int valid_name_n(const char *s, size_t n)
{
    if (n < 1 || n > CVD_CONF_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char((unsigned char)s[i]))
            return 0;
    return 1;
}

static int valid_name(const char *s)
{
    return valid_name_n(s, strlen(s));
}

#define NAME_RULE "1 to 64 of A-Z a-z 0-9 _ . -"

static int key_index(const char *const *keys, const char *name)
{
    for (int i = 0; keys && keys[i]; i++)
        if (strcmp(keys[i], name) == 0)
            return i;
    return -1;
}

/* Edit distance, for "did you mean"; both strings are short (names are checked first). */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[72];
    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_directive(pstate *ps, const char *name, size_t n)
{
    const int line = ps->lineno;
    const shown nm = show_n(name, n);
    const char *const *keys = keys_of(ps->kind);
    const char *best = NULL;
    int best_d = 3;

    if (ps->kind == SEC_NONE)
        return fail(ps, CVD_EFORMAT, line,
                    "%s: outside any section (directives go under [server], [model NAME], "
                    "[listen NAME] or [stream NAME])",
                    nm.s);
    if (valid_name_n(name, n)) {
        /* a directive of another kind of section? */
        for (int k = SEC_SERVER; k <= SEC_STREAM; k++)
            if (k != ps->kind && key_index(keys_of(k), nm.s) >= 0)
                return fail(ps, CVD_EFORMAT, line, "%s: unknown directive in %s (it belongs in %s)",
                            nm.s, ps->label, section_label(k));
        for (int i = 0; keys[i]; i++) {
            int d = edit_distance(nm.s, keys[i]);
            if (d < best_d) {
                best_d = d;
                best = keys[i];
            }
        }
    }
    if (best)
        return fail(ps, CVD_EFORMAT, line, "%s: unknown directive in %s (did you mean '%s'?)", nm.s,
                    ps->label, best);
    return fail(ps, CVD_EFORMAT, line, "%s: unknown directive in %s", nm.s, ps->label);
}

/* ---- values ------------------------------------------------------------------------------- */

/* A whole number in lo..hi ("-5", "+7" and "0012" are numbers; out-of-range values saturate
 * while reading so that the message shows what was written). */
static int get_int(pstate *ps, const char *key, const char *v, long long lo, long long hi,
                   const char *note, long long *out)
{
    const char *s = v;
    int neg = 0;
    long long x = 0;

    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (*s == '\0')
        goto nan;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            goto nan;
        if (x < 100000000000000000LL) /* past 1e17 it only has to stay out of range */
            x = x * 10 + (*s - '0');
    }
    if (neg)
        x = -x;
    if (x < lo || x > hi)
        return fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s is out of range %lld..%lld%s", key,
                    show(v).s, lo, hi, note);
    *out = x;
    return 0;
nan:
    return fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a whole number", key, show(v).s);
}

static int get_intv(pstate *ps, const char *key, const char *v, long long lo, long long hi,
                    const char *note, int *out)
{
    long long x;
    int r = get_int(ps, key, v, lo, hi, note, &x);
    if (r == 0)
        *out = (int)x;
    return r;
}

static int get_size(pstate *ps, const char *key, const char *v, long long lo, long long hi,
                    size_t *out)
{
    long long x;
    int r = get_int(ps, key, v, lo, hi, " (bytes)", &x);
    if (r == 0)
        *out = (size_t)x;
    return r;
}

/* Seconds: a decimal number ("5", "0.25", "1e-1") in lo..hi. */
static int get_seconds(pstate *ps, const char *key, const char *v, double lo, double hi,
                       const char *note, double *out)
{
    int digits = 0;
    char *end;
    double x;

    for (const char *s = v; *s; s++) {
        if (*s >= '0' && *s <= '9')
            digits = 1;
        else if (!strchr(".eE+-", *s))
            goto nan;
    }
    if (!digits)
        goto nan;
    x = strtod(v, &end);
    if (*end != '\0' || end == v)
        goto nan;
    if (!isfinite(x) || x < lo || x > hi)
        return fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s is out of range %g..%g seconds%s", key,
                    show(v).s, lo, hi, note);
    *out = x;
    return 0;
nan:
    return fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a number of seconds", key, show(v).s);
}

static int get_choice(pstate *ps, const char *key, const char *v, const char *const *names,
                      int *out)
{
    char list[128] = "";
    int i = choice_index(names, v);
    if (i >= 0) {
        *out = i;
        return 0;
    }
    for (int k = 0; names[k]; k++) {
        if (k)
            strcat(list, " | ");
        strcat(list, names[k]);
    }
    return fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not one of %s", key, show(v).s, list);
}

/* "HOST:PORT" or "[IPv6]:PORT" into a canonical numeric host, a port and an address family.
 * On failure, why holds the reason. */
static int parse_address(const char *v, char *host, int *port, int *family, char *why, size_t whysz)
{
    char h[CVD_CONF_HOST_MAX];
    unsigned char bin[16];
    const char *hp, *pp;
    size_t hn;
    long x = 0;
    int fam;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL) {
            snprintf(why, whysz, "'%s': missing ']' after the IPv6 address", show(v).s);
            return -1;
        }
        if (close[1] != ':') {
            snprintf(why, whysz, "'%s' is not [IPv6]:PORT", show(v).s);
            return -1;
        }
        hp = v + 1;
        hn = (size_t)(close - hp);
        pp = close + 2;
        fam = AF_INET6;
    } else {
        const char *colon = strrchr(v, ':');
        if (colon == NULL) {
            snprintf(why, whysz, "'%s' is not HOST:PORT", show(v).s);
            return -1;
        }
        if (memchr(v, ':', (size_t)(colon - v)) != NULL) {
            snprintf(why, whysz, "'%s': an IPv6 address goes in brackets, as in [::1]:7400",
                     show(v).s);
            return -1;
        }
        hp = v;
        hn = (size_t)(colon - v);
        pp = colon + 1;
        fam = AF_INET;
    }
    if (hn == 0) {
        snprintf(why, whysz, "'%s': missing host before the port", show(v).s);
        return -1;
    }
    if (hn >= sizeof h) {
        snprintf(why, whysz, "'%s': not a numeric address", show(v).s);
        return -1;
    }
    memcpy(h, hp, hn);
    h[hn] = '\0';
    if (fam == AF_INET && strcasecmp(h, "localhost") == 0)
        strcpy(h, "127.0.0.1");
    if (inet_pton(fam, h, bin) != 1) {
        if (fam == AF_INET6)
            snprintf(why, whysz, "'%s' is not an IPv6 address", show(h).s);
        else
            snprintf(why, whysz,
                     "'%s' is not an IPv4 address, [IPv6] address or localhost (host names "
                     "are not looked up)",
                     show(h).s);
        return -1;
    }
    if (*pp == '\0' || strlen(pp) > 5 || strspn(pp, "0123456789") != strlen(pp)) {
        snprintf(why, whysz, "'%s' is not a port number (0..65535)", show(pp).s);
        return -1;
    }
    x = strtol(pp, NULL, 10);
    if (x > 65535) {
        snprintf(why, whysz, "port %s is out of range 0..65535", pp);
        return -1;
    }
    if (inet_ntop(fam, bin, host, CVD_CONF_HOST_MAX) == NULL) {
        snprintf(why, whysz, "'%s': cannot format the address", show(h).s);
        return -1;
    }
    *port = (int)x;
    *family = fam;
    return 0;
}

static void hostport(char *buf, size_t n, int family, const char *host, int port)
{
    snprintf(buf, n, family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

/* A relative path joined to dir (each side of a CONFIG+WEIGHTS pair on its own); malloc'd. */
static char *resolve_model_path(const char *dir, const char *v)
{
    const char *plus = strchr(v, '+');
    if (plus != NULL && plus != v && plus[1] != '\0') {
        char *first = strndup(v, (size_t)(plus - v));
        char *a = first ? resolve_model_path(dir, first) : NULL;
        char *b = resolve_model_path(dir, plus + 1);
        char *r = NULL;
        if (a && b && (r = malloc(strlen(a) + strlen(b) + 2)) != NULL)
            sprintf(r, "%s+%s", a, b);
        free(first);
        free(a);
        free(b);
        return r;
    }
    if (v[0] != '/' && dir != NULL && dir[0] != '\0') {
        size_t d = strlen(dir);
        int slash = dir[d - 1] == '/';
        char *r = malloc(d + !slash + strlen(v) + 1);
        if (r)
            sprintf(r, "%s%s%s", dir, slash ? "" : "/", v);
        return r;
    }
    return strdup(v);
}

static int set_path(pstate *ps, cvd_conf_model *m, const char *v)
{
    const int line = ps->lineno;
    size_t n = strlen(v);

    if (n > CVD_CONF_PATH_MAX)
        return fail(ps, CVD_EFORMAT, line, "path: longer than %d bytes", CVD_CONF_PATH_MAX);
    if (strncmp(v, "builtin:", 8) == 0) {
        if (!valid_name(v + 8))
            return fail(ps, CVD_EFORMAT, line,
                        "path: '%s': a built-in model is builtin:NAME, NAME " NAME_RULE, show(v).s);
        m->builtin = 1;
        m->path = strdup(v);
    } else {
        /* what cvd_model_load reads: .nam, convd's .json, Keras's .keras and .h5, and
         * CONFIG.json+WEIGHTS.h5 (a Keras config with a weights-only file) */
        if (!has_ext(v, ".nam") && !has_ext(v, ".json") && !has_ext(v, ".keras") &&
            !has_ext(v, ".h5") && !has_ext(v, ".hdf5"))
            return fail(ps, CVD_EFORMAT, line,
                        "path: '%s' is not a .nam, .json, .keras or .h5 file (nor "
                        "builtin:NAME)",
                        show(v).s);
        m->path = resolve_model_path(ps->dir, v);
    }
    return m->path ? 0 : nomem(ps);
}

static int model_directive(pstate *ps, int key, const char *name, const char *v)
{
    cvd_conf_model *m = &ps->c->models[ps->index];
    long long hop;

    if (key == M_PATH) {
        m->path_line = ps->lineno;
        return set_path(ps, m, v);
    }
    /* M_HOP: whether the model is windowed is known when it is loaded (runtime.c) */
    if (get_int(ps, name, v, 0, 1LL << 30, " (0 = the window length)", &hop))
        return ps->code;
    m->hop = (long)hop;
    m->hop_line = ps->lineno;
    return 0;
}

static int server_directive(pstate *ps, int key, const char *name, const char *v)
{
    cvd_conf *c = ps->c;
    char why[256];
    int i;

    switch (key) {
    case S_WORKERS:
        return get_intv(ps, name, v, 0, 256, " (0 = one per core)", &c->workers);
    case S_LOG_LEVEL:
        if (get_choice(ps, name, v, level_names, &i))
            return ps->code;
        c->log_level = level_values[i];
        return 0;
    case S_METRICS:
        ps->metrics_line = ps->lineno;
        if (strcasecmp(v, "none") == 0) {
            c->metrics_enabled = 0;
            return 0;
        }
        if (parse_address(v, c->metrics_host, &c->metrics_port, &c->metrics_family, why,
                          sizeof why))
            return fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s", name, why);
        c->metrics_enabled = 1;
        return 0;
    case S_MAX_CLIENTS:
        return get_intv(ps, name, v, 1, 1000000, "", &c->max_clients);
    case S_MAX_MESSAGE:
        return get_size(ps, name, v, 1024, 67108864, &c->max_message);
    case S_HANDSHAKE_TIMEOUT:
        return get_seconds(ps, name, v, 0.1, 3600, "", &c->handshake_timeout);
    case S_IDLE_TIMEOUT:
        return get_seconds(ps, name, v, 0, 86400, " (0 = never)", &c->idle_timeout);
    case S_SHUTDOWN_TIMEOUT:
        return get_seconds(ps, name, v, 0, 3600, "", &c->shutdown_timeout);
    case S_QUEUE_LIMIT:
        return get_size(ps, name, v, 4096, 1073741824, &c->queue_limit);
    case S_SLOW_SUBSCRIBER:
        return get_choice(ps, name, v, slow_names, &c->slow_disconnect);
    case S_NONFINITE:
        return get_choice(ps, name, v, nonfinite_names, &c->nonfinite_pass);
    default:
        return 0;
    }
}

static int listen_directive(pstate *ps, int key, const char *name, const char *v)
{
    cvd_conf_listen *l = &ps->c->listens[ps->index];
    listen_lines *ll = &ps->ll[ps->index];
    char why[256];
    int i;

    switch (key) {
    case L_ADDRESS:
        ll->address = ps->lineno;
        if (parse_address(v, l->host, &l->port, &l->family, why, sizeof why))
            return fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s", name, why);
        return 0;
    case L_PROTOCOL:
        ll->protocol = ps->lineno;
        if (get_choice(ps, name, v, proto_names, &i))
            return ps->code;
        l->protocol = (cvd_proto)i;
        return 0;
    case L_MODEL:
        ll->model = ps->lineno;
        if (!valid_name(v))
            return fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a model name (" NAME_RULE ")",
                        name, show(v).s);
        strcpy(l->model, v);
        return 0;
    case L_FORMAT:
        ll->format = ps->lineno;
        if (cvd_sample_format_parse(v, &l->format) < 0)
            return fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not one of %s", name, show(v).s,
                        CVD_SAMPLE_FORMAT_NAMES);
        return 0;
    case L_CHANNELS:
        return get_intv(ps, name, v, 0, 1024, " (0 = the model's)", &l->channels);
    case L_RATE:
        return get_intv(ps, name, v, 1, 1000000, " (frames per second)", &l->rate);
    case L_BLOCK:
        return get_intv(ps, name, v, 1, 65536, " (frames)", &l->block);
    default:
        return 0;
    }
}

/* A PortAudio device as written ("none" = no device, kept as ""). */
static int get_device(pstate *ps, const char *key, const char *v, char *out)
{
    if (strlen(v) > CVD_CONF_DEVICE_MAX)
        return fail(ps, CVD_EFORMAT, ps->lineno, "%s: longer than %d bytes", key,
                    CVD_CONF_DEVICE_MAX);
    if (strcasecmp(v, "none") == 0)
        out[0] = '\0';
    else
        strcpy(out, v);
    return 0;
}

/* input_channels, output_channels: 1-based device channels, comma-separated ("2", "1,2",
 * "2, 2"), into map[] 0-based */
static int get_channel_map(pstate *ps, const char *key, const char *v, short *map, int *n,
                           int *line)
{
    const char *s = v;
    *n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        const char *a = s;
        long long ch = 0;
        while (*s >= '0' && *s <= '9' && ch <= 1024)
            ch = ch * 10 + (*s++ - '0');
        if (s == a || ch < 1 || ch > 1024)
            return fail(ps, CVD_EFORMAT, ps->lineno,
                        "%s: '%s': a list of channels, 1 to 1024, separated by commas "
                        "(\"2\", \"1,2\")",
                        key, show(v).s);
        if (*n == CVD_CONF_MAP_MAX)
            return fail(ps, CVD_EFORMAT, ps->lineno, "%s: more than %d channels", key,
                        CVD_CONF_MAP_MAX);
        map[(*n)++] = (short)(ch - 1);
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            break;
        if (*s++ != ',')
            return fail(ps, CVD_EFORMAT, ps->lineno,
                        "%s: '%s': a list of channels, 1 to 1024, separated by commas "
                        "(\"2\", \"1,2\")",
                        key, show(v).s);
    }
    *line = ps->lineno;
    return 0;
}

static int stream_directive(pstate *ps, int key, const char *name, const char *v)
{
    cvd_conf_stream *st = &ps->c->streams[ps->index];
    stream_lines *sl = &ps->sl[ps->index];

    switch (key) {
    case A_INPUT:
        sl->input = st->input_line = ps->lineno;
        return get_device(ps, name, v, st->input);
    case A_OUTPUT:
        sl->output = st->output_line = ps->lineno;
        return get_device(ps, name, v, st->output);
    case A_RATE:
        return get_intv(ps, name, v, 1, 1000000, " (frames per second)", &st->rate);
    case A_CHANNELS:
        return get_intv(ps, name, v, 0, 1024, " (0 = the model's)", &st->channels);
    case A_INPUT_CHANNELS:
        return get_channel_map(ps, name, v, st->in_map, &st->n_in_map, &st->in_map_line);
    case A_OUTPUT_CHANNELS:
        return get_channel_map(ps, name, v, st->out_map, &st->n_out_map, &st->out_map_line);
    case A_BLOCK:
        return get_intv(ps, name, v, 1, 65536, " (frames)", &st->block);
    case A_MODEL:
        sl->model = ps->lineno;
        st->model_line = ps->lineno;
        if (!valid_name(v))
            return fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a model name (" NAME_RULE ")",
                        name, show(v).s);
        strcpy(st->model, v);
        return 0;
    case A_PUBLISH:
        sl->publish = ps->lineno;
        return get_choice(ps, name, v, bool_names, &st->publish);
    case A_SOURCE:
        sl->source = ps->lineno;
        if (!valid_name(v))
            return fail(ps, CVD_EFORMAT, ps->lineno,
                        "%s: '%s' is not a stream name (" NAME_RULE ")", name, show(v).s);
        strcpy(st->source, v);
        return 0;
    case A_JITTER:
        sl->jitter = ps->lineno;
        return get_intv(ps, name, v, 0, 1000000, " (frames; 0 = 4 blocks)", &st->jitter);
    case A_REALTIME:
        return get_choice(ps, name, v, bool_names, &st->realtime);
    default:
        return 0;
    }
}

/* One "directive = value" of the current section. */
static int directive(pstate *ps, const char *name, const char *v)
{
    const int line = ps->lineno;
    int key = key_index(keys_of(ps->kind), name);

    if (ps->kind == SEC_NONE || key < 0)
        return unknown_directive(ps, name, strlen(name));
    if (ps->seen[key])
        return fail(ps, CVD_EFORMAT, line, "%s: duplicate directive (first at line %d)", name,
                    ps->seen[key]);
    ps->seen[key] = line;
    if (*v == '\0')
        return fail(ps, CVD_EFORMAT, line, "%s: missing value", name);
    switch (ps->kind) {
    case SEC_SERVER:
        return server_directive(ps, key, name, v);
    case SEC_MODEL:
        return model_directive(ps, key, name, v);
    case SEC_STREAM:
        return stream_directive(ps, key, name, v);
    default:
        return listen_directive(ps, key, name, v);
    }
}

/* ---- sections ----------------------------------------------------------------------------- */

static int grow(pstate *ps, int kind)
{
    cvd_conf *c = ps->c;
    if (kind == SEC_MODEL && c->n_models == ps->cap_models) {
        int cap = ps->cap_models ? 2 * ps->cap_models : 4;
        cvd_conf_model *m = realloc(c->models, sizeof *m * (size_t)cap);
        if (m == NULL)
            return nomem(ps);
        c->models = m;
        ps->cap_models = cap;
    }
    if (kind == SEC_LISTEN && c->n_listens == ps->cap_listens) {
        int cap = ps->cap_listens ? 2 * ps->cap_listens : 4;
        cvd_conf_listen *l = realloc(c->listens, sizeof *l * (size_t)cap);
        if (l == NULL)
            return nomem(ps);
        c->listens = l;
        listen_lines *ll = realloc(ps->ll, sizeof *ll * (size_t)cap);
        if (ll == NULL)
            return nomem(ps);
        ps->ll = ll;
        ps->cap_listens = cap;
    }
    if (kind == SEC_STREAM && c->n_streams == ps->cap_streams) {
        int cap = ps->cap_streams ? 2 * ps->cap_streams : 4;
        cvd_conf_stream *st = realloc(c->streams, sizeof *st * (size_t)cap);
        if (st == NULL)
            return nomem(ps);
        c->streams = st;
        stream_lines *sl = realloc(ps->sl, sizeof *sl * (size_t)cap);
        if (sl == NULL)
            return nomem(ps);
        ps->sl = sl;
        ps->cap_streams = cap;
    }
    return 0;
}

static int is_blank(int ch)
{
    return ch == ' ' || ch == '\t';
}

/* A "[...]" line, b..e trimmed, b[0] == '['. */
static int section_header(pstate *ps, const char *b, const char *e)
{
    const int line = ps->lineno;
    const char *close = memchr(b, ']', (size_t)(e - b));
    const char *after, *kb, *ke, *nb, *ne;
    shown whole, kind;
    char name[CVD_CONF_NAME_MAX + 1];

    if (close == NULL)
        return fail(ps, CVD_EFORMAT, line, "%s: missing ']' at the end of the section header",
                    show_n(b, (size_t)(e - b)).s);
    whole = show_n(b + 1, (size_t)(close - b - 1));
    for (after = close + 1; after < e && is_blank(*after); after++)
        ;
    if (after < e && *after != ';' && *after != '#')
        return fail(ps, CVD_EFORMAT, line, "[%s]: unexpected text after ']'", whole.s);
    /* "[ kind  name ]": the kind, then the name */
    for (kb = b + 1; kb < close && is_blank(*kb); kb++)
        ;
    for (ke = kb; ke < close && !is_blank(*ke); ke++)
        ;
    for (nb = ke; nb < close && is_blank(*nb); nb++)
        ;
    for (ne = close; ne > nb && is_blank(ne[-1]); ne--)
        ;
    kind = show_n(kb, (size_t)(ke - kb));

    memset(ps->seen, 0, sizeof ps->seen);
    ps->kind = SEC_NONE;
    if (strcmp(kind.s, "server") == 0 && (size_t)(ke - kb) == 6) {
        if (ne > nb)
            return fail(ps, CVD_EFORMAT, line, "[%s]: [server] takes no name", whole.s);
        if (ps->server_line)
            return fail(ps, CVD_EFORMAT, line, "[server]: duplicate section (first at line %d)",
                        ps->server_line);
        ps->server_line = line;
        ps->kind = SEC_SERVER;
        strcpy(ps->label, "[server]");
        return 0;
    }
    if ((strcmp(kind.s, "model") == 0 && ke - kb == 5) ||
        (strcmp(kind.s, "listen") == 0 && ke - kb == 6) ||
        (strcmp(kind.s, "stream") == 0 && ke - kb == 6)) {
        const int k = kind.s[0] == 'm' ? SEC_MODEL : kind.s[0] == 'l' ? SEC_LISTEN : SEC_STREAM;
        cvd_conf *c = ps->c;
        if (ne == nb)
            return fail(ps, CVD_EFORMAT, line, "[%s]: needs a name, as in [%s NAME]", kind.s,
                        kind.s);
        if (!valid_name_n(nb, (size_t)(ne - nb)))
            return fail(ps, CVD_EFORMAT, line, "[%s %s]: invalid name (" NAME_RULE ")", kind.s,
                        show_n(nb, (size_t)(ne - nb)).s);
        memcpy(name, nb, (size_t)(ne - nb));
        name[ne - nb] = '\0';
        if (k == SEC_MODEL) {
            for (int i = 0; i < c->n_models; i++)
                if (strcmp(c->models[i].name, name) == 0)
                    return fail(ps, CVD_EFORMAT, line,
                                "[model %s]: duplicate section (first at line %d)", name,
                                c->models[i].line);
            if (grow(ps, k))
                return ps->code;
            cvd_conf_model *m = &c->models[c->n_models];
            memset(m, 0, sizeof *m);
            strcpy(m->name, name);
            m->line = line;
            ps->index = c->n_models++;
        } else if (k == SEC_STREAM) {
            for (int i = 0; i < c->n_streams; i++)
                if (strcmp(c->streams[i].name, name) == 0)
                    return fail(ps, CVD_EFORMAT, line,
                                "[stream %s]: duplicate section (first at line %d)", name,
                                c->streams[i].line);
            if (grow(ps, k))
                return ps->code;
            cvd_conf_stream *st = &c->streams[c->n_streams];
            memset(st, 0, sizeof *st);
            strcpy(st->name, name);
            strcpy(st->input, "default");
            strcpy(st->output, "default");
            st->rate = 48000;
            st->channels = 0;
            st->block = 64;
            st->model_index = -1;
            st->publish = 0;
            st->jitter = 0;
            st->realtime = 1;
            st->line = line;
            memset(&ps->sl[c->n_streams], 0, sizeof ps->sl[0]);
            ps->index = c->n_streams++;
        } else {
            for (int i = 0; i < c->n_listens; i++)
                if (strcmp(c->listens[i].name, name) == 0)
                    return fail(ps, CVD_EFORMAT, line,
                                "[listen %s]: duplicate section (first at line %d)", name,
                                c->listens[i].line);
            if (grow(ps, k))
                return ps->code;
            cvd_conf_listen *l = &c->listens[c->n_listens];
            memset(l, 0, sizeof *l);
            strcpy(l->name, name);
            l->protocol = CVD_PROTO_RAW;
            l->model_index = -1;
            l->format = CVD_FMT_F32LE;
            l->channels = 0;
            l->rate = 48000;
            l->block = 64;
            l->line = line;
            memset(&ps->ll[c->n_listens], 0, sizeof ps->ll[0]);
            ps->index = c->n_listens++;
        }
        ps->kind = k;
        snprintf(ps->label, sizeof ps->label, "[%s %s]", kind.s, name);
        return 0;
    }
    return fail(ps, CVD_EFORMAT, line,
                "[%s]: unknown section (expected [server], [model NAME], [listen NAME] or "
                "[stream NAME])",
                whole.s);
}

/* ---- inih glue ---------------------------------------------------------------------------- */

/* inih's fgets-like reader: one physical line per call, prepared as described at the top. */
static char *reader(char *str, int num, void *stream)
{
    pstate *ps = stream;
    const char *b, *e, *nl, *eq, *nb, *ne, *vb, *ve;

    free(ps->long_value);
    ps->long_value = NULL;
    if (ps->code != 0 || ps->p >= ps->end || num < 2)
        return NULL;
    b = ps->p;
    nl = memchr(b, '\n', (size_t)(ps->end - b));
    e = nl ? nl : ps->end;
    ps->p = nl ? nl + 1 : ps->end;
    ps->lineno++;
    if (e > b && e[-1] == '\r')
        e--;
    if (ps->lineno == 1 && e - b >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0)
        b += 3; /* UTF-8 byte order mark */
    for (const char *q = b; q < e; q++) {
        unsigned char ch = (unsigned char)*q;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            fail(ps, CVD_EFORMAT, ps->lineno,
                 "byte 0x%02x at column %ld is not text (is this a configuration file?)", ch,
                 (long)(q - b) + 1);
            return NULL;
        }
    }
    while (b < e && is_blank(*b))
        b++;
    while (e > b && is_blank(e[-1]))
        e--;
    str[0] = '\0';
    if (b == e || *b == ';' || *b == '#')
        return str;
    if (*b == '[')
        return section_header(ps, b, e) == 0 ? str : NULL;

    eq = memchr(b, '=', (size_t)(e - b));
    if (eq == NULL) {
        fail(ps, CVD_EFORMAT, ps->lineno, "%s: expected 'directive = value'",
             show_n(b, (size_t)(e - b)).s);
        return NULL;
    }
    nb = b;
    for (ne = eq; ne > nb && is_blank(ne[-1]); ne--)
        ;
    if (ne == nb) {
        fail(ps, CVD_EFORMAT, ps->lineno, "missing directive name before '='");
        return NULL;
    }
    if (!valid_name_n(nb, (size_t)(ne - nb))) {
        unknown_directive(ps, nb, (size_t)(ne - nb));
        return NULL;
    }
    /* the value: blanks trimmed, and a comment from a ';' or '#' that starts it or follows a
     * blank ("path = a#b.nam" keeps its '#') */
    for (vb = eq + 1; vb < e && is_blank(*vb); vb++)
        ;
    for (ve = vb; ve < e; ve++)
        if ((*ve == ';' || *ve == '#') && (ve == vb || is_blank(ve[-1])))
            break;
    while (ve > vb && is_blank(ve[-1]))
        ve--;

    const size_t nlen = (size_t)(ne - nb), vlen = (size_t)(ve - vb);
    if (nlen + 1 + vlen + 1 <= (size_t)num) {
        memcpy(str, nb, nlen);
        str[nlen] = '=';
        memcpy(str + nlen + 1, vb, vlen);
        str[nlen + 1 + vlen] = '\0';
    } else if (nlen + 2 <= (size_t)num) {
        ps->long_value = strndup(vb, vlen);
        if (ps->long_value == NULL) {
            nomem(ps);
            return NULL;
        }
        memcpy(str, nb, nlen);
        str[nlen] = '=';
        str[nlen + 1] = '\0';
    } else {
        fail(ps, CVD_EFORMAT, ps->lineno, "inih's line buffer (%d bytes) is too small", num);
        return NULL;
    }
    return str;
}

#if INI_HANDLER_LINENO
static int on_pair(void *user, const char *section, const char *name, const char *value, int lineno)
#else
static int on_pair(void *user, const char *section, const char *name, const char *value)
#endif
{
    pstate *ps = user;
    (void)section; /* always "": reader() keeps the sections */
#if INI_HANDLER_LINENO
    (void)lineno; /* the same as ps->lineno */
#endif
    if (ps->code != 0)
        return 0;
    if (ps->long_value != NULL)
        value = ps->long_value;
    return directive(ps, name, value ? value : "") == 0;
}

/* ---- whole-file checks -------------------------------------------------------------------- */

static void finish(pstate *ps)
{
    cvd_conf *c = ps->c;
    char a[96];

    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].path == NULL)
            fail(ps, CVD_EFORMAT, c->models[i].line,
                 "[model %s]: missing 'path' (a .nam, .json, .keras or .h5 file, or builtin:NAME)",
                 c->models[i].name);
    for (int i = 0; i < c->n_listens; i++) {
        cvd_conf_listen *l = &c->listens[i];
        const listen_lines *ll = &ps->ll[i];
        if (!ll->address)
            fail(ps, CVD_EFORMAT, l->line, "[listen %s]: missing 'address' (HOST:PORT)", l->name);
        if (!ll->protocol)
            fail(ps, CVD_EFORMAT, l->line, "[listen %s]: missing 'protocol' (raw | framed | line)",
                 l->name);
        else if (ll->format && l->protocol != CVD_PROTO_RAW)
            fail(ps, CVD_EFORMAT, ll->format,
                 "format: only raw listeners have a sample format (a %s listener %s)",
                 cvd_proto_name(l->protocol),
                 l->protocol == CVD_PROTO_LINE ? "reads text" : "negotiates it in HELLO");
        if (ll->model) {
            l->model_index = cvd_conf_find_model(c, l->model);
            if (l->model_index < 0)
                fail(ps, CVD_EFORMAT, ll->model, "model: no [model %s] section", l->model);
        } else if (ll->protocol && l->protocol != CVD_PROTO_FRAMED) {
            fail(ps, CVD_EFORMAT, l->line, "[listen %s]: a %s listener needs 'model'", l->name,
                 cvd_proto_name(l->protocol));
        }
        if (!ll->address || l->port == 0)
            continue;
        hostport(a, sizeof a, l->family, l->host, l->port);
        for (int j = 0; j < i; j++) {
            const cvd_conf_listen *o = &c->listens[j];
            if (ps->ll[j].address && o->port == l->port && o->family == l->family &&
                strcmp(o->host, l->host) == 0)
                fail(ps, CVD_EFORMAT, ll->address,
                     "address: %s is already the address of [listen %s] (line %d)", a, o->name,
                     ps->ll[j].address);
        }
        if (c->metrics_enabled && c->metrics_port == l->port && c->metrics_family == l->family &&
            strcmp(c->metrics_host, l->host) == 0) {
            if (ps->metrics_line > ll->address)
                fail(ps, CVD_EFORMAT, ps->metrics_line,
                     "metrics: %s is already the address of [listen %s] (line %d)", a, l->name,
                     ll->address);
            else
                fail(ps, CVD_EFORMAT, ll->address,
                     "address: %s is already the metrics address (line %d)", a, ps->metrics_line);
        }
    }
    for (int i = 0; i < c->n_streams; i++) {
        cvd_conf_stream *st = &c->streams[i];
        const stream_lines *sl = &ps->sl[i];
        const int in = st->input[0] != '\0', out = st->output[0] != '\0';
        if (sl->model) {
            st->model_index = cvd_conf_find_model(c, st->model);
            if (st->model_index < 0)
                fail(ps, CVD_EFORMAT, sl->model, "model: no [model %s] section", st->model);
        }
        if (!out && st->n_out_map)
            fail(ps, CVD_EFORMAT, st->out_map_line,
                 "output_channels: a stream with output = none plays nothing");
        if (!in && !out) {
            fail(ps, CVD_EFORMAT, st->line, "[stream %s]: input and output are both none: "
                 "nothing to do", st->name);
            continue;
        }
        if (in) {
            if (sl->source)
                fail(ps, CVD_EFORMAT, sl->source,
                     "source: only an output-only stream (input = none) plays a published "
                     "stream");
            if (sl->jitter)
                fail(ps, CVD_EFORMAT, sl->jitter,
                     "jitter: only an output-only stream (input = none) has a jitter buffer");
            if (!out && !st->publish)
                fail(ps, CVD_EFORMAT, st->line,
                     "[stream %s]: output = none and publish = no: its frames would go nowhere",
                     st->name);
            if (st->n_in_map && st->channels && st->n_in_map != st->channels)
                fail(ps, CVD_EFORMAT, st->in_map_line,
                     "input_channels: %d channels listed, but channels = %d", st->n_in_map,
                     st->channels);
            /* the stream's channels are the listed ones */
            if (st->n_in_map && !st->channels)
                st->channels = st->n_in_map;
        } else {
            if (st->n_in_map)
                fail(ps, CVD_EFORMAT, st->in_map_line,
                     "input_channels: an output-only stream (input = none) captures nothing");
            if (!sl->source)
                fail(ps, CVD_EFORMAT, st->line,
                     "[stream %s]: an output-only stream (input = none) needs 'source' (the "
                     "published stream it plays)",
                     st->name);
            if (sl->model)
                fail(ps, CVD_EFORMAT, sl->model,
                     "model: an output-only stream plays its source as it is (no model)");
            if (sl->publish && st->publish)
                fail(ps, CVD_EFORMAT, sl->publish,
                     "publish: an output-only stream has nothing of its own to publish");
        }
    }
    if (c->n_listens == 0 && c->n_streams == 0)
        fail(ps, CVD_EFORMAT, ps->lineno > 0 ? ps->lineno : 1,
             "no [listen NAME] or [stream NAME] section: there is nothing to serve");
}

/* ---- entry points ------------------------------------------------------------------------- */

static void defaults(cvd_conf *c)
{
    c->workers = 0;
    c->log_level = CVD_LOG_INFO;
    c->metrics_enabled = 0;
    c->metrics_port = 0;
    c->metrics_family = AF_INET;
    c->max_clients = 256;
    c->max_message = 1048576;
    c->handshake_timeout = 5;
    c->idle_timeout = 300;
    c->shutdown_timeout = 5;
    c->queue_limit = 1048576;
    c->slow_disconnect = 0;
    c->nonfinite_pass = 0;
}

static int parse_buffer(const char *text, size_t len, const char *name, const char *dir,
                        cvd_conf **out, cvd_err *err)
{
    pstate ps;
    cvd_conf *c;
    int r;

    memset(&ps, 0, sizeof ps);
    ps.file = name ? name : "(config)";
    ps.dir = dir;
    ps.err = err;
    ps.p = text;
    ps.end = text + len;
    ps.kind = SEC_NONE;

    c = calloc(1, sizeof *c);
    if (c == NULL)
        return nomem(&ps);
    ps.c = c;
    defaults(c);
    c->file = strdup(ps.file);
    if (c->file == NULL || (dir != NULL && (c->dir = strdup(dir)) == NULL)) {
        nomem(&ps);
    } else {
        r = ini_parse_stream(reader, &ps, on_pair, &ps);
        free(ps.long_value);
        if (ps.code == 0 && r == -2)
            nomem(&ps);
        else if (ps.code == 0 && r != 0)
            fail(&ps, CVD_EFORMAT, r > 0 ? r : 0, "syntax error");
        if (ps.code == 0)
            finish(&ps);
    }
    free(ps.ll);
    free(ps.sl);
    if (ps.code != 0) {
        cvd_conf_free(c);
        return ps.code;
    }
    *out = c;
    return 0;
}

int cvd_conf_parse(const char *text, const char *name, const char *dir, cvd_conf **out,
                   cvd_err *err)
{
    if (out == NULL)
        return cvd_err_set(err, CVD_EINVAL, "cvd_conf_parse: out is NULL");
    *out = NULL;
    if (text == NULL)
        return cvd_err_set(err, CVD_EINVAL, "cvd_conf_parse: text is NULL");
    return parse_buffer(text, strlen(text), name, dir, out, err);
}

int cvd_conf_load_default(cvd_conf **out, cvd_err *err)
{
    return cvd_conf_parse(cvd_conf_default_text, "(built-in default)", NULL, out, err);
}

int cvd_conf_load(const char *path, cvd_conf **out, cvd_err *err)
{
    FILE *f;
    char *buf = NULL, *dir = NULL, *abs;
    size_t len = 0, cap = 0;
    const char *slash;
    int r;

    if (out == NULL)
        return cvd_err_set(err, CVD_EINVAL, "cvd_conf_load: out is NULL");
    *out = NULL;
    if (path == NULL)
        return cvd_err_set(err, CVD_EINVAL, "cvd_conf_load: path is NULL");
    f = fopen(path, "rb");
    if (f == NULL)
        return cvd_err_set(err, CVD_EIO, "%s: cannot open: %s", path, strerror(errno));
    for (;;) {
        size_t got;
        if (len > CVD_CONF_FILE_MAX)
            break;
        if (len == cap) {
            char *nb;
            cap = cap ? 2 * cap : 8192;
            nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                fclose(f);
                free(buf);
                return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        return cvd_err_set(err, CVD_EIO, "%s: cannot read: %s", path, strerror(e));
    }
    fclose(f);
    if (len > CVD_CONF_FILE_MAX) {
        free(buf);
        return cvd_err_set(err, CVD_EFORMAT, "%s: larger than %u MiB (not a configuration file?)",
                           path, CVD_CONF_FILE_MAX >> 20);
    }
    buf[len] = '\0';

    /* the file's folder, absolute */
    slash = strrchr(path, '/');
    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
        free(buf);
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
    }
    abs = realpath(dir, NULL);
    if (abs != NULL) {
        free(dir);
        dir = abs;
    }
    r = parse_buffer(buf, len, path, dir, out, err);
    free(dir);
    free(buf);
    return r;
}

void cvd_conf_free(cvd_conf *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n_models; i++)
        free(c->models[i].path);
    free(c->models);
    free(c->listens);
    free(c->streams);
    free(c->file);
    free(c->dir);
    free(c);
}

int cvd_conf_find_stream(const cvd_conf *c, const char *name)
{
    if (c == NULL || name == NULL)
        return -1;
    for (int i = 0; i < c->n_streams; i++)
        if (strcmp(c->streams[i].name, name) == 0)
            return i;
    return -1;
}

int cvd_conf_find_model(const cvd_conf *c, const char *name)
{
    if (c == NULL || name == NULL)
        return -1;
    for (int i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return i;
    return -1;
}
