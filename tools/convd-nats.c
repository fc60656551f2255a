/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd-nats: a producer and a consumer for convd's NATS JetStream transport (docs/SCALE.md),
 * so the whole path can be tried without writing a NATS client.
 *
 *   convd-nats [OPTIONS] publish ID INPUT     INPUT's frames into P.in.ID, in order
 *   convd-nats [OPTIONS] collect ID OUTPUT    ID's outputs from the output stream into OUTPUT
 *   convd-nats [OPTIONS] status               the group's members, leases and checkpoints
 *
 * publish sends messages of --frames-per-message frames, each with Convd-Frame (its first
 * frame's index) and Nats-Msg-Id ID:FRAME, one at a time, each retried with the same Msg-Id
 * until the stream stores it (a retry is stored once). collect reads P.out.ID from the output
 * stream, puts the messages in Convd-Frame order and checks that they join without a gap or
 * an overlap.
 *
 * Exit status: 0 success, 1 a runtime or input error (collect: a gap, or frames missing at the
 * deadline), 2 a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "audiofile.h"
#include "cli.h"
#include "convd_dsp.h"
#include "convd_version.h"

#define PROG "convd-nats"
#define DEFAULT_URL "nats://127.0.0.1:4222"
#define DEFAULT_TIMEOUT 10.0
#define MAX_FRAMES_PER_MESSAGE 1048576

typedef struct options {
    const char *urls, *prefix, *in_stream, *out_stream;
    const char *cmd, *id, *path;
    int per_msg, channels;
    int64_t start, frames;
    cvd_af_format format;
    double timeout;
    const char *tls_ca, *tls_cert, *tls_key, *creds, *token_file;
    int quiet;
} options;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [OPTIONS] publish ID INPUT\n"
            "       " PROG " [OPTIONS] collect ID OUTPUT\n"
            "       " PROG " [OPTIONS] status\n"
            "\n"
            "A producer and a consumer for convd's NATS JetStream transport. publish sends\n"
            "INPUT's frames as device ID (subject P.in.ID, headers Convd-Frame and Nats-Msg-Id,\n"
            "in order, each message retried with its Msg-Id until stored); collect writes ID's\n"
            "outputs from the output stream to OUTPUT in frame order, checking that they join\n"
            "without a gap or an overlap; status prints the group's members, who holds each\n"
            "partition, and the checkpoints.\n"
            "\n"
            "  --nats URL[,URL...]        the NATS servers (default " DEFAULT_URL ")\n"
            "  --prefix P                 subject prefix (default convd)\n"
            "  --input-stream NAME        (status) the input stream (default CONVD_IN)\n"
            "  --output-stream NAME       (collect) the output stream (default CONVD_OUT)\n"
            "  -n, --frames-per-message N (publish) frames per message, 1 to %d\n"
            "                             (default 1024)\n"
            "  --start FRAME              (publish) Convd-Frame of INPUT's first frame\n"
            "                             (default 0)\n"
            "  --frames N                 (collect) wait until N frames have come\n"
            "  --channels N               channels of raw INPUT (.f32, -), and of the outputs\n"
            "                             collect reads (default 1)\n"
            "  --format f32|csv           the format of '-' and of files whose extension says\n"
            "                             nothing\n"
            "  --timeout SECONDS          publish: how long one message may be retried;\n"
            "                             collect: how long to wait for --frames (default %g)\n"
            "  --tls-ca FILE, --tls-cert FILE, --tls-key FILE\n"
            "                             TLS toward the servers (PEM files); also spelled\n"
            "                             --ca, --cert, --key (convd-cat's names)\n"
            "  --creds FILE, --token-file FILE\n"
            "                             NATS credentials (a .creds file, or a token's file)\n"
            "  -q, --quiet                nothing on standard error but errors\n"
            "  --help                     this text\n"
            "  --version                  the version\n"
            "\n"
            "Files by extension: .wav, .flac, ... (libsndfile), .f32 (raw float32, little-endian,\n"
            "channels interleaved), .csv (one frame per line).\n"
            "\n"
            "Exit status: 0 success, 1 runtime or input error (collect: a gap, or frames\n"
            "missing at the deadline), 2 usage error.\n"
            "Documentation: " PROG "(1); " CVD_DOCDIR "/SCALE.md\n",
            MAX_FRAMES_PER_MESSAGE, DEFAULT_TIMEOUT);
}

