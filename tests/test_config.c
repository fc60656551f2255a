/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_config.c - the daemon's configuration (server/config.h, docs/CONFIG.md).
 *
 * Every refusal is checked to the letter ("FILE:LINE: directive: reason"), every directive
 * is accepted at both ends of its range, and the shipped config/convd.conf and the embedded
 * default both parse and agree. Then the awkward inputs: comments, blanks, CRLF, a BOM,
 * IPv6, relative model paths, a missing file, a folder, an empty file, binary garbage, random
 * token soup, and lines of a megabyte.
 *
 * Long because: it checks every directive at both ends of its range and each refusal to the
 * letter, one suite over the one parser.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

/* A model and a listener, so that a text about [server] is otherwise complete. */
#define TAIL                                                                                       \
    "[model m]\npath = builtin:m\n[listen l]\naddress = 127.0.0.1:0\nprotocol = raw\n"             \
    "model = m\n"

static int sentinel_obj;
#define SENTINEL ((cvd_conf *)(void *)&sentinel_obj)

static cvd_conf *parse_ok_in(const char *text, const char *dir)
{
    cvd_err err = {0};
    cvd_conf *c = SENTINEL;
    int rc = cvd_conf_parse(text, "t.conf", dir, &c, &err);
    cr_assert_eq(rc, 0, "refused (%d): %s\n--- text:\n%.2000s", rc, err.msg, text);
    cr_assert(c != NULL && c != SENTINEL);
    return c;
}

static cvd_conf *parse_ok(const char *text)
{
    return parse_ok_in(text, NULL);
}

/* text must be refused with CVD_EFORMAT and exactly the message `want`. */
static void expect_error(const char *text, const char *want)
{
    cvd_err err = {0};
    cvd_conf *c = SENTINEL;
    int rc = cvd_conf_parse(text, "t.conf", NULL, &c, &err);
    cr_expect_eq(rc, CVD_EFORMAT, "rc %d for:\n%.2000s", rc, text);
    cr_expect_eq(err.code, rc);
    cr_expect_null(c, "*out not NULL after a refusal");
    cr_expect_str_eq(err.msg, want, "\n--- text:\n%.2000s\n--- got:  %s\n--- want: %s", text,
                     err.msg, want);
    if (c != NULL && c != SENTINEL)
        cvd_conf_destroy(c);
}

typedef struct error_case {
    const char *text;
    const char *want;
} error_case;

static void expect_errors(const error_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_error(cases[i].text, cases[i].want);
}
#define EXPECT_ERRORS(cases) expect_errors(cases, sizeof cases / sizeof cases[0])

/* ---- the shipped file and the embedded default ------------------------------------------- */

static void expect_same(const cvd_conf *a, const cvd_conf *b)
{
    cr_expect_eq(a->workers, b->workers);
    cr_expect_eq(a->log_level, b->log_level);
    cr_expect_eq(a->metrics_enabled, b->metrics_enabled);
    cr_expect_str_eq(a->metrics_host, b->metrics_host);
    cr_expect_eq(a->metrics_port, b->metrics_port);
    cr_expect_eq(a->metrics_family, b->metrics_family);
    cr_expect_eq(a->max_clients, b->max_clients);
    cr_expect_eq(a->max_message, b->max_message);
    cr_expect_eq(a->handshake_timeout, b->handshake_timeout);
    cr_expect_eq(a->idle_timeout, b->idle_timeout);
    cr_expect_eq(a->shutdown_timeout, b->shutdown_timeout);
    cr_expect_eq(a->queue_limit, b->queue_limit);
    cr_expect_eq(a->slow_disconnect, b->slow_disconnect);
    cr_expect_eq(a->nonfinite_pass, b->nonfinite_pass);
    cr_assert_eq(a->n_models, b->n_models);
    for (int i = 0; i < a->n_models; i++) {
        cr_expect_str_eq(a->models[i].name, b->models[i].name);
        cr_expect_str_eq(a->models[i].path, b->models[i].path);
        cr_expect_eq(a->models[i].builtin, b->models[i].builtin);
    }
    cr_assert_eq(a->n_listens, b->n_listens);
    for (int i = 0; i < a->n_listens; i++) {
        const cvd_conf_listen *x = &a->listens[i], *y = &b->listens[i];
        cr_expect_str_eq(x->name, y->name);
        cr_expect_str_eq(x->host, y->host);
        cr_expect_eq(x->port, y->port);
        cr_expect_eq(x->family, y->family);
        cr_expect_eq(x->protocol, y->protocol);
        cr_expect_str_eq(x->model, y->model);
        cr_expect_eq(x->model_index, y->model_index);
        cr_expect_eq(x->format, y->format);
        cr_expect_eq(x->channels, y->channels, "[listen %s]", x->name);
        cr_expect_eq(x->rate, y->rate);
        cr_expect_eq(x->block, y->block);
    }
}

Test(config, embedded_default)
{
    cvd_err err = {0};
    cvd_conf *c = NULL;
    cr_assert_eq(cvd_conf_load_default(&c, &err), 0, "%s", err.msg);
    cr_expect_str_eq(c->file, "(built-in default)");
    cr_expect_null(c->dir);
    cr_expect_eq(c->workers, 0);
    cr_expect_eq(c->log_level, CVD_LOG_INFO);
    cr_expect_eq(c->metrics_enabled, 1);
    cr_expect_str_eq(c->metrics_host, "127.0.0.1");
    cr_expect_eq(c->metrics_port, 9400);

    cr_assert_eq(c->n_models, 2);
    cr_expect_str_eq(c->models[0].name, "drive");
    cr_expect_str_eq(c->models[0].path, "builtin:drive");
    cr_expect_eq(c->models[0].builtin, 1);
    cr_expect_str_eq(c->models[1].name, "vibration-denoise");
    cr_expect_str_eq(c->models[1].path, "builtin:vibration-denoise");
    cr_expect_eq(c->models[1].builtin, 1);

    cr_assert_eq(c->n_listens, 3);
    const cvd_conf_listen *a = &c->listens[0], *f = &c->listens[1], *s = &c->listens[2];
    cr_expect_str_eq(a->name, "audio");
    cr_expect_str_eq(a->host, "127.0.0.1");
    cr_expect_eq(a->port, 7400);
    cr_expect_eq(a->family, AF_INET);
    cr_expect_eq(a->protocol, CVD_PROTO_RAW);
    cr_expect_str_eq(a->model, "drive");
    cr_expect_eq(a->model_index, 0);
    cr_expect_eq(a->format, CVD_FMT_F32LE);
    cr_expect_eq(a->channels, 1);
    cr_expect_eq(a->rate, 48000);
    cr_expect_eq(a->block, 64);

    cr_expect_str_eq(f->name, "framed");
    cr_expect_eq(f->port, 7401);
    cr_expect_eq(f->protocol, CVD_PROTO_FRAMED);
    cr_expect_eq(f->model_index, 0);

    cr_expect_str_eq(s->name, "sensors");
    cr_expect_eq(s->port, 7402);
    cr_expect_eq(s->protocol, CVD_PROTO_LINE);
    cr_expect_str_eq(s->model, "vibration-denoise");
    cr_expect_eq(s->model_index, 1);
    cr_expect_eq(s->channels, 0);
    cr_expect_eq(s->rate, 1000);
    cr_expect_eq(s->block, 1);
    cvd_conf_destroy(c);
}

