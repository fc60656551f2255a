/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration's directives as one table (config.h): each row says its section, name,
 * type, range, default, the field it sets, and the words of docs/CONFIG.md. The readers of
 * the values are here too; config.c reads the text, the sections and what involves several
 * directives.
 *
 * Long because: it is the table itself, a row per directive with its words for docs/CONFIG.md,
 * kept in one place so that adding a directive stays one row.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"
#include "nats_wire.h" /* [nats]: durations, sizes, subject tokens */

/* ---- names -------------------------------------------------------------------------------- */

static const cvd_conf_choice proto_choices[] = {
    {"raw", CVD_PROTO_RAW}, {"framed", CVD_PROTO_FRAMED}, {"line", CVD_PROTO_LINE}, {NULL, 0}};
static const cvd_conf_choice level_choices[] = {{"error", CVD_LOG_ERROR},
                                                {"warning", CVD_LOG_WARNING},
                                                {"info", CVD_LOG_INFO},
                                                {"debug", CVD_LOG_DEBUG},
                                                {NULL, 0}};
static const cvd_conf_choice slow_choices[] = {{"drop", 0}, {"disconnect", 1}, {NULL, 0}};
static const cvd_conf_choice nonfinite_choices[] = {{"reject", 0}, {"pass", 1}, {NULL, 0}};
static const cvd_conf_choice bool_choices[] = {{"no", 0}, {"yes", 1}, {NULL, 0}};
static const cvd_conf_choice blocking_choices[] = {{"eager", 1}, {"fixed", 0}, {NULL, 0}};
static const cvd_conf_choice model_type_choices[] = {
    {"auto", CVD_CONF_MODEL_AUTO}, {"ir", CVD_CONF_MODEL_IR}, {NULL, 0}};

static const cvd_conf_choice *choice_of(const cvd_conf_choice *c, const char *s)
{
    for (; c->name; c++)
        if (strcasecmp(c->name, s) == 0)
            return c;
    return NULL;
}

static const char *choice_name(const cvd_conf_choice *c, int value)
{
    for (; c->name; c++)
        if (c->value == value)
            return c->name;
    return "?";
}

const char *cvd_proto_name(cvd_proto p)
{
    return choice_name(proto_choices, (int)p);
}

const char *cvd_sample_fmt_name(cvd_sample_fmt f)
{
    return cvd_sample_bytes((int)f) ? cvd_sample_format_name((int)f) : "?";
}

const char *cvd_log_level_name(int level)
{
    return choice_name(level_choices, level);
}

int cvd_proto_parse(const char *s, cvd_proto *out)
{
    const cvd_conf_choice *c = s ? choice_of(proto_choices, s) : NULL;
    if (c == NULL)
        return -1;
    *out = (cvd_proto)c->value;
    return 0;
}

int cvd_sample_fmt_parse(const char *s, cvd_sample_fmt *out)
{
    cvd_sample_format f;
    if (s == NULL || cvd_sample_format_parse(s, &f) < 0)
        return -1;
    *out = f;
    return 0;
}

int cvd_log_level_parse(const char *s)
{
    const cvd_conf_choice *c = s ? choice_of(level_choices, s) : NULL;
    return c ? c->value : -1;
}

const char *cvd_conf_section_name(int section)
{
    static const char *const names[] = {"?", "server", "model", "listen", "stream", "nats"};
    return section >= CVD_CONF_SERVER && section <= CVD_CONF_NATS ? names[section] : "?";
}

/* ---- values ------------------------------------------------------------------------------- */

#define FIELD(sec, off, type) ((type *)(void *)((char *)(sec) + (off)))

/* what follows the range in a message: the note, or the unit in parentheses */
static void range_note(const cvd_conf_directive *d, char *buf, size_t n)
{
    if (d->note)
        snprintf(buf, n, "%s", d->note);
    else if (d->unit && d->type != CVD_CONF_SECONDS)
        snprintf(buf, n, " (%s)", d->unit);
    else
        buf[0] = '\0';
}

/* A whole number in lo..hi ("-5", "+7" and "0012" are numbers; out-of-range values saturate
 * while reading so that the message shows what was written). */
static int get_int(pstate *ps, const cvd_conf_directive *d, const char *v, long long *out)
{
    const char *s = v;
    const long long lo = (long long)d->lo, hi = (long long)d->hi;
    int neg = 0;
    long long x = 0;
    char note[96];

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
    range_note(d, note, sizeof note);
    if (x < lo || x > hi)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s is out of range %lld..%lld%s",
                             d->name, cvd_conf_show_n(v, strlen(v)).s, lo, hi, note);
    *out = x;
    return 0;
nan:
    return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a whole number", d->name,
                         cvd_conf_show_n(v, strlen(v)).s);
}

/* Seconds: a decimal number ("5", "0.25", "1e-1") in lo..hi. */
static int get_seconds(pstate *ps, const cvd_conf_directive *d, const char *v, double *out)
{
    int digits = 0;
    char *end, note[96];
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
    range_note(d, note, sizeof note);
    if (!isfinite(x) || x < d->lo || x > d->hi)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s is out of range %g..%g seconds%s",
                             d->name, cvd_conf_show_n(v, strlen(v)).s, d->lo, d->hi, note);
    *out = x;
    return 0;
nan:
    return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a number of seconds",
                         d->name, cvd_conf_show_n(v, strlen(v)).s);
}

