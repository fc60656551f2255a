/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_wire.h - the pure parts of convd's NATS JetStream transport (docs/SCALE.md): ids,
 * subjects, headers, the partition function, lease values and checkpoints as text. No
 * libnats, no sockets, no threads: unit-tested on their own and fuzzable.
 *
 * Subjects (P is the prefix, one or more dot-separated tokens):
 *   P.in.<id>          what devices publish
 *   P.part.<n>.<id>    what the servers' mapping stores in the input stream
 *                      ("P.in.*" -> "P.part.{{partition(N,1)}}.{{wildcard(1)}}")
 *   P.out.<id>         what convd publishes
 * An id is one token of [A-Za-z0-9_-], 1..128 bytes.
 */
#ifndef CONVD_NATS_WIRE_H
#define CONVD_NATS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "convd_dsp.h"

#define CVD_NATS_ID_MAX 128
/* the prefix: tokens of [A-Za-z0-9_-] separated by single dots, at most this many bytes */
#define CVD_NATS_PREFIX_MAX 128
/* the most frames an index may count (Convd-Frame): 2^53, exact in a double and far beyond
 * any stream (a 1 MHz sensor takes 285 years to reach it) */
#define CVD_NATS_FRAME_MAX (1LL << 53)

/* 1 if s[0..n) is a valid id: 1..128 of A-Z a-z 0-9 _ - */
int cvd_nats_id_valid(const char *s, size_t n);
/* 1 if s is a valid prefix: tokens of [A-Za-z0-9_-] separated by dots, 1..128 bytes */
int cvd_nats_prefix_valid(const char *s);
/* NATS's partition(N, 1) of the mapping: FNV-1a 32 of the id's bytes, modulo n */
int cvd_nats_partition(const char *id, size_t len, int n);

/* Convd-Frame's value: decimal digits only (no sign, no spaces), 0..CVD_NATS_FRAME_MAX.
 * 0 and *out set, or -1. */
int cvd_nats_parse_frame(const char *s, int64_t *out);

/* An input message's subject P.part.<n>.<id> under `prefix`: 0 with *part and the id (a
 * pointer into subject, *id_len bytes) when the subject has that form with n a decimal
 * number; -1 when it does not (the id itself is not checked here). */
int cvd_nats_parse_part_subject(const char *subject, const char *prefix, int *part, const char **id,
                                size_t *id_len);

/* "P.part.<n>.*" , "P.out.<id>", ... into buf (size n); -1 if it does not fit */
int cvd_nats_subject(char *buf, size_t n, const char *prefix, const char *kind, const char *rest);

/* Durations and sizes of the [nats] section: a number with an optional unit. Seconds: "15",
 * "0.5", "90s", "2m", "24h", "7d". Bytes: "1000000", "512K", "64M", "2G", "1T" (powers of
 * 1024), "-1" for no limit where allowed. 0 or -1 (why says what is wrong). */
int cvd_nats_parse_seconds(const char *s, double *out);
int cvd_nats_parse_bytes(const char *s, int64_t *out);

/* ---- leases ----------------------------------------------------------------------------- */

/* A lease's value in the KV bucket: "<owner> <epoch>" where owner is the holding process's
 * instance name and epoch the revision at which it took the lease (0 in the taking write
 * itself, whose revision is the epoch). */
#define CVD_NATS_OWNER_MAX 96
typedef struct cvd_nats_lease {
    char owner[CVD_NATS_OWNER_MAX];
    uint64_t epoch;
} cvd_nats_lease;

int cvd_nats_lease_format(char *buf, size_t n, const cvd_nats_lease *l);
/* 0 or -1 (not a lease value) */
int cvd_nats_lease_parse(const char *s, size_t len, cvd_nats_lease *out);

/* ---- checkpoints ------------------------------------------------------------------------ */

/* One id's checkpointed state: the frames answered, where its stream restarted last (0, or
 * the frame after a gap), and where a replay must start for the next output to be exact,
 * with the stream sequence of the message holding that frame (0: not known; the replay
 * starts at the partition's frontier). */
typedef struct cvd_nats_ckpt_id {
    char id[CVD_NATS_ID_MAX + 1];
    int64_t base;        /* the frame its current model state started from */
    int64_t done;        /* input frames < done are answered */
    int64_t replay;      /* the first frame a replay feeds */
    uint64_t replay_seq; /* stream sequence of the message holding frame `replay`, or 0 */
    int active;          /* not dormant (dropped for idleness): a takeover replays its history
                          * from the partition's consumer, not from the log by subject */
} cvd_nats_ckpt_id;

typedef struct cvd_nats_ckpt {
    uint64_t epoch;    /* the lease epoch of the writer */
    uint64_t frontier; /* every message of the partition up to this stream sequence is
                        * answered */
    cvd_nats_ckpt_id *ids;
    size_t n_ids, cap_ids;
} cvd_nats_ckpt;

/* Text: "convd-ckpt 1 <epoch> <frontier> <n>\n" then one line per id:
 * "<id> <base> <done> <replay> <replay_seq> <active>\n". Returns a malloc'd NUL-terminated
 * text (NULL: out of memory) and its length. */
char *cvd_nats_ckpt_format(const cvd_nats_ckpt *c, size_t *len);
/* 0, or a negative CVD_E* with err naming the line that is wrong */
int cvd_nats_ckpt_parse(const char *text, size_t len, cvd_nats_ckpt *out, cvd_err *err);
/* Appends an id (grows the array); CVD_ENOMEM */
int cvd_nats_ckpt_add(cvd_nats_ckpt *c, const cvd_nats_ckpt_id *id);
void cvd_nats_ckpt_free(cvd_nats_ckpt *c);

#endif