static const char *nats_text(natsStatus s)
{
    static char buf[512];
    const char *last = nats_GetLastError(NULL);
    if (last && *last)
        snprintf(buf, sizeof buf, "%s (%s)", natsStatus_GetText(s), last);
    else
        snprintf(buf, sizeof buf, "%s", natsStatus_GetText(s));
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < 1 || n > max)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* Returns 0, 2 (usage error) or -1 (help printed: exit 0). */
static int parse_args(int argc, char **argv, options *o)
{
    const char *pos[3];
    int npos = 0, only_positionals = 0;
    long long v;

    memset(o, 0, sizeof *o);
    o->urls = DEFAULT_URL;
    o->prefix = "convd";
    o->in_stream = "CONVD_IN";
    o->out_stream = "CONVD_OUT";
    o->per_msg = 1024;
    o->channels = 1;
    o->frames = -1;
    o->timeout = DEFAULT_TIMEOUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        char name[32];
        const int k = cli_positional(a, &only_positionals, pos, &npos, 3);
        if (k != 0) {
            if (k < 0)
                return 2;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(a, "--version") == 0) {
            printf(PROG " " CVD_VERSION "\n");
            return -1;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        eq = cli_opt_split(a, name, sizeof name);
        if (strcmp(name, "--nats") && strcmp(name, "--prefix") && strcmp(name, "--input-stream") &&
            strcmp(name, "--output-stream") && strcmp(name, "-n") &&
            strcmp(name, "--frames-per-message") && strcmp(name, "--start") &&
            strcmp(name, "--frames") && strcmp(name, "--channels") && strcmp(name, "--format") &&
            strcmp(name, "--timeout") && strcmp(name, "--tls-ca") && strcmp(name, "--tls-cert") &&
            strcmp(name, "--tls-key") && strcmp(name, "--creds") && strcmp(name, "--token-file") &&
            strcmp(name, "--ca") && strcmp(name, "--cert") && strcmp(name, "--key"))
            return cli_usage_error("unknown option '%s'", a);
        if ((val = cli_opt_value(argc, argv, &i, eq)) == NULL)
            return 2;
        if (strcmp(name, "--nats") == 0) {
            o->urls = val;
        } else if (strcmp(name, "--prefix") == 0) {
            o->prefix = val;
        } else if (strcmp(name, "--input-stream") == 0) {
            o->in_stream = val;
        } else if (strcmp(name, "--output-stream") == 0) {
            o->out_stream = val;
        } else if (strcmp(name, "-n") == 0 || strcmp(name, "--frames-per-message") == 0) {
            if (cli_parse_int(name, val, 1, MAX_FRAMES_PER_MESSAGE, &v) != 0)
                return 2;
            o->per_msg = (int)v;
        } else if (strcmp(name, "--start") == 0) {
            if (cli_parse_int(name, val, 0, 1LL << 53, &v) != 0)
                return 2;
            o->start = v;
        } else if (strcmp(name, "--frames") == 0) {
            if (cli_parse_int(name, val, 0, 1LL << 53, &v) != 0)
                return 2;
            o->frames = v;
        } else if (strcmp(name, "--channels") == 0) {
            if (cli_parse_int(name, val, 1, 65535, &v) != 0)
                return 2;
            o->channels = (int)v;
        } else if (strcmp(name, "--format") == 0) {
            if (strcasecmp(val, "f32le") == 0)
                o->format = CVD_AF_F32;
            else if (cvd_af_format_parse(val, &o->format) < 0)
                return cli_usage_error("--format %s: unknown (f32 or csv)", val);
        } else if (strcmp(name, "--timeout") == 0) {
            if (cli_parse_seconds(name, val, &o->timeout) != 0)
                return 2;
        } else if (strcmp(name, "--tls-ca") == 0 || strcmp(name, "--ca") == 0) {
            o->tls_ca = val;
        } else if (strcmp(name, "--tls-cert") == 0 || strcmp(name, "--cert") == 0) {
            o->tls_cert = val;
        } else if (strcmp(name, "--tls-key") == 0 || strcmp(name, "--key") == 0) {
            o->tls_key = val;
        } else if (strcmp(name, "--creds") == 0) {
            o->creds = val;
        } else if (strcmp(name, "--token-file") == 0) {
            o->token_file = val;
        }
    }
    if (npos == 0)
        return cli_usage_error("a command is missing: publish, collect or status");
    o->cmd = pos[0];
    if (strcmp(o->cmd, "status") == 0) {
        if (npos != 1)
            return cli_usage_error("status takes no argument");
        return 0;
    }
    if (strcmp(o->cmd, "publish") != 0 && strcmp(o->cmd, "collect") != 0)
        return cli_usage_error("unknown command '%s' (publish, collect or status)", o->cmd);
    if (npos != 3)
        return cli_usage_error("%s needs ID and %s", o->cmd,
                               strcmp(o->cmd, "publish") == 0 ? "INPUT" : "OUTPUT");
    o->id = pos[1];
    o->path = pos[2];
    if (!token_ok(o->id, 128))
        return cli_usage_error("ID '%s': 1 to 128 of A-Z a-z 0-9 _ -", o->id);
    if (strcmp(o->path, "-") == 0 && o->format == CVD_AF_UNKNOWN)
        return cli_usage_error("'-' needs --format f32 or csv");
    if ((o->tls_cert != NULL) != (o->tls_key != NULL))
        return cli_usage_error("--tls-cert and --tls-key go together");
    return 0;
}

