/* The [nats NAME] section: see nats_conf.h. */
#include "nats_conf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nats_wire.h"

#define F(field) offsetof(cvd_nats_conf, field), sizeof(((cvd_nats_conf *)0)->field)
#define NUM(field) offsetof(cvd_nats_conf, field), 0

const cvd_nats_directive cvd_nats_directives[] = {
    {"servers", CVD_NK_STRING, 1, 2047, NULL, F(servers),
     "the NATS servers, comma-separated URLs (nats://HOST:PORT, tls://HOST:PORT)"},
    {"model", CVD_NK_STRING, 1, CVD_NATS_NAME_MAX, NULL, F(model),
     "the [model NAME] section every id's frames run through"},
    {"prefix", CVD_NK_STRING, 1, 128, "convd", F(prefix),
     "P: devices publish on P.in.<id>, outputs go to P.out.<id>"},
    {"partitions", CVD_NK_INT, 1, 4096, "64", NUM(partitions),
     "N: must equal the servers' mapping partition(N,1)"},
    {"input_stream", CVD_NK_STRING, 1, CVD_NATS_NAME_MAX, "CONVD_IN", F(input_stream),
     "the JetStream stream over P.part.>, created if absent"},
    {"output_stream", CVD_NK_STRING, 1, CVD_NATS_NAME_MAX, "CONVD_OUT", F(output_stream),
     "the JetStream stream over P.out.>, created if absent"},
    {"replicas", CVD_NK_INT, 1, 5, "1", NUM(replicas),
     "replicas of the streams and buckets convd creates"},
    {"input_max_age", CVD_NK_SECONDS, 0, 3.2e9, "24h", NUM(input_max_age),
     "how long the input stream keeps a message (0: no limit)"},
    {"input_max_bytes", CVD_NK_BYTES, -1, 9e18, "-1", NUM(input_max_bytes),
     "the input stream's size limit (-1: none)"},
    {"output_max_age", CVD_NK_SECONDS, 0, 3.2e9, "24h", NUM(output_max_age),
     "how long the output stream keeps a message (0: no limit)"},
    {"output_max_bytes", CVD_NK_BYTES, -1, 9e18, "-1", NUM(output_max_bytes),
     "the output stream's size limit (-1: none)"},
    {"duplicate_window", CVD_NK_SECONDS, 120, 86400, "2m", NUM(duplicate_window),
     "the streams' duplicates window (Nats-Msg-Id), at least 2 minutes"},
    {"lease_bucket", CVD_NK_STRING, 0, CVD_NATS_NAME_MAX, "", F(lease_bucket),
     "the KV bucket of partition leases (default: <input_stream>_leases)"},
    {"checkpoint_bucket", CVD_NK_STRING, 0, CVD_NATS_NAME_MAX, "", F(checkpoint_bucket),
     "the KV bucket of checkpoints (default: <input_stream>_ckpt)"},
    {"lease_ttl", CVD_NK_SECONDS, 1, 3600, "15", NUM(lease_ttl),
     "a partition's owner is presumed dead after this long without a lease refresh"},
    {"checkpoint_interval", CVD_NK_SECONDS, 0.05, 3600, "1", NUM(checkpoint_interval),
     "how often an owner checkpoints each partition it holds"},
    {"idle_timeout", CVD_NK_SECONDS, 1, 3.2e9, "10m", NUM(idle_timeout),
     "an id's model state is dropped after this long without a frame (rebuilt from the log)"},
    {"max_inflight", CVD_NK_INT, 1, 100000, "512", NUM(max_inflight),
     "messages of a partition taken but not yet answered (the consumers' max_ack_pending)"},
    {"consumer_replicas", CVD_NK_INT, 0, 5, "1", NUM(consumer_replicas),
     "replicas of convd's consumers (0: the stream's); one is fastest to fail over"},
    {"request_timeout", CVD_NK_SECONDS, 0.1, 600, "5", NUM(request_timeout),
     "how long a JetStream request or an output's acknowledgement may take before a retry"},
    {"block", CVD_NK_INT, 1, 65536, "64", NUM(block),
     "frames per model call (the output is the same for any block)"},
    {"tls_ca", CVD_NK_PATH, 0, 0, "", F(tls_ca),
     "PEM file of the CAs the servers' certificates must chain to (TLS)"},
    {"tls_cert", CVD_NK_PATH, 0, 0, "", F(tls_cert),
     "PEM file of this client's certificate chain, for servers that verify clients"},
    {"tls_key", CVD_NK_PATH, 0, 0, "", F(tls_key), "PEM file of tls_cert's private key"},
    {"creds", CVD_NK_PATH, 0, 0, "", F(creds),
     "a NATS credentials file (user JWT and NKey seed: decentralised auth)"},
    {"token_file", CVD_NK_PATH, 0, 0, "", F(token_file),
     "a file whose first line is the servers' authorization token"},
    {"user", CVD_NK_STRING, 0, 255, "", F(user), "user name, with password_file"},
    {"password_file", CVD_NK_PATH, 0, 0, "", F(password_file),
     "a file whose first line is the user's password"},
};
const int cvd_nats_n_directives = (int)(sizeof cvd_nats_directives / sizeof cvd_nats_directives[0]);
_Static_assert(sizeof cvd_nats_directives / sizeof cvd_nats_directives[0] <=
                   sizeof ((cvd_nats_conf *)0)->lines / sizeof(int),
               "cvd_nats_conf.lines has a slot per directive");

