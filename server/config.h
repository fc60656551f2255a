/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - the daemon's configuration: INI text into a plain, validated struct.
 *
 * The file format, every directive, its default and its range are in docs/CONFIG.md; the
 * shipped config/convd.conf is the same configuration as cvd_conf_default_text, commented.
 * This module parses and validates only: it opens no socket, loads no model (relative model
 * paths are resolved, not checked for existence) and touches no global state, so it may run
 * in any thread (two parses at once are fine). The text is read by inih (libinih) through a
 * reader of our own that numbers the lines, reads section headers itself and lifts inih's
 * line-length limit.
 *
 * Errors: every function that can fail returns 0 or a negative CVD_E* code and fills the
 * cvd_err (may be NULL):
 *   CVD_EFORMAT  the text is wrong; err->msg is "FILE:LINE: directive: reason", or
 *                "FILE:LINE: [section]: reason" for a section as a whole, or "FILE:LINE:
 *                reason" for a line that is not "directive = value" at all. FILE is the path
 *                as given to cvd_conf_load (the `name` of cvd_conf_parse); LINE counts from 1.
 *                One error is reported: the first error in a line stops the parse; what
 *                needs the whole file (required directives, model references, addresses
 *                used twice) is checked after it, and the earliest line's error wins.
 *                A file larger than CVD_CONF_FILE_MAX is refused as "FILE: larger than ...".
 *   CVD_EIO      cvd_conf_load could not read the file: "FILE: reason" (no line).
 *   CVD_ENOMEM   out of memory.
 *   CVD_EINVAL   a NULL argument.
 * On failure *out is set to NULL.
 */
#ifndef CONVD_CONFIG_H
#define CONVD_CONFIG_H

#include <stddef.h>

#include "acl.h" /* cvd_acl: allow, metrics_allow */
#include "convd_dsp.h"
#include "log.h"         /* CVD_LOG_ERROR .. CVD_LOG_DEBUG, the values of log_level */
#include "convd_proto.h" /* cvd_sample_format: CVD_FMT_F32LE, CVD_FMT_S16LE */
#include "nats_conf.h"   /* [nats NAME]: cvd_nats_conf and its directive table */