/* ---- the connection ---------------------------------------------------------------------- */

static int read_line_file(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(buf, (int)n, f) == NULL) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static natsConnection *connect_to(const options *o)
{
    natsOptions *no = NULL;
    natsConnection *nc = NULL;
    char copy[4096], token[1024];
    const char *urls[64];
    int n = 0;
    natsStatus s;

    snprintf(copy, sizeof copy, "%s", o->urls);
    for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t && n < 64;
         t = strtok_r(NULL, ", ", &save))
        urls[n++] = t;
    if (natsOptions_Create(&no) != NATS_OK)
        return NULL;
    s = natsOptions_SetServers(no, urls, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(no, PROG);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(no, 250);
    if (s == NATS_OK && (o->tls_ca || o->tls_cert))
        s = natsOptions_SetSecure(no, true);
    if (s == NATS_OK && o->tls_ca)
        s = natsOptions_LoadCATrustedCertificates(no, o->tls_ca);
    if (s == NATS_OK && o->tls_cert)
        s = natsOptions_LoadCertificatesChain(no, o->tls_cert, o->tls_key);
    if (s == NATS_OK && o->creds)
        s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
    if (s == NATS_OK && o->token_file) {
        if (read_line_file(o->token_file, token, sizeof token) < 0) {
            natsOptions_Destroy(no);
            cli_fail("--token-file %s: %s", o->token_file, strerror(errno ? errno : EINVAL));
            return NULL;
        }
        s = natsOptions_SetToken(no, token);
    }
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, no);
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        cli_fail("cannot connect to %s: %s", o->urls, nats_text(s));
        return NULL;
    }
    return nc;
}

/* ---- publish ------------------------------------------------------------------------------ */