static int get_choice(pstate *ps, const cvd_conf_directive *d, const char *v, int *out)
{
    char list[128] = "";
    const cvd_conf_choice *c = choice_of(d->choices, v);
    if (c != NULL) {
        *out = c->value;
        return 0;
    }
    for (const cvd_conf_choice *k = d->choices; k->name; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 k == d->choices ? "" : " | ", k->name);
    return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not one of %s", d->name,
                         cvd_conf_show_n(v, strlen(v)).s, list);
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
    const shown vs = cvd_conf_show_n(v, strlen(v));

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL) {
            snprintf(why, whysz, "'%s': missing ']' after the IPv6 address", vs.s);
            return -1;
        }
        if (close[1] != ':') {
            snprintf(why, whysz, "'%s' is not [IPv6]:PORT", vs.s);
            return -1;
        }
        hp = v + 1;
        hn = (size_t)(close - hp);
        pp = close + 2;
        fam = AF_INET6;
    } else {
        const char *colon = strrchr(v, ':');
        if (colon == NULL) {
            snprintf(why, whysz, "'%s' is not HOST:PORT", vs.s);
            return -1;
        }
        if (memchr(v, ':', (size_t)(colon - v)) != NULL) {
            snprintf(why, whysz, "'%s': an IPv6 address goes in brackets, as in [::1]:7400", vs.s);
            return -1;
        }
        hp = v;
        hn = (size_t)(colon - v);
        pp = colon + 1;
        fam = AF_INET;
    }
    if (hn == 0) {
        snprintf(why, whysz, "'%s': missing host before the port", vs.s);
        return -1;
    }
    if (hn >= sizeof h) {
        snprintf(why, whysz, "'%s': not a numeric address", vs.s);
        return -1;
    }
    memcpy(h, hp, hn);
    h[hn] = '\0';
    if (fam == AF_INET && strcasecmp(h, "localhost") == 0)
        strcpy(h, "127.0.0.1");
    if (inet_pton(fam, h, bin) != 1) {
        if (fam == AF_INET6)
            snprintf(why, whysz, "'%s' is not an IPv6 address", cvd_conf_show_n(h, hn).s);
        else
            snprintf(why, whysz,
                     "'%s' is not an IPv4 address, [IPv6] address or localhost (host names "
                     "are not looked up)",
                     cvd_conf_show_n(h, hn).s);
        return -1;
    }
    if (*pp == '\0' || strlen(pp) > 5 || strspn(pp, "0123456789") != strlen(pp)) {
        snprintf(why, whysz, "'%s' is not a port number (0..65535)",
                 cvd_conf_show_n(pp, strlen(pp)).s);
        return -1;
    }
    x = strtol(pp, NULL, 10);
    if (x > 65535) {
        snprintf(why, whysz, "port %s is out of range 0..65535", pp);
        return -1;
    }
    if (inet_ntop(fam, bin, host, CVD_CONF_HOST_MAX) == NULL) {
        snprintf(why, whysz, "'%s': cannot format the address", cvd_conf_show_n(h, hn).s);
        return -1;
    }
    *port = (int)x;
    *family = fam;
    return 0;
}

/* [listen] address */
static int set_listen_address(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    cvd_conf_listen *l = sec;
    char why[256];
    if (parse_address(v, l->host, &l->port, &l->family, why, sizeof why))
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s", d->name, why);
    return 0;
}

/* [server] metrics: an address, or none */
static int set_metrics(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    cvd_conf *c = sec;
    char why[256];
    if (strcasecmp(v, "none") == 0) {
        c->metrics_enabled = 0;
        c->metrics_host[0] = '\0';
        c->metrics_port = 0;
        c->metrics_family = AF_INET;
        return 0;
    }
    if (parse_address(v, c->metrics_host, &c->metrics_port, &c->metrics_family, why, sizeof why))
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s", d->name, why);
    c->metrics_enabled = 1;
    return 0;
}

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

/* The folder where captures live: $CONVD_MODEL_DIR, else CVD_CONF_MODEL_DIR. */
static const char *model_dir(void)
{
    const char *d = getenv("CONVD_MODEL_DIR");
    return d != NULL && d[0] != '\0' ? d : CVD_CONF_MODEL_DIR;
}

/* A relative path: in the models folder if it is there, else joined to dir (each side of a
 * CONFIG+WEIGHTS pair on its own); malloc'd. */
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
    if (v[0] != '/') {
        const char *md = model_dir();
        char *r = malloc(strlen(md) + strlen(v) + 2);
        if (r == NULL)
            return NULL;
        sprintf(r, "%s/%s", md, v);
        if (access(r, F_OK) == 0)
            return r;
        free(r);
    }
    if (v[0] != '/' && dir != NULL && dir[0] != '\0') {
        size_t dl = strlen(dir);
        int slash = dir[dl - 1] == '/';
        char *r = malloc(dl + !slash + strlen(v) + 1);
        if (r)
            sprintf(r, "%s%s%s", dir, slash ? "" : "/", v);
        return r;
    }
    return strdup(v);
}

/* [model] path */
static int set_model_path(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    cvd_conf_model *m = sec;
    const int line = ps->lineno;
    size_t n = strlen(v);
    (void)d;

    if (n > CVD_CONF_PATH_MAX)
        return cvd_conf_fail(ps, CVD_EFORMAT, line, "path: longer than %d bytes",
                             CVD_CONF_PATH_MAX);
    if (strncmp(v, "builtin:", 8) == 0) {
        if (!cvd_conf_valid_name_n(v + 8, strlen(v + 8)))
            return cvd_conf_fail(ps, CVD_EFORMAT, line,
                                 "path: '%s': a built-in model is builtin:NAME, NAME " NAME_RULE,
                                 cvd_conf_show_n(v, n).s);
        m->builtin = 1;
        m->path = strdup(v);
    } else {
        /* what cvd_model_load reads: .nam, convd's .json, Keras's .keras and .h5, and
         * CONFIG.json+WEIGHTS.h5 (a Keras config with a weights-only file) */
        if (!has_ext(v, ".nam") && !has_ext(v, ".json") && !has_ext(v, ".keras") &&
            !has_ext(v, ".h5") && !has_ext(v, ".hdf5") && !has_ext(v, ".wav") &&
            !has_ext(v, ".flac") && !has_ext(v, ".aif") && !has_ext(v, ".aiff") &&
            !has_ext(v, ".ogg"))
            m->path_ext_line = line; /* an error unless type = ir (checked at the end) */
        m->path = resolve_model_path(ps->dir, v);
    }
    return m->path ? 0 : cvd_conf_fail(ps, CVD_ENOMEM, 0, "out of memory");
}

/* input_channels, output_channels: 1-based device channels, comma-separated ("2", "1,2",
 * "2, 2"), into a short[CVD_CONF_MAP_MAX] at offset, 0-based, and its count (int) at
 * offset2 */
static int set_channel_map(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    short *map = FIELD(sec, d->offset, short);
    int *n = FIELD(sec, d->offset2, int);
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
            break;
        if (*n == CVD_CONF_MAP_MAX)
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: more than %d channels", d->name,
                                 CVD_CONF_MAP_MAX);
        map[(*n)++] = (short)(ch - 1);
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            return 0;
        if (*s++ != ',')
            break;
    }
    return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                         "%s: '%s': a list of channels, 1 to 1024, separated by commas "
                         "(\"2\", \"1,2\")",
                         d->name, cvd_conf_show_n(v, strlen(v)).s);
}

/* [listen] tls_cert, tls_key, tls_client_ca, tokens: a file's path, relative to the config's
 * folder as model paths are, at most CVD_CONF_PATH_MAX bytes, into char[PATH_MAX + 1]; the
 * file is read when the runtime is made (start, reload, --check), not here. */
static int set_file(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    char *r;
    if (v[0] == '\0')
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: empty (leave it out for none)",
                             d->name);
    if (v[0] != '/' && ps->dir != NULL && ps->dir[0] != '\0') {
        size_t dl = strlen(ps->dir);
        int slash = ps->dir[dl - 1] == '/';
        r = malloc(dl + !slash + strlen(v) + 1);
        if (r)
            sprintf(r, "%s%s%s", ps->dir, slash ? "" : "/", v);
    } else {
        r = strdup(v);
    }
    if (r == NULL)
        return cvd_conf_fail(ps, CVD_ENOMEM, 0, "out of memory");
    if (strlen(r) > CVD_CONF_PATH_MAX) {
        free(r);
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: longer than %d bytes", d->name,
                             CVD_CONF_PATH_MAX);
    }
    strcpy(FIELD(sec, d->offset, char), r);
    free(r);
    return 0;
}

