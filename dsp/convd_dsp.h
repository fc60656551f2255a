/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd_dsp.h - the Conv1D family with Keras's exact semantics, offline and streaming.
 *
 * A C11 library that depends on libm, FFTW (long kernels) and libsamplerate (resampling) only.
 * Every layer runs two ways:
 *
 *   offline:   cvd_layer_forward() computes a whole sequence exactly as Keras does
 *              (output length, padding and all). It allocates; it is not real-time safe.
 *   streaming: cvd_layer_process() takes blocks of any length from 0 to max_block and
 *              returns the output frames that are final; cvd_layer_flush() ends the stream.
 *              The concatenated output of any split of an input, followed by a flush, equals
 *              the offline output (docs/LAYERS.md has the streaming rules, e.g. same padding with
 * strides > 1). Real-time safe: no allocation, no lock, no system call.
 *
 * Tensor layouts follow the layer's data_format, without the batch axis:
 *   channels_last:  x[t * C + c]   (frames, channels interleaved)
 *   channels_first: x[c * n + t]   (one row per channel; n is that call's frame count)
 *
 * Errors are negative CVD_E* codes. Functions that can fail because of what a user wrote take
 * a cvd_err * (may be NULL) that receives a message naming the argument and its value.
 */
#ifndef CONVD_DSP_H
#define CONVD_DSP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------------------------- */

#define CVD_ERRNO_MAP(X)                                                                           \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(ERANGE, -3, "block larger than the maximum block size")                                      \
    X(EUNSUPPORTED, -4, "not supported")                                                           \
    X(EFORMAT, -5, "malformed input")                                                              \
    X(EIO, -6, "input/output error")                                                               \
    X(ESTATE, -7, "operation not valid in this state")

enum {
    CVD_OK = 0,
#define CVD__ERR_ENUM(name, val, text) CVD_##name = (val),
    CVD_ERRNO_MAP(CVD__ERR_ENUM)
#undef CVD__ERR_ENUM
};

#define CVD_ERR_MSG_MAX 512

typedef struct cvd_err {
    int code;                  /* the last error code, 0 if none */
    char msg[CVD_ERR_MSG_MAX]; /* human-readable, names the argument and its value */
} cvd_err;

/* Text of an error code ("invalid argument"); never NULL. */
const char *cvd_strerror(int code);
/* Name of an error code ("CVD_EINVAL"); never NULL. */
const char *cvd_err_name(int code);
/* Sets err (if not NULL) with printf-style text; returns code. */
int cvd_err_set(cvd_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefixes err->msg with printf-style context followed by ": " (for loaders). */
void cvd_err_prefix(cvd_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- activations ----------------------------------------------------------------------- */

#define CVD_ACTIVATION_MAP(X)                                                                      \
    X(LINEAR, "linear")                                                                            \
    X(RELU, "relu")                                                                                \
    X(RELU6, "relu6")                                                                              \
    X(LEAKY_RELU, "leaky_relu")                                                                    \
    X(ELU, "elu")                                                                                  \
    X(SELU, "selu")                                                                                \
    X(CELU, "celu")                                                                                \
    X(GELU, "gelu")                                                                                \
    X(SIGMOID, "sigmoid")                                                                          \
    X(HARD_SIGMOID, "hard_sigmoid")                                                                \
    X(TANH, "tanh")                                                                                \
    X(HARD_TANH, "hard_tanh")                                                                      \
    X(SOFTPLUS, "softplus")                                                                        \
    X(SOFTSIGN, "softsign")                                                                        \
    X(SILU, "silu")                                                                                \
    X(SWISH, "swish")                                                                              \
    X(HARD_SILU, "hard_silu")                                                                      \
    X(HARD_SWISH, "hard_swish")                                                                    \
    X(MISH, "mish")                                                                                \
    X(EXPONENTIAL, "exponential")                                                                  \
    X(LOG_SIGMOID, "log_sigmoid")                                                                  \
    X(TANH_SHRINK, "tanh_shrink")                                                                  \
    X(HARD_SHRINK, "hard_shrink")                                                                  \
    X(SOFT_SHRINK, "soft_shrink")                                                                  \
    X(SQUAREPLUS, "squareplus")                                                                    \
    X(SOFTMAX, "softmax")                                                                          \
    X(LOG_SOFTMAX, "log_softmax")

typedef enum cvd_activation {
#define CVD__ACT_ENUM(name, str) CVD_ACT_##name,
    CVD_ACTIVATION_MAP(CVD__ACT_ENUM)
#undef CVD__ACT_ENUM
        CVD_ACT_COUNT
} cvd_activation;

/* Keras name -> enum. Case-sensitive as in Keras; NULL means linear (Keras's None).
 * Unknown names: CVD_EINVAL with "Could not interpret activation function identifier: NAME". */
int cvd_activation_parse(const char *name, cvd_activation *out, cvd_err *err);
const char *cvd_activation_name(cvd_activation act);
/* 1 for softmax and log_softmax, which act on a whole axis rather than element by element. */
int cvd_activation_is_axis(cvd_activation act);
/* Element-wise activation of n values in place. Real-time safe. Not for softmax/log_softmax. */
void cvd_activation_apply(cvd_activation act, float *x, size_t n);
/* softmax / log_softmax over `len` values spaced by `stride`, for `count` vectors each
 * `step` apart. Real-time safe. */
void cvd_activation_apply_axis(cvd_activation act, float *x, size_t count, size_t step, size_t len,
                               size_t stride);

/* ---- the Conv1D family ----------------------------------------------------------------- */

typedef enum cvd_layer_kind {
    CVD_CONV1D = 0,
    CVD_CONV1D_TRANSPOSE,
    CVD_SEPARABLE_CONV1D,
    CVD_DEPTHWISE_CONV1D
} cvd_layer_kind;

typedef enum cvd_padding { CVD_PAD_VALID = 0, CVD_PAD_SAME, CVD_PAD_CAUSAL } cvd_padding;

typedef enum cvd_data_format { CVD_CHANNELS_LAST = 0, CVD_CHANNELS_FIRST } cvd_data_format;

/* The arguments of a layer, under Keras's names. cvd_conv_config_init() sets Keras's defaults. */
typedef struct cvd_conv_config {
    cvd_layer_kind kind;
    int filters;                 /* Conv1D, Conv1DTranspose, SeparableConv1D; unused by Depthwise */
    int kernel_size;             /* required */
    int strides;                 /* default 1 */
    cvd_padding padding;         /* default valid */
    cvd_data_format data_format; /* default channels_last */
    int dilation_rate;           /* default 1 */
    int groups;                  /* Conv1D only; default 1 */
    int depth_multiplier;        /* DepthwiseConv1D, SeparableConv1D; default 1 */
    int output_padding;          /* Conv1DTranspose; -1 means None (the default) */
    cvd_activation activation;   /* default linear */
    int use_bias;                /* default 1 */
} cvd_conv_config;

/* Keras's defaults for `kind`; filters and kernel_size are left 0 (required). */
void cvd_conv_config_init(cvd_conv_config *cfg, cvd_layer_kind kind);

/* Keras class name <-> kind ("Conv1D", "Conv1DTranspose", "SeparableConv1D",
 * "DepthwiseConv1D"; also Keras's aliases Convolution1D, Convolution1DTranspose,
 * SeparableConvolution1D). */
int cvd_layer_kind_parse(const char *class_name, cvd_layer_kind *out);
const char *cvd_layer_kind_name(cvd_layer_kind kind);
/* "valid" | "same" | "causal", case-insensitive. */
int cvd_padding_parse(const char *s, cvd_padding *out, cvd_err *err);
const char *cvd_padding_name(cvd_padding p);
/* "channels_last" | "channels_first", case-insensitive; NULL (Keras's None) is channels_last. */
int cvd_data_format_parse(const char *s, cvd_data_format *out, cvd_err *err);
const char *cvd_data_format_name(cvd_data_format f);

/* Checks cfg against everything Keras refuses, given the input channel count (0 = unknown
 * yet). Does not check lengths (see cvd_layer_output_length). */
int cvd_conv_config_check(const cvd_conv_config *cfg, int in_channels, cvd_err *err);

typedef struct cvd_layer cvd_layer;

/* Creates a layer for in_channels input channels and blocks of up to max_block frames
 * (max_block >= 1). All memory is allocated here. Weights start as Keras would create them:
 * glorot_uniform kernels from seed 0 and zero biases; set them with cvd_layer_set_weights()
 * or re-seed with cvd_layer_init_weights(). */
int cvd_layer_create(const cvd_conv_config *cfg, int in_channels, int max_block, cvd_layer **out,
                     cvd_err *err);
void cvd_layer_destroy(cvd_layer *layer);

const cvd_conv_config *cvd_layer_config(const cvd_layer *layer);
int cvd_layer_in_channels(const cvd_layer *layer);
int cvd_layer_out_channels(const cvd_layer *layer);
int cvd_layer_max_block(const cvd_layer *layer);

/* Weight variables in Keras's order (vars/0, vars/1, vars/2; see the spec):
 * count, and the shape of each (rank returned, dims in shape[0..rank-1]). */
int cvd_layer_var_count(const cvd_layer *layer);
int cvd_layer_var_shape(const cvd_layer *layer, int index, int shape[3]);
size_t cvd_layer_var_size(const cvd_layer *layer, int index); /* product of the shape */
/* Sets variable `index` from `n` floats in Keras's layout (C order of its shape). */
int cvd_layer_set_var(cvd_layer *layer, int index, const float *data, size_t n, cvd_err *err);
const float *cvd_layer_var(const cvd_layer *layer, int index);
/* glorot_uniform kernels (limit sqrt(6/(fan_in+fan_out)), Keras's fans) from `seed` and zero
 * biases. Deterministic for a given seed on every platform. */
void cvd_layer_init_weights(cvd_layer *layer, uint64_t seed);
size_t cvd_layer_param_count(const cvd_layer *layer);

/* Offline output length for n input frames, as Keras computes it; < 0 is an error (valid
 * padding with too short an input) and sets err. */
long cvd_layer_output_length(const cvd_layer *layer, long n, cvd_err *err);

/* Offline: the whole sequence of n frames in, Keras's output (length from
 * cvd_layer_output_length) out. `out` must hold that many frames. Allocates temporaries. */
int cvd_layer_forward(const cvd_layer *layer, const float *in, long n, float *out, long *n_out,
                      cvd_err *err);

/* Streaming. Returns CVD_EUNSUPPORTED (with a message) if the layer cannot stream, e.g.
 * softmax with channels_first, which needs the whole time axis. */
int cvd_layer_can_stream(const cvd_layer *layer, cvd_err *err);
/* Upper bound on the frames one process() or flush() call writes. */
int cvd_layer_max_out(const cvd_layer *layer);
/* Latency in input frames: after n input frames, output frames that depend only on input
 * frames < n - latency have been emitted. 0 for causal layers. */
int cvd_layer_latency(const cvd_layer *layer);
/* n in [0, max_block] frames in; *n_out frames out (at most cvd_layer_max_out()).
 * Real-time safe. */
int cvd_layer_process(cvd_layer *layer, const float *in, int n, float *out, int *n_out);
/* End of stream: writes up to cvd_layer_max_out() of the remaining frames. Returns 1 while
 * more remain (call again), 0 when the stream is complete. After the last call the layer
 * must be reset before new input. Real-time safe. */
int cvd_layer_flush(cvd_layer *layer, float *out, int *n_out);
/* Back to the state right after create (weights kept). Real-time safe. */
void cvd_layer_reset(cvd_layer *layer);
/* Bytes of per-stream state (history, tails, scratch). */
size_t cvd_layer_state_bytes(const cvd_layer *layer);
/* Multiply-adds per input frame, in steady state. */
double cvd_layer_macs_per_frame(const cvd_layer *layer);

/* ---- long kernels ------------------------------------------------------------------------ */

/* Layers whose core is a convolution with strides 1 (Conv1D, DepthwiseConv1D, the depthwise
 * stage of SeparableConv1D) and a long kernel compute it as a uniformly partitioned FFT
 * convolution (FFTW) instead of directly: the first partition direct, so no latency is added,
 * and the same numbers within float rounding. The choice is made at create from a measured
 * table (docs/LAYERS.md). The partition in frames, or 0 when the layer computes directly: */
int cvd_layer_fft_partition(const cvd_layer *layer);
/* The kernel extent (taps, dilation included) from which a core conv of C -> F channels in G
 * groups with strides s takes the FFT path on this CPU (the switch point); 0 if it never
 * does (strides > 1, or forced direct). */
int cvd_conv_fft_threshold(int C, int F, int G, int s);
/* The partition a core conv of this shape and extent gets on this CPU (0: direct). */
int cvd_conv_fft_partition_for(int C, int F, int G, int ek, int s);
/* For tests and benchmarks: -1 chooses automatically (the default), 0 computes every layer
 * created afterwards directly, B > 0 (a power of two, 16..4096) puts every eligible layer on
 * the FFT path with partitions of B. Not thread-safe against concurrent creates. */
int cvd_conv_fft_force(int partition);

/* ---- WaveNet (Neural Amp Modeler's architecture), fused --------------------------------- */

/* Activations a WaveNet layer may use: NAM's (Tanh, Hardtanh, Fasttanh, ReLU, LeakyReLU,
 * PReLU, Sigmoid, SiLU, Hardswish, LeakyHardtanh, Softsign) and Keras's element-wise ones. */
typedef enum cvd_wn_act_kind {
    CVD_WN_KERAS = 0,     /* a Keras activation: `keras` below */
    CVD_WN_FASTTANH,      /* NAM's rational tanh approximation */
    CVD_WN_LEAKY_RELU,    /* x > 0 ? x : slope x; PReLU with one slope */
    CVD_WN_PRELU,         /* x > 0 ? x : slope[c] x, one slope per channel */
    CVD_WN_LEAKY_HARDTANH /* x in [p0, p1]; below p0 + (x-p0) p2; above p1 + (x-p1) p3 */
} cvd_wn_act_kind;

#define CVD_WN_MAX_SLOPES 64

typedef struct cvd_wn_activation {
    cvd_wn_act_kind kind;
    cvd_activation keras; /* CVD_WN_KERAS (element-wise ones only) */
    float p[4];           /* LEAKY_RELU: p[0] slope; LEAKY_HARDTANH: min, max, slopes */
    int n_slopes;         /* PRELU */
    float slopes[CVD_WN_MAX_SLOPES];
} cvd_wn_activation;

/* NAM's name for a bare-name activation ("Tanh", "LeakyReLU", ...; Keras's lower-case
 * names are accepted too), with NAM's default parameters. */
int cvd_wn_activation_parse(const char *name, cvd_wn_activation *out, cvd_err *err);
const char *cvd_wn_activation_name(const cvd_wn_activation *a);
/* a applied in place to n frames of C channels (PReLU's slopes per channel). Real-time safe. */
void cvd_wn_activation_apply(const cvd_wn_activation *a, float *x, int n, int C);

typedef enum cvd_wn_gating {
    CVD_WN_GATING_NONE = 0, /* a = act(z) */
    CVD_WN_GATING_GATED,    /* a = act(z[:C]) * secondary(z[C:]) */
    CVD_WN_GATING_BLENDED   /* g = secondary(z[C:]); a = g act(z[:C]) + (1 - g) z[:C] */
} cvd_wn_gating;

#define CVD_WN_MAX_ARRAYS 8
#define CVD_WN_MAX_LAYERS 48

typedef struct cvd_wn_layer {
    int dilation;
    int kernel_size;
    cvd_wn_gating gating;
    cvd_wn_activation activation;
    cvd_wn_activation secondary; /* the gate's activation (NAM's default: Sigmoid) */
} cvd_wn_layer;

typedef struct cvd_wn_array {
    int input_size;     /* channels of the array's input (raw input or previous array) */
    int condition_size; /* channels of the condition (the raw input) */
    int channels;       /* C */
    int head_size;      /* channels of the head output */
    int head_bias;      /* 1 if the head 1x1 has a bias */
    int residual;       /* 1 (NAM): h_{l+1} = h_l + W1 a + b1; 0: h_{l+1} = W1 a + b1 */
    int skip;           /* 1 (NAM): the head sums every layer's a; 0: only the last one's */
    int n_layers;
    cvd_wn_layer layers[CVD_WN_MAX_LAYERS];
} cvd_wn_array;

/* Large (about 230 kB): allocate it, do not put it on an audio thread's stack. */
typedef struct cvd_wn_config {
    int n_arrays;
    cvd_wn_array arrays[CVD_WN_MAX_ARRAYS];
    int prewarm; /* run silence through on create and reset, as NAM does */
} cvd_wn_config;

/* Checks the arrays chain (array i+1's input_size is array i's channels, head sizes chain). */
int cvd_wn_config_check(const cvd_wn_config *cfg, cvd_err *err);
/* Number of floats in NAM's flat weight order (the last one is the head scale). */
size_t cvd_wn_weight_count(const cvd_wn_config *cfg);
/* Samples of silence NAM's prewarm runs: 1 + sum over layers of (K-1)*d. */
long cvd_wn_receptive_field(const cvd_wn_config *cfg);

/* ---- networks ---------------------------------------------------------------------------- */

/* A model is a network's structure and weights, built once (by a loader) and then shared,
 * read-only, by any number of nets: one net per stream, each with its own state.
 *
 * Nodes are added in topological order (an input must exist before the node that reads it),
 * so a model is a DAG by construction. Node 0 is the input. Tensors between nodes are
 * sequences of frames (channels contiguous), whatever data_format the layers declare. */
typedef struct cvd_model cvd_model;
typedef struct cvd_net cvd_net;

typedef enum cvd_node_op {
    CVD_NODE_INPUT = 0,
    CVD_NODE_CONV,       /* the Conv1D family */
    CVD_NODE_DENSE,      /* on the channel axis, frame by frame */
    CVD_NODE_ACTIVATION, /* element-wise, or softmax over channels */
    CVD_NODE_ADD,
    CVD_NODE_SUBTRACT, /* exactly two inputs: a - b */
    CVD_NODE_MULTIPLY,
    CVD_NODE_AVERAGE,
    CVD_NODE_MAXIMUM,
    CVD_NODE_MINIMUM,
    CVD_NODE_CONCATENATE,     /* along channels */
    CVD_NODE_IDENTITY,        /* also Dropout, SpatialDropout1D, GaussianNoise, ... at inference */
    CVD_NODE_WAVENET,         /* a whole NAM-style WaveNet, fused */
    CVD_NODE_BATCH_NORM,      /* BatchNormalization, inference form */
    CVD_NODE_LAYER_NORM,      /* LayerNormalization */
    CVD_NODE_RESCALING,       /* y = x * scale + offset */
    CVD_NODE_ZERO_PADDING,    /* ZeroPadding1D: zero frames before and after */
    CVD_NODE_CROPPING,        /* Cropping1D: frames dropped at the start and the end */
    CVD_NODE_UPSAMPLING,      /* UpSampling1D: every frame repeated */
    CVD_NODE_MAX_POOL,        /* MaxPooling1D */
    CVD_NODE_AVG_POOL,        /* AveragePooling1D */
    CVD_NODE_GLOBAL_MAX_POOL, /* GlobalMaxPooling1D (windowed) */
    CVD_NODE_GLOBAL_AVG_POOL, /* GlobalAveragePooling1D (windowed) */
    CVD_NODE_FLATTEN,         /* Flatten (windowed) */
    CVD_NODE_RESHAPE,         /* Reshape (windowed) */
    CVD_NODE_PERMUTE,         /* Permute: (1, 2) streams, (2, 1) swaps time and channels */
    CVD_NODE_OP_COUNT
} cvd_node_op;

const char *cvd_node_op_name(cvd_node_op op); /* Keras class names: "Add", "Dense", ... */

/* The axis a normalisation or an axis activation (softmax) acts along: the channels of each
 * frame (streams), or time, for each channel (needs the whole window). */
typedef enum cvd_axis { CVD_AXIS_CHANNELS = 0, CVD_AXIS_TIME = 1 } cvd_axis;

/* How a model runs, decided by its nodes (see cvd_model_mode()):
 *   streaming: every node runs frame by frame; any block size gives the offline result.
 *   windowed:  a node needs a whole window (Flatten, Reshape, global pooling, a softmax or a
 *              normalisation over time, Permute of time): the input is cut into windows of
 *              the model's input length, advanced by a hop (default: the window length),
 *              and each window gives one output record computed exactly as Keras computes
 *              the model on that window. A record is the output tensor without its batch
 *              axis, flattened in C order (Keras's own layout, data_format included); it is
 *              one output "frame" of cvd_model_out_channels() values. */
typedef enum cvd_run_mode { CVD_MODE_STREAMING = 0, CVD_MODE_WINDOWED = 1 } cvd_run_mode;

int cvd_model_create(int in_channels, cvd_model **out, cvd_err *err);
/* Models are reference-counted so a stream can keep one alive across a reload. */
cvd_model *cvd_model_ref(cvd_model *m);
void cvd_model_unref(cvd_model *m);

/* Each add returns the new node's index (>= 1) or a negative error; name may be NULL. */
int cvd_model_add_conv(cvd_model *m, const char *name, const cvd_conv_config *cfg, int input,
                       cvd_err *err);
int cvd_model_add_dense(cvd_model *m, const char *name, int units, cvd_activation act, int use_bias,
                        int input, cvd_err *err);
int cvd_model_add_activation(cvd_model *m, const char *name, cvd_activation act, int input,
                             cvd_err *err);
/* ADD .. CONCATENATE and IDENTITY; inputs must have equal channels except for CONCATENATE. */
int cvd_model_add_merge(cvd_model *m, const char *name, cvd_node_op op, const int *inputs,
                        int n_inputs, cvd_err *err);
int cvd_model_add_wavenet(cvd_model *m, const char *name, const cvd_wn_config *cfg, int input,
                          cvd_err *err);
/* An element-wise activation of NAM's (Fasttanh, LeakyReLU with its slope, PReLU, ...; a
 * Keras one gives the plain activation node): NAM's ConvNet. */
int cvd_model_add_nam_activation(cvd_model *m, const char *name, const cvd_wn_activation *a,
                                 int input, cvd_err *err);
/* WaveNets written in Keras's Functional vocabulary (docs/FUSION.md): finds every group of
 * nodes that computes a NAM-style WaveNet (dilated causal Conv1D with an activation, or two
 * of them multiplied (gated); a 1x1 residual Conv1D and Add; the activations added as
 * skips, a 1x1 head; the condition mixed in by 1x1 Conv1Ds of the input) and records it, so
 * that nets run each group on the fused WaveNet kernels; the other nodes are untouched.
 * Loaders call it once the model is built. Why candidates were not fused is in the report.
 * Allocates; fails only without memory (the model is then left unfused). */
int cvd_model_fuse(cvd_model *m, cvd_err *err);
/* on = 0: nets created afterwards run every node (the general path), as if nothing fused. */
void cvd_model_set_fusion(cvd_model *m, int on);
int cvd_model_fusion_enabled(const cvd_model *m);
int cvd_model_fused_count(const cvd_model *m); /* groups found */
/* The group node belongs to (0..count-1), or -1. */
int cvd_model_node_fused(const cvd_model *m, int node);
/* Group g: the node it reads, the node whose output it computes, its nodes, and its
 * WaveNet's configuration. */
int cvd_model_fused_group(const cvd_model *m, int g, int *input, int *output, int *n_nodes,
                          const cvd_wn_config **cfg);
/* Lines for people: "fused: ..." per group and "not fused: ..." per near miss; "" if none. */
const char *cvd_model_fusion_report(const cvd_model *m);
/* The output node (default: the last one added). */
int cvd_model_set_output(cvd_model *m, int node, cvd_err *err);
int cvd_model_output(const cvd_model *m);

/* Before the first node is added: the model input's fixed length in frames (Keras's steps;
 * 0, the default, means any length), and the layout of Keras's rank-2 tensors in this model:
 * channels_last (steps, channels) or channels_first (channels, steps). Between nodes tensors
 * are always frames (channels contiguous); the layout says which Keras axis is time, for the
 * order of Flatten, Reshape, Permute and windowed records. */
int cvd_model_set_input_length(cvd_model *m, long frames, cvd_err *err);
long cvd_model_input_length(const cvd_model *m);
int cvd_model_set_data_format(cvd_model *m, cvd_data_format df, cvd_err *err);
cvd_data_format cvd_model_data_format(const cvd_model *m);

/* More Keras layers. A tensor has Keras rank 2 (steps and channels) or, after Flatten,
 * Reshape to one axis or global pooling without keepdims, rank 1 (a vector: one frame of all
 * its values). Layers that need the whole window require the model's input length. */
/* Identity at inference; keras_class is shown by tools ("Dropout", "GaussianNoise", ...). */
int cvd_model_add_identity(cvd_model *m, const char *name, const char *keras_class, int input,
                           cvd_err *err);
/* softmax / log_softmax (or an element-wise activation) along `axis`; CVD_AXIS_TIME needs
 * the whole window. */
int cvd_model_add_activation_axis(cvd_model *m, const char *name, cvd_activation act, cvd_axis axis,
                                  int input, cvd_err *err);
/* Inference: y = (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta, per
 * index along `axis`. Variables in Keras's order, only those present: gamma (scale), beta
 * (center), moving_mean, moving_variance; initially ones, zeros, zeros, ones. */
int cvd_model_add_batch_norm(cvd_model *m, const char *name, cvd_axis axis, float epsilon,
                             int center, int scale, int input, cvd_err *err);
/* Normalises each vector along `axis` (Keras's formula, rms_scaling included); variables
 * gamma (scale or rms_scaling), beta (center, not with rms_scaling). */
int cvd_model_add_layer_norm(cvd_model *m, const char *name, cvd_axis axis, float epsilon,
                             int center, int scale, int rms_scaling, int input, cvd_err *err);
int cvd_model_add_rescaling(cvd_model *m, const char *name, float scale, float offset, int input,
                            cvd_err *err);
/* ZeroPadding1D (CVD_NODE_ZERO_PADDING) or Cropping1D (CVD_NODE_CROPPING) on the time axis. */
int cvd_model_add_pad_crop(cvd_model *m, const char *name, cvd_node_op op, int left, int right,
                           int input, cvd_err *err);
int cvd_model_add_upsampling(cvd_model *m, const char *name, int size, int input, cvd_err *err);
/* MaxPooling1D / AveragePooling1D (CVD_NODE_MAX_POOL, CVD_NODE_AVG_POOL): padding valid or
 * same; with same, the average divides by the frames actually in the window. Streams like a
 * convolution of the same window and strides. */
int cvd_model_add_pooling(cvd_model *m, const char *name, cvd_node_op op, int pool_size,
                          int strides, cvd_padding padding, int input, cvd_err *err);
/* GlobalMaxPooling1D / GlobalAveragePooling1D over time (windowed). */
int cvd_model_add_global_pooling(cvd_model *m, const char *name, cvd_node_op op, int keepdims,
                                 int input, cvd_err *err);
/* Flatten (windowed); `layout` is the layer's data_format (channels_first flattens as if the
 * tensor were first made channels_last, as Keras does). */
int cvd_model_add_flatten(cvd_model *m, const char *name, cvd_data_format layout, int input,
                          cvd_err *err);
/* Reshape to `rank` (1 or 2) dims in Keras's order; one dim may be -1 (inferred). */
int cvd_model_add_reshape(cvd_model *m, const char *name, int rank, const long *dims, int input,
                          cvd_err *err);
/* Permute of a rank-2 tensor: dims (1, 2) (swap 0: streams as an identity) or (2, 1) (swap
 * 1: time and channels trade places; windowed). */
int cvd_model_add_permute(cvd_model *m, const char *name, int swap, int input, cvd_err *err);

int cvd_model_node_count(const cvd_model *m);
cvd_node_op cvd_model_node_op(const cvd_model *m, int node);
const char *cvd_model_node_name(const cvd_model *m, int node);
int cvd_model_node_channels(const cvd_model *m, int node); /* output channels */
int cvd_model_node_inputs(const cvd_model *m, int node, const int **inputs);
const cvd_conv_config *cvd_model_node_conv(const cvd_model *m, int node); /* CONV only */
const cvd_wn_config *cvd_model_node_wavenet(const cvd_model *m, int node);
size_t cvd_model_node_params(const cvd_model *m, int node);
cvd_activation cvd_model_node_activation(const cvd_model *m, int node); /* ACTIVATION */
/* Latency of a node's output relative to the model input, in frames. */
int cvd_model_node_latency(const cvd_model *m, int node);
/* The Keras class a node came from ("Conv1D", "Dropout", "MaxPooling1D", ...). */
const char *cvd_model_node_class(const cvd_model *m, int node);
/* A short summary of a node's arguments ("pool 2, strides 2, valid"); "" if none. */
void cvd_model_node_describe(const cvd_model *m, int node, char *buf, size_t n);
/* Keras rank of a node's tensor without the batch axis (1 or 2), and its frames for the
 * model's fixed input length (-1 when the length is not fixed). */
int cvd_model_node_rank(const cvd_model *m, int node);
long cvd_model_node_frames(const cvd_model *m, int node);
/* 1 if the node needs the whole window (it makes the model windowed). */
int cvd_model_node_windowed(const cvd_model *m, int node);

/* Weights, per node, in Keras's variable order and layouts (Dense: kernel (in, units), bias);
 * WAVENET: one variable, NAM's flat weight array. */
int cvd_model_var_count(const cvd_model *m, int node);
int cvd_model_var_shape(const cvd_model *m, int node, int index, int shape[3]);
size_t cvd_model_var_size(const cvd_model *m, int node, int index);
int cvd_model_set_var(cvd_model *m, int node, int index, const float *data, size_t n, cvd_err *err);
/* glorot_uniform kernels and zero biases for every node, from one seed. */
void cvd_model_init_weights(cvd_model *m, uint64_t seed);

/* After the last node: nets run `frames` frames of silence through the model on create and
 * reset (output dropped), as NAM core prewarms its models, so the layers' histories hold the
 * model's response to silence rather than zeros; the offline forward computes the same (the
 * input after that much silence). Causal streaming models giving a frame per frame only. */
int cvd_model_set_prewarm(cvd_model *m, long frames, cvd_err *err);
long cvd_model_prewarm(const cvd_model *m);

/* The sample rate the model was trained at (0: unknown), and a description, from the file. */
void cvd_model_set_sample_rate(cvd_model *m, double rate);
double cvd_model_sample_rate(const cvd_model *m);
int cvd_model_set_description(cvd_model *m, const char *text);
const char *cvd_model_description(const cvd_model *m); /* "" if none */

int cvd_model_in_channels(const cvd_model *m);
/* Output channels; for a windowed model, the values of one record. */
int cvd_model_out_channels(const cvd_model *m);
/* Streaming: frames of lag (after n input frames, about n - latency output frames have been
 * emitted; never negative). Windowed: the window length minus one (a record is emitted when
 * the last frame of its window arrives). */
int cvd_model_latency(const cvd_model *m);
long cvd_model_receptive_field(const cvd_model *m); /* frames of input an output depends on */
double cvd_model_macs_per_frame(const cvd_model *m);
/* Output frames per input frame (1 unless strided or transposed layers change the rate). */
double cvd_model_rate_ratio(const cvd_model *m);
/* The most parameters a model may have in all (256 MiB of floats): a node that would take it
 * past this is refused, whatever the format that describes it. */
#define CVD_MODEL_MAX_PARAMS (1u << 26)
size_t cvd_model_param_count(const cvd_model *m);
/* Returns CVD_EUNSUPPORTED with the reason if the model cannot run as a net (both modes
 * run: a windowed model's net emits records). */
int cvd_model_can_stream(const cvd_model *m, cvd_err *err);

/* Streaming or windowed (see cvd_run_mode), decided by the nodes. */
cvd_run_mode cvd_model_mode(const cvd_model *m);
/* Windowed: the window length in frames (the model's input length); streaming: 0. */
long cvd_model_window(const cvd_model *m);
/* The first node that needs the whole window (0 for a streaming model). */
int cvd_model_window_node(const cvd_model *m);
/* Why the model runs as it does, for people: "every layer streams", or "Flatten 'flatten'
 * needs the whole window". */
const char *cvd_model_mode_reason(const cvd_model *m);
const char *cvd_run_mode_name(cvd_run_mode mode); /* "streaming", "windowed" */

/* Offline: the whole sequence (n frames of in_channels) through the model; *out is malloc'd
 * (free it) and holds *n_out frames of out_channels. Windowed models give one record per
 * window (hop: the window length). Not real-time safe. */
int cvd_model_forward(const cvd_model *m, const float *in, long n, float **out, long *n_out,
                      cvd_err *err);
/* The same with the windows advanced by `hop` frames (0: the window length). Windowed models
 * only (hop must be 0 for a streaming model). Windows start at frames 0, hop, 2 hop, ...; a
 * last window with fewer than the window's frames gives no record. */
int cvd_model_forward_hop(const cvd_model *m, const float *in, long n, long hop, float **out,
                          long *n_out, cvd_err *err);

/* A stream's instance: all memory allocated here, for blocks of up to max_block frames.
 * A windowed model's net emits one record per window as one output frame. */
int cvd_net_create(cvd_model *m, int max_block, cvd_net **out, cvd_err *err);
/* The same with a hop for windowed models (0: the window length; must be 0 when
 * streaming). */
int cvd_net_create_hop(cvd_model *m, int max_block, long hop, cvd_net **out, cvd_err *err);
long cvd_net_hop(const cvd_net *net); /* 0 for a streaming net */
/* The same on `threads` (1 or 2) threads: with 2, a WaveNet at the model's output (a .nam's,
 * or a Keras graph fused into one) runs as two pipeline stages of balanced cost, stage A on a
 * thread created here (joined by cvd_net_destroy) and stage B on the caller's, one block
 * apart: each process() returns the previous call's block (the first returns nothing, the
 * flush the last), bit for bit what one thread gives. Lock-free hand-off, no allocation per
 * block (docs/THREADS.md). A model that does not split runs on one thread
 * (cvd_net_threads() says 1, cvd_net_threads_note() why). */
int cvd_net_create_threads(cvd_model *m, int max_block, long hop, int threads, cvd_net **out,
                           cvd_err *err);
int cvd_net_threads(const cvd_net *net);
/* 1 if nets of m with threads = 2 run on two threads; else 0 and *why (may be NULL) says
 * why not. */
int cvd_model_can_split(const cvd_model *m, const char **why);
const char *cvd_net_threads_note(const cvd_net *net); /* NULL when it runs as asked */
/* Frames of lag: cvd_model_latency() plus, on two threads, one block (max_block). */
int cvd_net_latency(const cvd_net *net);
/* Two threads: FUTEX_WAKE calls process() made (the stage thread was asleep), blocks whose
 * stage A was not done when process() came for it, and each stage's multiply-adds per frame;
 * CVD_EINVAL on one thread. */
int cvd_net_pipe_stats(const cvd_net *net, long *wakes, long *late, double cost[2]);
/* Two threads: the CPU time the stage thread used so far, in seconds (its thread clock;
 * for benchmarks, not for the processing path); -1 on one thread. */
double cvd_net_pipe_stage_cpu(const cvd_net *net);
/* Two threads: the seconds each stage spent computing so far, waits not counted: busy[0]
 * stage A (the stage thread), busy[1] stage B (the caller's thread); CVD_EINVAL on one
 * thread. For benchmarks: where a block's time goes. */
int cvd_net_pipe_busy(const cvd_net *net, double busy[2]);
/* The stage thread's wait (docs/THREADS.md): it spins for the next block up to spin_ns
 * (default 100 us; the caller spins for a late block for at most 20 us of it); when blocks
 * come a steady period apart it sleeps on its own timer until margin_ns before the next is
 * due (default 150 us), then spins. margin_ns < 0: no timed sleep, the caller wakes it. */
void cvd_net_set_spin(cvd_net *net, long spin_ns, long margin_ns);
void cvd_net_destroy(cvd_net *net);
const cvd_model *cvd_net_model(const cvd_net *net);
int cvd_net_max_out(const cvd_net *net); /* frames one process() or flush() writes at most */
size_t cvd_net_state_bytes(const cvd_net *net);
/* On the calling thread, with own != 0: nets built from now on give each WaveNet weights and a
 * configuration of its own instead of a clone of the model's template (the most a stream's
 * state can take; what a memory figure measures, without filling the model's templates with
 * its probes' block sizes). 0 restores the default. */
void cvd_net_own_wavenets(int own);
/* Real-time safe; same contract as cvd_layer_process/flush/reset, frames in and out. */
int cvd_net_process(cvd_net *net, const float *in, int n, float *out, int *n_out);
int cvd_net_flush(cvd_net *net, float *out, int *n_out);
void cvd_net_reset(cvd_net *net);

/* ---- sample-rate conversion ------------------------------------------------------------ */

/* A streaming converter from in_rate to out_rate (Hz, 1000..768000), `channels` interleaved,
 * blocks of up to max_block input frames (libsamplerate's best sinc filter: within -110 dB of
 * the ideal round trip in band; docs/LAYERS.md). Output frame j is the band-limited input at
 * time j / out_rate: the signal is not delayed, only held back until the filter has the
 * input it needs. Everything is allocated at create; process, flush and reset allocate
 * nothing, take no lock and make no system call. */
typedef struct cvd_resampler cvd_resampler;

int cvd_resampler_create(double in_rate, double out_rate, int channels, int max_block,
                         cvd_resampler **out, cvd_err *err);
void cvd_resampler_destroy(cvd_resampler *r);
int cvd_resampler_max_out(const cvd_resampler *r); /* frames one process/flush writes at most */
/* Output frames held back: after n input frames, at least ceil(n * ratio) - latency output
 * frames have been emitted (measured at create; about 145 at ratios up to 1). */
int cvd_resampler_latency(const cvd_resampler *r);
double cvd_resampler_ratio(const cvd_resampler *r); /* out_rate / in_rate */
int cvd_resampler_channels(const cvd_resampler *r);
/* Same contract as cvd_layer_process/flush/reset. A whole stream of n frames gives
 * ceil(n * ratio) frames after the flush, the same whatever the block sizes. */
int cvd_resampler_process(cvd_resampler *r, const float *in, int n, float *out, int *n_out);
int cvd_resampler_flush(cvd_resampler *r, float *out, int *n_out);
void cvd_resampler_reset(cvd_resampler *r);

/* ---- chains: models run in order as one stream ---------------------------------------- */

/* Models one after another (an amp capture, then a cabinet IR), each at its own sample rate:
 * where the rate changes (the stream's rate to a model's, one model's to the next's, the last
 * model's back to the stream's) a resampler runs in between. A model that declares no rate
 * (cvd_model_sample_rate() == 0) runs at the rate of what comes before it: the stream's for
 * the first (cvd_chain_model_rate() says which were assumed, for a message). Output frames
 * are aligned with the input (nothing is delayed but the models' own responses); the chain
 * holds frames back by its latency. All memory is allocated at create; process, flush,
 * reset and process_fixed allocate nothing, take no lock and make no system call. */
typedef struct cvd_chain cvd_chain;

#define CVD_CHAIN_MAX_MODELS 16

typedef struct cvd_chain_config {
    double rate;     /* the stream's rate in Hz (the device's or session's); 0: the first
                      * declared model rate (none anywhere: nothing is resampled) */
    int max_block;   /* frames a process call takes at most */
    int fixed;       /* 1 (audio callbacks): cvd_chain_process_fixed gives exactly n frames
                      * for n, delayed by cvd_chain_fixed_latency(); measured at create */
    int in_channels; /* channels of an empty chain (no models): a pass-through */
    long hop;        /* a lone windowed model's hop (0: its window), as cvd_net_create_hop */
    int threads;     /* 0 or 1: one thread; 2: each model's net as cvd_net_create_threads */
} cvd_chain_config;

/* models[0..n_models) in order (each referenced by the chain's nets); names (may be NULL, or
 * hold NULLs) name them in messages. Each model's input channels must equal the previous
 * one's output channels. Models that change the frame rate or run on whole windows can only
 * run alone, unresampled and not fixed. */
int cvd_chain_create(cvd_model *const *models, const char *const *names, int n_models,
                     const cvd_chain_config *cfg, cvd_chain **out, cvd_err *err);
void cvd_chain_destroy(cvd_chain *c);
/* Variable mode (sessions, files): n <= max_block frames in, *n_out <= cvd_chain_max_out()
 * out; flush returns 1 while more remain. Same contract as cvd_net_process/flush/reset. */
int cvd_chain_process(cvd_chain *c, const float *in, int n, float *out, int *n_out);
int cvd_chain_flush(cvd_chain *c, float *out, int *n_out);
void cvd_chain_reset(cvd_chain *c);
/* Fixed mode (created with fixed = 1): n <= max_block frames in, exactly n out: the chain's
 * output delayed by cvd_chain_fixed_latency() frames (silence before). */
void cvd_chain_process_fixed(cvd_chain *c, const float *in, int n, float *out);
int cvd_chain_fixed_latency(const cvd_chain *c);
/* Fixed-mode calls that had to fill with silence (never, unless misused): for a counter. */
long cvd_chain_underruns(const cvd_chain *c);
/* Frames (at the stream's rate) the chain holds back: the models' latencies and the
 * resamplers', added (fixed mode: cvd_chain_fixed_latency(), measured, is the one to report). */
double cvd_chain_latency(const cvd_chain *c);
int cvd_chain_in_channels(const cvd_chain *c);
int cvd_chain_out_channels(const cvd_chain *c);
int cvd_chain_max_block(const cvd_chain *c);
int cvd_chain_max_out(const cvd_chain *c);
double cvd_chain_rate(const cvd_chain *c); /* the stream's rate (0: unknown) */
int cvd_chain_model_count(const cvd_chain *c);
/* The rate model i runs at; *assumed (may be NULL) is 1 when the model declares none. */
double cvd_chain_model_rate(const cvd_chain *c, int i, int *assumed);
int cvd_chain_resamples(const cvd_chain *c); /* resamplers in the chain */
size_t cvd_chain_state_bytes(const cvd_chain *c);
/* "amp.nam at 48000 Hz -> resample 48000 -> 44100 Hz (holds 145 frames)", for logs (the
 * names given at create, else "model N"). */
void cvd_chain_describe(const cvd_chain *c, char *buf, size_t n);

/* ---- levels: a model's calibration, NAM's gains, a limiter ---------------------------- */

/* What a model file says of its levels (NAM's .nam metadata; docs/MODEL_FORMAT.md). */
typedef struct cvd_levels {
    int has_loudness;
    double loudness; /* dB: the model's output loudness for NAM's standard input */
    int has_input_level;
    double input_level_dbu; /* dBu at the captured gear's input for a full-scale sample */
    int has_output_level;
    double output_level_dbu; /* dBu at its output for a full-scale sample */
} cvd_levels;

void cvd_model_set_levels(cvd_model *m, const cvd_levels *lv); /* NULL: none */
void cvd_model_get_levels(const cvd_model *m, cvd_levels *lv);
/* The levels a chain of models answers to: the input level of the first model (the one the
 * interface feeds), the loudness and output level of the last model that declares them (an
 * amp before a cabinet IR: the amp's, as NAM's plugin applies them). */
void cvd_levels_of_chain(cvd_model *const *models, int n, cvd_levels *out);

/* NAM's plugin: "normalized" output brings the model's loudness to -18 dB. */
#define CVD_NAM_TARGET_LOUDNESS_DB (-18.0)
/* NAM's default interface level: a full-scale sample is +12 dBu at the input. */
#define CVD_NAM_INTERFACE_DBU 12.0

typedef enum cvd_output_mode {
    CVD_OUTPUT_RAW = 0,    /* the model's output as it is */
    CVD_OUTPUT_NORMALIZED, /* + (-18 - loudness) dB, when the model declares its loudness */
    CVD_OUTPUT_CALIBRATED  /* + (output_level_dbu - interface_dbu) dB, when it declares it */
} cvd_output_mode;

/* NAM's plugin's rules, in dB. Input: gain_db, plus (interface_dbu - input_level_dbu) when
 * `calibrate` and the model declares its input level; interface_dbu is the dBu of a
 * full-scale sample at the audio interface's input. Output: gain_db plus the mode's term. */
double cvd_input_gain_db(const cvd_levels *lv, double gain_db, int calibrate, double interface_dbu);
double cvd_output_gain_db(const cvd_levels *lv, double gain_db, cvd_output_mode mode,
                          double interface_dbu);
float cvd_db_to_gain(double db);
/* x *= gain over n values. Real-time safe. */
void cvd_gain_apply(float *x, size_t n, float gain);

/* A soft limiter for outputs that reach speakers: frames below the knee (6 dB under the
 * ceiling) pass unchanged; louder ones are turned down along a tanh curve that approaches the
 * ceiling and never reaches it, the gain falling at once and recovering with the release
 * time; samples that are not finite numbers become 0. No allocation: the state is this
 * struct. Real-time safe. */
typedef struct cvd_limiter {
    float ceiling, knee, release, gain;
} cvd_limiter;

#define CVD_LIMITER_CEILING_DB (-1.0)
#define CVD_LIMITER_RELEASE_MS 50.0

/* rate in Hz; ceiling_db in -60..0 (else the default, -1 dBFS); release_ms > 0 (else 50). */
void cvd_limiter_init(cvd_limiter *l, double rate, double ceiling_db, double release_ms);
void cvd_limiter_reset(cvd_limiter *l);
/* In place, frames * channels interleaved values. */
void cvd_limiter_process(cvd_limiter *l, float *x, int frames, int channels);
float cvd_limiter_gain(const cvd_limiter *l); /* the current gain, for a meter */

/* ---- instruction sets ------------------------------------------------------------------ */

/* The SIMD paths the kernels choose from at create time (runtime dispatch). */
typedef enum cvd_isa { CVD_ISA_PORTABLE = 0, CVD_ISA_AVX2 = 1, CVD_ISA_AVX512 = 2 } cvd_isa;

cvd_isa cvd_isa_detect(void); /* the best this CPU supports */
cvd_isa cvd_isa_active(void); /* what layers created now will use */
/* Caps the ISA for layers created afterwards: "portable", "avx2", "avx512" or "auto".
 * For tests and benchmarks; not thread-safe against concurrent creates. */
int cvd_isa_force(const char *name);
const char *cvd_isa_name(cvd_isa isa);

/* ---- deterministic random numbers (initialisers, tests, benchmarks) -------------------- */

typedef struct cvd_rng {
    uint64_t s[4];
} cvd_rng;

void cvd_rng_seed(cvd_rng *rng, uint64_t seed);
uint64_t cvd_rng_next(cvd_rng *rng);
/* Uniform in [0, 1). */
double cvd_rng_uniform(cvd_rng *rng);

#ifdef __cplusplus
}
#endif

#endif /* CONVD_DSP_H */
