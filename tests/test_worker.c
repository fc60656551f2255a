/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker (server/worker.c) on the test's own thread: the worker is created but not
 * started, and the test turns its loop (uv_run NOWAIT: one loop turn each), so it is the
 * worker's thread. The run queue (one turn per member per loop turn, in order, who has more
 * to the back), removal while queued, commands from other threads (wake, stop), the loop's
 * end once stopped and empty, and a listening socket handed over and accepted on.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime.h"
#include "worker.h"

#define MAXLOG 256

typedef struct tmember {
    cvd_worker_member m; /* first: the ops cast back */
    int id;
    int turns_left; /* run() returns 1 while this is > 0 after the turn */
    int runs, wakes, shutdowns, exits;
} tmember;

static cvd_worker *W;
static int order[MAXLOG], n_order;
static int accepted_fd = -1;
static char accepted_on[64];
static int done_calls;

static int t_run(cvd_worker_member *m)
{
    tmember *t = (tmember *)m;
    t->runs++;
    cr_assert_lt(n_order, MAXLOG);
    order[n_order++] = t->id;
    return --t->turns_left > 0;
}

static void t_wake(cvd_worker_member *m)
{
    ((tmember *)m)->wakes++;
}

/* a member that leaves at once when told (as a connection with nothing to flush) */
static void t_shutdown(cvd_worker_member *m)
{
    ((tmember *)m)->shutdowns++;
    cvd_worker_remove(W, m);
}

static void t_exit(cvd_worker_member *m)
{
    ((tmember *)m)->exits++;
    cvd_worker_remove(W, m);
}

static const cvd_worker_member_ops ops = {t_run, t_wake, t_shutdown, t_exit};

static void t_accept(cvd_worker *w, int fd, const struct sockaddr *peer, const char *listener)
{
    cr_assert_eq(w, W);
    cr_assert_eq(peer->sa_family, AF_INET);
    accepted_fd = fd;
    snprintf(accepted_on, sizeof accepted_on, "%s", listener);
}

static void t_done(void *ctx)
{
    (void)ctx;
    done_calls++;
}

static cvd_runtime_slot *slot;