/* config/convd.conf is the default, written out with comments. */
Test(config, shipped_file_is_the_default)
{
    cvd_err err = {0};
    cvd_conf *shipped = NULL, *def = NULL;
    cr_assert_eq(cvd_conf_load("config/convd.conf", &shipped, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_conf_load_default(&def, &err), 0, "%s", err.msg);
    cr_expect_str_eq(shipped->file, "config/convd.conf");
    cr_expect_not_null(shipped->dir);
    expect_same(shipped, def);
    cvd_conf_destroy(shipped);
    cvd_conf_destroy(def);
}

/* The documentation's examples parse (every ```ini block of docs/CONFIG.md that is marked
 * as a whole file with a first line "; file"), and its text names every directive. */
Test(config, docs_name_every_directive_and_examples_parse)
{
    static const char *const directives[] = {"workers",      "log_level",
                                             "metrics",      "max_clients",
                                             "max_message",  "handshake_timeout",
                                             "idle_timeout", "shutdown_timeout",
                                             "queue_limit",  "slow_subscriber",
                                             "nonfinite",    "path",
                                             "address",      "protocol",
                                             "model",        "format",
                                             "channels",     "rate",
                                             "block"};
    char *doc = tu_read_file("docs/CONFIG.md", NULL);
    char *conf = tu_read_file("config/convd.conf", NULL);
    int examples = 0;
    cr_assert_not_null(doc);
    cr_assert_not_null(conf);
    for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "`%s`", directives[i]);
        cr_expect_not_null(strstr(doc, pat), "docs/CONFIG.md does not document %s", pat);
        snprintf(pat, sizeof pat, "\n%s = ", directives[i]);
        if (strcmp(directives[i], "path") != 0)
            cr_expect_not_null(strstr(conf, pat), "config/convd.conf lacks '%s'", pat + 1);
    }
    for (char *p = doc; (p = strstr(p, "```ini\n; file\n")) != NULL;) {
        char *body = p + strlen("```ini\n"), *end = strstr(body, "```");
        cr_assert_not_null(end);
        *end = '\0';
        cvd_conf *c = parse_ok(body);
        if (strstr(body, "builtin:vibration-denoise") != NULL) { /* the built-in default */
            cvd_conf *def = NULL;
            cr_assert_eq(cvd_conf_load_default(&def, NULL), 0);
            expect_same(c, def);
            cvd_conf_destroy(def);
        }
        cvd_conf_destroy(c);
        examples++;
        p = end + 1;
    }
    cr_expect_geq(examples, 3, "docs/CONFIG.md has %d whole-file examples", examples);
    free(doc);
    free(conf);
}

/* ---- accepted values --------------------------------------------------------------------- */

Test(config, defaults_when_absent)
{
    cvd_conf *c = parse_ok("[model m]\npath = m.nam\n[listen l]\naddress = 127.0.0.1:1\n"
                           "protocol = raw\nmodel = m\n");
    cr_expect_eq(c->workers, 0);
    cr_expect_eq(c->log_level, CVD_LOG_INFO);
    cr_expect_eq(c->metrics_enabled, 0);
    cr_expect_eq(c->max_clients, 256);
    cr_expect_eq(c->max_message, 1048576);
    cr_expect_eq(c->handshake_timeout, 5.0);
    cr_expect_eq(c->idle_timeout, 300.0);
    cr_expect_eq(c->shutdown_timeout, 5.0);
    cr_expect_eq(c->queue_limit, 1048576);
    cr_expect_eq(c->slow_disconnect, 0);
    cr_expect_eq(c->nonfinite_pass, 0);
    cr_expect_eq(c->models[0].builtin, 0);
    cr_expect_str_eq(c->models[0].path, "m.nam");
    cr_expect_eq(c->models[0].line, 1);
    const cvd_conf_listen *l = &c->listens[0];
    cr_expect_eq(l->format, CVD_FMT_F32LE);
    cr_expect_eq(l->channels, 0);
    cr_expect_eq(l->rate, 48000);
    cr_expect_eq(l->block, 64);
    cr_expect_eq(l->line, 3);
    cvd_conf_destroy(c);
}

Test(config, server_boundaries)
{
    cvd_conf *c = parse_ok("[server]\nworkers = 0\nlog_level = error\nmetrics = none\n"
                           "max_clients = 1\nmax_message = 1024\nhandshake_timeout = 0.1\n"
                           "idle_timeout = 0\nshutdown_timeout = 0\nqueue_limit = 4096\n"
                           "slow_subscriber = drop\nnonfinite = reject\n" TAIL);
    cr_expect_eq(c->workers, 0);
    cr_expect_eq(c->log_level, CVD_LOG_ERROR);
    cr_expect_eq(c->metrics_enabled, 0);
    cr_expect_eq(c->max_clients, 1);
    cr_expect_eq(c->max_message, 1024);
    cr_expect_eq(c->handshake_timeout, 0.1);
    cr_expect_eq(c->idle_timeout, 0.0);
    cr_expect_eq(c->shutdown_timeout, 0.0);
    cr_expect_eq(c->queue_limit, 4096);
    cr_expect_eq(c->slow_disconnect, 0);
    cr_expect_eq(c->nonfinite_pass, 0);
    cvd_conf_destroy(c);

    c = parse_ok("[server]\nworkers = 256\nlog_level = debug\nmetrics = [::1]:65535\n"
                 "max_clients = 1000000\nmax_message = 67108864\nhandshake_timeout = 3600\n"
                 "idle_timeout = 86400\nshutdown_timeout = 3600\nqueue_limit = 1073741824\n"
                 "slow_subscriber = disconnect\nnonfinite = pass\n" TAIL);
    cr_expect_eq(c->workers, 256);
    cr_expect_eq(c->log_level, CVD_LOG_DEBUG);
    cr_expect_eq(c->metrics_enabled, 1);
    cr_expect_str_eq(c->metrics_host, "::1");
    cr_expect_eq(c->metrics_port, 65535);
    cr_expect_eq(c->metrics_family, AF_INET6);
    cr_expect_eq(c->max_clients, 1000000);
    cr_expect_eq(c->max_message, 67108864);
    cr_expect_eq(c->handshake_timeout, 3600.0);
    cr_expect_eq(c->idle_timeout, 86400.0);
    cr_expect_eq(c->shutdown_timeout, 3600.0);
    cr_expect_eq(c->queue_limit, 1073741824);
    cr_expect_eq(c->slow_disconnect, 1);
    cr_expect_eq(c->nonfinite_pass, 1);
    cvd_conf_destroy(c);

    /* workers 1, other spellings of numbers and keywords */
    c = parse_ok("[server]\nworkers = 1\nlog_level = WARNING\nmetrics = localhost:0\n"
                 "max_clients = +007\nhandshake_timeout = 1e-1\nidle_timeout = 2.5\n"
                 "shutdown_timeout = .5\nslow_subscriber = Disconnect\nnonfinite = PASS\n" TAIL);
    cr_expect_eq(c->workers, 1);
    cr_expect_eq(c->log_level, CVD_LOG_WARNING);
    cr_expect_str_eq(c->metrics_host, "127.0.0.1");
    cr_expect_eq(c->metrics_port, 0);
    cr_expect_eq(c->metrics_family, AF_INET);
    cr_expect_eq(c->max_clients, 7);
    cr_expect_eq(c->handshake_timeout, 0.1);
    cr_expect_eq(c->idle_timeout, 2.5);
    cr_expect_eq(c->shutdown_timeout, 0.5);
    cr_expect_eq(c->slow_disconnect, 1);
    cr_expect_eq(c->nonfinite_pass, 1);
    cvd_conf_destroy(c);

    c = parse_ok("[server]\nlog_level = info\nmetrics = NONE\n" TAIL);
    cr_expect_eq(c->log_level, CVD_LOG_INFO);
    cr_expect_eq(c->metrics_enabled, 0);
    cvd_conf_destroy(c);
}

