/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_internal.h - what the NATS transport's files share (nats_group.c: connection,
 * streams, leases, lanes, intake, publisher; nats_exec.c: the model math on the workers;
 * nats_js.c: libnats helpers). Not for the rest of the daemon: see nats.h.
 *
 * Threads and what each owns:
 *   control      one per group: connects, creates the streams and buckets, watches the lease
 *                bucket, refreshes leases and the membership key, decides what to take and
 *                to give up, writes checkpoints, sweeps idle ids. Blocking calls are fine.
 *   ops          a few threads per group running the slow, blocking steps of a takeover, a
 *                handover or a consumer reset (each a few JetStream requests).
 *   intake       libnats's delivery thread of a lane's subscription: checks each input
 *                message and turns it into a job for the lane's worker (under lane->mu);
 *                it may block on the log to rebuild an idle id's history.
 *   workers      the daemon's worker loops: the model math, one job at a time, never a
 *                NATS call (nats_exec.c).
 *   publisher    one per group: publishes the workers' outputs (async, Msg-Id'd), holds
 *                them while the lease is in doubt, retries the failed ones.
 *   libnats      its own threads: the publish acknowledgements confirm outputs (lane->mu),
 *                which advances the lane's frontier and acknowledges its input.
 */
#ifndef CONVD_NATS_INTERNAL_H
#define CONVD_NATS_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "convd_dsp.h"
#include "nats_conf.h"
#include "nats_wire.h"

typedef struct cvd_nats_group cvd_nats_group;
typedef struct cvd_nats_lane cvd_nats_lane;
typedef struct cvd_nats_exec cvd_nats_exec;
typedef struct cvd_nats_batch cvd_nats_batch;

/* monotonic seconds */
double cvd_nats_now(void);

/* What libnats's callbacks get as their closure: libnats may call one a moment after the
 * object it serves is gone (a timeout firing while a connection closes), so the callback
 * enters the guard and finds the object, or NULL once it is closed; closing waits for the
 * callbacks inside. A guard is never freed (a few bytes per group). */
typedef struct cvd_nats_guard {
    atomic_int active;
    _Atomic(void *) target;
    struct cvd_nats_guard *next; /* every guard, from a static list (not a leak) */
} cvd_nats_guard;

cvd_nats_guard *cvd_nats_guard_create(void *target);
void *cvd_nats_guard_enter(cvd_nats_guard *gd); /* always pair with leave */
void cvd_nats_guard_leave(cvd_nats_guard *gd);
void cvd_nats_guard_close(cvd_nats_guard *gd);

/* ---- the worker's side of an id --------------------------------------------------------- */

typedef struct cvd_nats_idstate {
    cvd_net *net;     /* created by the worker on the first job */
    int64_t fed;      /* the next input frame the net expects */
    int64_t out_next; /* absolute index of its next output frame */
} cvd_nats_idstate;

/* ---- jobs: an input message on its way through a worker to the publisher ----------------- */

enum { CVD_NJ_FEED = 0, CVD_NJ_DROP = 1 };
enum { CVD_NJF_RESET = 1, CVD_NJF_PUBLISH = 2, CVD_NJF_REPLAY = 4 };

typedef struct cvd_nats_job {
    struct cvd_nats_job *next;
    cvd_nats_lane *lane; /* referenced */
    cvd_nats_idstate *st;
    int kind, flags;
    int64_t reset_at; /* CVD_NJF_RESET: the net (re)starts at this frame */
    int64_t first;    /* the message's first frame (Convd-Frame) */
    int64_t from;     /* feed frames from here (>= first) */
    int n;            /* frames in the message */
    const void *data; /* f32le samples, n * in_channels (in msg; maybe unaligned) */
    natsMsg *msg;     /* the input; owned by the job when slot == 0, else by the lane */
    uint64_t seq;     /* its stream sequence */
    uint64_t slot;    /* its place in the lane's ring (0: not in it: rebuilt history) */
    char id[CVD_NATS_ID_MAX + 1];
    /* the output, filled by the worker */
    float *out;
    int out_n, out_cap; /* frames */
    int64_t out_first;
    natsMsg *omsg; /* the output message while it is published */
    int attempts;
    double retry_at;
} cvd_nats_job;

/* ---- a model as the transport runs it ----------------------------------------------------- */

typedef struct cvd_nats_model {
    cvd_model *model; /* referenced */
    int in_ch, out_ch;
    long rf; /* receptive field, frames */
    int windowed;
    long window, hop; /* windowed */
    int latency;
    int block;   /* frames per model call */
    int max_out; /* frames one call gives at most */
} cvd_nats_model;

