/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: models (structure + weights) and the fused WaveNet. */
#ifndef CONVD_GRAPH_INTERNAL_H
#define CONVD_GRAPH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "convd_dsp.h"

#define CVD_NODE_NAME_MAX 96

typedef struct cvd_node {
    cvd_node_op op;
    char name[CVD_NODE_NAME_MAX];
    int n_inputs;
    int *inputs;
    int channels;               /* output channels */
    int latency;                /* of this node's output relative to the model input, in frames */
    long receptive;             /* input frames one output frame depends on */
    cvd_activation act;         /* ACTIVATION */
    cvd_wn_activation *nam_act; /* ACTIVATION: one of NAM's instead of act (owned) */
    cvd_conv_config conv;       /* CONV, DENSE (as a kernel-1 Conv1D), channels_last */
    cvd_layer *proto;           /* CONV, DENSE: holds the weights; instances copy them */
    cvd_wn_config *wn;          /* WAVENET */
    float *wn_weights;          /* WAVENET: NAM's flat array */
    size_t wn_nweights;

    char cls[40];  /* the Keras class for display; "" means the op's name */
    int rank;      /* Keras rank without the batch axis: 2, or 1 (a vector: one frame) */
    long frames;   /* output frames for the model's fixed input length; -1: not fixed */
    int window;    /* needs the whole window */
    int own_lat;   /* the node's own lag in its input's frames (conv-like nodes) */
    cvd_axis axis; /* ACTIVATION (axis), BATCH_NORM, LAYER_NORM */
    int k, s;      /* MAX_POOL, AVG_POOL: pool_size, strides */
    cvd_padding padding;
    int left, right; /* ZERO_PADDING, CROPPING */
    int size;        /* UPSAMPLING */
    int keepdims;    /* GLOBAL_*_POOL */
    int in_chmajor;  /* FLATTEN, RESHAPE: the input's Keras order is channel-major */
    int out_chmajor; /* RESHAPE: the output's Keras order is channel-major */
    float eps;       /* norms */
    int center, scale, rms;
    float mul, add; /* RESCALING */
    int nv;         /* BATCH_NORM, LAYER_NORM: Keras variables (rank 1, vlen values) */
    int vlen;
    int vrole[4]; /* what variable i is: 0 gamma, 1 beta, 2 moving_mean, 3 moving_variance */
    float *v[4];
    float *fa, *fb; /* BATCH_NORM folded: y = x * fa + fb */
} cvd_node;

/* variable roles of the norms */
enum { CVD_VAR_GAMMA = 0, CVD_VAR_BETA, CVD_VAR_MEAN, CVD_VAR_VAR };

/* A WaveNet written in Keras's vocabulary, found by cvd_model_fuse() (fuse.c): the nodes
 * that give each weight of the fused WaveNet (-1: none, zeros or the identity). */
typedef struct cvd_fuse_layer {
    int conv[2]; /* the dilated convolutions: [0] the filter (z[:C]), [1] the gate (z[C:]) */
    int mix[2];  /* their mixin 1x1s of the condition (the group's input), or -1 */
    int res;     /* the residual 1x1, or -1 (the last layer of the last array) */
} cvd_fuse_layer;

typedef struct cvd_fuse_array {
    int rechannel; /* the 1x1 that makes h0, or -1 (h0 is the input itself) */
    int head;      /* the 1x1 after the Add of the skips */
    cvd_fuse_layer layers[CVD_WN_MAX_LAYERS];
} cvd_fuse_array;

typedef struct cvd_fusion {
    int input;  /* the node the WaveNet reads (its input and its condition) */
    int output; /* the node whose output the WaveNet computes */
    int scale;  /* a Rescaling (offset 0) after the last head, or -1 */
    int n_members;
    cvd_wn_config *cfg;
    cvd_fuse_array arrays[CVD_WN_MAX_ARRAYS];
} cvd_fusion;

struct cvd_model {
    atomic_int refs;
    int in_channels;
    int n_nodes, cap;
    cvd_node *nodes;
    int output;
    double sample_rate;
    cvd_levels levels; /* the file's calibration metadata (levels.c) */
    long prewarm;      /* frames of silence a net runs through on create and reset */
    char *description;
    long in_length;     /* the input's fixed length (0: any) */
    cvd_data_format df; /* layout of Keras's rank-2 tensors */
    char reason[160];   /* cvd_model_mode_reason() */
    /* fusion (fuse.c): groups of nodes that nets run as one fused WaveNet */
    int n_fusions;
    cvd_fusion *fusions;
    int *fused_in; /* per node (fuse_nodes of them): the group it belongs to, or -1 */
    int fuse_nodes;
    int fuse_off;      /* cvd_model_set_fusion(m, 0): nets run every node */
    char *fuse_report; /* what was fused and why other candidates were not */
    /* the streams' WaveNet templates (wavenet.c, cvd_wavenet_create_shared): prewarmed once
     * per (config, max_block, ISA), their weights and state shared by the nets' clones */
    pthread_mutex_t wn_lock;
    struct cvd_wn_shared *wn_shared;
    int n_wn_shared;
};

