/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runtimes (server/runtime.c) called directly: the default configuration with its models in
 * place and found by listener and by name, the refusals that involve a model (FILE:LINE:
 * directive: reason), generations, references, and the slot that hands readers on other
 * threads the runtime in force while the main thread swaps it (as a reload does).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"

static char tmpdir[64];

static void rt_setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/convd-runtime-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void rt_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(runtime, .init = rt_setup, .fini = rt_teardown);

/* writes text to tmpdir/name; returns the path (static buffer) */
static const char *write_conf(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static int in_channels_of(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_runtime_load_model(path, &m, &err), 0, "%s", err.msg);
    int in = cvd_model_in_channels(m);
    cvd_model_unref(m);
    return in;
}

Test(runtime, the_default_configuration_has_its_models_in_place)
{
    cvd_runtime *rt = NULL, *rt2 = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_runtime_create(NULL, &rt, &err), 0, "%s", err.msg);
    cr_assert_eq(atomic_load(&rt->refs), 1);
    const cvd_conf *c = rt->conf;
    cr_assert_eq(c->n_models, 2);
    for (int i = 0; i < c->n_models; i++) {
        cr_assert_not_null(rt->models[i]);
        cr_assert_eq(cvd_runtime_model(rt, c->models[i].name), rt->models[i]);
        cr_assert_eq(cvd_runtime_model_hop(rt, rt->models[i]), 0);
    }
    cr_assert_null(cvd_runtime_model(rt, "no-such-model"));
    /* each listener's model is the one its section names */
    cr_assert_gt(c->n_listens, 0);
    for (int l = 0; l < c->n_listens; l++) {
        cvd_model *m = cvd_runtime_listener_model(rt, l);
        cr_assert_not_null(m);
        cr_assert_eq(m, cvd_runtime_model(rt, c->listens[l].model));
    }
    cr_assert_null(cvd_runtime_listener_model(rt, -1));
    cr_assert_null(cvd_runtime_listener_model(rt, c->n_listens));
    cr_assert_eq(cvd_runtime_model_hop(rt, NULL), 0);

    /* a later runtime has a later generation */
    cr_assert_eq(cvd_runtime_create(NULL, &rt2, &err), 0, "%s", err.msg);
    cr_assert_gt(rt2->generation, rt->generation);
    cr_assert_eq(cvd_runtime_ref(rt2), rt2);
    cr_assert_eq(atomic_load(&rt2->refs), 2);
    cvd_runtime_unref(rt2);
    cr_assert_eq(atomic_load(&rt2->refs), 1);
    cvd_runtime_unref(rt2);
    cvd_runtime_unref(rt);
    cvd_runtime_unref(NULL);
}

/* cvd_runtime_create on text: must fail with a message starting "FILE:LINE: " and holding
 * `what` */
static void refused(const char *text, int line, const char *what)
{
    const char *path = write_conf("bad.conf", text);
    char want[256];
    snprintf(want, sizeof want, "%s:%d: ", path, line);
    cvd_runtime *rt = (cvd_runtime *)&rt; /* not NULL: the call must clear it */
    cvd_err err = {0};
    cr_assert_lt(cvd_runtime_create(path, &rt, &err), 0, "accepted:\n%s", text);
    cr_assert_null(rt);
    cr_assert_eq(strncmp(err.msg, want, strlen(want)), 0, "'%s' does not start with '%s'", err.msg,
                 want);
    cr_assert_not_null(strstr(err.msg, what), "'%s' does not say '%s'", err.msg, what);
}

Test(runtime, refusals_name_the_file_the_line_and_the_directive)
{
    char text[1024], what[256];
    const int in = in_channels_of("builtin:drive");

#define LISTEN "\n[listen a]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = drive\n"
    refused("[model drive]\npath = builtin:nope\n" LISTEN, 2,
            "path: builtin:nope: no built-in model of that name (built in: drive, "
            "vibration-denoise)");
    refused("[model drive]\npath = /nonexistent/amp.nam\n" LISTEN, 2, "path: ");
    refused("[model drive]\npath = builtin:drive\nhop = 4\n" LISTEN, 3,
            "hop: model 'drive' streams frame by frame (it has no window)");

    snprintf(text, sizeof text,
             "[model drive]\npath = builtin:drive\n\n[listen a]\naddress = 127.0.0.1:0\n"
             "protocol = raw\nmodel = drive\nchannels = %d\n",
             in + 2);
    snprintf(what, sizeof what, "channels: %d, but model 'drive' takes %d input channels", in + 2,
             in);
    /* the listener's line: its section's header */
    refused(text, 4, what);

    /* the same file with the right channel count loads */
    snprintf(text, sizeof text,
             "[model drive]\npath = builtin:drive\n\n[listen a]\naddress = 127.0.0.1:0\n"
             "protocol = raw\nmodel = drive\nchannels = %d\n",
             in);
    cvd_runtime *rt = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_runtime_create(write_conf("good.conf", text), &rt, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_runtime_listener_model(rt, 0), rt->models[0]);
    cvd_runtime_unref(rt);
}