/* Checks that the model's output count follows a rule replay can use (one output per input
 * frame after a fixed latency, or windows at a hop) and fills m; CVD_EUNSUPPORTED otherwise,
 * with the reason. */
int cvd_nats_model_prepare(cvd_model *model, long hop, int block, cvd_nats_model *m, cvd_err *err);
/* where a net must start for its next output after `done` input frames to be exact, for a
 * stream whose state began at `base` */
int64_t cvd_nats_replay_start(const cvd_nats_model *m, int64_t base, int64_t done);
/* the frame a stream restarting at a gap at `f` starts from (windowed: the next hop) */
int64_t cvd_nats_restart_frame(const cvd_nats_model *m, int64_t f);
/* absolute index of the first output of a net started at frame s */
int64_t cvd_nats_out_index(const cvd_nats_model *m, int64_t s);

/* ---- workers ------------------------------------------------------------------------------ */

/* One per daemon worker. wake(ctx) is called (from any thread) when jobs arrive; the worker
 * then calls cvd_nats_exec_run on its own thread. */
cvd_nats_exec *cvd_nats_exec_create(void (*wake)(void *), void *ctx);
void cvd_nats_exec_destroy(cvd_nats_exec *x);
void cvd_nats_exec_push(cvd_nats_exec *x, cvd_nats_job *j);
/* runs up to max jobs; 1 if more are queued */
int cvd_nats_exec_run(cvd_nats_exec *x, int max);
/* jobs queued (for tests and shutdown) */
int cvd_nats_exec_pending(cvd_nats_exec *x);

/* the lane's model and the publisher's entry, for nats_exec.c */
const cvd_nats_model *cvd_nats_lane_model(const cvd_nats_lane *l);
void cvd_nats_job_done(cvd_nats_job *j); /* from a worker: to the publisher */
void cvd_nats_job_free(cvd_nats_job *j);

/* ---- an id, as a lane sees it ------------------------------------------------------------ */

typedef struct cvd_nats_hist {
    int64_t first, end; /* frames of one message */
    uint64_t seq;       /* its stream sequence */
} cvd_nats_hist;

typedef struct cvd_nats_rec {
    struct cvd_nats_rec *hnext;         /* hash chain */
    struct cvd_nats_rec *lnext, *lprev; /* the lane's list (sweeps, checkpoints) */
    char id[CVD_NATS_ID_MAX + 1];
    size_t idlen;
    int64_t base;         /* the frame its state started from (0, or where a gap restarted it) */
    int64_t next;         /* the next frame the intake expects */
    int64_t done;         /* frames < done are answered */
    cvd_nats_idstate *st; /* NULL: no model state (new, idle, or after a takeover) */
    /* without a state: where its history starts, and the stream sequence holding it */
    int64_t replay;
    uint64_t replay_seq;
    /* with a state: the messages it was fed that a replay might need, oldest first */
    cvd_nats_hist *hist;
    size_t h_head, h_len, h_cap;
    double last_seen;
    int inflight; /* its messages in the ring */
    int dormant;  /* its state was dropped for idleness: a takeover does not replay it from
                   * the partition's consumer (its history is read back if it returns) */
} cvd_nats_rec;

/* ---- a lane: one partition held under one epoch ------------------------------------------- */

typedef struct cvd_nats_slot {
    uint64_t seq;
    natsMsg *msg; /* the input, kept for the acknowledgement */
    cvd_nats_rec *rec;
    int64_t end; /* rec's frames answered once this slot is */
    int confirmed;
} cvd_nats_slot;

struct cvd_nats_lane {
    atomic_int refs;
    cvd_nats_group *g;
    int part;
    uint64_t epoch;
    cvd_nats_exec *exec;
    atomic_int dead;          /* lease lost or handed over: no more outputs */
    atomic_llong valid_until; /* ns (monotonic): outputs are held past this */
    double taken_at;          /* when the lease was won */
    int first_output_logged;

    pthread_mutex_t mu; /* everything below */
    int stopping;       /* no more intake (handover) */
    /* the consumer */
    char consumer[128];
    int consumer_k;
    natsSubscription *sub;
    int resetting;         /* a consumer reset is under way: the intake drops deliveries */
    uint64_t start_seq;    /* of the current consumer */
    uint64_t replay_bound; /* messages up to here were answered before this epoch */
    uint64_t last_sseq, last_cseq;
    atomic_ullong pending; /* messages the consumer has not delivered yet (lag) */
    /* the ids */
    cvd_nats_rec **buckets;
    size_t n_buckets, n_recs;
    cvd_nats_rec *recs; /* list */
    int n_states;
    /* the ring of messages taken, in stream order, until answered */
    cvd_nats_slot *ring;
    uint64_t ring_cap, ring_head, ring_tail; /* slot ids: head..tail-1 live; id % cap */
    uint64_t frontier;                       /* every message up to this sequence is answered */
    natsMsg *to_ack;                         /* the newest answered input not acknowledged yet */
    int unacked;
    uint64_t ckpt_rev; /* the checkpoint key's revision we wrote last */
    uint64_t replayed_frames;
};