/* The flat NAM-order weights of fusion f, from its nodes' weights (fuse.c): w holds
 * cvd_wn_weight_count(f->cfg) floats. */
void cvd_fusion_weights(const cvd_model *m, const cvd_fusion *f, float *w);
void cvd_fusion_free(cvd_model *m);

/* Who calls whom (one way): model.c (building) -> model_query.c (queries, weights) -> ops.c
 * (per-node arithmetic, op names, merges); plan.c (offline) -> model_query.c, ops.c; net.c
 * (streaming) -> plan.c and the rest. ops.c calls nothing in the model files. */

/* Nodes the output depends on: used[i] = 1 (used[] has n_nodes entries). (model_query.c) */
void cvd_model_used_nodes(const cvd_model *m, unsigned char *used);

/* ---- offline evaluation (plan.c) --------------------------------------------------------- */

/* Every node's output for a fixed input length, in buffers allocated once: the offline
 * forward runs one plan over the whole input, a windowed net one plan per window. Running a
 * plan allocates nothing. */
typedef struct cvd_plan cvd_plan;
int cvd_plan_create(const cvd_model *m, long n, cvd_plan **out, cvd_err *err);
void cvd_plan_destroy(cvd_plan *p);
/* n frames (the plan's length) of the model input through every node. */
void cvd_plan_run(cvd_plan *p, const float *in);
/* The output node's frames and buffer after a run. */
long cvd_plan_out_frames(const cvd_plan *p);
const float *cvd_plan_out(const cvd_plan *p);
/* The output tensor in Keras's C order (a windowed record): frames * channels values. */
void cvd_plan_record(const cvd_plan *p, float *dst);
size_t cvd_plan_bytes(const cvd_plan *p);

/* ---- per-node arithmetic (ops.c) --------------------------------------------------------- */

/* 1 if the Keras order of node i's tensor is channel-major (rank 2, channels_first). */
int cvd_node_chmajor(const cvd_model *m, int i);
/* The class a node shows in messages (cvd_model_node_class of a node). */
const char *cvd_node_class(const cvd_node *nd);

/* Output frames of node i for inputs of in_len[k] frames; < 0 (and err set) when Keras
 * would refuse the length. */
long cvd_node_out_frames(const cvd_model *m, int i, const long *in_len, cvd_err *err);
/* The offline result of the nodes without weights of their own or state (not CONV, DENSE,
 * WAVENET): inputs x[k] of in_len[k] frames, output y of `len` frames. No allocation. */
void cvd_node_compute(const cvd_model *m, int i, const float *const *x, const long *in_len,
                      float *y, long len);
/* Element-wise per-frame nodes (IDENTITY, ACTIVATION over channels, BATCH_NORM and
 * LAYER_NORM over channels, RESCALING, PERMUTE without swap): n frames of x into y (may be
 * the same buffer). */
void cvd_node_frames(const cvd_node *nd, const float *x, int n, float *y);
/* Refolds a BATCH_NORM node's variables into fa, fb. */
void cvd_batch_norm_fold(cvd_node *nd);

/* ---- pooling, streaming (pool.c) ---------------------------------------------------------- */

typedef struct cvd_pool cvd_pool;
int cvd_pool_create(int is_max, int k, int s, cvd_padding pad, int channels, int max_block,
                    cvd_pool **out, cvd_err *err);
void cvd_pool_destroy(cvd_pool *p);
int cvd_pool_max_out(const cvd_pool *p);
/* Lag in input frames, as a convolution's: k - 1 - the steady-state left pad. */
int cvd_pool_latency(int k, int s, cvd_padding pad);
int cvd_pool_process(cvd_pool *p, const float *in, int n, float *out, int *n_out);
int cvd_pool_flush(cvd_pool *p, float *out, int *n_out);
void cvd_pool_reset(cvd_pool *p);
size_t cvd_pool_state_bytes(const cvd_pool *p);
/* Offline output length (Keras's), < 0 if valid padding leaves nothing. */
long cvd_pool_out_len(int k, int s, cvd_padding pad, long n);
/* Offline, exactly as Keras (the left pad from n): n frames of C channels into out. */
void cvd_pool_forward(int is_max, int k, int s, cvd_padding pad, int C, const float *in, long n,
                      float *out);

/* conv.c: cvd_layer_forward without allocating, for channels_last layers: out holds
 * cvd_layer_output_length(n) frames, acc cvd_layer_forward_scratch() doubles. */
size_t cvd_layer_forward_scratch(const cvd_layer *L);
void cvd_layer_forward_cl(const cvd_layer *L, const float *in, long n, float *out, long nl,
                          double *acc);

#define CVD_MERGE_MAX_INPUTS 64

/* y = op(x[0], x[1], ...) element by element over n_values floats (not CONCATENATE). (ops.c) */
void cvd_merge_frames(cvd_node_op op, int n_inputs, const float *const *x, size_t n_values,
                      float *y);

/* wavenet.c: a whole NAM WaveNet, streaming, one frame out per frame in. */
typedef struct cvd_wavenet cvd_wavenet;