int cvd_nats_directive_index(const char *name)
{
    for (int i = 0; i < cvd_nats_n_directives; i++)
        if (strcmp(cvd_nats_directives[i].name, name) == 0)
            return i;
    return -1;
}

static int set_one(cvd_nats_conf *c, const cvd_nats_directive *d, const char *v, const char *dir,
                   char *why, size_t whysz)
{
    char *field = (char *)c + d->offset;
    switch (d->kind) {
    case CVD_NK_STRING: {
        size_t n = strlen(v);
        if ((double)n < d->lo || (double)n > d->hi) {
            snprintf(why, whysz, "'%.60s' must be %g to %g bytes long", v, d->lo, d->hi);
            return -1;
        }
        memcpy(field, v, n + 1);
        return 0;
    }
    case CVD_NK_PATH: {
        int w;
        if (v[0] == '\0' || v[0] == '/' || dir == NULL || dir[0] == '\0')
            w = snprintf(field, d->size, "%s", v);
        else
            w = snprintf(field, d->size, "%s/%s", dir, v);
        if (w < 0 || (size_t)w >= d->size) {
            snprintf(why, whysz, "the path is longer than %zu bytes", d->size - 1);
            return -1;
        }
        return 0;
    }
    case CVD_NK_INT: {
        char *end;
        long x = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0') {
            snprintf(why, whysz, "'%.60s' is not a whole number", v);
            return -1;
        }
        if ((double)x < d->lo || (double)x > d->hi) {
            snprintf(why, whysz, "%ld is out of range %g..%g", x, d->lo, d->hi);
            return -1;
        }
        *(int *)(void *)field = (int)x;
        return 0;
    }
    case CVD_NK_SECONDS: {
        double x;
        if (cvd_nats_parse_seconds(v, &x) < 0) {
            snprintf(why, whysz,
                     "'%.60s' is not a duration (seconds, or a number with s, m, h or d)", v);
            return -1;
        }
        if (x < d->lo || x > d->hi) {
            snprintf(why, whysz, "%s is out of range %g..%g seconds", v, d->lo, d->hi);
            return -1;
        }
        *(double *)(void *)field = x;
        return 0;
    }
    case CVD_NK_BYTES: {
        int64_t x;
        if (cvd_nats_parse_bytes(v, &x) < 0) {
            snprintf(why, whysz, "'%.60s' is not a size (bytes, or a number with K, M, G or T; "
                                 "-1: no limit)",
                     v);
            return -1;
        }
        if (x == 0 || (double)x > d->hi) {
            snprintf(why, whysz, "%s is out of range (1 byte to 9e18, or -1: no limit)", v);
            return -1;
        }
        *(int64_t *)(void *)field = x;
        return 0;
    }
    }
    return -1;
}

void cvd_nats_conf_init(cvd_nats_conf *c, const char *name, int line)
{
    char why[256];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name ? name : "");
    c->line = line;
    c->model_index = -1;
    for (int i = 0; i < cvd_nats_n_directives; i++) {
        const cvd_nats_directive *d = &cvd_nats_directives[i];
        if (d->dflt != NULL && d->dflt[0] != '\0')
            set_one(c, d, d->dflt, NULL, why, sizeof why);
    }
}

int cvd_nats_conf_set(cvd_nats_conf *c, const char *key, const char *value, const char *dir,
                      int line, char *why, size_t whysz)
{
    int i = cvd_nats_directive_index(key);
    if (i < 0)
        return -2;
    if (set_one(c, &cvd_nats_directives[i], value, dir, why, whysz) < 0)
        return -1;
    c->lines[i] = line;
    return 0;
}

static int valid_stream_name(const char *s)
{
    /* JetStream names: no spaces, dots, wildcards or path separators */
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || strchr(".*>/\\", *s) || (unsigned char)*s >= 127)
            return 0;
    return 1;
}

static int bucket_name_ok(const char *s)
{
    /* KV buckets: [a-zA-Z0-9_-]+ */
    return cvd_nats_id_valid(s, strlen(s));
}

#define LINE_OF(c, key) ((c)->lines[cvd_nats_directive_index(key)] ? (c)->lines[cvd_nats_directive_index(key)] : (c)->line)