static int publish_one(jsCtx *js, const options *o, const float *data, int n, int64_t first,
                       unsigned long *retries)
{
    char subj[512], num[32], mid[200];
    double end = now_s() + o->timeout;
    snprintf(subj, sizeof subj, "%s.in.%s", o->prefix, o->id);
    snprintf(num, sizeof num, "%" PRId64, first);
    snprintf(mid, sizeof mid, "%s:%" PRId64, o->id, first);
    for (;;) {
        natsMsg *m = NULL;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = natsMsg_Create(&m, subj, NULL, (const char *)data,
                                      n * o->channels * (int)sizeof(float));
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Convd-Frame", num);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Nats-Msg-Id", mid);
        if (s == NATS_OK)
            s = js_PublishMsg(&pa, js, m, NULL, &jerr);
        natsMsg_Destroy(m);
        jsPubAck_Destroy(pa);
        if (s == NATS_OK)
            return 0;
        if (interrupted)
            return cli_fail("interrupted");
        if (now_s() > end)
            return cli_fail("%s frame %" PRId64 ": %s%s (JetStream error %d); is there a stream "
                            "over %s.part.> and the servers' mapping of %s.in.*? (docs/SCALE.md)",
                            subj, first, nats_text(s),
                            s == NATS_NO_RESPONDERS ? " (no stream takes it)" : "", (int)jerr,
                            o->prefix, o->prefix);
        (*retries)++;
        nap(0.1);
    }
}