/* [listen] allow, [server] metrics_allow: a list of addresses and networks, into a cvd_acl */
static int set_acl(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    char why[256];
    if (cvd_acl_parse(v, FIELD(sec, d->offset, cvd_acl), why, sizeof why) < 0)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s", d->name, why);
    return 0;
}

_Static_assert(offsetof(cvd_conf_stream, n_chain) ==
                   offsetof(cvd_conf_stream, chain) + sizeof(((cvd_conf_stream *)0)->chain) +
                       sizeof(((cvd_conf_stream *)0)->chain_index),
               "set_model_list's layout");
_Static_assert(offsetof(cvd_conf_listen, n_chain) ==
                   offsetof(cvd_conf_listen, chain) + sizeof(((cvd_conf_listen *)0)->chain) +
                       sizeof(((cvd_conf_listen *)0)->chain_index),
               "set_model_list's layout");

/* A decimal number of dB in lo..hi, into a double */
static int set_decibels(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    char *end;
    int digits = 0;
    for (const char *s = v; *s; s++) {
        if (*s >= '0' && *s <= '9')
            digits = 1;
        else if (!strchr(".eE+-", *s))
            digits = -1000;
    }
    double x = digits > 0 ? strtod(v, &end) : 0;
    if (digits <= 0 || *end != '\0')
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not a number of dB", d->name,
                             cvd_conf_show_n(v, strlen(v)).s);
    if (!isfinite(x) || x < d->lo || x > d->hi)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s is out of range %g..%g %s",
                             d->name, cvd_conf_show_n(v, strlen(v)).s, d->lo, d->hi,
                             d->unit ? d->unit : "dB");
    *FIELD(sec, d->offset, double) = x;
    return 0;
}

/* ---- [nats NAME] values (docs/SCALE.md) ---------------------------------------------------- */

/* text of lo..hi bytes into a char[offset2] */
static int set_nats_text(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    size_t n = strlen(v);
    if ((double)n < d->lo || (double)n > d->hi || n >= d->offset2)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' must be %g to %g bytes long",
                             d->name, cvd_conf_show_n(v, n).s, d->lo, d->hi);
    memcpy(FIELD(sec, d->offset, char), v, n + 1);
    return 0;
}

/* a file, relative to the configuration file's folder, into a char[offset2] */
static int set_nats_path(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    char *field = FIELD(sec, d->offset, char);
    int w;
    if (v[0] == '/' || ps->dir == NULL || ps->dir[0] == '\0')
        w = snprintf(field, d->offset2, "%s", v);
    else
        w = snprintf(field, d->offset2, "%s/%s", ps->dir, v);
    if (w < 0 || (size_t)w >= d->offset2)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: the path is longer than %zu bytes",
                             d->name, d->offset2 - 1);
    return 0;
}

/* seconds, or a number with s, m, h or d, in lo..hi, into a double */
static int set_nats_seconds(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    double x;
    if (cvd_nats_parse_seconds(v, &x) < 0)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: '%s' is not a duration (seconds, or a number with s, m, h or d)",
                             d->name, cvd_conf_show_n(v, strlen(v)).s);
    if (x < d->lo || x > d->hi)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: %s is out of range %g..%g seconds",
                             d->name, cvd_conf_show_n(v, strlen(v)).s, d->lo, d->hi);
    *FIELD(sec, d->offset, double) = x;
    return 0;
}

/* model = a, b, c: [model] names in order, into chain[] and n_chain (offset2: the struct's
 * chain, the int n_chain right after its CVD_CONF_CHAIN_MAX entries and their indexes); the
 * first also into model (offset) */
static int set_model_list(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    char(*chain)[CVD_CONF_NAME_MAX + 1] = (void *)((char *)sec + d->offset2);
    int *n =
        (int *)(void *)((char *)chain + sizeof(char[CVD_CONF_CHAIN_MAX][CVD_CONF_NAME_MAX + 1]) +
                        sizeof(int[CVD_CONF_CHAIN_MAX]));
    char *first = FIELD(sec, d->offset, char);
    const char *s = v;
    *n = 0;
    first[0] = '\0';
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        const char *a = s;
        while (*s && *s != ',')
            s++;
        const char *b = s;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (!cvd_conf_valid_name_n(a, (size_t)(b - a)) && strchr(v, ',') == NULL)
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                                 "%s: '%s' is not a model name (" NAME_RULE ")", d->name,
                                 cvd_conf_show_n(v, strlen(v)).s);
        if (!cvd_conf_valid_name_n(a, (size_t)(b - a)))
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                                 "%s: '%s' is not a model name (" NAME_RULE
                                 "), nor a list of them separated by commas",
                                 d->name, cvd_conf_show_n(a, (size_t)(b - a)).s);
        if (*n == CVD_CONF_CHAIN_MAX)
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: more than %d models", d->name,
                                 CVD_CONF_CHAIN_MAX);
        memcpy(chain[*n], a, (size_t)(b - a));
        chain[*n][b - a] = '\0';
        (*n)++;
        if (*s == '\0')
            break;
        s++; /* the comma */
    }
    memmove(first, chain[0], strlen(chain[0]) + 1);
    return 0;
}

/* [server] control_socket: a path (an absolute one, fitting a Unix socket address), "none",
 * or "auto" (stored as "") */
static int set_control_socket(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    cvd_conf *c = sec;
    if (strcasecmp(v, "auto") == 0) {
        c->control_socket[0] = '\0';
        return 0;
    }
    if (strcasecmp(v, "none") == 0) {
        strcpy(c->control_socket, "none");
        return 0;
    }
    if (v[0] != '/')
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: '%s' is not an absolute path (nor auto or none)", d->name,
                             cvd_conf_show_n(v, strlen(v)).s);
    if (strlen(v) >= sizeof c->control_socket)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: longer than %zu bytes (a Unix socket's path)", d->name,
                             sizeof c->control_socket - 1);
    strcpy(c->control_socket, v);
    return 0;
}

/* bytes, or a number with K, M, G or T; -1: no limit; into an int64_t */
static int set_nats_bytes(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    int64_t x;
    if (cvd_nats_parse_bytes(v, &x) < 0)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: '%s' is not a size (bytes, or a number with K, M, G or T; -1: "
                             "no limit)",
                             d->name, cvd_conf_show_n(v, strlen(v)).s);
    if (x == 0 || (double)x > d->hi)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: %s is out of range (1 byte to 9e18, or -1: no limit)", d->name,
                             cvd_conf_show_n(v, strlen(v)).s);
    *FIELD(sec, d->offset, int64_t) = x;
    return 0;
}

