/*
 * convd_dsp.h - the Conv1D family with Keras's exact semantics, offline and streaming.
 *
 * A C11 library with no dependency beyond libm. Every layer runs two ways:
 *
 *   offline:   cvd_layer_forward() computes a whole sequence exactly as Keras does
 *              (output length, padding and all). It allocates; it is not real-time safe.
 *   streaming: cvd_layer_process() takes blocks of any length from 0 to max_block and
 *              returns the output frames that are final; cvd_layer_flush() ends the stream.
 *              The concatenated output of any split of an input, followed by a flush, equals
 *              the offline output (see docs/STREAMING.md for same padding with strides > 1).
 *              Real-time safe: no allocation, no lock, no system call.
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

#define CVD_ERRNO_MAP(X)                                                                     \
    X(EINVAL, -1, "invalid argument")                                                       \
    X(ENOMEM, -2, "out of memory")                                                          \
    X(ERANGE, -3, "block larger than the maximum block size")                              \
    X(EUNSUPPORTED, -4, "not supported")                                                    \
    X(EFORMAT, -5, "malformed input")                                                       \
    X(EIO, -6, "input/output error")                                                        \
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

#define CVD_ACTIVATION_MAP(X)                                                                \
    X(LINEAR, "linear")                                                                     \
    X(RELU, "relu")                                                                         \
    X(RELU6, "relu6")                                                                       \
    X(LEAKY_RELU, "leaky_relu")                                                             \
    X(ELU, "elu")                                                                           \
    X(SELU, "selu")                                                                         \
    X(CELU, "celu")                                                                         \
    X(GELU, "gelu")                                                                         \
    X(SIGMOID, "sigmoid")                                                                   \
    X(HARD_SIGMOID, "hard_sigmoid")                                                         \
    X(TANH, "tanh")                                                                         \
    X(HARD_TANH, "hard_tanh")                                                               \
    X(SOFTPLUS, "softplus")                                                                 \
    X(SOFTSIGN, "softsign")                                                                 \
    X(SILU, "silu")                                                                         \
    X(SWISH, "swish")                                                                       \
    X(HARD_SILU, "hard_silu")                                                               \
    X(HARD_SWISH, "hard_swish")                                                             \
    X(MISH, "mish")                                                                         \
    X(EXPONENTIAL, "exponential")                                                           \
    X(LOG_SIGMOID, "log_sigmoid")                                                           \
    X(TANH_SHRINK, "tanh_shrink")                                                           \
    X(HARD_SHRINK, "hard_shrink")                                                           \
    X(SOFT_SHRINK, "soft_shrink")                                                           \
    X(SQUAREPLUS, "squareplus")                                                             \
    X(SOFTMAX, "softmax")                                                                   \
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
void cvd_activation_apply_axis(cvd_activation act, float *x, size_t count, size_t step,
                               size_t len, size_t stride);

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
    int filters;          /* Conv1D, Conv1DTranspose, SeparableConv1D; unused by Depthwise */
    int kernel_size;      /* required */
    int strides;          /* default 1 */
    cvd_padding padding;  /* default valid */
    cvd_data_format data_format; /* default channels_last */
    int dilation_rate;    /* default 1 */
    int groups;           /* Conv1D only; default 1 */
    int depth_multiplier; /* DepthwiseConv1D, SeparableConv1D; default 1 */
    int output_padding;   /* Conv1DTranspose; -1 means None (the default) */
    cvd_activation activation; /* default linear */
    int use_bias;         /* default 1 */
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
/* "channels_last" | "channels_first". */
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
int cvd_layer_create(const cvd_conv_config *cfg, int in_channels, int max_block,
                     cvd_layer **out, cvd_err *err);
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
int cvd_layer_forward(const cvd_layer *layer, const float *in, long n, float *out,
                      long *n_out, cvd_err *err);

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
