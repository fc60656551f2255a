/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_conf.h - the [nats NAME] section: one group of convd processes serving a JetStream
 * input stream (docs/CONFIG.md, docs/SCALE.md). Its directives are rows of the configuration's
 * one table of directives (server/config_table.c).
 */
#ifndef CONVD_NATS_CONF_H
#define CONVD_NATS_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CVD_NATS_NAME_MAX 64   /* stream, bucket and section names */
#define CVD_NATS_PATH_MAX 4096 /* files: credentials, certificates */

typedef struct cvd_nats_conf {
    char name[CVD_NATS_NAME_MAX + 1]; /* the section's NAME */
    int line;                         /* of the section header */

    char servers[2048];                /* comma-separated nats:// or tls:// URLs (required) */
    char model[CVD_NATS_NAME_MAX + 1]; /* a [model NAME] section (required) */
    int model_index;                   /* set by whoever resolves models; -1 until then */
    char prefix[129];                  /* P, the subject prefix */
    int partitions;                    /* N */
    char input_stream[CVD_NATS_NAME_MAX + 1];
    char output_stream[CVD_NATS_NAME_MAX + 1];
    int replicas;                                  /* of the streams and buckets convd creates */
    double input_max_age;                          /* seconds, 0 = unlimited */
    int64_t input_max_bytes;                       /* -1 = unlimited */
    double output_max_age;                         /* seconds, 0 = unlimited */
    int64_t output_max_bytes;                      /* -1 = unlimited */
    double duplicate_window;                       /* seconds, >= 120 */
    char lease_bucket[CVD_NATS_NAME_MAX + 1];      /* "" = <input_stream>_leases */
    char checkpoint_bucket[CVD_NATS_NAME_MAX + 1]; /* "" = <input_stream>_ckpt */
    double lease_ttl;                              /* seconds a lease lives without a refresh */
    double checkpoint_interval;                    /* seconds between checkpoints of a partition */
    double idle_timeout;              /* seconds without a frame before an id's state is dropped */
    int max_inflight;                 /* messages per partition taken but not answered */
    int consumer_replicas;            /* replicas of convd's consumers; 0 = the stream's */
    double request_timeout;           /* seconds for a JetStream request or a publish's ack */
    int block;                        /* frames per model call (any: the output is the same) */
    char tls_ca[CVD_NATS_PATH_MAX];   /* PEM: CAs the servers' certificates must chain to */
    char tls_cert[CVD_NATS_PATH_MAX]; /* PEM: this client's certificate (mutual TLS) */
    char tls_key[CVD_NATS_PATH_MAX];
    char creds[CVD_NATS_PATH_MAX];      /* a NATS .creds file (JWT and NKey seed) */
    char token_file[CVD_NATS_PATH_MAX]; /* a file holding the servers' auth token */
    char user[256];                     /* user name and password (password_file) */
    char password_file[CVD_NATS_PATH_MAX];

    /* the line of each directive (0: not written), set by the config parser's table */
    struct {
        int servers, model, prefix, partitions, input_stream, output_stream, replicas,
            input_max_age, input_max_bytes, output_max_age, output_max_bytes, duplicate_window,
            lease_bucket, checkpoint_bucket, lease_ttl, checkpoint_interval, idle_timeout,
            max_inflight, consumer_replicas, request_timeout, block, tls_ca, tls_cert, tls_key,
            creds, token_file, user, password_file;
    } at;
} cvd_nats_conf;

/* The directives themselves (names, ranges, defaults, help) are rows of the configuration's
 * table (server/config_table.c); cvd_conf_nats_defaults (config.h) gives a section with the
 * table's defaults. */

/* After the section: the cross checks (prefix, stream and bucket names, TLS and credential
 * pairs, lease timing against the duplicates window), and the bucket names derived from
 * input_stream when not given. 0, or -1 with why and *line (the line to blame) set. */
int cvd_nats_conf_finish(cvd_nats_conf *c, int *line, char *why, size_t whysz);
/* 1 if the two sections differ in something a SIGHUP cannot change without restarting the
 * group: everything but idle_timeout and checkpoint_interval */
int cvd_nats_conf_needs_restart(const cvd_nats_conf *a, const cvd_nats_conf *b);

#endif
