/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A runtime is one loaded configuration: the parsed file and every model it names, loaded
 * and checked. It is built off the event loops (at start, and on SIGHUP), then published;
 * each connection keeps a reference to the runtime it started under, so a reload changes
 * new connections only and a running stream keeps its model until it ends.
 */
#ifndef CONVD_RUNTIME_H
#define CONVD_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "convd_dsp.h"
#include "memfig.h"
#include "tls.h"
#include "tokens.h"

typedef struct cvd_runtime {
    atomic_int refs;
    cvd_conf *conf;
    cvd_model **models;   /* one per conf->models[i] */
    uint64_t *model_hash; /* one per model: its file's content hash when it was loaded */
    cvd_memfig *memfigs;  /* one per model: its streams' memory figure (memfig.h) */
    cvd_tls_ctx **tls;    /* one per conf->listens[i]: its TLS context, NULL for plain TCP */
    cvd_tokens **tokens;  /* one per listener: its tokens file, NULL if none */
    uint64_t generation;
} cvd_runtime;

/* Loads a configuration file (path NULL: the embedded default), all its models (with their
 * memory figures), the listeners' TLS certificates and keys and their tokens files: a
 * reload (SIGHUP) reads them all again, and new connections use the new ones.
 * Errors: "FILE:LINE: directive: reason", the line being the model's or listener's. */
int cvd_runtime_create(const char *path, cvd_runtime **out, cvd_err *err);
/* Loads one model as a config's path names it: a file, or "builtin:NAME". */
int cvd_runtime_load_model(const char *path, cvd_model **out, cvd_err *err);
cvd_runtime *cvd_runtime_ref(cvd_runtime *rt);
void cvd_runtime_unref(cvd_runtime *rt);
/* The model of listener i (NULL if it has none), and by name. */
cvd_model *cvd_runtime_listener_model(const cvd_runtime *rt, int listener);
cvd_model *cvd_runtime_model(const cvd_runtime *rt, const char *name);
/* The runtime in force, which threads read while the main thread replaces it on reload. */
typedef struct cvd_runtime_slot cvd_runtime_slot;
/* A slot holding rt (its reference is taken over). */
int cvd_runtime_slot_create(cvd_runtime *rt, cvd_runtime_slot **out, cvd_err *err);
/* Unreferences the runtime, frees; NULL is fine. */
void cvd_runtime_slot_destroy(cvd_runtime_slot *s);
/* Any thread: the runtime in force, referenced (unref it). */
cvd_runtime *cvd_runtime_slot_get(cvd_runtime_slot *s);
/* The writer's thread only: the runtime in force, not referenced. */
cvd_runtime *cvd_runtime_slot_peek(const cvd_runtime_slot *s);
/* Puts rt (its reference taken over) in force; returns the one it replaces (unref it). */
cvd_runtime *cvd_runtime_slot_swap(cvd_runtime_slot *s, cvd_runtime *rt);

/* A hash of a model file's content (a folder's: its identity); 0 when it cannot be read.
 * A reload compares them: a file rewritten in place is a new model. */
uint64_t cvd_runtime_file_hash(const char *path);

/* The memory figure of model m (one of rt's). */
const cvd_memfig *cvd_runtime_memfig(const cvd_runtime *rt, const cvd_model *m);
/* 1 if some listener's tokens file lets a token publish `stream`: the name is reserved to
 * such tokens' holders. */
int cvd_runtime_publish_claimed(const cvd_runtime *rt, const char *stream);

/* A chain of the models conf->models[idx[0..n)] at the stream's rate (0: the first declared
 * one), blocks of `block` frames; fixed: exactly n frames out for n in (audio callbacks). */
int cvd_runtime_chain(const cvd_runtime *rt, const int *idx, int n, double rate, int block,
                      int fixed, long hop, cvd_chain **out, cvd_err *err);
/* The levels the chain answers to (cvd_levels_of_chain) and whether any of its [model]s says
 * normalize = yes. */
void cvd_runtime_chain_levels(const cvd_runtime *rt, const int *idx, int n, cvd_levels *lv,
                              int *normalize);
/* The hop its [model] section gives a windowed model (0: the window length). */
long cvd_runtime_model_hop(const cvd_runtime *rt, const cvd_model *m);
/* The threads its [model] section gives it (1 or 2; 1 when not given). */
int cvd_runtime_model_threads(const cvd_runtime *rt, const cvd_model *m);

#endif