/* P: tokens of A-Z a-z 0-9 _ - separated by dots */
static int set_nats_prefix(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    if (strlen(v) > 128 || !cvd_nats_prefix_valid(v))
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: '%s' is not a subject prefix (tokens of A-Z a-z 0-9 _ - "
                             "separated by dots, no wildcards, at most 128 bytes)",
                             d->name, cvd_conf_show_n(v, strlen(v)).s);
    strcpy(FIELD(sec, d->offset, char), v);
    return 0;
}

/* a JetStream stream name: no spaces, dots, wildcards or path separators */
static int set_nats_stream(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= CVD_NATS_NAME_MAX;
    for (const char *s = v; ok && *s; s++)
        if (*s <= ' ' || strchr(".*>/\\", *s) || (unsigned char)*s >= 127)
            ok = 0;
    if (!ok)
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: '%s' is not a stream name (1 to %d bytes; no spaces, '.', '*', "
                             "'>', '/')",
                             d->name, cvd_conf_show_n(v, n).s, CVD_NATS_NAME_MAX);
    strcpy(FIELD(sec, d->offset, char), v);
    return 0;
}

/* a KV bucket name: A-Z a-z 0-9 _ - */
static int set_nats_bucket(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    size_t n = strlen(v);
    if (n > CVD_NATS_NAME_MAX || !cvd_nats_id_valid(v, n))
        return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                             "%s: '%s' is not a KV bucket name (1 to %d of A-Z a-z 0-9 _ -)",
                             d->name, cvd_conf_show_n(v, n).s, CVD_NATS_NAME_MAX);
    strcpy(FIELD(sec, d->offset, char), v);
    return 0;
}

int cvd_conf_set(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v)
{
    long long x = 0;
    int rc = 0;
    switch (d->type) {
    case CVD_CONF_INT:
    case CVD_CONF_LONG:
    case CVD_CONF_SIZE:
        if ((rc = get_int(ps, d, v, &x)) != 0)
            return rc;
        if (d->type == CVD_CONF_INT)
            *FIELD(sec, d->offset, int) = (int)x;
        else if (d->type == CVD_CONF_LONG)
            *FIELD(sec, d->offset, long) = (long)x;
        else
            *FIELD(sec, d->offset, size_t) = (size_t)x;
        break;
    case CVD_CONF_SECONDS:
        rc = get_seconds(ps, d, v, FIELD(sec, d->offset, double));
        break;
    case CVD_CONF_CHOICE:
        rc = get_choice(ps, d, v, FIELD(sec, d->offset, int));
        break;
    case CVD_CONF_NAME:
        if (!cvd_conf_valid_name_n(v, strlen(v)))
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno,
                                 "%s: '%s' is not a %s name (" NAME_RULE ")", d->name,
                                 cvd_conf_show_n(v, strlen(v)).s, d->what);
        strcpy(FIELD(sec, d->offset, char), v);
        break;
    case CVD_CONF_DEVICE:
        if (strlen(v) > CVD_CONF_DEVICE_MAX)
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: longer than %d bytes", d->name,
                                 CVD_CONF_DEVICE_MAX);
        strcpy(FIELD(sec, d->offset, char), strcasecmp(v, "none") == 0 ? "" : v);
        break;
    case CVD_CONF_FORMAT:
        if (cvd_sample_format_parse(v, FIELD(sec, d->offset, cvd_sample_format)) < 0)
            return cvd_conf_fail(ps, CVD_EFORMAT, ps->lineno, "%s: '%s' is not one of %s", d->name,
                                 cvd_conf_show_n(v, strlen(v)).s, CVD_SAMPLE_FORMAT_NAMES);
        break;
    case CVD_CONF_SPECIAL:
        rc = d->set(ps, d, sec, v);
        break;
    }
    if (rc == 0 && d->line_at && !ps->defaults)
        *FIELD(sec, d->line_at, int) = ps->lineno;
    return rc;
}

/* ---- the table ---------------------------------------------------------------------------- */

/* a row: {name, type, lo, hi, default, SECTION(field), the rest by name} */
#define SERVER(f) .section = CVD_CONF_SERVER, .offset = offsetof(cvd_conf, f)
#define MODEL(f) .section = CVD_CONF_MODEL, .offset = offsetof(cvd_conf_model, f)
#define LISTEN(f) .section = CVD_CONF_LISTEN, .offset = offsetof(cvd_conf_listen, f)
#define STREAM(f) .section = CVD_CONF_STREAM, .offset = offsetof(cvd_conf_stream, f)
/* [nats]: every directive records its line in the section's at.f */
#define NATS(f)                                                                                    \
    .section = CVD_CONF_NATS, .offset = offsetof(cvd_nats_conf, f),                                \
    .line_at = offsetof(cvd_nats_conf, at.f)
#define NATS_SIZE(f) .offset2 = sizeof(((cvd_nats_conf *)0)->f)

