/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd-cat: sends audio through a convd server's model, or records a published stream, over
 * the framed protocol (client/convd_client.h).
 *
 *   convd-cat [OPTIONS] INPUT OUTPUT
 *   convd-cat [OPTIONS] --subscribe STREAM OUTPUT
 *
 * INPUT is streamed to the server while the processed frames come back and are written to
 * OUTPUT; after the end of INPUT the server flushes the model's tail, so OUTPUT holds every
 * output frame. With --subscribe, the output of a stream that another client publishes is
 * written until the server ends it or ^C. See docs/PROTOCOL.md ("convd-cat").
 *
 * Exit status: 0 success, 1 a runtime or input error, 2 a usage error, 3 the server stopped
 * (SIGTERM) and cut the stream: OUTPUT keeps every frame that came, and a message says so.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audiofile.h"
#include "cli.h"
#include "convd_client.h"
#include "convd_dsp.h"
#include "convd_version.h"

#define PROG "convd-cat"
#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_TIMEOUT 10.0
#define READ_FRAMES 4096 /* frames read from INPUT at a time */
#define MAX_BLOCK 65536

/* How a file is read or written: through audiofile (floats) or as raw s16le (bytes, passed
 * to and from the wire as they are). */
enum { IO_AF = 0, IO_S16 = 1 };

typedef struct options {
    const char *host, *port, *model, *subscribe, *publish;
    const char *input, *output;
    int block;
    int channels; /* of INPUT when the file does not say; 0 = the model's */
    unsigned rate;
    int wire;             /* CVD_CLIENT_F32LE / CVD_CLIENT_S16LE; 0 = chosen from the files */
    cvd_af_format format; /* of "-" and of files whose extension says nothing */
    int format_s16;       /* --format s16 */
    double timeout;
    int quiet;
    int tls;                     /* --tls (or --ca, --cert, --key) */
    const char *ca, *cert, *key; /* TLS files */
    const char *token;           /* --token, or CONVD_TOKEN */
} options;

/* drain() and friends: the server cut the stream (ERROR shutting_down); exit status 3 */
#define CUT 4
#define EXIT_CUT 3

static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
    (void)sig;
    interrupts++;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [OPTIONS] INPUT OUTPUT\n"
            "       " PROG " [OPTIONS] --subscribe STREAM OUTPUT\n"
            "\n"
            "Sends INPUT through a convd server's model and writes the processed frames to\n"
            "OUTPUT (all of them: the model's tail is flushed at the end of INPUT); or, with\n"
            "--subscribe, writes the output of a stream another client publishes until the\n"
            "server ends it or ^C. Speaks convd's framed protocol.\n"
            "\n"
            "  -h, --host HOST       server name or address (default " DEFAULT_HOST ")\n"
            "  -p, --port PORT       port of a framed listener (default " CVD_CLIENT_DEFAULT_PORT
            ")\n"
            "  -m, --model NAME      the model (default: the listener's)\n"
            "  --subscribe STREAM    record a published stream instead of sending INPUT\n"
            "  --publish NAME        publish the output as stream NAME while it runs\n"
            "  -b, --block N         frames per message and per model call, 1 to %d\n"
            "                        (default: the listener's block)\n"
            "  --format FMT          f32, s16 or csv: the format of '-' (standard input or\n"
            "                        output) and of files whose extension says nothing\n"
            "  --wire f32|s16        samples on the network (default f32; s16 when a side is\n"
            "                        raw s16, which then passes through unconverted)\n"
            "  --channels N          channels of raw INPUT (.f32, .s16, -): default the model's\n"
            "  --rate HZ             sample rate to announce for INPUT without one (raw, csv)\n"
            "  --timeout SECONDS     to connect and for each wait for the server (default %g;\n"
            "                        0: forever). A subscription waits forever once accepted.\n"
            "  --tls                 speak TLS (a listener with tls_cert); the server's\n"
            "                        certificate is checked against the system's CAs and HOST\n"
            "  --ca FILE             ...against the CAs of FILE (PEM) instead (implies --tls)\n"
            "  --cert FILE           a client certificate (PEM), for listeners with\n"
            "  --key FILE            tls_client_ca, and its key (imply --tls)\n"
            "  --token TOKEN         the token for a listener with tokens (HELLO version 2);\n"
            "                        default: the environment's CONVD_TOKEN (which, unlike the\n"
            "                        command line, other users cannot read in ps)\n"
            "  -q, --quiet           nothing on standard error but errors\n"
            "  --help                this text (-h is the host)\n"
            "  --version             the version\n"
            "\n"
            "Files by extension: .wav, .flac, .aiff, .ogg, ... (libsndfile), .f32 (raw float32),\n"
            ".s16 (raw 16-bit), .csv (text, one frame per line). Raw files are little-endian,\n"
            "channels interleaved.\n"
            "\n"
            "Exit status: 0 success, 1 runtime or input error, 2 usage error, 3 the server\n"
            "stopped and cut the stream (OUTPUT keeps what came before the cut).\n"
            "Documentation: " PROG "(1); " CVD_DOCDIR "/PROTOCOL.md\n",
            MAX_BLOCK, DEFAULT_TIMEOUT);
}