int cvd_wavenet_create(const cvd_wn_config *cfg, int max_block, cvd_wavenet **out, cvd_err *err);
void cvd_wavenet_destroy(cvd_wavenet *w);
/* NAM's flat weight order; resets (and prewarms) the state. */
int cvd_wavenet_set_weights(cvd_wavenet *w, const float *weights, size_t n, cvd_err *err);
/* n <= max_block frames of input_size channels in, n frames of head_size out. */
void cvd_wavenet_process(cvd_wavenet *w, const float *in, int n, float *out);
void cvd_wavenet_reset(cvd_wavenet *w);
/* A stream's WaveNet for model m's configuration cfg (a WAVENET node's, or fusion `fusion`'s
 * when fusion >= 0; the weights are the node's wn_weights or the fusion's) at max_block: a
 * clone of the model's template for (cfg, max_block, the active ISA), which is built and
 * prewarmed the first time (outside the lock: two threads may both build one, the second
 * is dropped). A clone shares the template's weights and, on reset, copies the template's
 * prewarmed histories instead of running the prewarm: bit-identical to a WaveNet prewarmed
 * by itself. A model keeps at most CVD_WN_SHARED_MAX templates (so that clients' block sizes
 * pin at most 8 x 2 MiB a model): a new one takes the place of the least recently used. For
 * a template of more than CVD_WN_SHARED_BYTES, a stream gets a WaveNet of its own. */
enum { CVD_WN_SHARED_MAX = 8, CVD_WN_SHARED_BYTES = 2 << 20 };
int cvd_wavenet_create_shared(cvd_model *m, const cvd_wn_config *cfg, int fusion, int max_block,
                              cvd_wavenet **out, cvd_err *err);
/* Drops the model's templates (the clones keep theirs until destroyed). */
void cvd_wavenet_shared_flush(cvd_model *m);
/* How many of the model's kept templates are at block max_block (for tests). */
int cvd_wavenet_shared_kept(cvd_model *m, int max_block);
/* Pipeline stages (pipe.c): arrays [a0, a1) on a block of n frames. a0 == 0: `in` is the
 * input frames, else a hand-off buffer from a stage that ran [.., a0); a1 == n_arrays: `out`
 * gets the output frames, else a hand-off buffer (cvd_wavenet_handoff_floats(w, a1)). A
 * stage touches only its own arrays' state. */
void cvd_wavenet_stage(cvd_wavenet *w, int a0, int a1, const float *in, int n, float *out);
size_t cvd_wavenet_handoff_floats(const cvd_wavenet *w, int k);
int cvd_wavenet_arrays(const cvd_wavenet *w);
/* A cut inside a layer array made arrays k - 1 and k of one (pipe.c's split: k - 1 ends with
 * an identity head, k starts with an identity rechannel, both of its channels): they are not
 * multiplied. Array k - 1's head output is its head accumulator, and stage [k, ..) puts the
 * hand-off's array output straight into array k's first layer's history and its head straight
 * into the accumulator: the same values the identity matrices give, without their work. */
void cvd_wavenet_mark_cut(cvd_wavenet *w, int k);

/* pipe.c: a WaveNet as two pipeline stages of balanced cost on two threads (the caller's and
 * one created here), one block apart: process() gives the previous block's output. */
typedef struct cvd_wn_pipe cvd_wn_pipe;
int cvd_wn_pipe_create(const cvd_wn_config *cfg, const float *weights, size_t nw, int max_block,
                       cvd_wn_pipe **out, cvd_err *err);
void cvd_wn_pipe_destroy(cvd_wn_pipe *p);
void cvd_wn_pipe_process(cvd_wn_pipe *p, const float *in, int n, float *out, int *n_out);
/* The block still held (its frames in *n_out); returns 0. */
int cvd_wn_pipe_flush(cvd_wn_pipe *p, float *out, int *n_out);
void cvd_wn_pipe_reset(cvd_wn_pipe *p);
size_t cvd_wn_pipe_state_bytes(const cvd_wn_pipe *p);
/* FUTEX_WAKEs process() made, blocks it found stage A not done, each stage's multiply-adds
 * per frame. */
void cvd_wn_pipe_stats(const cvd_wn_pipe *p, long *wakes, long *late, double cost[2]);
double cvd_wn_pipe_stage_cpu(const cvd_wn_pipe *p);
/* Seconds each stage spent computing so far: [0] stage A on its thread, [1] stage B on the
 * caller's (monotonic clock around each stage's work, waits not counted). */
void cvd_wn_pipe_busy(const cvd_wn_pipe *p, double busy[2]);
void cvd_wn_pipe_set_spin(cvd_wn_pipe *p, long spin_ns, long margin_ns);
size_t cvd_wavenet_state_bytes(const cvd_wavenet *w);
double cvd_wn_macs_per_frame(const cvd_wn_config *cfg);
int cvd_wn_in_channels(const cvd_wn_config *cfg);
int cvd_wn_out_channels(const cvd_wn_config *cfg);
/* Deterministic initial weights for a WaveNet given without weights. */
void cvd_wn_init_weights(const cvd_wn_config *cfg, float *w, uint64_t seed);

#endif