const cvd_conf_directive cvd_conf_directives[] = {
    /* [server]: every directive has a default */
    {"workers", CVD_CONF_INT, 0, 256, "0", SERVER(workers), .note = " (0 = one per core)",
     .help = "worker threads, each with its own event loop; `0` = one per CPU core"},
    {"log_level", CVD_CONF_CHOICE, SERVER(log_level), .def = "info", .choices = level_choices,
     .help = "what goes to the log"},
    {"metrics", CVD_CONF_SPECIAL, SERVER(metrics_enabled), .def = "none", .set = set_metrics,
     .doc_range = "`HOST:PORT`, `[IPv6]:PORT` or `none`",
     .help = "address of the Prometheus endpoint (`GET /metrics`); `none` turns it off"},
    {"max_clients", CVD_CONF_INT, 1, 1000000, "256",
     .help = "client connections at once, across all listeners", SERVER(max_clients)},
    {"max_message", CVD_CONF_SIZE, 1024, 67108864, "1048576", .unit = "bytes", SERVER(max_message),
     .help = "largest framed-protocol message"},
    {"handshake_timeout", CVD_CONF_SECONDS, 0.1, 3600, "5", .unit = "seconds",
     .help = "time a framed client has, after connecting, to send HELLO",
     SERVER(handshake_timeout)},
    {"idle_timeout", CVD_CONF_SECONDS, 0, 86400, "300", .unit = "seconds", SERVER(idle_timeout),
     .note = " (0 = never)",
     .help = "a client that completes no frame (raw, line) or message (framed) for this long "
             "is closed, however many bytes it sends, counted; `0` = never"},
    {"shutdown_timeout", CVD_CONF_SECONDS, 0, 3600, "5", .unit = "seconds",
     .help = "how long SIGTERM waits for streams in flight to flush before the daemon exits",
     SERVER(shutdown_timeout)},
    {"queue_limit", CVD_CONF_SIZE, 4096, 1073741824, "1048576", .unit = "bytes",
     SERVER(queue_limit), .help = "output a client may have queued before it counts as slow"},
    {"slow_subscriber", CVD_CONF_CHOICE, SERVER(slow_disconnect), .def = "drop",
     .choices = slow_choices,
     .help = "what happens to a subscriber whose queue is full: its output that does not fit "
             "is dropped, or the client is closed"},
    {"control_socket", CVD_CONF_SPECIAL, SERVER(control_socket), .set = set_control_socket,
     .def = "auto", .doc_range = "an absolute path (at most 107 bytes), `auto` or `none`",
     .help = "convd-ctl's Unix socket (mode 0660, group convd when it exists), opened when the "
             "file has a `[stream]`; `auto`: $RUNTIME_DIRECTORY/control.sock under systemd "
             "(/run/convd/control.sock), else /run/convd/control.sock for root, "
             "$XDG_RUNTIME_DIR/convd/control.sock or /tmp/convd-UID/control.sock"},
    {"nonfinite", CVD_CONF_CHOICE, SERVER(nonfinite_pass), .def = "reject",
     .choices = nonfinite_choices,
     .help = "NaN and infinite input samples: refused with an error, or passed through the "
             "model as they are"},
    {"write_timeout", CVD_CONF_SECONDS, 0, 86400, "30", .unit = "seconds", SERVER(write_timeout),
     .note = " (0 = never)",
     .help = "a client whose output makes no progress (nothing of it taken by the client, "
             "counting what the kernel holds) for this long is reset, counted; `0` = never "
             "(docs/SECURITY.md)"},
    {"max_clients_per_address", CVD_CONF_INT, 0, 1000000, "0", SERVER(max_clients_per_address),
     .note = " (0 = no limit)",
     .help = "client connections at once from one source address, across all listeners; "
             "more are closed at accept, counted; `0` = no limit"},
    {"max_stream_memory", CVD_CONF_SIZE, 1048576, 1099511627776, "1073741824", .unit = "bytes",
     SERVER(max_stream_memory),
     .help = "the sum of the open streams' memory figures (each computed before its stream is "
             "built); a new stream past it is refused (framed ERROR `busy`, line `!ERR`, raw "
             "closed), counted"},
    {"metrics_allow", CVD_CONF_SPECIAL, SERVER(metrics_allow), .set = set_acl,
     .doc_default = "every address",
     .doc_range = "addresses and networks separated by commas: `127.0.0.1/32, 10.1.0.0/16, "
                  "[::1]/128`",
     .help = "who may read `/metrics`; others are closed at accept"},

    /* [model NAME] */
    {"path", CVD_CONF_SPECIAL, MODEL(path), .set = set_model_path,
     .line_at = offsetof(cvd_conf_model, path_line),
     .required = "a .nam, .json, .keras or .h5 file, or builtin:NAME",
     .doc_range = "a `.nam`, `.json`, `.keras`, `.h5` or `.hdf5` file (any case), an impulse "
                  "response (`.wav`, `.flac`, `.aif`, `.aiff`, `.ogg`), or `builtin:NAME`; at "
                  "most 4095 bytes",
     .help = "the model"},
    {"rate", CVD_CONF_INT, 0, 768000, "0", MODEL(rate), .unit = "Hz",
     .note = " (Hz; 0 = the file's, else the stream's)",
     .line_at = offsetof(cvd_conf_model, rate_line),
     .help = "the sample rate the model was captured at, for a file that declares none (the "
             "shared NAM standard model, many .nam files); streams at another rate resample "
             "to it. `0`: the file's rate; a file without one runs at the stream's rate (the "
             "log says so once). An error when the file declares a different rate"},
    {"type", CVD_CONF_CHOICE, MODEL(type), .def = "auto", .choices = model_type_choices,
     .line_at = offsetof(cvd_conf_model, type_line),
     .help = "`ir`: the file is an impulse response (a cabinet IR: WAV, FLAC, AIFF or Ogg "
             "through libsndfile, mono or stereo), whatever its name; `auto`: by the path's "
             "extension (`.wav`, `.flac`, `.aif`, `.aiff`, `.ogg` are impulse responses)"},
    {"ir_normalize", CVD_CONF_CHOICE, MODEL(ir_normalize), .def = "yes", .choices = bool_choices,
     .help = "impulse responses: scaled to unit energy (white noise keeps its power), as "
             "NAM's plugin does; `no`: as recorded"},
    {"normalize", CVD_CONF_CHOICE, MODEL(normalize), .def = "no", .choices = bool_choices,
     .help = "NAM's output normalisation: the output is turned to -18 dB loudness using the "
             "`.nam` file's `loudness` (a model without one is left as it is, and the log "
             "says so)"},
    {"hop", CVD_CONF_LONG, 0, 1 << 30, "0", MODEL(hop), .unit = "frames",
     .note = " (0 = the window length)", .line_at = offsetof(cvd_conf_model, hop_line),
     .help = "a windowed model (a Keras classifier with Flatten, say: [KERAS.md](KERAS.md)): "
             "its windows start every `hop` frames, each giving one record; `0` = the window "
             "length (windows side by side). An error on a model that streams frame by "
             "frame"},
    {"threads", CVD_CONF_INT, 1, 2, "1", MODEL(threads),
     .note = " (2 = a WaveNet as two pipeline stages)",
     .help = "`2`: a WaveNet (a `.nam`'s, or a Keras WaveNet that fuses) runs each TCP "
             "session's stream as two pipeline stages on two threads ([THREADS.md](THREADS.md)): "
             "one block more latency (ACCEPT reports it), the same output; a model that does "
             "not split runs on one thread. Audio streams run on one thread"},

    /* [listen NAME] */
    {"address", CVD_CONF_SPECIAL, LISTEN(host), .set = set_listen_address, .required = "HOST:PORT",
     .doc_range = "`HOST:PORT` or `[IPv6]:PORT`; port 0..65535",
     .help = "where to listen; port `0` = any free port"},
    {"protocol", CVD_CONF_CHOICE, LISTEN(protocol), .choices = proto_choices,
     .required = "raw | framed | line",
     .help = "raw samples in and out; framed messages (HELLO first); text, one frame per "
             "line"},
    {"model", CVD_CONF_SPECIAL, LISTEN(model), .set = set_model_list,
     .offset2 = offsetof(cvd_conf_listen, chain),
     .doc_default = "required for `raw` and `line`; none for `framed`",
     .doc_range = "a `[model NAME]` of this file, or several separated by commas (at most 16): "
                  "a chain, run in order",
     .help = "the model (or chain: `amp, cab`, each model at its own rate) that processes "
             "the stream; for `framed`, the one used when HELLO names none (without it, HELLO "
             "must name one)"},
    {"format", CVD_CONF_FORMAT, LISTEN(format), .def = "f32le", .doc_range = "`f32le` \\| `s16le`",
     .help = "sample format, raw listeners only (32-bit float or 16-bit integer, "
             "little-endian; also spelled `f32`, `float`, `s16`, `int16`, any case: the wire "
             "codec's parser, docs/PROTOCOL.md); an error on `line` (text) and `framed` "
             "(negotiated in HELLO)"},
    {"channels", CVD_CONF_INT, 0, 1024, "0", LISTEN(channels), .note = " (0 = the model's)",
     .help = "input channels; `0` = the model's"},
    {"rate", CVD_CONF_INT, 1, 1000000, "48000", LISTEN(rate), .unit = "frames per second",
     .line_at = offsetof(cvd_conf_listen, rate_line),
     .help = "sample rate of the stream; set, models that run at another rate are resampled "
             "to it and back (framed clients say theirs in HELLO); not set, a model runs at "
             "its own rate"},
    {"block", CVD_CONF_INT, 1, 65536, "64", LISTEN(block), .unit = "frames",
     .help = "frames processed at a time (at most; see `blocking`)"},
    {"blocking", CVD_CONF_CHOICE, LISTEN(eager), .choices = blocking_choices,
     .doc_default = "`eager` for `line` and `framed`, `fixed` for `raw`",
     .help = "`eager`: the input that has arrived runs through the model at once (at most "
             "`block` frames at a time), so a reply leaves as soon as the input that completes "
             "it is in (request/response, sensors); `fixed`: the model runs on whole blocks of "
             "`block` frames only (the last of a stream excepted), the same cuts whatever the "
             "network did, for bit-reproducible batch use. The numbers are the same either way "
             "(the model does not depend on the block size): "
             "[PROTOCOL.md](PROTOCOL.md#blocks-and-replies)"},
    {"max_block", CVD_CONF_INT, 1, 65536, "4096", LISTEN(max_block), .unit = "frames",
     .help = "the largest block a framed HELLO may ask for; more is refused (ERROR `bad_hello`)"},
    {"tls_cert", CVD_CONF_SPECIAL, LISTEN(tls_cert), .set = set_file,
     .line_at = offsetof(cvd_conf_listen, tls_cert_line),
     .doc_range = "a PEM file: the certificate, then its chain; relative to this file's folder",
     .help = "with `tls_key`: this listener speaks TLS only (1.2 at least, 1.3 preferred); "
             "re-read on SIGHUP without dropping sessions (docs/SECURITY.md)"},
    {"tls_key", CVD_CONF_SPECIAL, LISTEN(tls_key), .set = set_file,
     .line_at = offsetof(cvd_conf_listen, tls_key_line),
     .doc_range = "a PEM file: the private key of `tls_cert`",
     .help = "the certificate's private key; needs `tls_cert`"},
    {"tls_client_ca", CVD_CONF_SPECIAL, LISTEN(tls_client_ca), .set = set_file,
     .line_at = offsetof(cvd_conf_listen, tls_client_ca_line),
     .doc_range = "a PEM file of CA certificates",
     .help = "clients must present a certificate from one of these CAs (mutual TLS); needs "
             "`tls_cert`"},
    {"allow", CVD_CONF_SPECIAL, LISTEN(allow), .set = set_acl, .doc_default = "every address",
     .doc_range = "addresses and networks separated by commas: `127.0.0.1/32, 10.1.0.0/16, "
                  "[::1]/128`",
     .help = "source addresses admitted; others are closed at accept, counted"},
    {"tokens", CVD_CONF_SPECIAL, LISTEN(tokens), .set = set_file,
     .line_at = offsetof(cvd_conf_listen, tokens_line),
     .doc_range = "a file, not readable by every user: one `TOKEN ROLES` per line",
     .help = "framed listeners only: HELLO (version 2) must carry one of these tokens, whose "
             "roles and stream-name globs say what it may do; re-read on SIGHUP "
             "(docs/SECURITY.md)"},

    /* [stream NAME] */
    {"input", CVD_CONF_DEVICE, STREAM(input), .def = "default",
     .line_at = offsetof(cvd_conf_stream, input_line),
     .doc_range = "a PortAudio device: its exact name, a part of one name (case-insensitive), "
                  "its index, `default`; or `none`; at most 255 bytes",
     .help = "the capture device; `none` makes an output-only stream (it needs `source`)"},
    {"output", CVD_CONF_DEVICE, STREAM(output), .def = "default",
     .line_at = offsetof(cvd_conf_stream, output_line), .doc_range = "the same",
     .help = "the playback device; `none`: no playback (then `publish = yes` is required)"},
    {"rate", CVD_CONF_INT, 1, 1000000, "48000", STREAM(rate), .unit = "frames per second",
     .help = "the devices' rate; models that run at another rate (their file's, or their "
             "`[model] rate`) are resampled to it and back inside the callback, at a fixed "
             "latency (in the latency the log reports)"},
    {"channels", CVD_CONF_INT, 0, 1024, "0", STREAM(channels), .note = " (0 = the model's)",
     .help = "capture channels (for an output-only stream, playback channels); `0` = the "
             "model's input channels, or 1 without a model"},
    {"block", CVD_CONF_INT, 1, 65536, "64", STREAM(block), .unit = "frames",
     .help = "frames per callback, and the model's block"},
    {"model", CVD_CONF_SPECIAL, STREAM(model), .set = set_model_list,
     .offset2 = offsetof(cvd_conf_stream, chain), .line_at = offsetof(cvd_conf_stream, model_line),
     .doc_range = "a `[model NAME]` of this file, or several separated by commas, run in order "
                  "(`amp, cab`; at most 16)",
     .help = "the model, or chain of models, the audio goes through (each at its own rate, "
             "resampled where the rates differ; their latencies add up); none: unchanged. Not "
             "for output-only streams. With an output device, every model must give one output "
             "frame per input frame (streaming, no strides)"},
    {"input_gain_db", CVD_CONF_SPECIAL, -60, 60, "0", STREAM(input_gain_db), .set = set_decibels,
     .unit = "dB", .doc_range = "-60..60 dB",
     .help = "gain before the model (a .nam capture reacts to the level it is driven with)"},
    {"output_gain_db", CVD_CONF_SPECIAL, -60, 60, "0", STREAM(output_gain_db), .set = set_decibels,
     .unit = "dB", .doc_range = "-60..60 dB",
     .help = "gain after the model (and after the normalisation of models with "
             "`normalize = yes`)"},
    {"input_level_dbu", CVD_CONF_SPECIAL, -40, 40, NULL, STREAM(input_level_dbu),
     .set = set_decibels, .unit = "dBu", .line_at = offsetof(cvd_conf_stream, input_level_line),
     .doc_default = "none", .doc_range = "-40..40 dBu",
     .help = "the level, in dBu, of a full-scale sample at the audio interface's input (NAM's "
             "plugin's default is 12). Set, and the first model's file has `input_level_dbu`, "
             "the input is calibrated as NAM's plugin does: + (this - the model's) dB"},
    {"limit", CVD_CONF_CHOICE, STREAM(limit), .def = "no", .choices = bool_choices,
     .help = "a soft limiter on the output (-1 dBFS ceiling, 50 ms release) so that a wrong "
             "gain does not blast the speakers"},
    {"crossfade_ms", CVD_CONF_INT, 0, 10000, "20", STREAM(crossfade_ms), .unit = "ms",
     .help = "how long a preset switch (convd-ctl set, or a new model on reload) fades from "
             "the old chain to the new one, both running meanwhile; `0`: at once"},
    {"publish", CVD_CONF_CHOICE, STREAM(publish), .def = "no", .choices = bool_choices,
     .help = "the processed frames are published as stream NAME: framed clients subscribe "
             "to it (HELLO role 1), exactly as to a TCP producer's stream"},
    {"source", CVD_CONF_NAME, STREAM(source), .what = "stream", .doc_range = "a stream name",
     .help = "output-only streams (and only they): the published stream to play (a framed "
             "producer's HELLO `stream`)"},
    {"jitter", CVD_CONF_INT, 0, 1000000, "0", STREAM(jitter), .unit = "frames",
     .note = " (frames; 0 = 4 blocks)",
     .help = "output-only streams (and only they): frames queued before playing starts, and "
             "again after an underrun; `0` = 4 blocks"},
    {"realtime", CVD_CONF_CHOICE, STREAM(realtime), .def = "yes", .choices = bool_choices,
     .help = "ask for real-time scheduling (SCHED_FIFO) of the callback thread on ALSA; "
             "refused quietly where not permitted (a warning in the log)"},
    {"input_channels", CVD_CONF_SPECIAL, STREAM(in_map), .set = set_channel_map,
     .offset2 = offsetof(cvd_conf_stream, n_in_map),
     .line_at = offsetof(cvd_conf_stream, in_map_line), .doc_default = "the first `channels`",
     .doc_range = "capture channels, 1-based, separated by commas (`2`, `1,2`, `2,2`); at "
                  "most 64",
     .help = "which of the capture device's channels feed the stream's channels, in order: "
             "`input_channels = 2` gives a mono model the interface's second input. The "
             "device is opened with as many channels as the highest one listed; `channels` "
             "defaults to the count listed (and must equal it if set). Not for output-only "
             "streams"},
    {"output_channels", CVD_CONF_SPECIAL, STREAM(out_map), .set = set_channel_map,
     .offset2 = offsetof(cvd_conf_stream, n_out_map),
     .line_at = offsetof(cvd_conf_stream, out_map_line), .doc_default = "as many as the stream has",
     .doc_range = "playback channels, 1-based, separated by commas (`3,4`, `2`); at most 64",
     .help = "which of the playback device's channels the stream's channels play on, in "
             "order; the others get silence. A mono stream plays on every channel listed; "
             "otherwise the count must equal the stream's output channels (the model's, "
             "checked when it is loaded). The device is opened with as many channels as the "
             "highest one listed. Without it a mono stream plays on every channel of a device "
             "that only plays in stereo"},

    /* [nats NAME] (docs/SCALE.md) */
    {"servers", CVD_CONF_SPECIAL, 1, 2047, NATS(servers), NATS_SIZE(servers), .set = set_nats_text,
     .required = "comma-separated nats:// or tls:// URLs",
     .doc_range = "comma-separated URLs (`nats://HOST:PORT`, `tls://HOST:PORT`), at most 2047 "
                  "bytes",
     .help = "the NATS servers; list every node of the cluster (reconnects go to any)"},
    {"model", CVD_CONF_NAME, NATS(model), .what = "model", .required = "a [model NAME] section",
     .doc_range = "a `[model NAME]` of this file",
     .help = "the model every id's frames run through; it must give one output frame per input "
             "frame after a fixed latency, or be windowed (with its `hop`): checked when it "
             "loads"},
    {"prefix", CVD_CONF_SPECIAL, NATS(prefix), .def = "convd", .set = set_nats_prefix,
     .doc_range = "tokens of `A-Z a-z 0-9 _ -` separated by dots, at most 128 bytes",
     .help = "P: devices publish on P.in.<id>, the input stream holds P.part.<n>.<id>, outputs "
             "go to P.out.<id>"},
    {"partitions", CVD_CONF_INT, 1, 4096, "64", NATS(partitions),
     .help = "N: **must equal the N of the servers' mapping** `partition(N,1)` (a mismatch is "
             "logged and counted as `convd_nats_mapping_mismatches_total`)"},
    {"input_stream", CVD_CONF_SPECIAL, NATS(input_stream), .def = "CONVD_IN",
     .set = set_nats_stream, .doc_range = "a JetStream stream name (no spaces, `.`, `*`, `>`, `/`)",
     .help = "the stream over P.part.>; created if absent (limits retention, never a work "
             "queue)"},
    {"output_stream", CVD_CONF_SPECIAL, NATS(output_stream), .def = "CONVD_OUT",
     .set = set_nats_stream, .doc_range = "the same; not the input stream",
     .help = "the stream over P.out.>; created if absent"},
    {"replicas", CVD_CONF_INT, 1, 5, "1", NATS(replicas),
     .help = "replicas of the streams and KV buckets convd creates (3 on a 3-node cluster)"},
    {"input_max_age", CVD_CONF_SPECIAL, 0, 3.2e9, "24h", NATS(input_max_age),
     .set = set_nats_seconds, .doc_range = "0..3.2e9 seconds; `s`, `m`, `h`, `d` suffixes",
     .help = "how long the input stream keeps a message (0: no limit); must cover an idle id's "
             "history for as long as it may come back"},
    {"input_max_bytes", CVD_CONF_SPECIAL, -1, 9e18, "-1", NATS(input_max_bytes),
     .set = set_nats_bytes,
     .doc_range = "bytes, `K`, `M`, `G`, `T` suffixes (powers of 1024); `-1`: no limit",
     .help = "the input stream's size limit (the oldest messages go first)"},
    {"output_max_age", CVD_CONF_SPECIAL, 0, 3.2e9, "24h", NATS(output_max_age),
     .set = set_nats_seconds, .doc_range = "as `input_max_age`",
     .help = "how long the output stream keeps a message"},
    {"output_max_bytes", CVD_CONF_SPECIAL, -1, 9e18, "-1", NATS(output_max_bytes),
     .set = set_nats_bytes, .doc_range = "as `input_max_bytes`",
     .help = "the output stream's size limit"},
    {"duplicate_window", CVD_CONF_SPECIAL, 120, 86400, "2m", NATS(duplicate_window),
     .set = set_nats_seconds, .doc_range = "120..86400 seconds",
     .help = "the streams' duplicates window: a Msg-Id is stored once within it (retried "
             "outputs, producers' retries)"},
    {"lease_bucket", CVD_CONF_SPECIAL, NATS(lease_bucket), .set = set_nats_bucket,
     .doc_default = "`<input_stream>_leases`", .doc_range = "a KV bucket name (`A-Z a-z 0-9 _ -`)",
     .help = "the bucket of partition leases and members"},
    {"checkpoint_bucket", CVD_CONF_SPECIAL, NATS(checkpoint_bucket), .set = set_nats_bucket,
     .doc_default = "`<input_stream>_ckpt`", .doc_range = "the same",
     .help = "the bucket of the partitions' checkpoints"},
    {"lease_ttl", CVD_CONF_SPECIAL, 1, 3600, "15", NATS(lease_ttl), .set = set_nats_seconds,
     .doc_range = "1..3600 seconds",
     .help = "a member, or a partition's holder, is presumed dead after this long without "
             "refreshing its key (refreshed every `lease_ttl`/4); keep it well above a server "
             "failover (about 5 s)"},
    {"checkpoint_interval", CVD_CONF_SPECIAL, 0.05, 3600, "1", NATS(checkpoint_interval),
     .set = set_nats_seconds, .doc_range = "0.05..3600 seconds",
     .help = "how often a holder writes each partition's checkpoint (what a takeover replays "
             "from)"},
    {"idle_timeout", CVD_CONF_SPECIAL, 1, 3.2e9, "10m", NATS(idle_timeout), .set = set_nats_seconds,
     .doc_range = "1..3.2e9 seconds",
     .help = "an id's model state is dropped after this long without a frame; its history is "
             "read back from the log if it returns"},
    {"max_inflight", CVD_CONF_INT, 1, 100000, "512", NATS(max_inflight), .unit = "messages",
     .help = "messages of a partition taken but not yet answered (the consumer's max ack "
             "pending)"},
    {"consumer_replicas", CVD_CONF_INT, 0, 5, "1", NATS(consumer_replicas),
     .note = " (0 = the stream's)", .doc_range = "0..5; 0 = the stream's",
     .help = "replicas of convd's consumers; one (in memory) is created fastest after a "
             "failure, and a lost one is replaced at once"},
    {"request_timeout", CVD_CONF_SPECIAL, 0.1, 600, "5", NATS(request_timeout),
     .set = set_nats_seconds, .doc_range = "0.1..600 seconds",
     .help = "how long a JetStream request or an output's acknowledgement may take before it "
             "is retried (at most `lease_ttl`/3 is used)"},
    {"block", CVD_CONF_INT, 1, 65536, "64", NATS(block), .unit = "frames",
     .help = "frames per model call; the output is the same for any block, the memory per id "
             "grows with it"},
    {"tls_ca", CVD_CONF_SPECIAL, NATS(tls_ca), NATS_SIZE(tls_ca), .set = set_nats_path,
     .doc_range = "a PEM file",
     .help = "TLS toward the servers: the CAs their certificates must chain to"},
    {"tls_cert", CVD_CONF_SPECIAL, NATS(tls_cert), NATS_SIZE(tls_cert), .set = set_nats_path,
     .doc_range = "a PEM file",
     .help = "this client's certificate chain, for servers that verify clients (with "
             "`tls_key`)"},
    {"tls_key", CVD_CONF_SPECIAL, NATS(tls_key), NATS_SIZE(tls_key), .set = set_nats_path,
     .doc_range = "a PEM file", .help = "`tls_cert`'s private key"},
    {"creds", CVD_CONF_SPECIAL, NATS(creds), NATS_SIZE(creds), .set = set_nats_path,
     .doc_range = "a NATS `.creds` file",
     .help = "decentralised authentication (user JWT and NKey seed)"},
    {"token_file", CVD_CONF_SPECIAL, NATS(token_file), NATS_SIZE(token_file), .set = set_nats_path,
     .doc_range = "a file", .help = "its first line is the servers' authorization token"},
    {"user", CVD_CONF_SPECIAL, 1, 255, NATS(user), NATS_SIZE(user), .set = set_nats_text,
     .doc_range = "a name", .help = "with `password_file`: user and password authentication"},
    {"password_file", CVD_CONF_SPECIAL, NATS(password_file), NATS_SIZE(password_file),
     .set = set_nats_path, .doc_range = "a file", .help = "its first line is `user`'s password"},
};

