/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to convd's model JSON (json_model.c, json_layers.c, safetensors.c): the state of one
 * load, shared by its passes.
 */
#ifndef CONVD_JSON_MODEL_H
#define CONVD_JSON_MODEL_H

#include <jansson.h>

#include "model_internal.h"

#define JM_FORMAT "convd-model"
#define JM_VERSION 1
#define JM_MAX_LAYERS 65536
#define JM_MAX_NAME 95                     /* a node name must fit the model's 96-byte field */
#define JM_MAX_CHANNELS 65536              /* channels of any tensor between layers */
#define JM_MAX_VALUES CVD_MODEL_MAX_PARAMS /* floats in one weight variable (256 MiB) */
#define JM_MAX_INPUTS 64                   /* inputs of one merge (the library's limit) */

/* what a layer's class becomes */
typedef enum jm_op {
    JM_CONV,
    JM_DENSE,
    JM_ACTIVATION,
    JM_MERGE,
    JM_INPUT,
    JM_WAVENET,
    JM_IDENTITY, /* Dropout and the other layers that do nothing at inference */
    JM_BATCH_NORM,
    JM_LAYER_NORM,
    JM_RESCALING,
    JM_PAD_CROP,
    JM_UPSAMPLING,
    JM_POOL,
    JM_GLOBAL_POOL,
    JM_FLATTEN,
    JM_RESHAPE,
    JM_PERMUTE
} jm_op;

/* ---- state ----------------------------------------------------------------------------- */

typedef struct jm_layer {
    json_t *obj;
    json_t *config;  /* NULL when absent */
    json_t *weights; /* NULL when absent or null */
    const char *cls_name;
    const char *stem;
    jm_op op;
    cvd_node_op nop;
    cvd_layer_kind kind;
    char name[JM_MAX_NAME + 1];
    char where[JM_MAX_NAME + 40]; /* "layers[3] (name)"; "" for the WaveNet shorthand */
    const char *cfgp;             /* "config", or "wavenet" for the shorthand */
    int n_inputs;
    int *inputs;        /* layer indices; -1 is the model input */
    int node;           /* model node once added (the one holding the weights) */
    int last;           /* the node its readers read, when not `node` (an added activation) */
    int state;          /* topological sort: 0 new, 1 on the stack, 2 done */
    int used;           /* the output depends on it */
    unsigned from_file; /* bit per variable set from the safetensors file */
} jm_layer;

typedef struct jm_ctx {
    cvd_jr r; /* messages: r.file, r.err = &e */
    const char *file;
    const char *dir;
    cvd_err e;
    json_t *root;
    json_t *names; /* layer name -> index */
    int n_layers;
    jm_layer *layers;
    int *order; /* topological order, layer indices */
    int n_order;
    int input_layer; /* index of the InputLayer, or -1 */
    long in_steps;   /* the InputLayer's fixed steps, 0 if none */
    int in_channels;
    int in_channels_given;
    cvd_data_format df;
    int df_top;          /* df comes from the top-level data_format */
    const char *df_from; /* where df was decided, for messages */
    cvd_model *m;
} jm_ctx;

/* ---- pass 3: layers into nodes (json_layers.c) --------------------------------------------- */

/* Each adds layer L's node(s) to c->m, reading its config; an error names the layer and key. */
int jm_add_conv(jm_ctx *c, jm_layer *L);
int jm_add_dense(jm_ctx *c, jm_layer *L);
int jm_add_activation(jm_ctx *c, jm_layer *L);
int jm_add_merge(jm_ctx *c, jm_layer *L);
int jm_add_wavenet(jm_ctx *c, jm_layer *L);
/* every other class: norms, rescaling, padding and cropping, pooling, reshapes, identities */
int jm_add_other(jm_ctx *c, jm_layer *L);
/* The layer's inline "weights" over the seeded ones. */
int jm_inline_weights(jm_ctx *c, const jm_layer *L);
/* "(3, 1, 4)" */
void jm_shape_text(const int *shape, int rank, char *buf, size_t n);

/* ---- weights from a safetensors file (safetensors.c) ------------------------------------ */

/* Sets the variables the tensors of file `wf` (relative to c->dir) name, "<layer>/<index>". */
int jm_safetensors(jm_ctx *c, const char *wf);

#endif
