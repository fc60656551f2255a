/* SPDX-License-Identifier: Apache-2.0 */
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
 *
 * What each directive is (type, range, default, field, words) is its row in config_table.c;
 * this file reads the text by those rows, and checks what involves several directives once
 * the file is read (finish).
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
#include "config_internal.h"

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

/* ---- messages ----------------------------------------------------------------------------- */

int cvd_conf_fail(pstate *ps, int code, int line, const char *fmt, ...)
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

#define fail cvd_conf_fail

static int nomem(pstate *ps)
{
    return fail(ps, CVD_ENOMEM, 0, "out of memory");
}

shown cvd_conf_show_n(const char *v, size_t n)
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

#define show_n cvd_conf_show_n

static int is_name_char(int ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

/* [A-Za-z0-9_.-]{1,64} */
int cvd_conf_valid_name_n(const char *s, size_t n)
{
    if (n < 1 || n > CVD_CONF_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char((unsigned char)s[i]))
            return 0;
    return 1;
}

#define valid_name_n cvd_conf_valid_name_n

/* ---- directives --------------------------------------------------------------------------- */

static const char *section_label(int kind)
{
    return kind == SEC_SERVER   ? "[server]"
           : kind == SEC_MODEL  ? "[model NAME]"
           : kind == SEC_LISTEN ? "[listen NAME]"
           : kind == SEC_STREAM ? "[stream NAME]"
                                : "[nats NAME]";
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
    const cvd_conf_directive *rows[CONF_MAX_KEYS];
    const char *best = NULL;
    int best_d = 3;

    if (ps->kind == SEC_NONE)
        return fail(ps, CVD_EFORMAT, line,
                    "%s: outside any section (directives go under [server], [model NAME], "
                    "[listen NAME], [stream NAME] or [nats NAME])",
                    nm.s);
    if (valid_name_n(name, n)) {
        /* a directive of another kind of section? */
        for (int k = SEC_SERVER; k <= SEC_NATS; k++)
            if (k != ps->kind && cvd_conf_row(k, nm.s, NULL) != NULL)
                return fail(ps, CVD_EFORMAT, line, "%s: unknown directive in %s (it belongs in %s)",
                            nm.s, ps->label, section_label(k));
        const int nr = cvd_conf_rows(ps->kind, rows, CONF_MAX_KEYS);
        for (int i = 0; i < nr; i++) {
            int d = edit_distance(nm.s, rows[i]->name);
            if (d < best_d) {
                best_d = d;
                best = rows[i]->name;
            }
        }
    }
    if (best)
        return fail(ps, CVD_EFORMAT, line, "%s: unknown directive in %s (did you mean '%s'?)", nm.s,
                    ps->label, best);
    return fail(ps, CVD_EFORMAT, line, "%s: unknown directive in %s", nm.s, ps->label);
}

/* The struct of section `index` of a kind ([server]: the cvd_conf). */
static void *section_struct(pstate *ps, int kind, int index)
{
    cvd_conf *c = ps->c;
    switch (kind) {
    case SEC_MODEL:
        return &c->models[index];
    case SEC_LISTEN:
        return &c->listens[index];
    case SEC_STREAM:
        return &c->streams[index];
    case SEC_NATS:
        return &c->nats[index];
    default:
        return c;
    }
}

/* The line of directive `name` in section `index` of a kind, 0 if it is not there. */
static int dline(const pstate *ps, int kind, int index, const char *name)
{
    int k;
    if (cvd_conf_row(kind, name, &k) == NULL || ps->lines[kind] == NULL)
        return 0;
    return ps->lines[kind][index][k];
}

/* One "directive = value" of the current section. */
static int directive(pstate *ps, const char *name, const char *v)
{
    const int line = ps->lineno;
    int key;
    const cvd_conf_directive *d = ps->kind == SEC_NONE ? NULL : cvd_conf_row(ps->kind, name, &key);

    if (d == NULL)
        return unknown_directive(ps, name, strlen(name));
    if (ps->seen[key])
        return fail(ps, CVD_EFORMAT, line, "%s: duplicate directive (first at line %d)", name,
                    ps->seen[key]);
    ps->seen[key] = line;
    if (*v == '\0')
        return fail(ps, CVD_EFORMAT, line, "%s: missing value", name);
    return cvd_conf_set(ps, d, section_struct(ps, ps->kind, ps->index), v);
}

/* ---- sections ----------------------------------------------------------------------------- */

/* Room for one more section of a kind (its struct and its directives' lines). */
static int grow(pstate *ps, int kind)
{
    cvd_conf *c = ps->c;
    const int n = kind == SEC_MODEL    ? c->n_models
                  : kind == SEC_LISTEN ? c->n_listens
                  : kind == SEC_NATS   ? c->n_nats
                                       : c->n_streams;
    const size_t size = kind == SEC_MODEL    ? sizeof(cvd_conf_model)
                        : kind == SEC_LISTEN ? sizeof(cvd_conf_listen)
                        : kind == SEC_NATS   ? sizeof(cvd_nats_conf)
                                             : sizeof(cvd_conf_stream);
    void **arr = kind == SEC_MODEL    ? (void **)&c->models
                 : kind == SEC_LISTEN ? (void **)&c->listens
                 : kind == SEC_NATS   ? (void **)&c->nats
                                      : (void **)&c->streams;
    if (n < ps->cap[kind])
        return 0;
    int cap = ps->cap[kind] ? 2 * ps->cap[kind] : 4;
    void *na = realloc(*arr, size * (size_t)cap);
    if (na == NULL)
        return nomem(ps);
    *arr = na;
    void *nl = realloc(ps->lines[kind], sizeof ps->lines[kind][0] * (size_t)cap);
    if (nl == NULL)
        return nomem(ps);
    ps->lines[kind] = nl;
    ps->cap[kind] = cap;
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

    ps->kind = SEC_NONE;
    if (strcmp(kind.s, "server") == 0 && (size_t)(ke - kb) == 6) {
        if (ne > nb)
            return fail(ps, CVD_EFORMAT, line, "[%s]: [server] takes no name", whole.s);
        if (ps->server_line)
            return fail(ps, CVD_EFORMAT, line, "[server]: duplicate section (first at line %d)",
                        ps->server_line);
        ps->server_line = line;
        ps->kind = SEC_SERVER;
        ps->seen = ps->lines[SEC_SERVER][0];
        strcpy(ps->label, "[server]");
        return 0;
    }
    if ((strcmp(kind.s, "model") == 0 && ke - kb == 5) ||
        (strcmp(kind.s, "listen") == 0 && ke - kb == 6) ||
        (strcmp(kind.s, "stream") == 0 && ke - kb == 6) ||
        (strcmp(kind.s, "nats") == 0 && ke - kb == 4)) {
        const int k = kind.s[0] == 'm'   ? SEC_MODEL
                      : kind.s[0] == 'l' ? SEC_LISTEN
                      : kind.s[0] == 'n' ? SEC_NATS
                                         : SEC_STREAM;
        cvd_conf *c = ps->c;
        if (ne == nb)
            return fail(ps, CVD_EFORMAT, line, "[%s]: needs a name, as in [%s NAME]", kind.s,
                        kind.s);
        if (!valid_name_n(nb, (size_t)(ne - nb)))
            return fail(ps, CVD_EFORMAT, line, "[%s %s]: invalid name (" NAME_RULE ")", kind.s,
                        show_n(nb, (size_t)(ne - nb)).s);
        memcpy(name, nb, (size_t)(ne - nb));
        name[ne - nb] = '\0';
        const int *count = k == SEC_MODEL    ? &c->n_models
                           : k == SEC_LISTEN ? &c->n_listens
                           : k == SEC_NATS   ? &c->n_nats
                                             : &c->n_streams;
        for (int i = 0; i < *count; i++) {
            /* each array read as its own type: the names sit at offset 0, and a compiler
             * that merged casts of one pointer checked a listener (4-byte aligned since it
             * holds no pointer) against the model's 8-byte alignment (UBSan) */
            const char *oname;
            int oline;
            if (k == SEC_MODEL) {
                oname = c->models[i].name;
                oline = c->models[i].line;
            } else if (k == SEC_LISTEN) {
                oname = c->listens[i].name;
                oline = c->listens[i].line;
            } else if (k == SEC_NATS) {
                oname = c->nats[i].name;
                oline = c->nats[i].line;
            } else {
                oname = c->streams[i].name;
                oline = c->streams[i].line;
            }
            if (strcmp(oname, name) == 0)
                return fail(ps, CVD_EFORMAT, line, "[%s %s]: duplicate section (first at line %d)",
                            kind.s, name, oline);
        }
        if (grow(ps, k))
            return ps->code;
        ps->index = *count;
        memset(ps->lines[k][ps->index], 0, sizeof ps->lines[k][0]);
        ps->seen = ps->lines[k][ps->index];
        /* the section's own fields, then every directive's default (the table's) */
        if (k == SEC_MODEL) {
            cvd_conf_model *m = &c->models[c->n_models++];
            memset(m, 0, sizeof *m);
            strcpy(m->name, name);
            m->line = line;
            cvd_conf_set_defaults(ps, k, m);
        } else if (k == SEC_NATS) {
            cvd_nats_conf *n = &c->nats[c->n_nats++];
            memset(n, 0, sizeof *n);
            strcpy(n->name, name);
            n->model_index = -1;
            n->line = line;
            cvd_conf_set_defaults(ps, k, n);
        } else if (k == SEC_STREAM) {
            cvd_conf_stream *st = &c->streams[c->n_streams++];
            memset(st, 0, sizeof *st);
            strcpy(st->name, name);
            st->model_index = -1;
            st->line = line;
            cvd_conf_set_defaults(ps, k, st);
        } else {
            cvd_conf_listen *l = &c->listens[c->n_listens++];
            memset(l, 0, sizeof *l);
            strcpy(l->name, name);
            l->model_index = -1;
            l->line = line;
            cvd_conf_set_defaults(ps, k, l);
        }
        ps->kind = k;
        snprintf(ps->label, sizeof ps->label, "[%s %s]", kind.s, name);
        return 0;
    }
    return fail(ps, CVD_EFORMAT, line,
                "[%s]: unknown section (expected [server], [model NAME], [listen NAME], "
                "[stream NAME] or [nats NAME])",
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

static void hostport(char *buf, size_t n, int family, const char *host, int port)
{
    snprintf(buf, n, family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

/* ---- whole-file checks -------------------------------------------------------------------- */

static void finish(pstate *ps)
{
    cvd_conf *c = ps->c;
    const int metrics_line = dline(ps, SEC_SERVER, 0, "metrics");
    char a[96];

    for (int i = 0; i < c->n_models; i++) {
        const cvd_conf_model *m = &c->models[i];
        if (m->path == NULL)
            fail(ps, CVD_EFORMAT, m->line,
                 "[model %s]: missing 'path' (a .nam, .json, .keras or .h5 file, or builtin:NAME)",
                 m->name);
        else if (m->path_ext_line && m->type != CVD_CONF_MODEL_IR)
            fail(ps, CVD_EFORMAT, m->path_ext_line,
                 "path: '%s' is not a .nam, .json, .keras or .h5 file, nor an impulse response "
                 "(.wav, .flac, .aif, .aiff, .ogg; or type = ir), nor builtin:NAME",
                 cvd_conf_show_n(m->path, strlen(m->path)).s);
        else if (m->builtin && m->type == CVD_CONF_MODEL_IR)
            fail(ps, CVD_EFORMAT, m->type_line, "type: ir: a built-in model is not an audio file");
    }
    for (int i = 0; i < c->n_listens; i++) {
        cvd_conf_listen *l = &c->listens[i];
        const int l_address = dline(ps, SEC_LISTEN, i, "address"),
                  l_protocol = dline(ps, SEC_LISTEN, i, "protocol"),
                  l_model = dline(ps, SEC_LISTEN, i, "model"),
                  l_format = dline(ps, SEC_LISTEN, i, "format"),
                  l_blocking = dline(ps, SEC_LISTEN, i, "blocking");
        if (!l_blocking) /* replies as soon as they exist; raw streams as it always did */
            l->eager = l_protocol && l->protocol != CVD_PROTO_RAW;
        if (!l_address)
            fail(ps, CVD_EFORMAT, l->line, "[listen %s]: missing 'address' (HOST:PORT)", l->name);
        if (!l_protocol)
            fail(ps, CVD_EFORMAT, l->line, "[listen %s]: missing 'protocol' (raw | framed | line)",
                 l->name);
        else if (l_format && l->protocol != CVD_PROTO_RAW)
            fail(ps, CVD_EFORMAT, l_format,
                 "format: only raw listeners have a sample format (a %s listener %s)",
                 cvd_proto_name(l->protocol),
                 l->protocol == CVD_PROTO_LINE ? "reads text" : "negotiates it in HELLO");
        if (l_model) {
            for (int k = 0; k < l->n_chain; k++) {
                l->chain_index[k] = cvd_conf_find_model(c, l->chain[k]);
                if (l->chain_index[k] < 0)
                    fail(ps, CVD_EFORMAT, l_model, "model: no [model %s] section", l->chain[k]);
            }
            l->model_index = l->chain_index[0];
        } else if (l_protocol && l->protocol != CVD_PROTO_FRAMED) {
            fail(ps, CVD_EFORMAT, l->line, "[listen %s]: a %s listener needs 'model'", l->name,
                 cvd_proto_name(l->protocol));
        }
        if (l->tls_cert[0] && !l->tls_key[0])
            fail(ps, CVD_EFORMAT, l->tls_cert_line,
                 "tls_cert: needs tls_key (the certificate's private key) in [listen %s]", l->name);
        if (l->tls_key[0] && !l->tls_cert[0])
            fail(ps, CVD_EFORMAT, l->tls_key_line,
                 "tls_key: needs tls_cert (the certificate chain) in [listen %s]", l->name);
        if (l->tls_client_ca[0] && !l->tls_cert[0])
            fail(ps, CVD_EFORMAT, l->tls_client_ca_line,
                 "tls_client_ca: client certificates need TLS: give [listen %s] tls_cert and "
                 "tls_key",
                 l->name);
        if (l->tokens[0] && l_protocol && l->protocol != CVD_PROTO_FRAMED)
            fail(ps, CVD_EFORMAT, l->tokens_line,
                 "tokens: only framed listeners have a handshake to carry a token (on %s, use "
                 "tls_client_ca or allow)",
                 cvd_proto_name(l->protocol));
        if (!l_address || l->port == 0)
            continue;
        hostport(a, sizeof a, l->family, l->host, l->port);
        for (int j = 0; j < i; j++) {
            const cvd_conf_listen *o = &c->listens[j];
            if (dline(ps, SEC_LISTEN, j, "address") && o->port == l->port &&
                o->family == l->family && strcmp(o->host, l->host) == 0)
                fail(ps, CVD_EFORMAT, l_address,
                     "address: %s is already the address of [listen %s] (line %d)", a, o->name,
                     dline(ps, SEC_LISTEN, j, "address"));
        }
        if (c->metrics_enabled && c->metrics_port == l->port && c->metrics_family == l->family &&
            strcmp(c->metrics_host, l->host) == 0) {
            if (metrics_line > l_address)
                fail(ps, CVD_EFORMAT, metrics_line,
                     "metrics: %s is already the address of [listen %s] (line %d)", a, l->name,
                     l_address);
            else
                fail(ps, CVD_EFORMAT, l_address,
                     "address: %s is already the metrics address (line %d)", a, metrics_line);
        }
    }
    for (int i = 0; i < c->n_streams; i++) {
        cvd_conf_stream *st = &c->streams[i];
        const int s_model = dline(ps, SEC_STREAM, i, "model"),
                  s_publish = dline(ps, SEC_STREAM, i, "publish"),
                  s_source = dline(ps, SEC_STREAM, i, "source"),
                  s_jitter = dline(ps, SEC_STREAM, i, "jitter");
        const int in = st->input[0] != '\0', out = st->output[0] != '\0';
        if (s_model) {
            for (int k = 0; k < st->n_chain; k++) {
                st->chain_index[k] = cvd_conf_find_model(c, st->chain[k]);
                if (st->chain_index[k] < 0)
                    fail(ps, CVD_EFORMAT, s_model, "model: no [model %s] section", st->chain[k]);
            }
            st->model_index = st->chain_index[0];
        }
        if (!out && st->n_out_map)
            fail(ps, CVD_EFORMAT, st->out_map_line,
                 "output_channels: a stream with output = none plays nothing");
        if (!in && !out) {
            fail(ps, CVD_EFORMAT, st->line,
                 "[stream %s]: input and output are both none: "
                 "nothing to do",
                 st->name);
            continue;
        }
        if (in) {
            if (s_source)
                fail(ps, CVD_EFORMAT, s_source,
                     "source: only an output-only stream (input = none) plays a published "
                     "stream");
            if (s_jitter)
                fail(ps, CVD_EFORMAT, s_jitter,
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
            if (!s_source)
                fail(ps, CVD_EFORMAT, st->line,
                     "[stream %s]: an output-only stream (input = none) needs 'source' (the "
                     "published stream it plays)",
                     st->name);
            if (s_model)
                fail(ps, CVD_EFORMAT, s_model,
                     "model: an output-only stream plays its source as it is (no model)");
            if (s_publish && st->publish)
                fail(ps, CVD_EFORMAT, s_publish,
                     "publish: an output-only stream has nothing of its own to publish");
        }
    }
    for (int i = 0; i < c->n_nats; i++) {
        cvd_nats_conf *n = &c->nats[i];
        char why[CVD_ERR_MSG_MAX];
        int line = n->line;
        if (!n->at.servers) {
            fail(ps, CVD_EFORMAT, n->line, "[nats %s]: missing 'servers' (%s)", n->name,
                 cvd_conf_row(SEC_NATS, "servers", NULL)->required);
            continue;
        }
        if (!n->at.model) {
            fail(ps, CVD_EFORMAT, n->line, "[nats %s]: missing 'model' (%s)", n->name,
                 cvd_conf_row(SEC_NATS, "model", NULL)->required);
            continue;
        }
        if (cvd_nats_conf_finish(n, &line, why, sizeof why) < 0) {
            fail(ps, CVD_EFORMAT, line, "%s", why);
            continue;
        }
        n->model_index = cvd_conf_find_model(c, n->model);
        if (n->model_index < 0)
            fail(ps, CVD_EFORMAT, n->at.model, "model: no [model %s] section", n->model);
        for (int j = 0; j < i; j++)
            if (strcmp(c->nats[j].input_stream, n->input_stream) == 0)
                fail(ps, CVD_EFORMAT, n->line,
                     "[nats %s]: input_stream %s is [nats %s]'s too (line %d); one process "
                     "is one member of a group",
                     n->name, n->input_stream, c->nats[j].name, c->nats[j].line);
    }
    if (c->n_listens == 0 && c->n_streams == 0 && c->n_nats == 0)
        fail(ps, CVD_EFORMAT, ps->lineno > 0 ? ps->lineno : 1,
             "no [listen NAME], [stream NAME] or [nats NAME] section: there is nothing to "
             "serve");
}

/* ---- entry points ------------------------------------------------------------------------- */

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
    c->file = strdup(ps.file);
    ps.lines[SEC_SERVER] = calloc(1, sizeof ps.lines[SEC_SERVER][0]);
    if (c->file == NULL || (dir != NULL && (c->dir = strdup(dir)) == NULL) ||
        ps.lines[SEC_SERVER] == NULL) {
        nomem(&ps);
    } else {
        cvd_conf_set_defaults(&ps, SEC_SERVER, c); /* [server] is optional */
        r = ini_parse_stream(reader, &ps, on_pair, &ps);
        free(ps.long_value);
        if (ps.code == 0 && r == -2)
            nomem(&ps);
        else if (ps.code == 0 && r != 0)
            fail(&ps, CVD_EFORMAT, r > 0 ? r : 0, "syntax error");
        if (ps.code == 0)
            finish(&ps);
    }
    for (int k = 0; k < SEC_COUNT; k++)
        free(ps.lines[k]);
    if (ps.code != 0) {
        cvd_conf_destroy(c);
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

void cvd_conf_destroy(cvd_conf *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n_models; i++)
        free(c->models[i].path);
    free(c->models);
    free(c->listens);
    free(c->streams);
    free(c->nats);
    free(c->file);
    free(c->dir);
    free(c);
}

void cvd_conf_nats_defaults(cvd_nats_conf *n, const char *name, int line)
{
    pstate ps;
    memset(&ps, 0, sizeof ps);
    ps.file = "(defaults)";
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    n->line = line;
    n->model_index = -1;
    cvd_conf_set_defaults(&ps, SEC_NATS, n); /* the table's own values: they parse */
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