/* A message from a library: prefixed with `what` unless it names it already. */
static int fail_err(const char *what, const cvd_err *err)
{
    const char *m = err->msg[0] ? err->msg : cvd_strerror(err->code);
    if (what == NULL || strstr(m, what) != NULL)
        return cli_fail("%s", m);
    return cli_fail("%s: %s", what, m);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* Raw s16: "-" with --format s16, *.s16, or a file whose extension says nothing with
 * --format s16. */
static int is_s16(const options *o, const char *path)
{
    if (ends_with(path, ".s16"))
        return 1;
    if (!o->format_s16)
        return 0;
    return strcmp(path, "-") == 0 ||
           (!ends_with(path, ".f32") && !ends_with(path, ".csv") && !cvd_af_sndfile_writable(path));
}

/* Returns 0, 2 (usage error) or -1 (help printed: exit 0). */
static int parse_args(int argc, char **argv, options *o)
{
    const char *pos[2];
    int npos = 0, only_positionals = 0;
    long long v;

    memset(o, 0, sizeof *o);
    o->host = DEFAULT_HOST;
    o->port = CVD_CLIENT_DEFAULT_PORT;
    o->timeout = DEFAULT_TIMEOUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        char name[32];
        const int k = cli_positional(a, &only_positionals, pos, &npos, 2);
        if (k != 0) {
            if (k < 0)
                return 2;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(a, "--version") == 0) {
            printf(PROG " " CVD_VERSION "\n");
            return -1;
        }
        if (strcmp(a, "--tls") == 0) {
            o->tls = 1;
            continue;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        /* options with a value: "--name VALUE", "--name=VALUE", "-x VALUE" */
        eq = cli_opt_split(a, name, sizeof name);
        if ((val = cli_opt_value(argc, argv, &i, eq)) == NULL)
            return 2;
        if (strcmp(name, "-h") == 0 || strcmp(name, "--host") == 0) {
            o->host = val;
        } else if (strcmp(name, "-p") == 0 || strcmp(name, "--port") == 0) {
            if (cli_parse_int(name, val, 1, 65535, &v) != 0)
                return 2;
            o->port = val;
        } else if (strcmp(name, "-m") == 0 || strcmp(name, "--model") == 0) {
            o->model = val;
        } else if (strcmp(name, "--subscribe") == 0) {
            if (val[0] == '\0')
                return cli_usage_error("--subscribe needs a stream name");
            o->subscribe = val;
        } else if (strcmp(name, "--publish") == 0) {
            if (val[0] == '\0')
                return cli_usage_error("--publish needs a stream name");
            o->publish = val;
        } else if (strcmp(name, "-b") == 0 || strcmp(name, "--block") == 0) {
            if (cli_parse_int(name, val, 1, MAX_BLOCK, &v) != 0)
                return 2;
            o->block = (int)v;
        } else if (strcmp(name, "--channels") == 0) {
            if (cli_parse_int(name, val, 1, 65535, &v) != 0)
                return 2;
            o->channels = (int)v;
        } else if (strcmp(name, "--rate") == 0) {
            if (cli_parse_int(name, val, 1, 10000000, &v) != 0)
                return 2;
            o->rate = (unsigned)v;
        } else if (strcmp(name, "--format") == 0) {
            if (strcasecmp(val, "s16") == 0 || strcasecmp(val, "s16le") == 0)
                o->format_s16 = 1;
            else if (strcasecmp(val, "f32le") == 0)
                o->format = CVD_AF_F32;
            else if (cvd_af_format_parse(val, &o->format) < 0)
                return cli_usage_error("--format %s: unknown (f32, s16 or csv)", val);
        } else if (strcmp(name, "--wire") == 0) {
            cvd_sample_format f;
            if (cvd_sample_format_parse(val, &f) < 0)
                return cli_usage_error("--wire %s: unknown (f32 or s16)", val);
            o->wire = (int)f;
        } else if (strcmp(name, "--ca") == 0) {
            o->ca = val;
            o->tls = 1;
        } else if (strcmp(name, "--cert") == 0) {
            o->cert = val;
            o->tls = 1;
        } else if (strcmp(name, "--key") == 0) {
            o->key = val;
            o->tls = 1;
        } else if (strcmp(name, "--token") == 0) {
            if (val[0] == '\0')
                return cli_usage_error("--token needs a value");
            o->token = val;
        } else if (strcmp(name, "--timeout") == 0) {
            if (cli_parse_seconds(name, val, &o->timeout) != 0)
                return 2;
        } else {
            return cli_usage_error("unknown option '%s'", a);
        }
    }
    if ((o->cert == NULL) != (o->key == NULL))
        return cli_usage_error("--cert and --key go together (a certificate and its key)");
    if (o->token == NULL) {
        const char *env = getenv("CONVD_TOKEN");
        if (env && *env)
            o->token = env;
    }
    if (o->subscribe) {
        if (npos != 1)
            return cli_usage_error(npos == 0 ? "OUTPUT is missing"
                                             : "--subscribe takes only OUTPUT (no INPUT)");
        if (o->publish)
            return cli_usage_error("--publish and --subscribe exclude each other");
        o->output = pos[0];
    } else {
        if (npos < 2)
            return cli_usage_error(npos == 0 ? "INPUT and OUTPUT are missing"
                                             : "OUTPUT is missing");
        o->input = pos[0];
        o->output = pos[1];
        if (strcmp(o->input, "-") == 0 && o->format == CVD_AF_UNKNOWN && !o->format_s16)
            return cli_usage_error("INPUT '-' (standard input) needs --format f32, s16 or csv");
    }
    if (strcmp(o->output, "-") == 0 && o->format == CVD_AF_UNKNOWN && !o->format_s16)
        return cli_usage_error("OUTPUT '-' (standard output) needs --format f32, s16 or csv");
    return 0;
}

/* ---- files --------------------------------------------------------------------------------- */

typedef struct endpoint {
    const char *path;
    int kind;   /* IO_AF / IO_S16 */
    cvd_af *af; /* IO_AF */
    FILE *fp;   /* IO_S16 */
    int own_fp;
    const char *name; /* for messages */
    int channels;
    /* raw s16 reading: bytes read, not yet sent (less than a frame after each read) */
    uint8_t *buf;
    size_t have;
    int eof;
} endpoint;

static int s16_open(endpoint *e, int writing)
{
    if (strcmp(e->path, "-") == 0) {
        e->fp = writing ? stdout : stdin;
        e->name = writing ? "standard output" : "standard input";
        return 0;
    }
    e->fp = fopen(e->path, writing ? "wb" : "rb");
    e->own_fp = 1;
    e->name = e->path;
    if (e->fp == NULL)
        return cli_fail("%s: %s", e->path, strerror(errno));
    return 0;
}

/* Reads raw s16 into e->buf (up to max frames; what has arrived, so that a live pipe is not
 * held back); returns the whole frames at its start, 0 at the end (or on ^C), -1 on error
 * (printed). */
static long s16_read(endpoint *e, size_t max)
{
    const size_t fb = 2 * (size_t)e->channels;
    while (!e->eof && e->have < fb) {
        ssize_t got = read(fileno(e->fp), e->buf + e->have, max * fb - e->have);
        if (got < 0) {
            if (errno == EINTR && interrupts)
                return 0;
            if (errno == EINTR)
                continue;
            cli_fail("%s: %s", e->name, strerror(errno));
            return -1;
        }
        if (got == 0)
            e->eof = 1;
        e->have += (size_t)got;
    }
    if (e->have < fb) {
        if (e->have > 0) {
            cli_fail("%s: the last frame is truncated (%zu of %zu bytes)", e->name, e->have, fb);
            return -1;
        }
        return 0;
    }
    return (long)(e->have / fb);
}

static int write_out(endpoint *out, const void *data, long n)
{
    cvd_err err = {0};
    if (n <= 0)
        return 0;
    if (out->kind == IO_S16) {
        size_t bytes = (size_t)n * 2 * (size_t)out->channels;
        if (fwrite(data, 1, bytes, out->fp) != bytes)
            return cli_fail("%s: %s", out->name, strerror(errno));
        return 0;
    }
    if (cvd_af_write(out->af, data, n, &err) < 0)
        return fail_err(out->path, &err);
    return 0;
}

static int close_out(endpoint *out)
{
    cvd_err err = {0};
    int rc = 0;
    if (out->kind == IO_AF && out->af) {
        if (cvd_af_close(out->af, &err) < 0)
            rc = fail_err(out->path, &err);
        out->af = NULL;
    } else if (out->fp) {
        if (fflush(out->fp) != 0 || (out->own_fp && fclose(out->fp) != 0))
            rc = cli_fail("%s: %s", out->name, strerror(errno));
        out->fp = NULL;
    }
    return rc;
}

/* ---- the session --------------------------------------------------------------------------- */

typedef struct run {
    const options *o;
    cvd_client *c;
    cvd_client_accept acc;
    endpoint in, out;
    double in_rate;
    void *ibuf, *obuf; /* frames read / received: floats or s16 bytes */
    size_t obuf_frames;
    uint64_t sent, received;
} run;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int timeout_ms(const options *o)
{
    return o->timeout > 0 ? (int)(o->timeout * 1000 + 0.5) : 0;
}

/* The server stopped and cut the stream: every frame that came is written (the client
 * delivers them before the error); OUTPUT is kept and the cut is said. */
static int cut(run *r, const cvd_err *err)
{
    fprintf(stderr,
            PROG ": the stream was cut: the server stopped before its end (%s); %llu frames "
                 "received%s%s%s\n",
            err->msg[0] ? err->msg : "shutting_down", (unsigned long long)r->received,
            strcmp(r->o->output, "-") ? ", kept in " : "",
            strcmp(r->o->output, "-") ? r->o->output : "",
            strcmp(r->o->output, "-") ? " (it ends where the cut is)" : "");
    return CUT;
}

static int drain(run *r, int wait_ms, int *done);

/* A send or END failed: if the server cut the stream, what it sent before comes first. */
static int send_failed(run *r, const cvd_err *err)
{
    int done = 0;
    if (cvd_client_server_error(r->c) == CVD_FR_E_SHUTTING_DOWN)
        return drain(r, 0, &done) == CUT ? CUT : cut(r, err);
    return fail_err(NULL, err);
}

/* Receives what is there (wait_ms 0) or everything up to END (wait_ms < 0) and writes it. */
static int drain(run *r, int wait_ms, int *done)
{
    cvd_err err = {0};
    for (;;) {
        long n = r->out.kind == IO_S16
                     ? cvd_client_recv_bytes(r->c, r->obuf, r->obuf_frames, wait_ms, &err)
                     : cvd_client_recv(r->c, r->obuf, r->obuf_frames, wait_ms, &err);
        if (n < 0) {
            if (interrupts && strstr(err.msg, "interrupted"))
                return 3; /* ^C */
            if (cvd_client_server_error(r->c) == CVD_FR_E_SHUTTING_DOWN)
                return cut(r, &err);
            return fail_err(NULL, &err);
        }
        if (n == 0) {
            *done = cvd_client_done(r->c);
            return 0;
        }
        if (write_out(&r->out, r->obuf, n) != 0)
            return 1;
        r->received += (uint64_t)n;
    }
}

static int open_output(run *r)
{
    const options *o = r->o;
    cvd_err err = {0};
    double rate = r->acc.rate ? r->acc.rate : r->in_rate > 0 ? r->in_rate : 48000;
    r->out.path = o->output;
    r->out.channels = r->acc.out_channels;
    if (r->out.kind == IO_S16)
        return s16_open(&r->out, 1);
    if (cvd_af_open_write(o->output, cvd_af_format_of(o->output, o->format), r->acc.out_channels,
                          rate, &r->out.af, &err) < 0)
        return fail_err(o->output, &err);
    return 0;
}

static void print_accept(const run *r)
{
    const cvd_client_accept *a = &r->acc;
    char rate[32];
    if (r->o->quiet)
        return;
    if (a->rate)
        snprintf(rate, sizeof rate, "%lu Hz", (unsigned long)a->rate);
    else
        snprintf(rate, sizeof rate, "rate unknown");
    if (r->o->subscribe)
        fprintf(stderr,
                PROG ": %s: stream '%s' of model '%s': %d channel%s, %s, latency %lu frames, "
                     "%s\n",
                cvd_client_peer(r->c), r->o->subscribe, a->model, a->out_channels,
                a->out_channels == 1 ? "" : "s", rate, (unsigned long)a->latency,
                a->format == CVD_CLIENT_S16LE ? "s16le" : "f32le");
    else
        fprintf(stderr,
                PROG ": %s: model '%s': %d channel%s in, %d out, %s, latency %lu frames, "
                     "%s%s%s\n",
                cvd_client_peer(r->c), a->model, a->in_channels, a->in_channels == 1 ? "" : "s",
                a->out_channels, rate, (unsigned long)a->latency,
                a->format == CVD_CLIENT_S16LE ? "s16le" : "f32le",
                r->o->publish ? ", publishing as " : "", r->o->publish ? r->o->publish : "");
}

static int run_process(run *r)
{
    const options *o = r->o;
    const int cin = r->acc.in_channels;
    cvd_err err = {0};
    int rc, done = 0;

    /* INPUT, if its channel count had to wait for the model's */
    if (r->in.kind == IO_AF && r->in.af == NULL) {
        if (cvd_af_open_read(o->input, cvd_af_format_of(o->input, o->format), cin, &r->in.af,
                             &err) < 0)
            return fail_err(o->input, &err);
    }
    if (r->in.kind == IO_AF && cvd_af_get_info(r->in.af)->channels != cin)
        return cli_fail("%s: %d channel%s, the model takes %d", o->input,
                        cvd_af_get_info(r->in.af)->channels,
                        cvd_af_get_info(r->in.af)->channels == 1 ? "" : "s", cin);
    r->in.channels = cin;
    r->ibuf = malloc((size_t)READ_FRAMES * (size_t)cin * sizeof(float));
    if (r->ibuf == NULL)
        return cli_fail("out of memory");
    r->in.buf = r->ibuf;
    if ((rc = open_output(r)) != 0)
        return rc;

    while (!interrupts) {
        long n;
        if (r->in.kind == IO_S16) {
            n = s16_read(&r->in, READ_FRAMES);
        } else {
            n = cvd_af_read(r->in.af, r->ibuf, READ_FRAMES, &err);
            if (n < 0 && interrupts)
                n = 0;
            if (n < 0)
                return fail_err(o->input, &err);
        }
        if (n < 0)
            return 1;
        if (n == 0)
            break;
        rc = r->in.kind == IO_S16 ? cvd_client_send_bytes(r->c, r->ibuf, (size_t)n, &err)
                                  : cvd_client_send(r->c, r->ibuf, (size_t)n, &err);
        if (rc < 0) {
            if (interrupts && strstr(err.msg, "interrupted"))
                break;
            return send_failed(r, &err);
        }
        if (r->in.kind == IO_S16) { /* keep the bytes of an incomplete frame */
            size_t used = (size_t)n * 2 * (size_t)cin;
            memmove(r->in.buf, r->in.buf + used, r->in.have - used);
            r->in.have -= used;
        }
        r->sent += (uint64_t)n;
        if ((rc = drain(r, 0, &done)) == 3)
            break;
        if (rc != 0)
            return rc;
    }
    /* END. A ^C that stopped the input still lets the output of what was sent come; a ^C
     * after that stops waiting for it. */
    const int seen = interrupts;
    for (;;) {
        if (cvd_client_end(r->c, &err) == 0)
            break;
        if (!(interrupts && strstr(err.msg, "interrupted")))
            return send_failed(r, &err);
        if (interrupts > seen)
            return cli_fail("interrupted before the end of the output (%llu frames written)",
                            (unsigned long long)r->received);
    }
    for (;;) {
        rc = drain(r, -1, &done);
        if (rc == 3 && interrupts > seen)
            return cli_fail("interrupted before the end of the output (%llu frames written)",
                            (unsigned long long)r->received);
        if (rc != 0 && rc != 3)
            return rc;
        if (done)
            return 0;
    }
}

static int run_subscribe(run *r)
{
    int rc, done = 0;
    if ((rc = open_output(r)) != 0)
        return rc;
    cvd_client_set_timeout(r->c, 0); /* a stream may pause for as long as it likes */
    while (!done) {
        rc = drain(r, -1, &done);
        if (rc == 3)
            return 0; /* ^C: the end of the recording */
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* 1 if a and b name the same existing file. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
        return 0;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int main(int argc, char **argv)
{
    cli_set_prog(PROG);
    options o;
    run r;
    cvd_client_request h;
    cvd_client_stats st;
    cvd_err err = {0};
    struct sigaction sa;
    double t0;
    int rc = parse_args(argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    memset(&r, 0, sizeof r);
    r.o = &o;
    if (o.input && same_file(o.input, o.output))
        return cli_fail("%s: the output is the input file: give another OUTPUT", o.output);

    /* the files' kinds, and the wire format */
    r.out.kind = is_s16(&o, o.output) ? IO_S16 : IO_AF;
    r.in.kind = o.input && is_s16(&o, o.input) ? IO_S16 : IO_AF;
    if (r.out.kind == IO_AF && strcmp(o.output, "-") != 0 &&
        cvd_af_format_of(o.output, o.format) == CVD_AF_SNDFILE &&
        !cvd_af_sndfile_writable(o.output))
        return cli_usage_error("OUTPUT %s: the extension names no format (.wav, .f32, .s16, "
                               ".csv, ...); or give --format",
                               o.output);
    if (o.wire == CVD_CLIENT_F32LE && (r.out.kind == IO_S16 || r.in.kind == IO_S16))
        return cli_usage_error("--wire f32 with raw s16 files: their samples go as s16 (drop "
                               "--wire, or use .f32 files)");
    if (o.wire == 0)
        o.wire = r.out.kind == IO_S16 || r.in.kind == IO_S16 ? CVD_CLIENT_S16LE : CVD_CLIENT_F32LE;

    /* INPUT first when it knows its channel count, so that a bad file fails before the
     * network */
    cvd_client_request_init(&h);
    if (o.input) {
        r.in.path = o.input;
        if (r.in.kind == IO_S16) {
            if ((rc = s16_open(&r.in, 0)) != 0)
                return rc;
            h.channels = o.channels;
        } else {
            cvd_af_format f = cvd_af_format_of(o.input, o.format);
            if (f != CVD_AF_F32 || o.channels > 0) {
                if (cvd_af_open_read(o.input, f, o.channels > 0 ? o.channels : 1, &r.in.af, &err) <
                    0)
                    return fail_err(o.input, &err);
                h.channels = cvd_af_get_info(r.in.af)->channels;
                r.in_rate = cvd_af_get_info(r.in.af)->rate;
            } else {
                h.channels = 0; /* raw float32: the model's channel count */
            }
        }
    }
    h.role = o.subscribe ? CVD_CLIENT_SUBSCRIBE : CVD_CLIENT_PROCESS;
    h.format = o.wire;
    h.rate = o.rate ? o.rate : r.in_rate > 0 ? (uint32_t)(r.in_rate + 0.5) : 0;
    if (o.rate)
        r.in_rate = o.rate;
    h.block = (uint32_t)o.block;
    h.model = o.model;
    h.stream = o.subscribe ? o.subscribe : o.publish;
    h.token = o.token;
    if (o.subscribe)
        h.channels = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a wait returns, and the stream ends cleanly */
    sigaction(SIGINT, &sa, NULL);

    t0 = now();
    cvd_client_tls tls = {.ca = o.ca, .cert = o.cert, .key = o.key};
    if (cvd_client_connect_tls(o.host, o.port, timeout_ms(&o), o.tls ? &tls : NULL, &r.c, &err) <
        0) {
        rc = fail_err(NULL, &err);
        goto done;
    }
    if (cvd_client_hello(r.c, &h, &r.acc, &err) < 0) {
        rc = fail_err(NULL, &err);
        goto done;
    }
    print_accept(&r);
    r.obuf_frames = READ_FRAMES;
    r.obuf = malloc(r.obuf_frames * (size_t)r.acc.out_channels * sizeof(float));
    if (r.obuf == NULL) {
        rc = cli_fail("out of memory");
        goto done;
    }
    rc = o.subscribe ? run_subscribe(&r) : run_process(&r);
    if (r.out.af || r.out.fp) {
        int crc = close_out(&r.out);
        if (rc == 0)
            rc = crc;
    }
    if (rc == CUT)
        rc = EXIT_CUT; /* OUTPUT holds what came before the cut */
    else if (rc != 0 && strcmp(o.output, "-") != 0 && (r.out.path != NULL))
        remove(o.output); /* no half-written output left behind */
    if (rc == 0 && !o.quiet) {
        double el = now() - t0;
        cvd_client_get_stats(r.c, &st);
        if (o.subscribe)
            fprintf(stderr, PROG ": %llu frames received, %llu dropped by the server, in %.3f s\n",
                    (unsigned long long)r.received, (unsigned long long)st.frames_dropped, el);
        else
            fprintf(stderr, PROG ": %llu frames sent, %llu received, in %.3f s\n",
                    (unsigned long long)r.sent, (unsigned long long)r.received, el);
    }
done:
    cvd_client_close(r.c);
    if (r.in.af)
        cvd_af_close(r.in.af, NULL);
    if (r.in.fp && r.in.own_fp)
        fclose(r.in.fp);
    if (r.out.af || r.out.fp)
        close_out(&r.out);
    free(r.ibuf);
    free(r.obuf);
    return rc;
}