Test(config, listen_boundaries)
{
    cvd_conf *c = parse_ok("[listen lo]\naddress = 0.0.0.0:0\nprotocol = raw\nmodel = m\n"
                           "format = s16le\nchannels = 0\nrate = 1\nblock = 1\n"
                           "[listen hi]\naddress = 255.255.255.255:65535\nprotocol = line\n"
                           "model = m\nchannels = 1024\nrate = 1000000\nblock = 65536\n"
                           "[listen f]\naddress = localhost:7401\nprotocol = framed\n"
                           "channels = 1\n"
                           "[model m]\npath = /abs/m.json\n");
    cr_assert_eq(c->n_listens, 3);
    const cvd_conf_listen *lo = &c->listens[0], *hi = &c->listens[1], *f = &c->listens[2];
    cr_expect_str_eq(lo->host, "0.0.0.0");
    cr_expect_eq(lo->port, 0);
    cr_expect_eq(lo->format, CVD_FMT_S16LE);
    cr_expect_eq(lo->channels, 0);
    cr_expect_eq(lo->rate, 1);
    cr_expect_eq(lo->block, 1);
    cr_expect_eq(lo->model_index, 0, "a model defined after its listener");
    cr_expect_str_eq(hi->host, "255.255.255.255");
    cr_expect_eq(hi->port, 65535);
    cr_expect_eq(hi->protocol, CVD_PROTO_LINE);
    cr_expect_eq(hi->format, CVD_FMT_F32LE);
    cr_expect_eq(hi->channels, 1024);
    cr_expect_eq(hi->rate, 1000000);
    cr_expect_eq(hi->block, 65536);
    cr_expect_str_eq(f->host, "127.0.0.1");
    cr_expect_eq(f->protocol, CVD_PROTO_FRAMED);
    cr_expect_str_eq(f->model, "");
    cr_expect_eq(f->model_index, -1, "a framed listener without a model");
    cr_expect_eq(f->channels, 1);
    cr_expect_str_eq(c->models[0].path, "/abs/m.json");
    cvd_conf_destroy(c);

    /* protocol keywords in any case; a model and a listener may share a name */
    c = parse_ok("[model x]\npath = builtin:x\n[listen x]\naddress = 127.0.0.1:1\n"
                 "protocol = FRAMED\nmodel = x\n[listen y]\naddress = 127.0.0.1:2\n"
                 "protocol = Raw\nmodel = x\nformat = S16LE\n");
    cr_expect_eq(c->listens[0].protocol, CVD_PROTO_FRAMED);
    cr_expect_eq(c->listens[0].model_index, 0);
    cr_expect_eq(c->listens[1].protocol, CVD_PROTO_RAW);
    cr_expect_eq(c->listens[1].format, CVD_FMT_S16LE);
    cvd_conf_destroy(c);
}

Test(config, names)
{
    char text[1024];
    const char *n64 = "abcdefghijABCDEFGHIJ0123456789_.-abcdefghijABCDEFGHIJ0123456789x";
    cr_assert_eq(strlen(n64), 64);
    snprintf(text, sizeof text,
             "[model %s]\npath = builtin:%s\n[listen %s]\naddress = 127.0.0.1:0\n"
             "protocol = raw\nmodel = %s\n",
             n64, n64, n64, n64);
    cvd_conf *c = parse_ok(text);
    cr_expect_str_eq(c->models[0].name, n64);
    cr_expect_str_eq(c->listens[0].name, n64);
    cr_expect_str_eq(c->listens[0].model, n64);
    cr_expect_eq(cvd_conf_find_model(c, n64), 0);
    cr_expect_eq(cvd_conf_find_model(c, "nope"), -1);
    cr_expect_eq(cvd_conf_find_model(NULL, n64), -1);
    cvd_conf_destroy(c);

    /* many sections (the arrays grow) */
    char *big = malloc(200000);
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        n += (size_t)sprintf(big + n,
                             "[model m%d]\npath = builtin:m%d\n[listen l%d]\n"
                             "address = 127.0.0.1:%d\nprotocol = raw\nmodel = m%d\n",
                             i, i, i, 10000 + i, 299 - i);
    c = parse_ok(big);
    cr_assert_eq(c->n_models, 300);
    cr_assert_eq(c->n_listens, 300);
    for (int i = 0; i < 300; i++) {
        cr_expect_eq(c->listens[i].model_index, 299 - i);
        cr_expect_eq(c->listens[i].port, 10000 + i);
        cr_expect_eq(c->models[i].line, 6 * i + 1);
        cr_expect_eq(c->listens[i].line, 6 * i + 3);
    }
    cvd_conf_destroy(c);
    free(big);
}

Test(config, ipv6_addresses)
{
    static const struct {
        const char *addr, *host;
        int port;
    } ok[] = {
        {"[::1]:7400", "::1", 7400},
        {"[::]:0", "::", 0},
        {"[2001:db8::1]:65535", "2001:db8::1", 65535},
        {"[0:0:0:0:0:0:0:1]:1", "::1", 1},
        {"[2001:DB8:0:0:0:0:0:AB]:80", "2001:db8::ab", 80},
        {"[::ffff:192.0.2.1]:80", "::ffff:192.0.2.1", 80},
        {"127.000.000.001:80", NULL, 0}, /* inet_pton refuses leading zeros: an error */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "[listen l]\naddress = %s\nprotocol = framed\n", ok[i].addr);
        if (ok[i].host == NULL) {
            cvd_conf *c = SENTINEL;
            cr_expect_neq(cvd_conf_parse(text, "t.conf", NULL, &c, NULL), 0, "%s", ok[i].addr);
            cr_expect_null(c);
            continue;
        }
        cvd_conf *c = parse_ok(text);
        cr_expect_str_eq(c->listens[0].host, ok[i].host, "%s", ok[i].addr);
        cr_expect_eq(c->listens[0].port, ok[i].port, "%s", ok[i].addr);
        cr_expect_eq(c->listens[0].family, AF_INET6, "%s", ok[i].addr);
        cvd_conf_destroy(c);
    }
}

Test(config, comments_and_whitespace)
{
    const char *text = "\xEF\xBB\xBF; a comment\r\n"
                       "# another\r\n"
                       "   \t \r\n"
                       "  [ server ]   ; the server\r\n"
                       "\tworkers\t=\t3\t; three\r\n"
                       "  log_level=debug\t# after a tab\n"
                       "max_clients = 12 # twelve\n"
                       "  ;indented comment\n"
                       "    #indented comment\n"
                       "[model m]#c\n"
                       "  path = dir/a#b;c.nam   ; '#' and ';' inside a word stay\n"
                       "[  listen    l  ]\n"
                       "address=127.0.0.1:5\n"
                       "    protocol = raw\n"
                       "        model = m\n"
                       "rate = 8000";
    cvd_conf *c = parse_ok(text);
    cr_expect_eq(c->workers, 3);
    cr_expect_eq(c->log_level, CVD_LOG_DEBUG);
    cr_expect_eq(c->max_clients, 12);
    cr_expect_str_eq(c->models[0].path, "dir/a#b;c.nam");
    cr_expect_str_eq(c->models[0].name, "m");
    cr_expect_eq(c->models[0].line, 10);
    cr_expect_str_eq(c->listens[0].name, "l");
    cr_expect_eq(c->listens[0].line, 12);
    cr_expect_eq(c->listens[0].port, 5);
    cr_expect_eq(c->listens[0].rate, 8000, "last line without a newline");
    cvd_conf_destroy(c);

    /* "log_level=debug# ..." : '#' right after a word does not start a comment */
    expect_error("[server]\nlog_level = debug#x\n" TAIL,
                 "t.conf:2: log_level: 'debug#x' is not one of error | warning | info | debug");
    /* an indented line is a directive of its own, never a continuation of the one above */
    cvd_conf *d = parse_ok("[server]\nworkers = 2\n    max_clients = 9\n" TAIL);
    cr_expect_eq(d->workers, 2);
    cr_expect_eq(d->max_clients, 9);
    cvd_conf_destroy(d);
}