#ifdef __cplusplus
extern "C" {
#endif

/* Section names ([model NAME], [listen NAME]): 1..64 of A-Z a-z 0-9 _ . - */
#define CVD_CONF_NAME_MAX 64
/* Room for a numeric host: INET6_ADDRSTRLEN (46) fits. */
#define CVD_CONF_HOST_MAX 64
/* Longest model path accepted, in bytes, as written (PATH_MAX - 1). */
#define CVD_CONF_PATH_MAX 4095
/* Where captures live (the units' StateDirectory=convd convd/models): a relative model path
 * is looked up there first, then joined to the config's folder. $CONVD_MODEL_DIR, when set
 * (the systemd --user unit sets it), replaces it. */
#define CVD_CONF_MODEL_DIR "/var/lib/convd/models"

/* Largest configuration file cvd_conf_load reads. */
#define CVD_CONF_FILE_MAX (16u << 20)

typedef enum { CVD_PROTO_RAW, CVD_PROTO_FRAMED, CVD_PROTO_LINE } cvd_proto;
/* raw listeners' sample format: the wire protocols' own enum (convd_proto.h) */
typedef cvd_sample_format cvd_sample_fmt;

/* [model NAME] */
typedef struct cvd_conf_model {
    char name[CVD_CONF_NAME_MAX + 1];
    /* "builtin:NAME" as written, an absolute path as written, a relative path found in the
     * models folder (CVD_CONF_MODEL_DIR), or a relative path joined to the config file's folder
     * ("DIR/PATH"; left as written when there is no folder, see cvd_conf_parse). Owned by the
     * cvd_conf. The extension is one cvd_model_load reads: .nam, .json, .keras, .h5 or .hdf5 (any
     * case). */
    char *path;
    int builtin;       /* 1 if path is "builtin:NAME"; builtin_name() is path + 8 */
    int line;          /* line of the section header */
    int path_line;     /* line of its path directive */
    int path_ext_line; /* the path's extension is none cvd_model_load reads (type = ir only) */
    long hop;          /* a windowed model's hop in frames; 0 = its window length */
    int hop_line;      /* line of its hop directive, 0 if none */
    int rate;          /* Hz the model runs at when its file declares none; 0 = not said */
    int rate_line;
    int type; /* CVD_CONF_MODEL_AUTO (by the path's extension) or CVD_CONF_MODEL_IR */
    int type_line;
    int ir_normalize; /* impulse responses: 1 = scaled to unit energy */
    int normalize;    /* 1: NAM's output normalisation by the file's loudness */
    int threads;      /* 1 or 2: a WaveNet as two pipeline stages (docs/THREADS.md) */
} cvd_conf_model;
enum { CVD_CONF_MODEL_AUTO = 0, CVD_CONF_MODEL_IR = 1 };
/* Models one [stream] or [listen] runs in order (model = amp, cab) */
#define CVD_CONF_CHAIN_MAX 16

/* [listen NAME] */
typedef struct cvd_conf_listen {
    char name[CVD_CONF_NAME_MAX + 1];
    char host[CVD_CONF_HOST_MAX]; /* numeric and canonical (inet_ntop): "127.0.0.1", "::1" */
    int port;                     /* 0..65535; 0 = any free port */
    int family;                   /* AF_INET or AF_INET6 */
    cvd_proto protocol;
    char model[CVD_CONF_NAME_MAX + 1]; /* "" if none (framed only); a chain's first */
    int model_index;                   /* index into cvd_conf.models, -1 if none */
    /* model = a, b: the models in order (n_chain 1 for one model, 0 without) */
    char chain[CVD_CONF_CHAIN_MAX][CVD_CONF_NAME_MAX + 1];
    int chain_index[CVD_CONF_CHAIN_MAX];
    int n_chain;
    cvd_sample_fmt format; /* raw only; CVD_FMT_F32LE otherwise */
    int channels;          /* 0 = the model's input channels; else 1..1024 */
    int rate;              /* 1..1000000 frames per second */
    int rate_line;         /* its line; 0: not set (the models' own rate: no resampling) */
    int block;             /* 1..65536 frames */
    /* blocking: 1 = eager (the input that has arrived runs at once, at most `block` frames at
     * a time), 0 = fixed (whole blocks only, but the last); default eager for line and framed,
     * fixed for raw */
    int eager;
    int line; /* line of the section header */
    /* security (docs/SECURITY.md). Paths resolved like model paths; "" = none. */
    char tls_cert[CVD_CONF_PATH_MAX + 1]; /* with tls_key: the listener speaks TLS only */
    char tls_key[CVD_CONF_PATH_MAX + 1];
    char tls_client_ca[CVD_CONF_PATH_MAX + 1]; /* clients need a certificate from these CAs */
    char tokens[CVD_CONF_PATH_MAX + 1];        /* framed only: the tokens file */
    int tls_cert_line, tls_key_line, tls_client_ca_line, tokens_line;
    cvd_acl allow; /* source addresses admitted; allow.n 0 = every address */
    int max_block; /* the largest block a framed HELLO may ask for, 1..65536 */
} cvd_conf_listen;

/* [stream NAME]: a live audio stream through PortAudio (docs/AUDIO.md) */
#define CVD_CONF_DEVICE_MAX 255
#define CVD_CONF_MAP_MAX 64 /* entries of input_channels */

typedef struct cvd_conf_stream {
    char name[CVD_CONF_NAME_MAX + 1];
    /* PortAudio device: "default", a name (exact, then a substring) or an index, as written;
     * "" = none */
    char input[CVD_CONF_DEVICE_MAX + 1];
    char output[CVD_CONF_DEVICE_MAX + 1];
    int rate;     /* 1..1000000 frames per second */
    int channels; /* capture channels; 0 = the model's (1 without one) */
    /* input_channels: the device's capture channels (0-based here, 1-based in the file) that
     * feed the stream's channels, in order; n_in_map = 0: the first `channels` as they are */
    short in_map[CVD_CONF_MAP_MAX];
    int n_in_map;
    int in_map_line;
    /* output_channels: the device's playback channels (0-based) the stream's channels play on,
     * in order; n_out_map = 0: as many as the stream has (a mono one on every channel when
     * the device plays only in stereo) */
    short out_map[CVD_CONF_MAP_MAX];
    int n_out_map;
    int out_map_line;
    int block;                         /* frames per buffer, 1..65536 */
    char model[CVD_CONF_NAME_MAX + 1]; /* "" = none: the audio passes unchanged; a chain's
                                        * first model */
    int model_index;                   /* index into cvd_conf.models, -1 if none */
    /* model = amp, cab: the models in order (n_chain 1 for one model, 0 without) */
    char chain[CVD_CONF_CHAIN_MAX][CVD_CONF_NAME_MAX + 1];
    int chain_index[CVD_CONF_CHAIN_MAX];
    int n_chain;
    double input_gain_db, output_gain_db; /* -60..60 dB */
    double input_level_dbu;               /* dBu of a full-scale sample at the interface's input */
    int input_level_line;                 /* 0: not set (no calibration of the input level) */
    int limit;                            /* 1: a soft limiter on the output */
    int crossfade_ms;                     /* preset switches fade over this long (0..10000) */
    int publish;                          /* 1: framed clients may subscribe to NAME */
    char source[CVD_CONF_NAME_MAX + 1];   /* output-only: the published stream played; "" */
    int jitter;                           /* output-only: frames buffered; 0 = 4 blocks */
    int realtime;                         /* 1: ask for real-time scheduling (SCHED_FIFO) */
    int line;                             /* line of the section header */
    int model_line;                       /* line of its model directive (0: none) */
    int input_line, output_line;          /* lines of input and output (0: the default) */
} cvd_conf_stream;

typedef struct cvd_conf {
    char *file; /* the path or name the text came from (for messages); owned */
    char *dir;  /* the folder relative model paths were resolved against, or NULL; owned */

    /* [server] */
    int workers;   /* 0 = one per core (the daemon decides); else 1..256 */
    int log_level; /* CVD_LOG_*; default CVD_LOG_INFO */
    int metrics_enabled;
    char metrics_host[CVD_CONF_HOST_MAX]; /* when metrics_enabled; numeric, canonical */
    int metrics_port;
    int metrics_family;          /* AF_INET or AF_INET6 */
    int max_clients;             /* 1..1000000 */
    size_t max_message;          /* bytes, 1024..67108864 */
    double handshake_timeout;    /* seconds, 0.1..3600 */
    double idle_timeout;         /* seconds, 0 = never, else up to 86400 */
    double shutdown_timeout;     /* seconds, 0..3600 */
    size_t queue_limit;          /* bytes, 4096..1073741824 */
    int slow_disconnect;         /* slow_subscriber: 0 = drop, 1 = disconnect */
    int nonfinite_pass;          /* nonfinite: 0 = reject, 1 = pass */
    double write_timeout;        /* seconds output may wait without progress; 0 = never */
    int max_clients_per_address; /* 0 = no limit; else 1..1000000 */
    size_t max_stream_memory;    /* bytes: the sum of the open streams' memory figures */
    cvd_acl metrics_allow;       /* who may read /metrics; n 0 = every address */
    /* control_socket: convd-ctl's Unix socket; "" = the default (docs/AUDIO.md), "none" off */
    char control_socket[108];

    cvd_conf_model *models; /* in file order */
    int n_models;
    cvd_conf_listen *listens; /* in file order; at least one listener or stream */
    int n_listens;
    cvd_conf_stream *streams; /* in file order */
    int n_streams;
    cvd_nats_conf *nats; /* [nats NAME], in file order (docs/SCALE.md) */
    int n_nats;
} cvd_conf;

/* ---- the directives: one table (config_table.c) ------------------------------------------
 *
 * Everything about a directive is its row: the parser reads a value by the row's type and
 * range, a new section starts from the rows' defaults, messages name it ("FILE:LINE: name:
 * reason") and say its range, a missing required one is reported with the row's words, and
 * docs/CONFIG.md's tables are the rows (cvd_conf_doc_row; a test compares them). Adding a
 * directive is one row and the struct field it sets; what involves several directives (a
 * listener's model must exist, ...) is checked once the file is read (config.c). */

enum { CVD_CONF_SERVER = 1, CVD_CONF_MODEL, CVD_CONF_LISTEN, CVD_CONF_STREAM, CVD_CONF_NATS };

typedef enum cvd_conf_type {
    CVD_CONF_INT,     /* a whole number in lo..hi, into an int */
    CVD_CONF_LONG,    /* the same, into a long */
    CVD_CONF_SIZE,    /* the same, into a size_t */
    CVD_CONF_SECONDS, /* a decimal number of seconds in lo..hi, into a double */
    CVD_CONF_CHOICE,  /* one of `choices` (any case): its value into an int (or an enum) */
    CVD_CONF_NAME,    /* a section name (1 to 64 of A-Z a-z 0-9 _ . -), char[NAME_MAX + 1] */
    CVD_CONF_DEVICE,  /* a PortAudio device as written ("none" is ""), char[DEVICE_MAX + 1] */
    CVD_CONF_FORMAT,  /* a sample format (the wire codec's parser), a cvd_sample_format */
    CVD_CONF_SPECIAL  /* read by the row's own function `set` */
} cvd_conf_type;

typedef struct cvd_conf_choice {
    const char *name;
    int value;
} cvd_conf_choice;

struct cvd_conf_parse;

typedef struct cvd_conf_directive {
    const char *name; /* as written in the file */
    cvd_conf_type type;
    double lo, hi;        /* numbers: the range */
    const char *def;      /* the default, as a file would write it; NULL: none, or required */
    int section;          /* CVD_CONF_SERVER .. CVD_CONF_NATS */
    const char *required; /* required: what "[listen x]: missing 'address' (...)" asks for */
    size_t offset;        /* of the value in the section's struct (cvd_conf for [server]) */
    size_t offset2;       /* SPECIAL: a second field, as its function says */
    size_t line_at;       /* offset of an int that gets the directive's line (0: none) */
    const char *unit;     /* "bytes", "frames", ...: after the range in messages and docs */
    const char *note;     /* after the range in messages, instead of the unit: " (0 = never)" */
    const cvd_conf_choice *choices; /* CHOICE: ends with a NULL name */
    const char *what;               /* NAME: what the name names ("model", "stream") */
    int (*set)(struct cvd_conf_parse *ps, const struct cvd_conf_directive *d, void *section,
               const char *value); /* SPECIAL */
    const char *doc_default;       /* docs/CONFIG.md's default column, when not `def` as code */
    const char *doc_range;         /* its range column, when not made from the type */
    const char *help;              /* its meaning column */
} cvd_conf_directive;

extern const cvd_conf_directive cvd_conf_directives[];
extern const int cvd_conf_n_directives;

/* "server", "model", "listen", "stream", "nats" ("?" otherwise) */
const char *cvd_conf_section_name(int section);
/* The row as docs/CONFIG.md's table for its section shows it:
 * "| `name` | default | range | meaning |". */
void cvd_conf_doc_row(const cvd_conf_directive *d, char *buf, size_t n);

/* Reads and parses the file at path (at most CVD_CONF_FILE_MAX bytes). Relative model paths
 * are resolved against the file's folder, made absolute (so a later chdir does not matter).
 * *out is freed with cvd_conf_destroy. */
int cvd_conf_load(const char *path, cvd_conf **out, cvd_err *err);

/* Parses NUL-terminated text. `name` is FILE in messages (NULL: "(config)"); relative
 * model paths are joined to `dir` (NULL: left relative, i.e. to the working directory). */
int cvd_conf_parse(const char *text, const char *name, const char *dir, cvd_conf **out,
                   cvd_err *err);

/* The embedded default configuration (see the top of docs/CONFIG.md), parsed; its FILE
 * in messages is "(built-in default)". */
int cvd_conf_load_default(cvd_conf **out, cvd_err *err);

/* Frees everything; NULL is fine. */
void cvd_conf_destroy(cvd_conf *c);

/* A [nats NAME] section as the table's defaults make it (servers and model empty), for
 * programs and tests that fill one in code; cvd_nats_conf_finish checks it. */
void cvd_conf_nats_defaults(cvd_nats_conf *n, const char *name, int line);

/* Index of the [model NAME] section, or -1. */
int cvd_conf_find_model(const cvd_conf *c, const char *name);
/* Index of the [stream NAME] section, or -1. */
int cvd_conf_find_stream(const cvd_conf *c, const char *name);

/* Names as written in the file ("raw", "f32le", "info"); never NULL ("?" if unknown). */
const char *cvd_proto_name(cvd_proto p);
const char *cvd_sample_fmt_name(cvd_sample_fmt f);
const char *cvd_log_level_name(int level);
/* From those names, case-insensitive: 0 (and *out set) or -1. */
int cvd_proto_parse(const char *s, cvd_proto *out);
int cvd_sample_fmt_parse(const char *s, cvd_sample_fmt *out);
/* "error" | "warning" | "info" | "debug" (case-insensitive) to CVD_LOG_*, or -1. */
int cvd_log_level_parse(const char *s);

/* The configuration used when the daemon finds no file: the demo models compiled into the
 * daemon, served on 127.0.0.1 (ports 7400-7402, metrics on 9400). */
extern const char cvd_conf_default_text[];

#ifdef __cplusplus
}
#endif

#endif