/* ---- the group ------------------------------------------------------------------------------ */

enum { CVD_NP_FREE = 0, CVD_NP_TAKING, CVD_NP_RUNNING, CVD_NP_RELEASING };

typedef struct cvd_nats_part {
    /* the bucket's view of its lease */
    int known;
    uint64_t rev; /* 0: no key */
    int deleted;
    cvd_nats_lease val;
    double seen_at;
    /* ours */
    int state;
    uint64_t my_rev, epoch;
    double valid_until;  /* monotonic seconds */
    double refreshed_at; /* when the last refresh that got through was sent */
    double free_since;
    cvd_nats_lane *lane;
    int release_done; /* the handover's ops are finished: delete the key */
} cvd_nats_part;

typedef struct cvd_nats_member {
    char name[CVD_NATS_OWNER_MAX];
    uint64_t rev;
    double seen_at;
    int deleted;
} cvd_nats_member;

enum { CVD_NOP_TAKE, CVD_NOP_RELEASE, CVD_NOP_RESET, CVD_NOP_KILL };
typedef struct cvd_nats_op {
    struct cvd_nats_op *next;
    int kind;
    cvd_nats_lane *lane; /* referenced */
    cvd_nats_lease prev; /* TAKE: the lease it replaced */
    int ok;              /* result */
} cvd_nats_op;

enum {
    CVD_NBAD_PAYLOAD,
    CVD_NBAD_FRAME_MISSING,
    CVD_NBAD_FRAME_INVALID,
    CVD_NBAD_ID,
    CVD_NBAD_NONFINITE,
    CVD_NBAD_SUBJECT,
    CVD_NBAD_COUNT
};

typedef struct cvd_nats_stats {
    atomic_ullong frames_in, frames_out, messages_in, messages_out;
    atomic_ullong replayed_frames, duplicate_messages, duplicate_frames, gaps, gap_frames;
    atomic_ullong bad[CVD_NBAD_COUNT];
    atomic_ullong publish_retries, output_duplicates, lease_losses, takeovers, handovers;
    atomic_ullong consumer_resets, mapping_mismatches, history_fetches, checkpoints;
    atomic_int partitions_owned, ids_active, connected, ready;
} cvd_nats_stats;

enum {
    CVD_NW_GAP,
    CVD_NW_DUP,
    CVD_NW_MAPPING,
    CVD_NW_PUBLISH,
    CVD_NW_CONSUMER,
    CVD_NW_HISTORY,
    CVD_NW_MISC,
    CVD_NW_BAD /* + a CVD_NBAD_ reason */,
    CVD_NW_KINDS = CVD_NW_BAD + CVD_NBAD_COUNT
};

struct cvd_nats_group {
    cvd_nats_conf conf;
    char instance[CVD_NATS_OWNER_MAX];
    cvd_nats_model model;
    int nonfinite_pass;
    cvd_nats_exec **execs;
    int n_execs;
    cvd_nats_stats st;
    void *metrics_stream; /* cvd_stream_stats */

    atomic_int stopping;   /* hand everything over, then end */
    atomic_int finished;   /* the control thread has ended */
    atomic_int closed;     /* libnats's last callback for the connection has run */
    cvd_nats_guard *guard; /* the closure of the connection's and publishes' callbacks */
    atomic_int subs_live;  /* lane subscriptions whose completion has not come yet */
    /* what a reload changes in place (microseconds) */
    atomic_llong idle_timeout_us, checkpoint_interval_us;
    atomic_int quit; /* end now */
    pthread_t control_thread, pub_thread;
    pthread_t *op_threads;
    int n_op_threads;
    int started;
    void (*on_stopped)(void *);
    void *on_stopped_ctx;

    /* the connection (control thread creates it) */
    natsConnection *nc;
    jsCtx *js;     /* synchronous requests */
    jsCtx *js_out; /* outputs, acknowledged asynchronously */
    cvd_nats_batch *batch;
    kvStore *kv_leases, *kv_ckpt;
    kvWatcher *watcher;
    double timeout; /* seconds a request may take */