Test(config, relative_paths)
{
    const char *text = "[model a]\npath = models/a.json\n[model b]\npath = /x/b.nam\n"
                       "[model c]\npath = builtin:c\n[model d]\npath = ../d.NAM\n"
                       "[listen l]\naddress = 127.0.0.1:0\nprotocol = framed\n";
    cvd_conf *c = parse_ok_in(text, "/etc/convd");
    cr_expect_str_eq(c->dir, "/etc/convd");
    cr_expect_str_eq(c->models[0].path, "/etc/convd/models/a.json");
    cr_expect_str_eq(c->models[1].path, "/x/b.nam");
    cr_expect_str_eq(c->models[2].path, "builtin:c");
    cr_expect_eq(c->models[2].builtin, 1);
    cr_expect_str_eq(c->models[3].path, "/etc/convd/../d.NAM");
    cvd_conf_destroy(c);

    c = parse_ok_in(text, "/");
    cr_expect_str_eq(c->models[0].path, "/models/a.json");
    cvd_conf_destroy(c);
    c = parse_ok_in(text, "conf/");
    cr_expect_str_eq(c->models[0].path, "conf/models/a.json");
    cvd_conf_destroy(c);
    c = parse_ok_in(text, NULL);
    cr_expect_str_eq(c->models[0].path, "models/a.json");
    cr_expect_null(c->dir);
    cvd_conf_destroy(c);

    /* from a file: against the file's folder, made absolute, not the working directory */
    char cwd[PATH_MAX], want[PATH_MAX + 64];
    cvd_err err = {0};
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(cvd_conf_load("tests/data/config/relative.conf", &c, &err), 0, "%s", err.msg);
    cr_expect_str_eq(c->file, "tests/data/config/relative.conf");
    snprintf(want, sizeof want, "%s/tests/data/config", cwd);
    cr_expect_str_eq(c->dir, want);
    snprintf(want, sizeof want, "%s/tests/data/config/models/drive.json", cwd);
    cr_expect_str_eq(c->models[0].path, want);
    snprintf(want, sizeof want, "%s/tests/data/config/../../../config/models/x.nam", cwd);
    cr_expect_str_eq(c->models[1].path, want);
    cr_expect_str_eq(c->models[2].path, "/usr/share/convd/models/drive.json");
    cr_expect_str_eq(c->models[3].path, "builtin:drive");
    cvd_conf_destroy(c);

    /* a file named without a folder: the working directory */
    char *old = strdup(cwd);
    cr_assert_eq(chdir("tests/data/config"), 0);
    cr_expect_eq(cvd_conf_load("relative.conf", &c, &err), 0, "%s", err.msg);
    snprintf(want, sizeof want, "%s/tests/data/config/models/drive.json", old);
    cr_expect_str_eq(c->models[0].path, want);
    cvd_conf_destroy(c);
    cr_assert_eq(chdir(old), 0);
    free(old);
}

/* ---- refusals ---------------------------------------------------------------------------- */

Test(config, syntax_errors)
{
    static const error_case cases[] = {
        {"[server]\nworkers\n", "t.conf:2: workers: expected 'directive = value'"},
        {"[server]\n  = 3\n", "t.conf:2: missing directive name before '='"},
        {"workers = 2\n",
         "t.conf:1: workers: outside any section (directives go under [server], [model NAME], "
         "[listen NAME], [stream NAME] or [nats NAME])"},
        {"; c\n\n[server\n", "t.conf:3: [server: missing ']' at the end of the section header"},
        {"[server] x\n", "t.conf:1: [server]: unexpected text after ']'"},
        {"[model m]] ; c\n", "t.conf:1: [model m]: unexpected text after ']'"},
        {"[servers]\n",
         "t.conf:1: [servers]: unknown section (expected [server], [model NAME], [listen "
         "NAME], [stream NAME] or [nats NAME])"},
        {"[Server]\n",
         "t.conf:1: [Server]: unknown section (expected [server], [model NAME], [listen "
         "NAME], [stream NAME] or [nats NAME])"},
        {"[]\n", "t.conf:1: []: unknown section (expected [server], [model NAME], [listen NAME], "
                 "[stream NAME] or [nats NAME])"},
        {"[modelx y]\n",
         "t.conf:1: [modelx y]: unknown section (expected [server], [model NAME], [listen "
         "NAME], [stream NAME] or [nats NAME])"},
        {"[server x]\n", "t.conf:1: [server x]: [server] takes no name"},
        {"[server]\n[server]\n", "t.conf:2: [server]: duplicate section (first at line 1)"},
        {"[model]\n", "t.conf:1: [model]: needs a name, as in [model NAME]"},
        {"[listen   ]\n", "t.conf:1: [listen]: needs a name, as in [listen NAME]"},
        {"[model a/b]\n", "t.conf:1: [model a/b]: invalid name (1 to 64 of A-Z a-z 0-9 _ . -)"},
        {"[listen a b]\n", "t.conf:1: [listen a b]: invalid name (1 to 64 of A-Z a-z 0-9 _ . -)"},
        {"[model "
         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij12345]\n",
         "t.conf:1: [model abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefg...]: invalid "
         "name (1 to 64 of A-Z a-z 0-9 _ . -)"},
        {"[model m]\npath = builtin:m\n[model m]\n",
         "t.conf:3: [model m]: duplicate section (first at line 1)"},
        {"[listen l]\naddress = 127.0.0.1:1\nprotocol = framed\n\n[listen l]\n",
         "t.conf:5: [listen l]: duplicate section (first at line 1)"},
        {"[server]\nworkers = 1\nworkers = 2\n",
         "t.conf:3: workers: duplicate directive (first at line 2)"},
        {"[model m]\npath = a.nam\npath = b.nam\n",
         "t.conf:3: path: duplicate directive (first at line 2)"},
        {"[server]\nworkers =\n", "t.conf:2: workers: missing value"},
        {"[server]\nworkers = ; nothing\n", "t.conf:2: workers: missing value"},
        {"[server]\nworkers = # nothing\n", "t.conf:2: workers: missing value"},
        {"[server]\nwrokers = 2\n",
         "t.conf:2: wrokers: unknown directive in [server] (did you mean 'workers'?)"},
        {"[server]\nWorkers = 2\n",
         "t.conf:2: Workers: unknown directive in [server] (did you mean 'workers'?)"},
        {"[server]\npath = x.nam\n",
         "t.conf:2: path: unknown directive in [server] (it belongs in [model NAME])"},
        {"[model m]\naddress = 127.0.0.1:1\n",
         "t.conf:2: address: unknown directive in [model m] (it belongs in [listen NAME])"},
        {"[listen l]\nworkers = 1\n",
         "t.conf:2: workers: unknown directive in [listen l] (it belongs in [server])"},
        {"[listen l]\nfoo = 1\n", "t.conf:2: foo: unknown directive in [listen l]"},
        {"[listen l]\nmodle = m\n",
         "t.conf:2: modle: unknown directive in [listen l] (did you mean 'model'?)"},
        {"[server]\nwor kers = 2\n", "t.conf:2: wor kers: unknown directive in [server]"},
        {"[server]\nname: value\n", "t.conf:2: name: value: expected 'directive = value'"},
        {"[server]\nwork\x01"
         "ers = 2\n",
         "t.conf:2: byte 0x01 at column 5 is not text (is this a configuration file?)"},
        {"[server]\n\x7f\n",
         "t.conf:2: byte 0x7f at column 1 is not text (is this a configuration file?)"},
        {"[server]\nworkers = 2\r\r\n",
         "t.conf:2: byte 0x0d at column 12 is not text (is this a configuration file?)"},
    };
    EXPECT_ERRORS(cases);
}

/* [server] directive = value (at line 2) must be refused with reason. */
typedef struct value_case {
    const char *key, *value, *reason;
} value_case;