int cvd_nats_conf_finish(cvd_nats_conf *c, int *line, char *why, size_t whysz)
{
    for (int i = 0; i < cvd_nats_n_directives; i++)
        if (cvd_nats_directives[i].dflt == NULL && c->lines[i] == 0) {
            *line = c->line;
            snprintf(why, whysz, "[nats %s]: missing '%s' (%s)", c->name,
                     cvd_nats_directives[i].name, cvd_nats_directives[i].help);
            return -1;
        }
    if (!cvd_nats_prefix_valid(c->prefix)) {
        *line = LINE_OF(c, "prefix");
        snprintf(why, whysz,
                 "prefix: '%.60s' is not a subject prefix (tokens of A-Z a-z 0-9 _ - separated "
                 "by dots, no wildcards)",
                 c->prefix);
        return -1;
    }
    if (!valid_stream_name(c->input_stream) || !valid_stream_name(c->output_stream)) {
        int in_bad = !valid_stream_name(c->input_stream);
        *line = LINE_OF(c, in_bad ? "input_stream" : "output_stream");
        snprintf(why, whysz, "%s: '%.60s' is not a stream name (no spaces, '.', '*', '>', '/')",
                 in_bad ? "input_stream" : "output_stream",
                 in_bad ? c->input_stream : c->output_stream);
        return -1;
    }
    if (strcmp(c->input_stream, c->output_stream) == 0) {
        *line = LINE_OF(c, "output_stream");
        snprintf(why, whysz, "output_stream: '%s' is the input stream too; they must differ",
                 c->output_stream);
        return -1;
    }
    if (c->lease_bucket[0] == '\0')
        snprintf(c->lease_bucket, sizeof c->lease_bucket, "%.55s_leases", c->input_stream);
    if (c->checkpoint_bucket[0] == '\0')
        snprintf(c->checkpoint_bucket, sizeof c->checkpoint_bucket, "%.57s_ckpt",
                 c->input_stream);
    if (!bucket_name_ok(c->lease_bucket) || !bucket_name_ok(c->checkpoint_bucket) ||
        strcmp(c->lease_bucket, c->checkpoint_bucket) == 0) {
        int lb = !bucket_name_ok(c->lease_bucket);
        *line = LINE_OF(c, lb ? "lease_bucket" : "checkpoint_bucket");
        snprintf(why, whysz,
                 "%s: '%s' is not a usable KV bucket name (A-Z a-z 0-9 _ -; the two buckets "
                 "must differ; the defaults derive from input_stream)",
                 lb ? "lease_bucket" : "checkpoint_bucket",
                 lb ? c->lease_bucket : c->checkpoint_bucket);
        return -1;
    }
    if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0')) {
        *line = LINE_OF(c, c->tls_cert[0] ? "tls_cert" : "tls_key");
        snprintf(why, whysz, "%s: tls_cert and tls_key go together", c->tls_cert[0] ? "tls_cert" : "tls_key");
        return -1;
    }
    if ((c->creds[0] != 0) + (c->token_file[0] != 0) + (c->user[0] != 0) > 1) {
        *line = LINE_OF(c, c->creds[0] ? "creds" : "token_file");
        snprintf(why, whysz, "%s: give one of creds, token_file and user (with password_file)",
                 c->creds[0] ? "creds" : "token_file");
        return -1;
    }
    if ((c->user[0] != '\0') != (c->password_file[0] != '\0')) {
        *line = LINE_OF(c, c->user[0] ? "user" : "password_file");
        snprintf(why, whysz, "%s: user and password_file go together",
                 c->user[0] ? "user" : "password_file");
        return -1;
    }
    if (c->checkpoint_interval + c->lease_ttl > c->duplicate_window / 2) {
        *line = LINE_OF(c, c->lines[cvd_nats_directive_index("lease_ttl")] ? "lease_ttl"
                                                                            : "checkpoint_interval");
        snprintf(why, whysz,
                 "lease_ttl: %g s plus checkpoint_interval %g s must stay within half of "
                 "duplicate_window (%g s): a taker republishes what its checkpoint does not "
                 "cover, and the streams drop the copies only inside that window",
                 c->lease_ttl, c->checkpoint_interval, c->duplicate_window);
        return -1;
    }
    return 0;
}

int cvd_nats_conf_needs_restart(const cvd_nats_conf *a, const cvd_nats_conf *b)
{
    return strcmp(a->servers, b->servers) != 0 || strcmp(a->model, b->model) != 0 ||
           strcmp(a->prefix, b->prefix) != 0 || a->partitions != b->partitions ||
           strcmp(a->input_stream, b->input_stream) != 0 ||
           strcmp(a->output_stream, b->output_stream) != 0 || a->replicas != b->replicas ||
           a->input_max_age != b->input_max_age || a->input_max_bytes != b->input_max_bytes ||
           a->output_max_age != b->output_max_age || a->output_max_bytes != b->output_max_bytes ||
           a->duplicate_window != b->duplicate_window ||
           strcmp(a->lease_bucket, b->lease_bucket) != 0 ||
           strcmp(a->checkpoint_bucket, b->checkpoint_bucket) != 0 ||
           a->consumer_replicas != b->consumer_replicas || a->block != b->block ||
           strcmp(a->tls_ca, b->tls_ca) != 0 || strcmp(a->tls_cert, b->tls_cert) != 0 ||
           strcmp(a->tls_key, b->tls_key) != 0 || strcmp(a->creds, b->creds) != 0 ||
           strcmp(a->token_file, b->token_file) != 0 || strcmp(a->user, b->user) != 0 ||
           strcmp(a->password_file, b->password_file) != 0;
}