static int cmd_publish(const options *o, natsConnection *nc)
{
    jsCtx *js = NULL;
    jsOptions jo;
    cvd_af *af = NULL;
    cvd_err err = {0};
    float *buf = NULL;
    unsigned long retries = 0, msgs = 0;
    int64_t t = o->start;
    int rc = 1;

    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
        return cli_fail("out of memory");
    cvd_af_format fmt = cvd_af_format_of(o->path, o->format);
    if (cvd_af_open_read(o->path, fmt, o->channels, &af, &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto done;
    }
    const int ch = cvd_af_get_info(af)->channels;
    if (ch != o->channels && fmt == CVD_AF_SNDFILE) {
        /* a sound file says how many channels it has */
        ((options *)o)->channels = ch;
    }
    buf = malloc((size_t)o->per_msg * (size_t)o->channels * sizeof *buf);
    if (buf == NULL) {
        rc = cli_fail("out of memory");
        goto done;
    }
    for (;;) {
        long got = 0;
        while (got < o->per_msg) {
            long r =
                cvd_af_read(af, buf + (size_t)got * (size_t)o->channels, o->per_msg - got, &err);
            if (r < 0) {
                rc = cli_fail("%s", err.msg);
                goto done;
            }
            if (r == 0)
                break;
            got += r;
        }
        if (got == 0)
            break;
        if (publish_one(js, o, buf, (int)got, t, &retries) < 0)
            goto done;
        t += got;
        msgs++;
        if (interrupted) {
            rc = cli_fail("interrupted after %" PRId64 " frames", t - o->start);
            goto done;
        }
    }
    if (!o->quiet)
        fprintf(stderr,
                PROG ": %s: frames %" PRId64 "..%" PRId64 " published in %lu messages of up to %d "
                     "frames (%lu retries)\n",
                o->id, o->start, t - 1, msgs, o->per_msg, retries);
    rc = 0;
done:
    free(buf);
    cvd_af_close(af, NULL);
    jsCtx_Destroy(js);
    return rc;
}

/* ---- collect ------------------------------------------------------------------------------ */

typedef struct piece {
    int64_t frame;
    int n;
    float *data;
} piece;

static int cmp_piece(const void *a, const void *b)
{
    const piece *x = a, *y = b;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

static int cmd_collect(const options *o, natsConnection *nc)
{
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    char subj[512];
    piece *p = NULL;
    size_t np = 0, cap = 0;
    int64_t have = 0; /* contiguous frames from 0 */
    int rc = 1;
    natsStatus s;
    const double end = now_s() + o->timeout;

    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return cli_fail("out of memory");
    snprintf(subj, sizeof subj, "%s.out.%s", o->prefix, o->id);
    jsSubOptions_Init(&so);
    so.Stream = o->out_stream;
    so.Ordered = true;
    s = js_SubscribeSync(&sub, js, subj, NULL, &so, &jerr);
    if (s != NATS_OK) {
        rc = cli_fail("%s in stream %s: %s (JetStream error %d)", subj, o->out_stream, nats_text(s),
                      (int)jerr);
        goto done;
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    int caught_up = 0;
    for (;;) {
        natsMsg *m = NULL;
        double left = end - now_s();
        int wait_ms = caught_up ? (int)(left > 0 ? (left < 0.2 ? left * 1000 : 200) : 0) : 2000;
        if (interrupted)
            break;
        if (caught_up && (o->frames < 0 || have >= o->frames || left <= 0))
            break;
        s = natsSubscription_NextMsg(&m, sub, wait_ms > 0 ? wait_ms : 1);
        if (s == NATS_TIMEOUT) {
            caught_up = 1;
            continue;
        }
        if (s != NATS_OK) {
            rc = cli_fail("reading %s: %s", subj, nats_text(s));
            goto done;
        }
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            caught_up = meta->NumPending == 0;
            jsMsgMetaData_Destroy(meta);
        }
        const char *fv = NULL;
        int64_t f = -1;
        int bytes = natsMsg_GetDataLength(m);
        if (natsMsgHeader_Get(m, "Convd-Frame", &fv) != NATS_OK || fv == NULL ||
            sscanf(fv, "%" SCNd64, &f) != 1 || f < 0 || bytes % (4 * o->channels) != 0) {
            fprintf(stderr,
                    PROG ": warning: a message on %s without a usable Convd-Frame or "
                         "with a partial frame; skipped\n",
                    subj);
            natsMsg_Destroy(m);
            continue;
        }
        if (np == cap) {
            cap = cap ? cap * 2 : 256;
            piece *q = realloc(p, cap * sizeof *p);
            if (q == NULL) {
                natsMsg_Destroy(m);
                rc = cli_fail("out of memory");
                goto done;
            }
            p = q;
        }
        p[np].frame = f;
        p[np].n = bytes / (4 * o->channels);
        p[np].data = malloc((size_t)bytes + 1);
        if (p[np].data == NULL) {
            natsMsg_Destroy(m);
            rc = cli_fail("out of memory");
            goto done;
        }
        memcpy(p[np].data, natsMsg_GetData(m), (size_t)bytes);
        np++;
        natsMsg_Destroy(m);
        /* how far the frames join from 0 (recomputed only when it may have moved) */
        if (f <= have) {
            qsort(p, np, sizeof *p, cmp_piece);
            for (size_t i = 0; i < np; i++)
                if (p[i].frame <= have && p[i].frame + p[i].n > have)
                    have = p[i].frame + p[i].n;
        }
    }
    qsort(p, np, sizeof *p, cmp_piece);
    /* write the frames in order; count overlaps and gaps */
    cvd_af *af = NULL;
    cvd_err err = {0};
    int64_t next = 0, dup = 0, gap_at = -1, gap_len = 0;
    cvd_af_format fmt = cvd_af_format_of(o->path, o->format);
    if (cvd_af_open_write(o->path, fmt, o->channels, 0, &af, &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        int skip = 0;
        if (p[i].frame < next) {
            skip = (int)(next - p[i].frame < p[i].n ? next - p[i].frame : p[i].n);
            dup += skip;
        } else if (p[i].frame > next) {
            if (gap_at < 0) {
                gap_at = next;
                gap_len = p[i].frame - next;
            }
            break; /* what follows a gap is not written: OUTPUT holds frames 0..gap */
        }
        if (skip < p[i].n && cvd_af_write(af, p[i].data + (size_t)skip * (size_t)o->channels,
                                          p[i].n - skip, &err) < 0) {
            cvd_af_close(af, NULL);
            rc = cli_fail("%s", err.msg);
            goto done;
        }
        next = p[i].frame + p[i].n > next ? p[i].frame + p[i].n : next;
    }
    if (cvd_af_close(af, &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto done;
    }
    if (!o->quiet)
        fprintf(stderr, PROG ": %s: %zu messages, frames 0..%" PRId64 " written%s\n", o->id, np,
                next - 1, dup ? "" : "; each frame once");
    if (dup)
        fprintf(stderr, PROG ": %s: %" PRId64 " frames stored more than once (kept the first)\n",
                o->id, dup);
    if (gap_at >= 0)
        rc = cli_fail("%s: frames %" PRId64 "..%" PRId64 " are missing (OUTPUT stops before them)",
                      o->id, gap_at, gap_at + gap_len - 1);
    else if (o->frames >= 0 && next < o->frames)
        rc = cli_fail("%s: %" PRId64 " frames of %" PRId64 " after %g s", o->id, next, o->frames,
                      o->timeout);
    else
        rc = 0;
done:
    for (size_t i = 0; i < np; i++)
        free(p[i].data);
    free(p);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    return rc;
}

/* ---- status ------------------------------------------------------------------------------- */

static int cmd_status(const options *o, natsConnection *nc)
{
    jsCtx *js = NULL;
    kvStore *leases = NULL, *ckpt = NULL;
    kvKeysList keys;
    char bucket[160];
    natsStatus s;

    memset(&keys, 0, sizeof keys);
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return cli_fail("out of memory");
    snprintf(bucket, sizeof bucket, "%s_leases", o->in_stream);
    s = js_KeyValue(&leases, js, bucket);
    if (s != NATS_OK) {
        jsCtx_Destroy(js);
        return cli_fail("bucket %s: %s (has a convd group run on stream %s?)", bucket, nats_text(s),
                        o->in_stream);
    }
    snprintf(bucket, sizeof bucket, "%s_ckpt", o->in_stream);
    js_KeyValue(&ckpt, js, bucket);
    s = kvStore_Keys(&keys, leases, NULL);
    if (s != NATS_OK && s != NATS_NOT_FOUND) {
        kvStore_Destroy(leases);
        kvStore_Destroy(ckpt);
        jsCtx_Destroy(js);
        return cli_fail("listing %s_leases: %s", o->in_stream, nats_text(s));
    }
    printf("group on %s\n", o->in_stream);
    for (int pass = 0; pass < 2; pass++) {
        printf(pass == 0 ? "members (each refreshes its key every lease_ttl/4):\n"
                         : "partitions (holder, epoch; checkpoint: answered up to, ids):\n");
        for (int i = 0; i < keys.Count; i++) {
            const char *k = keys.Keys[i];
            int is_member = strncmp(k, "m.", 2) == 0;
            if (is_member != (pass == 0))
                continue;
            kvEntry *e = NULL;
            if (kvStore_Get(&e, leases, k) != NATS_OK)
                continue;
            if (is_member) {
                const char *v = kvEntry_ValueString(e), *sp = strchr(v, ' ');
                printf("  %-48s %s partitions\n", k + 2, sp ? sp + 1 : "?");
            } else {
                char owner[128] = "?";
                unsigned long long epoch = 0;
                sscanf(kvEntry_ValueString(e), "%127s %llu", owner, &epoch);
                if (epoch == 0)
                    epoch = kvEntry_Revision(e);
                printf("  %-5s %-48s epoch %llu", k, owner, epoch);
                kvEntry *c = NULL;
                if (ckpt && kvStore_Get(&c, ckpt, k) == NATS_OK) {
                    unsigned long long ce = 0, frontier = 0, n = 0;
                    if (sscanf(kvEntry_ValueString(c), "convd-ckpt 1 %llu %llu %llu", &ce,
                               &frontier, &n) == 3)
                        printf("; checkpoint: sequence %llu, %llu ids", frontier, n);
                    kvEntry_Destroy(c);
                }
                printf("\n");
            }
            kvEntry_Destroy(e);
        }
    }
    kvKeysList_Destroy(&keys);
    kvStore_Destroy(leases);
    kvStore_Destroy(ckpt);
    jsCtx_Destroy(js);
    return 0;
}

int main(int argc, char **argv)
{
    cli_set_prog(PROG);
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    signal(SIGINT, on_sigint);
    signal(SIGPIPE, SIG_IGN);
    natsConnection *nc = connect_to(&o);
    if (nc == NULL)
        return 1;
    if (strcmp(o.cmd, "publish") == 0)
        rc = cmd_publish(&o, nc);
    else if (strcmp(o.cmd, "collect") == 0)
        rc = cmd_collect(&o, nc);
    else
        rc = cmd_status(&o, nc);
    natsConnection_Destroy(nc);
    nats_CloseAndWait(5000); /* libnats's threads end before OpenSSL's exit handlers run */
    return rc;
}