Test(config, server_value_errors)
{
    static const value_case cases[] = {
        {"workers", "-1", "-1 is out of range 0..256 (0 = one per core)"},
        {"workers", "257", "257 is out of range 0..256 (0 = one per core)"},
        {"workers", "99999999999999999999999",
         "99999999999999999999999 is out of range 0..256 (0 = one per core)"},
        {"workers", "two", "'two' is not a whole number"},
        {"workers", "1.5", "'1.5' is not a whole number"},
        {"workers", "0x10", "'0x10' is not a whole number"},
        {"workers", "-", "'-' is not a whole number"},
        {"workers", "1 2", "'1 2' is not a whole number"},
        {"log_level", "loud", "'loud' is not one of error | warning | info | debug"},
        {"log_level", "warn", "'warn' is not one of error | warning | info | debug"},
        {"metrics", "9400", "'9400' is not HOST:PORT"},
        {"metrics", "localhost:99999", "port 99999 is out of range 0..65535"},
        {"metrics", "example.com:80",
         "'example.com' is not an IPv4 address, [IPv6] address or localhost (host names are not "
         "looked up)"},
        {"max_clients", "0", "0 is out of range 1..1000000"},
        {"max_clients", "1000001", "1000001 is out of range 1..1000000"},
        {"max_message", "1023", "1023 is out of range 1024..67108864 (bytes)"},
        {"max_message", "67108865", "67108865 is out of range 1024..67108864 (bytes)"},
        {"max_message", "1M", "'1M' is not a whole number"},
        {"handshake_timeout", "0.09", "0.09 is out of range 0.1..3600 seconds"},
        {"handshake_timeout", "0", "0 is out of range 0.1..3600 seconds"},
        {"handshake_timeout", "3600.5", "3600.5 is out of range 0.1..3600 seconds"},
        {"handshake_timeout", "1e999", "1e999 is out of range 0.1..3600 seconds"},
        {"handshake_timeout", "5s", "'5s' is not a number of seconds"},
        {"handshake_timeout", "nan", "'nan' is not a number of seconds"},
        {"handshake_timeout", "inf", "'inf' is not a number of seconds"},
        {"handshake_timeout", "0x1p2", "'0x1p2' is not a number of seconds"},
        {"handshake_timeout", ".", "'.' is not a number of seconds"},
        {"handshake_timeout", "1..2", "'1..2' is not a number of seconds"},
        {"handshake_timeout", "1e", "'1e' is not a number of seconds"},
        {"idle_timeout", "-1", "-1 is out of range 0..86400 seconds (0 = never)"},
        {"idle_timeout", "86400.01", "86400.01 is out of range 0..86400 seconds (0 = never)"},
        {"shutdown_timeout", "-0.5", "-0.5 is out of range 0..3600 seconds"},
        {"shutdown_timeout", "3601", "3601 is out of range 0..3600 seconds"},
        {"queue_limit", "4095", "4095 is out of range 4096..1073741824 (bytes)"},
        {"queue_limit", "1073741825", "1073741825 is out of range 4096..1073741824 (bytes)"},
        {"slow_subscriber", "block", "'block' is not one of drop | disconnect"},
        {"nonfinite", "allow", "'allow' is not one of reject | pass"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024], want[512];
        snprintf(text, sizeof text, "[server]\n%s = %s\n" TAIL, cases[i].key, cases[i].value);
        snprintf(want, sizeof want, "t.conf:2: %s: %s", cases[i].key, cases[i].reason);
        expect_error(text, want);
    }
}

/* A complete raw listener [listen l] with `key = value` on line 4 instead of its own. */
static void listen_text(char *buf, size_t n, const char *key, const char *value)
{
    static const char *const keys[] = {"address", "protocol", "model"};
    static const char *const vals[] = {"127.0.0.1:7", "raw", "m"};
    size_t k =
        (size_t)snprintf(buf, n, "[model m]\npath = builtin:m\n[listen l]\n%s = %s\n", key, value);
    for (int i = 0; i < 3; i++)
        if (strcmp(keys[i], key) != 0)
            k += (size_t)snprintf(buf + k, n - k, "%s = %s\n", keys[i], vals[i]);
}

