/*
 * The daemon's threads and what they share.
 *
 * The main thread runs the main loop: signals, reloads (models load on libuv's thread pool,
 * off every loop), systemd notifications and watchdog, the metrics endpoint, and the
 * listening sockets. Each worker thread runs its own loop and owns the connections it
 * accepted for their whole life: every listening socket is opened in every worker loop
 * (dup'ed), and the kernel hands each new connection to one of them.
 *
 * The main thread talks to workers through command bits and a uv_async_t; workers never
 * call into the main loop except through its own async handle.
 */
#ifndef CONVD_DAEMON_H
#define CONVD_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "audio.h"
#include "runtime.h"

typedef struct cvd_daemon cvd_daemon;
typedef struct cvd_worker cvd_worker;
typedef struct cvd_conn cvd_conn;

/* one listening socket, shared by the worker loops */
typedef struct cvd_lsock {
    unsigned id; /* unique for the daemon's life */
    char name[CVD_CONF_NAME_MAX + 1];
    char host[CVD_CONF_HOST_MAX];
    int port;        /* as configured (0 = any) */
    int bound_port;  /* the real port */
    int family;
    int fd;
    int activated; /* handed over by systemd */
} cvd_lsock;

enum {
    CVD_CMD_SYNC = 1,     /* listening sockets changed */
    CVD_CMD_SHUTDOWN = 2, /* stop accepting; end every stream gracefully */
    CVD_CMD_EXIT = 4,     /* close everything now */
    CVD_CMD_PING = 8,     /* watchdog: show the loop is alive */
    CVD_CMD_WAKE = 16     /* subscriber rings have frames */
};

typedef struct cvd_wlisten {
    uv_tcp_t tcp;
    cvd_worker *w;
    unsigned id;
    char name[CVD_CONF_NAME_MAX + 1];
    int open;
} cvd_wlisten;

struct cvd_worker {
    cvd_daemon *d;
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t async;
    uv_idle_t work;   /* runs queued connection work, one block each per turn */
    int work_active;
    atomic_int cmd;
    atomic_ullong heartbeat;
    cvd_wlisten **listens; /* each allocated alone: handles must not move */
    int n_listens, cap_listens;
    cvd_conn *conns;     /* every connection of this worker */
    cvd_conn *work_head; /* connections with work queued */
    cvd_conn *work_tail;
    int n_conns;
    int shutting_down;
    int exiting;
    atomic_int done; /* the loop has ended */
};

struct cvd_daemon {
    uv_loop_t *loop;
    const char *config_path; /* NULL: the embedded default */
    pthread_mutex_t lock;    /* guards runtime and lsocks */
    cvd_runtime *runtime;
    cvd_lsock *lsocks;
    int n_lsocks;
    unsigned next_lsock_id;
    cvd_worker *workers;
    int n_workers;

    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t watchdog, deadline;
    uv_async_t worker_done;
    uv_work_t reload_req;
    cvd_runtime *reload_result;
    cvd_audio_prepared *reload_audio; /* the reload's nets for the audio streams */
    cvd_err reload_err;
    int reloading, reload_again, stopping;
    uint64_t watchdog_usec;
    unsigned long long last_beats_sum;

    uv_tcp_t metrics;
    int metrics_open;
    int metrics_port; /* the real port */
    cvd_audio *audio;  /* live audio streams ([stream NAME]); NULL if none */
    int exit_code;
};

/* the current runtime, referenced (unref it) */
cvd_runtime *cvd_daemon_runtime(cvd_daemon *d);
/* find the listening socket of a worker listener */
void cvd_worker_command(cvd_worker *w, int cmd);
/* from any thread: wake the worker (subscriber frames) */
void cvd_worker_wake(void *worker);
/* conn.c: make sure the worker runs its queued connection work (one block per connection
 * per loop turn, so no client delays the others by more than a block) */
void cvd_worker_schedule(cvd_worker *w);
/* conn.c calls this when a connection has closed: the loop ends once a shutting-down
 * worker has none left */
void cvd_worker_maybe_finish(cvd_worker *w);

/* conn.c */
void cvd_conn_accept(cvd_worker *w, cvd_wlisten *l);
void cvd_conn_run_work(cvd_worker *w); /* the worker's idle callback body */
void cvd_conn_wake_all(cvd_worker *w); /* subscriber rings may have frames */
void cvd_conn_shutdown_all(cvd_worker *w);
void cvd_conn_close_all(cvd_worker *w);

/* main.c runs this */
/* log_level_override: -1 to follow the config */
int cvd_daemon_run(const char *config_path, int workers_override, int log_level_override);
/* for --check: load a config and its models; prints the result */
int cvd_daemon_check(const char *config_path);

#endif