const int cvd_conf_n_directives = (int)(sizeof cvd_conf_directives / sizeof cvd_conf_directives[0]);

int cvd_conf_rows(int kind, const cvd_conf_directive **rows, int max)
{
    int n = 0;
    for (int i = 0; i < cvd_conf_n_directives; i++)
        if (cvd_conf_directives[i].section == kind && n < max)
            rows[n++] = &cvd_conf_directives[i];
    return n;
}

const cvd_conf_directive *cvd_conf_row(int kind, const char *name, int *index)
{
    int k = 0;
    for (int i = 0; i < cvd_conf_n_directives; i++) {
        if (cvd_conf_directives[i].section != kind)
            continue;
        if (strcmp(cvd_conf_directives[i].name, name) == 0) {
            if (index)
                *index = k;
            return &cvd_conf_directives[i];
        }
        k++;
    }
    return NULL;
}

void cvd_conf_set_defaults(pstate *ps, int kind, void *sec)
{
    ps->defaults = 1;
    for (int i = 0; i < cvd_conf_n_directives; i++) {
        const cvd_conf_directive *d = &cvd_conf_directives[i];
        if (d->section == kind && d->def != NULL)
            cvd_conf_set(ps, d, sec, d->def); /* the table's own values: they parse */
    }
    ps->defaults = 0;
}

