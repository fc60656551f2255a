/*
 * nats_conf.h - the [nats NAME] section: one group of convd processes serving a JetStream
 * input stream (docs/CONFIG.md, docs/SCALE.md). Its directives are a table (name, kind,
 * range, default, field, help): the parser, the defaults and the reference in docs/CONFIG.md
 * come from it.
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
    int replicas;              /* of the streams and buckets convd creates */
    double input_max_age;      /* seconds, 0 = unlimited */
    int64_t input_max_bytes;   /* -1 = unlimited */
    double output_max_age;     /* seconds, 0 = unlimited */
    int64_t output_max_bytes;  /* -1 = unlimited */
    double duplicate_window;   /* seconds, >= 120 */
    char lease_bucket[CVD_NATS_NAME_MAX + 1];      /* "" = <input_stream>_leases */
    char checkpoint_bucket[CVD_NATS_NAME_MAX + 1]; /* "" = <input_stream>_ckpt */
    double lease_ttl;           /* seconds a lease lives without a refresh */
    double checkpoint_interval; /* seconds between checkpoints of a partition */
    double idle_timeout;        /* seconds without a frame before an id's state is dropped */
    int max_inflight;           /* messages per partition taken but not answered */
    int consumer_replicas;      /* replicas of convd's consumers; 0 = the stream's */
    double request_timeout;     /* seconds for a JetStream request or a publish's ack */
    int block;                  /* frames per model call (any: the output is the same) */
    char tls_ca[CVD_NATS_PATH_MAX];   /* PEM: CAs the servers' certificates must chain to */
    char tls_cert[CVD_NATS_PATH_MAX]; /* PEM: this client's certificate (mutual TLS) */
    char tls_key[CVD_NATS_PATH_MAX];
    char creds[CVD_NATS_PATH_MAX];      /* a NATS .creds file (JWT and NKey seed) */
    char token_file[CVD_NATS_PATH_MAX]; /* a file holding the servers' auth token */
    char user[256];                     /* user name and password (password_file) */
    char password_file[CVD_NATS_PATH_MAX];

    int lines[40]; /* the line of each directive, by table index; 0 if not written */
} cvd_nats_conf;

/* The directive table. */
typedef enum { CVD_NK_STRING, CVD_NK_INT, CVD_NK_SECONDS, CVD_NK_BYTES, CVD_NK_PATH } cvd_nats_kind;
typedef struct cvd_nats_directive {
    const char *name;
    cvd_nats_kind kind;
    double lo, hi;    /* numbers: the range; strings: the length range */
    const char *dflt; /* as it would be written; NULL = required, "" = empty */
    size_t offset;    /* of the field in cvd_nats_conf */
    size_t size;      /* of a string field */
    const char *help;
} cvd_nats_directive;

extern const cvd_nats_directive cvd_nats_directives[];
extern const int cvd_nats_n_directives;

/* Defaults for a new section (name and line given). */
void cvd_nats_conf_init(cvd_nats_conf *c, const char *name, int line);
/* One "key = value" line of the section: 0, -1 with why set (the value is wrong), or -2 (no
 * such directive). Relative paths are joined to dir (may be NULL). */
int cvd_nats_conf_set(cvd_nats_conf *c, const char *key, const char *value, const char *dir,
                      int line, char *why, size_t whysz);
/* After the section: the required directives and the cross checks. 0, or -1 with why and
 * *line (the line to blame) set. */
int cvd_nats_conf_finish(cvd_nats_conf *c, int *line, char *why, size_t whysz);
/* The index of a directive in the table, or -1 */
int cvd_nats_directive_index(const char *name);
/* 1 if the two sections differ in something a SIGHUP cannot change without restarting
 * the group (servers, streams, partitions, prefix, credentials: everything but timings) */
int cvd_nats_conf_needs_restart(const cvd_nats_conf *a, const cvd_nats_conf *b);

#endif