Test(config, listen_value_errors)
{
    static const value_case cases[] = {
        {"address", "7400", "'7400' is not HOST:PORT"},
        {"address", "127.0.0.1:", "'' is not a port number (0..65535)"},
        {"address", "127.0.0.1:65536", "port 65536 is out of range 0..65535"},
        {"address", "127.0.0.1:123456", "'123456' is not a port number (0..65535)"},
        {"address", "127.0.0.1:-1", "'-1' is not a port number (0..65535)"},
        {"address", "127.0.0.1:http", "'http' is not a port number (0..65535)"},
        {"address", "256.0.0.1:80",
         "'256.0.0.1' is not an IPv4 address, [IPv6] address or localhost (host names are not "
         "looked up)"},
        {"address", "example.com:80",
         "'example.com' is not an IPv4 address, [IPv6] address or localhost (host names are not "
         "looked up)"},
        {"address", "::1:7400", "'::1:7400': an IPv6 address goes in brackets, as in [::1]:7400"},
        {"address", "[::1:7400", "'[::1:7400': missing ']' after the IPv6 address"},
        {"address", "[::1]7400", "'[::1]7400' is not [IPv6]:PORT"},
        {"address", "[::1]", "'[::1]' is not [IPv6]:PORT"},
        {"address", "[127.0.0.1]:80", "'127.0.0.1' is not an IPv6 address"},
        {"address", "[fe80::1%eth0]:80", "'fe80::1%eth0' is not an IPv6 address"},
        {"address", ":7400", "':7400': missing host before the port"},
        {"address", "[]:7400", "'[]:7400': missing host before the port"},
        {"protocol", "udp", "'udp' is not one of raw | framed | line"},
        {"model", "a b", "'a b' is not a model name (1 to 64 of A-Z a-z 0-9 _ . -)"},
        {"model", "a/b", "'a/b' is not a model name (1 to 64 of A-Z a-z 0-9 _ . -)"},
        {"format", "f64le", "'f64le' is not one of f32le | s16le"},
        {"channels", "-1", "-1 is out of range 0..1024 (0 = the model's)"},
        {"channels", "1025", "1025 is out of range 0..1024 (0 = the model's)"},
        {"rate", "0", "0 is out of range 1..1000000 (frames per second)"},
        {"rate", "1000001", "1000001 is out of range 1..1000000 (frames per second)"},
        {"rate", "44.1k", "'44.1k' is not a whole number"},
        {"block", "0", "0 is out of range 1..65536 (frames)"},
        {"block", "65537", "65537 is out of range 1..65536 (frames)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024], want[512];
        listen_text(text, sizeof text, cases[i].key, cases[i].value);
        snprintf(want, sizeof want, "t.conf:4: %s: %s", cases[i].key, cases[i].reason);
        expect_error(text, want);
    }
}

Test(config, model_errors)
{
    static const error_case cases[] = {
        {"[model m]\n[listen l]\naddress = 127.0.0.1:1\nprotocol = raw\nmodel = m\n",
         "t.conf:1: [model m]: missing 'path' (a .nam, .json, .keras or .h5 file, or "
         "builtin:NAME)"},
        {"[model m]\npath = m.onnx\n",
         "t.conf:2: path: 'm.onnx' is not a .nam, .json, .keras or .h5 file, nor an impulse "
         "response (.wav, .flac, .aif, .aiff, .ogg; or type = ir), nor builtin:NAME"},
        {"[model m]\npath = .nam\n",
         "t.conf:2: path: '.nam' is not a .nam, .json, .keras or .h5 file, nor an impulse response "
         "(.wav, .flac, .aif, .aiff, .ogg; or type = ir), nor builtin:NAME"},
        {"[model m]\npath = models/\n",
         "t.conf:2: path: 'models/' is not a .nam, .json, .keras or .h5 file, nor an impulse "
         "response (.wav, .flac, .aif, .aiff, .ogg; or type = ir), nor builtin:NAME"},
        {"[model m]\npath = builtin:\n",
         "t.conf:2: path: 'builtin:': a built-in model is builtin:NAME, NAME 1 to 64 of A-Z a-z "
         "0-9 _ . -"},
        {"[model m]\npath = builtin:a/b.nam\n",
         "t.conf:2: path: 'builtin:a/b.nam': a built-in model is builtin:NAME, NAME 1 to 64 of "
         "A-Z a-z 0-9 _ . -"},
        {"[model m]\npath = BUILTIN:m\n",
         "t.conf:2: path: 'BUILTIN:m' is not a .nam, .json, .keras or .h5 file, nor an impulse "
         "response (.wav, .flac, .aif, .aiff, .ogg; or type = ir), nor builtin:NAME"},
        {"[model m]\npath = builtin:m\nhop = 1.5\n", "t.conf:3: hop: '1.5' is not a whole number"},
        {"[model m]\npath = builtin:m\nthreads = 3\n",
         "t.conf:3: threads: 3 is out of range 1..2 (2 = a WaveNet as two pipeline stages)"},
        {"[model m]\npath = builtin:m\nhop = -1\n",
         "t.conf:3: hop: -1 is out of range 0..1073741824 (0 = the window length)"},
        {"[model m]\nhop = 2\npath = builtin:m\nhop = 3\n",
         "t.conf:4: hop: duplicate directive (first at line 2)"},
    };
    EXPECT_ERRORS(cases);
}

Test(config, listener_errors)
{
    static const error_case cases[] = {
        {"[model m]\npath = builtin:m\n[listen l]\nprotocol = raw\nmodel = m\n",
         "t.conf:3: [listen l]: missing 'address' (HOST:PORT)"},
        {"[model m]\npath = builtin:m\n[listen l]\naddress = 127.0.0.1:1\nmodel = m\n",
         "t.conf:3: [listen l]: missing 'protocol' (raw | framed | line)"},
        {"[listen l]\naddress = 127.0.0.1:1\nprotocol = raw\n",
         "t.conf:1: [listen l]: a raw listener needs 'model'"},
        {"[listen l]\naddress = 127.0.0.1:1\nprotocol = line\n",
         "t.conf:1: [listen l]: a line listener needs 'model'"},
        {"[listen l]\naddress = 127.0.0.1:1\nprotocol = raw\nmodel = nope\n[model m]\n"
         "path = builtin:m\n",
         "t.conf:4: model: no [model nope] section"},
        {"[listen l]\naddress = 127.0.0.1:1\nprotocol = framed\nmodel = nope\n",
         "t.conf:4: model: no [model nope] section"},
        {"[listen l]\naddress = 127.0.0.1:1\nformat = s16le\nprotocol = framed\n",
         "t.conf:3: format: only raw listeners have a sample format (a framed listener "
         "negotiates it in HELLO)"},
        {"[model m]\npath = builtin:m\n[listen l]\naddress = 127.0.0.1:1\nprotocol = line\n"
         "model = m\nformat = f32le\n",
         "t.conf:7: format: only raw listeners have a sample format (a line listener reads "
         "text)"},
        /* the same address twice (localhost is 127.0.0.1; IPv6 spellings are canonical) */
        {"[listen a]\naddress = 127.0.0.1:7400\nprotocol = framed\n"
         "[listen b]\nprotocol = framed\naddress = localhost:7400\n",
         "t.conf:6: address: 127.0.0.1:7400 is already the address of [listen a] (line 2)"},
        {"[listen a]\naddress = [::1]:7400\nprotocol = framed\n"
         "[listen b]\nprotocol = framed\naddress = [0::1]:7400\n",
         "t.conf:6: address: [::1]:7400 is already the address of [listen a] (line 2)"},
        {"[server]\nmetrics = 127.0.0.1:9400\n"
         "[listen a]\naddress = 127.0.0.1:9400\nprotocol = framed\n",
         "t.conf:4: address: 127.0.0.1:9400 is already the metrics address (line 2)"},
        {"[listen a]\naddress = 127.0.0.1:9400\nprotocol = framed\n"
         "[server]\nmetrics = 127.0.0.1:9400\n",
         "t.conf:5: metrics: 127.0.0.1:9400 is already the address of [listen a] (line 2)"},
        /* no listener */
        {"", "t.conf:1: no [listen NAME], [stream NAME] or [nats NAME] section: there is nothing "
             "to serve"},
        {"\n\n; only comments\n", "t.conf:3: no [listen NAME], [stream NAME] or [nats NAME] "
                                  "section: there is nothing to serve"},
        {"[server]\n[model m]\npath = builtin:m\n",
         "t.conf:3: no [listen NAME], [stream NAME] or [nats NAME] section: there is nothing to "
         "serve"},
        /* of several errors found once the file is read, the first by line */
        {"[listen a]\naddress = 127.0.0.1:1\n[model m]\n",
         "t.conf:1: [listen a]: missing 'protocol' (raw | framed | line)"},
        {"[model m]\n[listen a]\naddress = 127.0.0.1:1\nprotocol = raw\nmodel = x\n",
         "t.conf:1: [model m]: missing 'path' (a .nam, .json, .keras or .h5 file, or "
         "builtin:NAME)"},
        {"[listen a]\nmodel = x\naddress = 127.0.0.1:1\nprotocol = raw\n[model m]\n",
         "t.conf:2: model: no [model x] section"},
        /* a parse error stops the parse: nothing after it is looked at */
        {"[listen a]\nworkers = 1\n[model m]\n",
         "t.conf:2: workers: unknown directive in [listen a] (it belongs in [server])"},
    };
    EXPECT_ERRORS(cases);

    /* port 0 (any free port) twice is fine, and a wildcard beside a specific address is for
     * bind() to judge */
    cvd_conf *c = parse_ok("[listen a]\naddress = 127.0.0.1:0\nprotocol = framed\n"
                           "[listen b]\naddress = 127.0.0.1:0\nprotocol = framed\n"
                           "[listen c]\naddress = 0.0.0.0:7\nprotocol = framed\n"
                           "[listen d]\naddress = 127.0.0.1:7\nprotocol = framed\n"
                           "[listen e]\naddress = [::1]:7\nprotocol = framed\n"
                           "[server]\nmetrics = 127.0.0.1:0\n");
    cr_expect_eq(c->n_listens, 5);
    cvd_conf_destroy(c);
}

/* ---- files ------------------------------------------------------------------------------- */

static void expect_load_error(const char *path, int code, const char *want)
{
    cvd_err err = {0};
    cvd_conf *c = SENTINEL;
    int rc = cvd_conf_load(path, &c, &err);
    cr_expect_eq(rc, code, "%s: rc %d (%s)", path, rc, err.msg);
    cr_expect_null(c);
    if (want != NULL)
        cr_expect_str_eq(err.msg, want);
}

Test(config, files_that_are_not_configurations)
{
    expect_load_error("tests/data/config/does-not-exist.conf", CVD_EIO,
                      "tests/data/config/does-not-exist.conf: cannot open: No such file or "
                      "directory");
    expect_load_error("tests/data/config", CVD_EIO,
                      "tests/data/config: cannot read: Is a directory");
    expect_load_error("tests/data/config/empty.conf", CVD_EFORMAT,
                      "tests/data/config/empty.conf:1: no [listen NAME], [stream NAME] or [nats "
                      "NAME] section: there is nothing to serve");
    expect_load_error("tests/data/config/nul.conf", CVD_EFORMAT,
                      "tests/data/config/nul.conf:3: byte 0x00 at column 10 is not text (is "
                      "this a configuration file?)");
    expect_load_error("tests/data/config/bad.conf", CVD_EFORMAT,
                      "tests/data/config/bad.conf:6: rate: 0 is out of range 1..1000000 (frames "
                      "per second)");
}

static char *write_temp(const void *data, size_t n)
{
    char *path = strdup("/tmp/convd-test-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

/* A file larger than 16 MiB is refused before it is parsed. */
Test(config, file_too_large)
{
    char path[] = "/tmp/convd-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)CVD_CONF_FILE_MAX + 1), 0);
    close(fd);
    char want[256];
    snprintf(want, sizeof want, "%s: larger than 16 MiB (not a configuration file?)", path);
    expect_load_error(path, CVD_EFORMAT, want);
    /* exactly 16 MiB is read (and refused for its NUL bytes, on line 1) */
    cr_assert_eq(truncate(path, (off_t)CVD_CONF_FILE_MAX), 0);
    snprintf(want, sizeof want,
             "%s:1: byte 0x00 at column 1 is not text (is this a configuration file?)", path);
    expect_load_error(path, CVD_EFORMAT, want);
    unlink(path);
}

/* Random bytes, from several seeds: refused with FILE:LINE:, never a crash. */
Test(config, binary_garbage)
{
    const uint64_t seed = tu_seed();
    for (int round = 0; round < 40; round++) {
        cvd_rng r;
        size_t n = 1 + (size_t)(round * 997 % 20000);
        unsigned char *b = malloc(n);
        cvd_rng_seed(&r, seed + (uint64_t)round);
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)cvd_rng_next(&r);
        char *path = write_temp(b, n);
        cvd_err err = {0};
        cvd_conf *c = SENTINEL;
        int rc = cvd_conf_load(path, &c, &err);
        cr_expect_eq(rc, CVD_EFORMAT, "seed %llu round %d: %s", (unsigned long long)seed, round,
                     err.msg);
        cr_expect_null(c);
        size_t pl = strlen(path);
        cr_expect(strncmp(err.msg, path, pl) == 0 && err.msg[pl] == ':' && err.msg[pl + 1] >= '1' &&
                      err.msg[pl + 1] <= '9',
                  "no FILE:LINE: in '%s'", err.msg);
        unlink(path);
        free(path);
        free(b);
    }
}

/* Random soup of the format's own tokens: accepted or refused with "t.conf:LINE: ", LINE
 * within the text; never a crash or a leak (run under the sanitizers). */
Test(config, token_soup)
{
    static const char *const tok[] = {
        "[server]", "[model m]",    "[listen l]", "[model",   "]",     "[",        "=",
        " ",        "\t",           "\n",         "\n",       "\n",    ";",        "#",
        "workers",  "path",         "address",    "protocol", "model", "format",   "rate",
        "block",    "metrics",      "raw",        "framed",   "line",  "m",        "builtin:m",
        "a.nam",    "127.0.0.1:1",  "[::1]:2",    "0",        "65536", "-1",       "none",
        "\r\n",     "\xEF\xBB\xBF", "\xff",       ":",        "1e9",   "channels", "log_level"};
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    for (int round = 0; round < 3000; round++) {
        char text[2048];
        size_t n = 0;
        int lines = 1, ntok = 1 + (int)tu_randint(&r, 60);
        for (int t = 0; t < ntok; t++) {
            const char *s = tok[tu_randint(&r, sizeof tok / sizeof tok[0])];
            size_t k = strlen(s);
            if (n + k + 1 >= sizeof text)
                break;
            memcpy(text + n, s, k);
            n += k;
            for (size_t i = 0; i < k; i++)
                lines += s[i] == '\n';
        }
        text[n] = '\0';
        cvd_err err = {0};
        cvd_conf *c = SENTINEL;
        int rc = cvd_conf_parse(text, "t.conf", "/d", &c, &err);
        if (rc == 0) {
            cr_assert(c != NULL && c != SENTINEL);
            cr_expect_geq(c->n_listens, 1);
            cvd_conf_destroy(c);
            continue;
        }
        int line = 0;
        cr_assert_eq(rc, CVD_EFORMAT, "seed %llu round %d: %d %s", (unsigned long long)seed, round,
                     rc, err.msg);
        cr_assert_null(c);
        cr_assert_eq(sscanf(err.msg, "t.conf:%d: ", &line), 1, "'%s'", err.msg);
        cr_assert(line >= 1 && line <= lines, "line %d of %d: %s\n%s", line, lines, err.msg, text);
    }
}

/* Lines of a megabyte: the line numbers after them stay right, and values are cut in
 * messages. */
Test(config, megabyte_lines)
{
    const size_t M = 1 << 20;
    char *text = malloc(M + 4096), *p;
    char want[CVD_ERR_MSG_MAX];

    /* a 1 MB comment, then an error on line 3 */
    p = text;
    p += sprintf(p, "[server]\n;");
    memset(p, 'x', M);
    p += M;
    sprintf(p, "\nworkers = 999\n" TAIL);
    expect_error(text, "t.conf:3: workers: 999 is out of range 0..256 (0 = one per core)");

    /* ... and, from a file, accepted when the rest is right */
    sprintf(text + 10 + M, "\nworkers = 9\n" TAIL);
    char *path = write_temp(text, strlen(text));
    cvd_conf *c = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_conf_load(path, &c, &err), 0, "%s", err.msg);
    cr_expect_eq(c->workers, 9);
    cr_expect_eq(c->listens[0].line, 6);
    cvd_conf_destroy(c);
    unlink(path);
    free(path);

    /* a 1 MB value */
    p = text;
    p += sprintf(p, "[server]\nworkers = ");
    memset(p, '7', M);
    p += M;
    sprintf(p, "\n" TAIL);
    snprintf(want, sizeof want,
             "t.conf:2: workers: %.57s... is out of range 0..256 (0 = one per core)", text + 19);
    expect_error(text, want);

    /* a 1 MB path */
    p = text;
    p += sprintf(p, "\n[model m]\npath = ");
    memset(p, 'a', M);
    p += M;
    sprintf(p, ".nam\n");
    expect_error(text, "t.conf:3: path: longer than 4095 bytes");

    /* a 1 MB line that is not "directive = value" */
    memset(text, 'z', M);
    strcpy(text + M, "\n");
    snprintf(want, sizeof want, "t.conf:1: %.57s...: expected 'directive = value'", text);
    expect_error(text, want);

    /* a 1 MB section header */
    text[0] = '[';
    strcpy(text + M, "]\n");
    snprintf(want, sizeof want,
             "t.conf:1: [%.57s...]: unknown section (expected [server], [model NAME], [listen "
             "NAME], [stream NAME] or [nats NAME])",
             text + 1);
    expect_error(text, want);
    free(text);
}

/* Model paths up to 4095 bytes, longer than inih's 200-byte line buffer. */
Test(config, long_paths)
{
    char text[8192], *p, want[8192];
    for (int len = 190; len <= 4096; len += 1) {
        if (len > 300 && len < 4090)
            len = 4090;
        p = text;
        p += sprintf(p, "[model m]\npath = /");
        memset(p, 'p', (size_t)len - 6);
        p += len - 6;
        sprintf(p, ".json   ; comment\n[listen l]\naddress = 127.0.0.1:0\nprotocol = raw\n"
                   "model = m\n");
        if (len <= 4095) {
            cvd_conf *c = parse_ok(text);
            cr_expect_eq((int)strlen(c->models[0].path), len);
            memcpy(want, text + 17, (size_t)len);
            want[len] = '\0';
            cr_expect_str_eq(c->models[0].path, want);
            cvd_conf_destroy(c);
        } else {
            expect_error(text, "t.conf:2: path: longer than 4095 bytes");
        }
    }
    /* a relative path joined to a folder may end longer than 4095 */
    p = text;
    p += sprintf(p, "[model m]\npath = ");
    memset(p, 'q', 4090);
    p += 4090;
    sprintf(p, ".nam\n[listen l]\naddress = 127.0.0.1:0\nprotocol = framed\n");
    cvd_conf *c = parse_ok_in(text, "/some/folder");
    cr_expect_eq(strlen(c->models[0].path), strlen("/some/folder/") + 4094);
    cvd_conf_destroy(c);
}

/* ---- the small API ----------------------------------------------------------------------- */

Test(config, names_and_arguments)
{
    cvd_proto pr;
    cvd_sample_fmt f;
    cr_expect_str_eq(cvd_proto_name(CVD_PROTO_RAW), "raw");
    cr_expect_str_eq(cvd_proto_name(CVD_PROTO_FRAMED), "framed");
    cr_expect_str_eq(cvd_proto_name(CVD_PROTO_LINE), "line");
    cr_expect_str_eq(cvd_proto_name((cvd_proto)7), "?");
    cr_expect_str_eq(cvd_sample_fmt_name(CVD_FMT_F32LE), "f32le");
    cr_expect_str_eq(cvd_sample_fmt_name(CVD_FMT_S16LE), "s16le");
    cr_expect_str_eq(cvd_sample_fmt_name((cvd_sample_fmt)-1), "?");
    cr_expect_eq(cvd_proto_parse("Line", &pr), 0);
    cr_expect_eq(pr, CVD_PROTO_LINE);
    cr_expect_eq(cvd_proto_parse("tcp", &pr), -1);
    cr_expect_eq(cvd_proto_parse(NULL, &pr), -1);
    cr_expect_eq(cvd_sample_fmt_parse("s16le", &f), 0);
    cr_expect_eq(f, CVD_FMT_S16LE);
    cr_expect_eq(cvd_sample_fmt_parse("s24le", &f), -1);

    static const char *const levels[] = {"error", "warning", "info", "debug"};
    static const int values[] = {CVD_LOG_ERROR, CVD_LOG_WARNING, CVD_LOG_INFO, CVD_LOG_DEBUG};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(cvd_log_level_parse(levels[i]), values[i]);
        cr_expect_str_eq(cvd_log_level_name(values[i]), levels[i]);
    }
    cr_expect_eq(cvd_log_level_parse("Debug"), CVD_LOG_DEBUG);
    cr_expect_eq(cvd_log_level_parse("verbose"), -1);
    cr_expect_eq(cvd_log_level_parse(NULL), -1);
    cr_expect_str_eq(cvd_log_level_name(42), "?");

    cvd_conf_destroy(NULL);
    cvd_err err = {0};
    cvd_conf *c = SENTINEL;
    cr_expect_eq(cvd_conf_parse(NULL, "x", NULL, &c, &err), CVD_EINVAL);
    cr_expect_null(c);
    cr_expect_eq(cvd_conf_parse("", "x", NULL, NULL, &err), CVD_EINVAL);
    c = SENTINEL;
    cr_expect_eq(cvd_conf_load(NULL, &c, &err), CVD_EINVAL);
    cr_expect_null(c);
    cr_expect_eq(cvd_conf_load("config/convd.conf", NULL, &err), CVD_EINVAL);
    /* err may be NULL; name may be NULL */
    cr_expect_eq(cvd_conf_parse("[server]\nworkers = x\n", NULL, NULL, &c, NULL), CVD_EFORMAT);
    cr_expect_eq(cvd_conf_parse("[server]\nworkers = x\n", NULL, NULL, &c, &err), CVD_EFORMAT);
    cr_expect_str_eq(err.msg, "(config):2: workers: 'x' is not a whole number");
}

