/* SPDX-License-Identifier: Apache-2.0 */
/* The [nats NAME] section: see nats_conf.h. */
#include "nats_conf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nats_wire.h"

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

#define LINE_OF(c, key) ((c)->at.key ? (c)->at.key : (c)->line)

int cvd_nats_conf_finish(cvd_nats_conf *c, int *line, char *why, size_t whysz)
{
    if (c->servers[0] == '\0' || c->model[0] == '\0') {
        *line = c->line;
        snprintf(why, whysz, "[nats %s]: missing '%s' (%s)", c->name,
                 c->servers[0] == '\0' ? "servers" : "model",
                 c->servers[0] == '\0' ? "the NATS servers' URLs" : "a [model NAME] section");
        return -1;
    }
    if (!cvd_nats_prefix_valid(c->prefix)) {
        *line = LINE_OF(c, prefix);
        snprintf(why, whysz,
                 "prefix: '%.60s' is not a subject prefix (tokens of A-Z a-z 0-9 _ - separated "
                 "by dots, no wildcards)",
                 c->prefix);
        return -1;
    }
    if (!valid_stream_name(c->input_stream) || !valid_stream_name(c->output_stream)) {
        int in_bad = !valid_stream_name(c->input_stream);
        *line = (in_bad ? LINE_OF(c, input_stream) : LINE_OF(c, output_stream));
        snprintf(why, whysz, "%s: '%.60s' is not a stream name (no spaces, '.', '*', '>', '/')",
                 in_bad ? "input_stream" : "output_stream",
                 in_bad ? c->input_stream : c->output_stream);
        return -1;
    }
    if (strcmp(c->input_stream, c->output_stream) == 0) {
        *line = LINE_OF(c, output_stream);
        snprintf(why, whysz, "output_stream: '%s' is the input stream too; they must differ",
                 c->output_stream);
        return -1;
    }
    if (c->lease_bucket[0] == '\0')
        snprintf(c->lease_bucket, sizeof c->lease_bucket, "%.55s_leases", c->input_stream);
    if (c->checkpoint_bucket[0] == '\0')
        snprintf(c->checkpoint_bucket, sizeof c->checkpoint_bucket, "%.57s_ckpt", c->input_stream);
    if (!bucket_name_ok(c->lease_bucket) || !bucket_name_ok(c->checkpoint_bucket) ||
        strcmp(c->lease_bucket, c->checkpoint_bucket) == 0) {
        int lb = !bucket_name_ok(c->lease_bucket);
        *line = (lb ? LINE_OF(c, lease_bucket) : LINE_OF(c, checkpoint_bucket));
        snprintf(why, whysz,
                 "%s: '%s' is not a usable KV bucket name (A-Z a-z 0-9 _ -; the two buckets "
                 "must differ; the defaults derive from input_stream)",
                 lb ? "lease_bucket" : "checkpoint_bucket",
                 lb ? c->lease_bucket : c->checkpoint_bucket);
        return -1;
    }
    if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0')) {
        *line = (c->tls_cert[0] ? LINE_OF(c, tls_cert) : LINE_OF(c, tls_key));
        snprintf(why, whysz, "%s: tls_cert and tls_key go together",
                 c->tls_cert[0] ? "tls_cert" : "tls_key");
        return -1;
    }
    if ((c->creds[0] != 0) + (c->token_file[0] != 0) + (c->user[0] != 0) > 1) {
        *line = (c->creds[0] ? LINE_OF(c, creds) : LINE_OF(c, token_file));
        snprintf(why, whysz, "%s: give one of creds, token_file and user (with password_file)",
                 c->creds[0] ? "creds" : "token_file");
        return -1;
    }
    if ((c->user[0] != '\0') != (c->password_file[0] != '\0')) {
        *line = (c->user[0] ? LINE_OF(c, user) : LINE_OF(c, password_file));
        snprintf(why, whysz, "%s: user and password_file go together",
                 c->user[0] ? "user" : "password_file");
        return -1;
    }
    if (c->checkpoint_interval + c->lease_ttl > c->duplicate_window / 2) {
        *line = c->at.lease_ttl ? c->at.lease_ttl : LINE_OF(c, checkpoint_interval);
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
           a->lease_ttl != b->lease_ttl || a->max_inflight != b->max_inflight ||
           a->request_timeout != b->request_timeout || strcmp(a->tls_ca, b->tls_ca) != 0 ||
           strcmp(a->tls_cert, b->tls_cert) != 0 || strcmp(a->tls_key, b->tls_key) != 0 ||
           strcmp(a->creds, b->creds) != 0 || strcmp(a->token_file, b->token_file) != 0 ||
           strcmp(a->user, b->user) != 0 || strcmp(a->password_file, b->password_file) != 0;
}