static void make_worker(void)
{
    cvd_err err = {0};
    cr_assert_eq(cvd_runtime_slot_create(NULL, &slot, &err), 0, "%s", err.msg);
    cvd_worker_config cfg = {
        .id = 3, .runtime = slot, .accept = t_accept, .done = t_done, .ctx = NULL};
    cr_assert_eq(cvd_worker_create(&cfg, &W, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_worker_id(W), 3);
    n_order = 0;
}

static void free_worker(void)
{
    cvd_worker_destroy(W);
    cvd_runtime_slot_destroy(slot);
    W = NULL;
}

/* one loop turn */
static int turn(void)
{
    return uv_run(cvd_worker_loop(W), UV_RUN_NOWAIT);
}

static void member(tmember *t, int id, int turns)
{
    memset(t, 0, sizeof *t);
    t->m.ops = &ops;
    t->id = id;
    t->turns_left = turns;
    cvd_worker_add(W, &t->m);
}

static void expect_order(const int *want, int n)
{
    cr_assert_eq(n_order, n, "%d runs, expected %d", n_order, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(order[i], want[i], "run %d: member %d, expected %d", i, order[i], want[i]);
}

Test(worker, one_turn_per_member_per_loop_turn_in_order)
{
    tmember a, b, c;
    make_worker();
    member(&a, 1, 3);
    member(&b, 2, 1);
    member(&c, 3, 2);
    cr_assert_eq(cvd_worker_members(W), 3);
    cvd_worker_queue(W, &a.m);
    cvd_worker_queue(W, &b.m);
    cvd_worker_queue(W, &a.m); /* already queued: no second place */
    cvd_worker_queue(W, &c.m);
    turn();
    expect_order((int[]){1, 2, 3}, 3);
    turn();
    expect_order((int[]){1, 2, 3, 1, 3}, 5);
    /* b, done, is queued again from outside: behind a, who had more */
    cvd_worker_queue(W, &b.m);
    b.turns_left = 1;
    turn();
    expect_order((int[]){1, 2, 3, 1, 3, 1, 2}, 7);
    turn();
    turn();
    cr_assert_eq(n_order, 7, "an empty queue runs nothing");
    cr_assert_eq(a.runs + b.runs + c.runs, 7);
    cvd_worker_remove(W, &a.m);
    cvd_worker_remove(W, &b.m);
    cvd_worker_remove(W, &c.m);
    cr_assert_eq(cvd_worker_members(W), 0);
    free_worker();
}

Test(worker, a_member_removed_while_queued_never_runs)
{
    tmember a, b, c;
    make_worker();
    member(&a, 1, 5);
    member(&b, 2, 5);
    member(&c, 3, 5);
    cvd_worker_queue(W, &a.m);
    cvd_worker_queue(W, &b.m);
    cvd_worker_queue(W, &c.m);
    cvd_worker_remove(W, &b.m); /* the middle */
    turn();
    expect_order((int[]){1, 3}, 2);
    cvd_worker_queue(W, &c.m);
    cvd_worker_remove(W, &c.m); /* the tail: a queued in front of it still runs */
    turn();
    expect_order((int[]){1, 3, 1}, 3);
    cvd_worker_remove(W, &a.m);
    turn();
    expect_order((int[]){1, 3, 1}, 3);
    free_worker();
}

static void *wake_from_another_thread(void *arg)
{
    cvd_worker_wake(arg);
    return NULL;
}

Test(worker, wake_and_stop_from_other_threads_then_the_loop_ends)
{
    tmember a, b;
    pthread_t th;
    make_worker();
    member(&a, 1, 1);
    member(&b, 2, 1);
    cr_assert_eq(pthread_create(&th, NULL, wake_from_another_thread, W), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < 50 && a.wakes == 0; i++) {
        turn();
        usleep(1000);
    }
    cr_assert_eq(a.wakes, 1);
    cr_assert_eq(b.wakes, 1);
    cr_assert_eq(cvd_worker_stopping(W), 0);
    cvd_worker_stop(W, 0);
    for (int i = 0; i < 50 && a.shutdowns == 0; i++) {
        turn();
        usleep(1000);
    }
    cr_assert_eq(a.shutdowns + b.shutdowns, 2, "each member is told once");
    cr_assert_eq(a.exits + b.exits, 0);
    cr_assert(cvd_worker_stopping(W));
    /* stopped and empty: its handles close and the loop has nothing left */
    for (int i = 0; i < 10 && turn() != 0; i++)
        ;
    cr_assert_eq(uv_run(cvd_worker_loop(W), UV_RUN_NOWAIT), 0, "the loop has ended");
    free_worker();
}

Test(worker, exit_closes_every_member_now)
{
    tmember a;
    make_worker();
    member(&a, 1, 1);
    cvd_worker_stop(W, 1);
    for (int i = 0; i < 50 && a.exits == 0; i++) {
        turn();
        usleep(1000);
    }
    cr_assert_eq(a.exits, 1);
    cr_assert_eq(a.shutdowns, 0);
    free_worker();
}

Test(worker, accepts_on_the_listening_sockets_it_is_given)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t sl = sizeof sa;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 16), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    make_worker();
    cvd_listen_fd fds[1] = {{.id = 7, .name = "test-listener", .fd = lfd}};
    cvd_worker_sync_listeners(W, fds, 1);
    close(lfd); /* the worker has its own dup */
    for (int i = 0; i < 5; i++)
        turn();
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    accepted_fd = -1;
    for (int i = 0; i < 200 && accepted_fd < 0; i++) {
        turn();
        usleep(1000);
    }
    cr_assert(accepted_fd >= 0, "no connection accepted");
    cr_assert_str_eq(accepted_on, "test-listener");
    close(accepted_fd);
    close(cfd);
    /* the listener goes with the next sync that does not list it */
    cvd_worker_sync_listeners(W, NULL, 0);
    for (int i = 0; i < 5; i++)
        turn();
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0, "still listening");
    close(cfd);
    free_worker();
}

Test(worker, destroy_a_worker_never_started_frees_what_it_was_given)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0);
    make_worker();
    cvd_listen_fd fds[1] = {{.id = 1, .name = "x", .fd = lfd}};
    cvd_worker_sync_listeners(W, fds, 1); /* a dup pending, never taken */
    close(lfd);
    free_worker(); /* ASan: nothing leaks */
    cr_assert_eq(done_calls, 0, "done is the thread's, and there was none");
}
