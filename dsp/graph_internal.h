/* Private to dsp/: models (structure + weights) and the fused WaveNet. */
#ifndef CONVD_GRAPH_INTERNAL_H
#define CONVD_GRAPH_INTERNAL_H

#include <stdatomic.h>

#include "convd_dsp.h"

#define CVD_NODE_NAME_MAX 96

typedef struct cvd_node {
    cvd_node_op op;
    char name[CVD_NODE_NAME_MAX];
    int n_inputs;
    int *inputs;
    int channels;   /* output channels */
    int latency;    /* of this node's output relative to the model input, in frames */
    long receptive; /* input frames one output frame depends on */
    cvd_activation act; /* ACTIVATION */
    cvd_conv_config conv; /* CONV, DENSE (as a kernel-1 Conv1D), channels_last */
    cvd_layer *proto;     /* CONV, DENSE: holds the weights; instances copy them */
    cvd_wn_config *wn;    /* WAVENET */
    float *wn_weights;    /* WAVENET: NAM's flat array */
    size_t wn_nweights;
} cvd_node;

struct cvd_model {
    atomic_int refs;
    int in_channels;
    int n_nodes, cap;
    cvd_node *nodes;
    int output;
    double sample_rate;
    char *description;
};

#define CVD_MERGE_MAX_INPUTS 64

/* y = op(x[0], x[1], ...) element by element over n_values floats (not CONCATENATE). */
void cvd_merge_frames(cvd_node_op op, int n_inputs, const float *const *x, size_t n_values,
                      float *y);

/* wavenet.c: a whole NAM WaveNet, streaming, one frame out per frame in. */
typedef struct cvd_wavenet cvd_wavenet;

int cvd_wavenet_create(const cvd_wn_config *cfg, int max_block, cvd_wavenet **out,
                       cvd_err *err);
void cvd_wavenet_destroy(cvd_wavenet *w);
/* NAM's flat weight order; resets (and prewarms) the state. */
int cvd_wavenet_set_weights(cvd_wavenet *w, const float *weights, size_t n, cvd_err *err);
/* n <= max_block frames of input_size channels in, n frames of head_size out. */
void cvd_wavenet_process(cvd_wavenet *w, const float *in, int n, float *out);
void cvd_wavenet_reset(cvd_wavenet *w);
size_t cvd_wavenet_state_bytes(const cvd_wavenet *w);
double cvd_wn_macs_per_frame(const cvd_wn_config *cfg);
int cvd_wn_in_channels(const cvd_wn_config *cfg);
int cvd_wn_out_channels(const cvd_wn_config *cfg);
/* Deterministic initial weights for a WaveNet given without weights. */
void cvd_wn_init_weights(const cvd_wn_config *cfg, float *w, uint64_t seed);

#endif
