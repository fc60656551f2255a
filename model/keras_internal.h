/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the Keras loader (keras.c, keras_h5.c, keras_tcn.c, keras_tcn_weights.c): the
 * loading context, a layer of the Keras config as the loader sees it, keras-tcn's expanded
 * TCN, and the functions the four files share. */
#ifndef CONVD_KERAS_INTERNAL_H
#define CONVD_KERAS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include <hdf5.h>
#include <jansson.h>
#include <zip.h>

#include "convd_model.h"

#define KX_MAX_CONFIG ((size_t)64 << 20) /* bytes of config JSON */
#define KX_MAX_WEIGHTS ((size_t)4 << 30) /* bytes of an HDF5 weights file */
#define KX_MAX_STRINGS 100000            /* entries of a string attribute */
#define KX_MAX_PATH 1024

struct kx_tcn;

typedef struct kx_layer {
    const char *name;   /* borrowed from the config */
    const char *cls;    /* the Keras class, aliases resolved */
    char where[160];    /* "layers[3] (conv1d)" */
    int input;          /* an InputLayer */
    int renorm;         /* BatchNormalization(renorm=True): three more variables in the file */
    struct kx_tcn *tcn; /* keras-tcn's TCN layer, expanded into convd's layers (keras_tcn.c) */
} kx_layer;

typedef struct kx_ctx {
    const char *file; /* the path the user gave */
    char label[64];   /* where the config is: "config.json", "model_config" */
    char lp[80];      /* the label with ": ", or "" */
    cvd_err e;
    int n_layers;
    kx_layer *layers;
    char model_name[96];
    char model_class[32];
    json_t *top; /* the Keras config (the layers' names point into it) */
    cvd_model *m;
} kx_ctx;

/* keras-tcn's TCN layer as parsed from its config (keras_tcn.c says what it computes). */
typedef struct kx_tcn {
    int blocks, k, norm, wnorm, skip, same, ret_seq, slice;
    int in_ch;                  /* of the TCN's input */
    long steps;                 /* of the TCN's input, -1 when not fixed */
    int *filters, *dil, *match; /* per block; match: a 1x1 matching Conv1D */
    char act[64];
} kx_tcn;

enum { KX_NORM_NONE, KX_NORM_BATCH, KX_NORM_LAYER };

/* ---- keras.c: messages, the config, the model's nodes ------------------------------------ */

/* "FILE: message" into c->e; returns code. */
int kx_bad(kx_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The index of the model node called name, -1 if none. */
int kx_node(const kx_ctx *c, const char *name);
/* The layers a Functional model's layer reads, from its inbound nodes (Keras 3:
 * {"args": [...], "kwargs": {...}}; Keras 2: [[name, node, tensor, kwargs], ...]). */
int kx_inbound(kx_ctx *c, const kx_layer *L, json_t *layer, json_t *copy);

/* ---- keras_h5.c: whole files, zip entries, HDF5 files, attributes and datasets ------------ */

/* The serial HDF5 library is not thread-safe: every use is under this lock. */
extern pthread_mutex_t kx_h5_lock;

/* A whole file of at most max bytes, NUL-terminated (*out malloc'd). */
int kx_read_file(kx_ctx *c, const char *path, size_t max, char **out, size_t *len);
/* One entry of the archive, whole, NUL-terminated. */
int kx_zip_entry(kx_ctx *c, zip_t *za, const char *name, size_t max, int required, char **out,
                 size_t *len);
/* HDF5's most specific message about the last failure (then the stack is cleared); buf holds
 * 200 bytes. */
const char *kx_h5_msg(char *buf);
/* An HDF5 file from memory (the library keeps its own copy). Call under the lock. */
int kx_h5_open(kx_ctx *c, const char *what, void *buf, size_t len, hid_t *fid);
/* 1 if every component of path (relative to loc) is a hard link: no external files, no soft
 * links. 0 if a component is missing; -1 (and c->e) if one is another kind of link. */
int kx_h5_hard(kx_ctx *c, hid_t loc, const char *path, const char *shown);
/* The strings of an attribute (Keras splits long ones into NAME0, NAME1, ...). *n = -1 when
 * the attribute does not exist. Free the list with kx_free_strings. */
int kx_h5_strings(kx_ctx *c, hid_t obj, const char *name, const char *shown, char ***list, int *n);
void kx_free_strings(char **list, int n);
/* Reads dataset `path` (under loc) into variable `var` of `layer`'s node, checking its
 * rank, shape and type first (into a buffer of that shape instead, when `into` is given). */
int kx_h5_var_to(kx_ctx *c, hid_t loc, const char *path, const char *shown, const kx_layer *L,
                 int node, int var, float *into);
/* Reads dataset `path` into variable `var` of `node`, checked as above. */
int kx_h5_var(kx_ctx *c, hid_t loc, const char *path, const char *shown, const kx_layer *L,
              int node, int var);
/* Number of links in the group at path (-1: absent; c->e set and < -1 on error). */
long kx_h5_count(kx_ctx *c, hid_t fid, const char *path, const char *shown);
/* One flag dataset (tensorflow-addons' `initialized`): 1 true, 0 false. */
int kx_h5_flag(kx_ctx *c, hid_t loc, const char *path, const char *shown, int *out);

/* ---- keras_tcn.c: keras-tcn's TCN layer into convd's layers ------------------------------- */

/* keras-tcn's class: class_name TCN from module tcn.tcn (or no module: Keras 2). */
int kx_is_tcn(json_t *layer);
void kx_tcn_free(kx_tcn *t);
/* The TCN's node names. part NULL: the TCN's own name. */
int kx_tcn_name(kx_ctx *c, const kx_layer *L, int block, const char *part, char *buf, size_t n);
/* The TCN `layer` (at L) into convd's layers, appended to list. */
int kx_tcn_translate(kx_ctx *c, kx_layer *L, json_t *layer, json_t *root, json_t *list,
                     int functional);

/* ---- keras_tcn_weights.c: a TCN's weights in either layout -------------------------------- */

/* Keras 3 (.keras, .weights.h5): layers/tcn[_N]/residual_block_<b>/<part>/vars/<i>, the
 * paths being the attributes keras-tcn sets on its layers. */
int kx_tcn_weights3(kx_ctx *c, hid_t fid, const char *where, const char *base, const kx_layer *L);
/* Keras 2: the TCN's weights by the name scopes keras-tcn opens, from the layer group lg whose
 * weight_names are wn. */
int kx_tcn_weights2(kx_ctx *c, hid_t lg, const char *prefix, char **wn, int n_wn,
                    const kx_layer *L);

#endif