Test(runtime, the_slot_hands_out_the_runtime_in_force)
{
    cvd_runtime *a = NULL, *b = NULL;
    cvd_runtime_slot *s = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_runtime_create(NULL, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_runtime_create(NULL, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_runtime_slot_create(a, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(atomic_load(&a->refs), 1, "the slot takes the caller's reference over");

    cvd_runtime *got = cvd_runtime_slot_get(s);
    cr_assert_eq(got, a);
    cr_assert_eq(atomic_load(&a->refs), 2, "get references");
    cr_assert_eq(cvd_runtime_slot_peek(s), a);
    cr_assert_eq(atomic_load(&a->refs), 2, "peek does not");

    cvd_runtime *old = cvd_runtime_slot_swap(s, b);
    cr_assert_eq(old, a);
    cr_assert_eq(cvd_runtime_slot_peek(s), b);
    cr_assert_eq(atomic_load(&b->refs), 1);
    cvd_runtime_unref(old);
    /* a reader that took a before the swap still holds it */
    cr_assert_eq(atomic_load(&a->refs), 1);
    cr_assert_eq(got->conf->n_models, 2);
    cvd_runtime_unref(got);

    cvd_runtime_slot_destroy(s); /* unreferences b */
    cvd_runtime_slot_destroy(NULL);
}

#define READERS 4
#define SWAPS 24

typedef struct reader {
    cvd_runtime_slot *slot;
    atomic_int *stop;
    long gets, went_back;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    uint64_t last = 0;
    while (!atomic_load(r->stop)) {
        cvd_runtime *rt = cvd_runtime_slot_get(r->slot);
        if (rt->generation < last)
            r->went_back++;
        last = rt->generation;
        /* use it as a connection does: its models and config stay valid until unref */
        if (rt->conf->n_models != 2 || cvd_runtime_model(rt, "drive") == NULL)
            r->went_back += 1000000;
        r->gets++;
        cvd_runtime_unref(rt);
    }
    return NULL;
}

Test(runtime, readers_on_other_threads_while_the_main_thread_swaps)
{
    cvd_runtime *rt = NULL;
    cvd_runtime_slot *s = NULL;
    cvd_err err = {0};
    atomic_int stop = 0;
    cr_assert_eq(cvd_runtime_create(NULL, &rt, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_runtime_slot_create(rt, &s, &err), 0, "%s", err.msg);

    reader r[READERS];
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++) {
        r[i] = (reader){.slot = s, .stop = &stop};
        cr_assert_eq(pthread_create(&th[i], NULL, read_loop, &r[i]), 0);
    }
    uint64_t gen = rt->generation;
    for (int k = 0; k < SWAPS; k++) {
        cvd_runtime *next = NULL;
        cr_assert_eq(cvd_runtime_create(NULL, &next, &err), 0, "%s", err.msg);
        cr_assert_gt(next->generation, gen);
        gen = next->generation;
        /* the old one is freed by whichever of us unreferences it last */
        cvd_runtime_unref(cvd_runtime_slot_swap(s, next));
        usleep(200);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_gt(r[i].gets, 0);
        cr_assert_eq(r[i].went_back, 0,
                     "reader %d saw an older runtime after a newer one, or "
                     "a runtime that was not whole",
                     i);
    }
    cr_assert_eq(cvd_runtime_slot_peek(s)->generation, gen);
    cr_assert_eq(atomic_load(&cvd_runtime_slot_peek(s)->refs), 1,
                 "every reference the readers took was given back");
    cvd_runtime_slot_destroy(s);
}

/* A listener's chain (model = a, b: TCP sessions run it in order) is built at load: one that
 * cannot run (a windowed model among others, or channels that do not agree) is refused
 * naming the listener's line; one that can loads. */
Test(runtime, a_listeners_chain_is_checked_at_load)
{
    cvd_runtime *rt = NULL;
    cvd_err err = {0};
    const char *base = "[model drive]\npath = builtin:drive\n[model vib]\n"
                       "path = builtin:vibration-denoise\n\n[listen a]\naddress = 127.0.0.1:0\n"
                       "protocol = raw\n";
    char text[1024];
    snprintf(text, sizeof text, "%smodel = drive, vib\n", base);
    refused(text, 6, "model: ");
    snprintf(text, sizeof text, "%smodel = drive, drive\n", base);
    cr_assert_eq(cvd_runtime_create(write_conf("chain.conf", text), &rt, &err), 0, "%s", err.msg);
    cr_assert_eq(rt->conf->listens[0].n_chain, 2);
    cvd_runtime_unref(rt);
}