    /* control thread only */
    cvd_nats_part *parts;
    cvd_nats_member *members;
    int n_members, cap_members;
    uint64_t member_rev;
    double member_ok_at, member_sent_at, started_at;

    /* lanes with a subscription (the error handler looks them up) */
    pthread_mutex_t lanes_mu;
    cvd_nats_lane **lanes;
    int n_lanes, cap_lanes;

    /* ops: a queue for the op threads, and their results back to the control thread */
    pthread_mutex_t ops_mu;
    pthread_cond_t ops_cond;
    cvd_nats_op *ops_head, *ops_tail, *done_head;

    /* publisher */
    pthread_mutex_t pub_mu;
    pthread_cond_t pub_cond;
    cvd_nats_job *pub_head, *pub_tail, *retry_head;
    cvd_nats_job **inflight; /* open addressing by output message address */
    size_t inflight_cap, inflight_n;

    /* rate-limited warnings */
    pthread_mutex_t warn_mu;
    double warn_at[CVD_NW_KINDS];
    unsigned long warn_skipped[CVD_NW_KINDS];
};

/* lanes (nats_lane.c) */
cvd_nats_lane *cvd_nats_lane_create(cvd_nats_group *g, int part, uint64_t epoch);
cvd_nats_lane *cvd_nats_lane_ref(cvd_nats_lane *l);
void cvd_nats_lane_unref(cvd_nats_lane *l);
/* the op threads' work */
int cvd_nats_lane_take(cvd_nats_lane *l, const cvd_nats_lease *prev);
int cvd_nats_lane_release(cvd_nats_lane *l);
int cvd_nats_lane_reset_consumer(cvd_nats_lane *l);
void cvd_nats_lane_kill(cvd_nats_lane *l); /* after a lease loss: stop, drop the states */
/* control thread: a checkpoint's text (malloc'd) */
char *cvd_nats_lane_checkpoint(cvd_nats_lane *l, size_t *len);
/* control thread: drop idle ids' states, forget long-gone ids, acknowledge what is
 * answered, update the gauges */
void cvd_nats_lane_sweep(cvd_nats_lane *l, double now);
/* the publisher: an output stored (or the job had none) */
void cvd_nats_lane_confirm(cvd_nats_lane *l, uint64_t slot);
void cvd_nats_group_request_reset(cvd_nats_group *g, cvd_nats_lane *l);

/* publisher (nats_pub.c) */
void *cvd_nats_publisher_main(void *arg);
void cvd_nats_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure);

/* a warning at most once per `every` seconds per kind; the skipped ones are counted */
void cvd_nats_warn(cvd_nats_group *g, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- libnats helpers (nats_js.c) ---------------------------------------------------------- */

/* Connects with the section's servers, TLS and credentials; reconnects for ever. */
/* on_closed is libnats's last callback for the connection: wait for it before freeing
 * what the callbacks' closure points to. */
int cvd_nats_connect(const cvd_nats_conf *c, const char *name, natsErrHandler on_error,
                     natsConnectionHandler on_disconnect, natsConnectionHandler on_reconnect,
                     natsConnectionHandler on_closed, void *closure, natsConnection **out,
                     cvd_err *err);
/* A status and the library's last error as text */
const char *cvd_nats_status_text(natsStatus s, char *buf, size_t n);

/* One round of writes, published together and waited for: each gets its stream sequence
 * (seq) or an error (status, jerr). */
typedef struct cvd_nats_write {
    const char *subject;
    const void *data;
    int len;
    uint64_t expect_last; /* Nats-Expected-Last-Subject-Sequence; (uint64_t)-1: none */
    int kv_delete;        /* a KV delete marker */
    const char *msg_id;
    /* results */
    uint64_t seq;
    natsStatus status;
    jsErrCode jerr;
    int done;
} cvd_nats_write;

int cvd_nats_batch_create(natsConnection *nc, double timeout, cvd_nats_batch **out);
/* The first message of `subject` at or after stream sequence `seq`, read from the stream's
 * leader (JetStream's message get with next_by_subj; a direct get could come from a replica
 * that has not the newest messages yet): NATS_OK with *out (headers and data) and its
 * sequence, NATS_NOT_FOUND, or the request's error. */
natsStatus cvd_nats_msg_next(natsConnection *nc, const char *stream, uint64_t seq,
                             const char *subject, double timeout, natsMsg **out, uint64_t *out_seq);
void cvd_nats_batch_destroy(cvd_nats_batch *b);
/* publishes every write and waits for all their acknowledgements (each times out after the
 * batch's timeout) */
void cvd_nats_batch_run(cvd_nats_batch *b, cvd_nats_write *w, int n);

#endif