/* A raw listener's format goes through proto's sample-format parser, the codec's own: every
 * spelling the codec takes is a format here too, and nothing else is. */
Test(config, sample_format_is_the_codecs_parser)
{
    static const char *const names[] = {"f32le", "F32", "float", "s16le", "S16", "int16"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[256];
        cvd_sample_format want;
        cvd_conf *c = NULL;
        cvd_err err = {0};
        cr_assert_eq(cvd_sample_format_parse(names[i], &want), 0);
        snprintf(text, sizeof text,
                 "[model m]\npath = builtin:m\n[listen l]\naddress = 127.0.0.1:1\nprotocol = "
                 "raw\nmodel = m\nformat = %s\n",
                 names[i]);
        cr_assert_eq(cvd_conf_parse(text, "t.conf", NULL, &c, &err), 0, "%s: %s", names[i],
                     err.msg);
        cr_assert_eq(c->listens[0].format, want, "%s", names[i]);
        cvd_conf_destroy(c);
    }
}

/* docs/CONFIG.md's directive tables are the directive table (server/config_table.c): each
 * row as cvd_conf_doc_row writes it, under its section's heading, and no other row there.
 * A directive added to the table without its doc row (or the reverse) fails here, the row
 * to paste printed. */
Test(config, reference_tables_are_the_directive_table)
{
    static const char *const headings[] = {NULL,
                                           "## `[server]`",
                                           "## `[model NAME]`",
                                           "## `[listen NAME]`",
                                           "## `[stream NAME]`",
                                           "## `[nats NAME]`"};
    size_t len;
    char *doc = tu_read_file("docs/CONFIG.md", &len);
    cr_assert_not_null(doc, "cannot read docs/CONFIG.md");
    for (int sec = CVD_CONF_SERVER; sec <= CVD_CONF_NATS; sec++) {
        char *start = strstr(doc, headings[sec]);
        cr_assert_not_null(start, "docs/CONFIG.md has no heading %s", headings[sec]);
        start += strlen(headings[sec]);
        char *end = strstr(start, "\n## ");
        size_t span = end ? (size_t)(end - start) : strlen(start);
        char *part = strndup(start, span);
        int in_table = 0, in_doc = 0;
        for (int i = 0; i < cvd_conf_n_directives; i++) {
            const cvd_conf_directive *d = &cvd_conf_directives[i];
            char row[2048];
            if (d->section != sec)
                continue;
            in_table++;
            cvd_conf_doc_row(d, row, sizeof row);
            cr_expect_not_null(strstr(part, row), "%s: docs/CONFIG.md lacks the row\n%s",
                               headings[sec], row);
        }
        for (char *p = part; (p = strstr(p, "\n| `")) != NULL; p++)
            in_doc++;
        cr_expect_eq(in_doc, in_table, "%s: %d directive rows in docs/CONFIG.md, %d in the table",
                     headings[sec], in_doc, in_table);
        cr_expect_leq(in_table, 32, "%s: more directives than CONF_MAX_KEYS (config_internal.h)",
                      headings[sec]);
        free(part);
    }
    free(doc);
    /* every directive has a name, words, and a default that its own reader takes (or is
     * required) */
    for (int i = 0; i < cvd_conf_n_directives; i++) {
        const cvd_conf_directive *d = &cvd_conf_directives[i];
        cr_expect(d->name && d->help && d->section >= CVD_CONF_SERVER &&
                      d->section <= CVD_CONF_NATS,
                  "row %d", i);
        cr_expect(!(d->def && d->required), "%s: a default and required", d->name);
        cr_expect(d->type != CVD_CONF_SPECIAL || d->set, "%s: special without a reader", d->name);
        cr_expect(d->type != CVD_CONF_CHOICE || d->choices, "%s: a choice of nothing", d->name);
    }
}

/* the shipped file writes out every [server] directive with the table's default (metrics
 * aside: the file turns it on) */
Test(config, shipped_file_has_every_server_directive_at_its_default)
{
    size_t len;
    char *text = tu_read_file("config/convd.conf", &len);
    cr_assert_not_null(text);
    for (int i = 0; i < cvd_conf_n_directives; i++) {
        const cvd_conf_directive *d = &cvd_conf_directives[i];
        char line[256];
        if (d->section != CVD_CONF_SERVER || strcmp(d->name, "metrics") == 0)
            continue;
        if (d->def == NULL) { /* no default (metrics_allow): shown commented out */
            snprintf(line, sizeof line, "\n;%s = ", d->name);
            cr_expect_not_null(strstr(text, line), "config/convd.conf lacks \";%s = ...\"",
                               d->name);
            continue;
        }
        snprintf(line, sizeof line, "\n%s = %s\n", d->name, d->def);
        cr_expect_not_null(strstr(text, line), "config/convd.conf lacks \"%s = %s\"", d->name,
                           d->def);
    }
    free(text);
}