/* ---- the reference ------------------------------------------------------------------------ */

void cvd_conf_doc_row(const cvd_conf_directive *d, char *buf, size_t n)
{
    char def[256], range[512];
    if (d->doc_default)
        snprintf(def, sizeof def, "%s", d->doc_default);
    else if (d->required)
        snprintf(def, sizeof def, "required");
    else if (d->def)
        snprintf(def, sizeof def, "`%s`", d->def);
    else
        snprintf(def, sizeof def, "none");
    range[0] = '\0';
    if (d->doc_range) {
        snprintf(range, sizeof range, "%s", d->doc_range);
    } else if (d->type == CVD_CONF_CHOICE) {
        for (const cvd_conf_choice *c = d->choices; c->name; c++)
            snprintf(range + strlen(range), sizeof range - strlen(range), "%s`%s`",
                     c == d->choices ? "" : " \\| ", c->name);
    } else if (d->type == CVD_CONF_SECONDS) {
        snprintf(range, sizeof range, "%g..%g seconds", d->lo, d->hi);
    } else {
        snprintf(range, sizeof range, "%.0f..%.0f%s%s", d->lo, d->hi, d->unit ? " " : "",
                 d->unit ? d->unit : "");
    }
    snprintf(buf, n, "| `%s` | %s | %s | %s |", d->name, def, range, d->help ? d->help : "");
}
