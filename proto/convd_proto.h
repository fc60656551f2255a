/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd_proto.h - convd's wire protocols as pure code (libconvd_proto.a): bytes in, messages
 * and frames out, and back. No socket, no event loop, no libuv: the caller reads and writes
 * the bytes. The byte layouts are specified in docs/PROTOCOL.md; this header is the API. The
 * daemon (server/) and the client library (client/) both link this one library.
 *
 *   samples   (samples.c)  f32le / s16le <-> float, the s16 rounding rule, the NaN/Inf
 *                          check, the one parser of sample format names
 *   framed    (framed.c, cvd_fr_*) length-prefixed, versioned binary messages: HELLO,
 *                          ACCEPT, DATA, END, PING, PONG, ERROR, BYE. An incremental decoder
 *                          and encoders.
 *   raw       (raw.c, cvd_raw_*) bare interleaved samples; a decoder that keeps partial frames
 *   line      (line.c, cvd_line_*) one frame per text line; a decoder that turns bad lines
 *                          into "!ERR ..." lines, and a locale-independent encoder
 *   text      (text.c, cvd_text_*) float values as text in the C locale, whatever the
 *                          process's locale: the line protocol's and the tools' csv codec
 *
 * Incremental decoding: every decoder takes byte chunks of any size. A message, frame or line
 * split across chunks, or many in one chunk, decodes to exactly the same results.
 *
 * Memory: decoders allocate everything at create; decoding and encoding never allocate. Every
 * call is non-blocking and does no system call. Not thread-safe per object (one connection, one
 * thread); distinct objects are independent.
 *
 * Errors are negative CVD_E* codes (convd_dsp.h) with a cvd_err * (may be NULL) receiving a
 * message. For the framed decoder that message is written to be sent to the peer as the text of
 * an ERROR message.
 *
 * Depends on convd_dsp.h for cvd_err only (link libconvd_dsp.a after this library).
 */
#ifndef CONVD_PROTO_H
#define CONVD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== growable-free byte buffer ============================================================ */

/* Where encoders append: data[0..len) is filled, cap is the size of data. Encoders never grow
 * it: a message that does not fit returns CVD_ERANGE and leaves the buffer unchanged. The
 * caller owns data. */
typedef struct cvd_bytes {
    uint8_t *data;
    size_t len;
    size_t cap;
} cvd_bytes;

/* ==== samples ============================================================================== */

typedef enum cvd_sample_format {
    CVD_FMT_F32LE = 1, /* IEEE-754 binary32, little-endian */
    CVD_FMT_S16LE = 2  /* two's complement 16-bit, little-endian, full scale 32768 */
} cvd_sample_format;

/* The one parser of sample format names, for the config (a raw listener's format), the
 * tools and the codec: "f32le" (also "f32", "float") / "s16le" (also "s16", "int16"),
 * case-insensitive -> format; CVD_EINVAL otherwise (NULL included). */
int cvd_sample_format_parse(const char *name, cvd_sample_format *out);
/* The canonical names, as error messages list them. */
#define CVD_SAMPLE_FORMAT_NAMES "f32le | s16le"
/* "f32le", "s16le", "invalid". */
const char *cvd_sample_format_name(int format);
/* Bytes per sample: 4, 2; 0 for anything else (so it also validates a format). */
size_t cvd_sample_bytes(int format);

/* s16 -> float: x / 32768, exact ([-1, 32767/32768]). */
float cvd_s16_to_float(int16_t x);
/* float -> s16: round(clamp(y, -1, 32767/32768) * 32768), rounding halves away from zero (C's
 * round()); NaN -> 0, +Inf -> 32767, -Inf -> -32768. */
int16_t cvd_s16_from_float(float y);

/* n samples of `format` at `in` (any alignment) -> n floats. f32le is bit-exact (NaN payloads
 * included). `format` must be valid. */
void cvd_samples_decode(int format, const void *in, size_t n, float *out);
/* n floats -> n samples of `format` at `out` (any alignment). */
void cvd_samples_encode(int format, const float *in, size_t n, void *out);

/* Index of the first NaN or infinity among n floats, or n if all are finite. */
size_t cvd_find_nonfinite(const float *x, size_t n);
/* The same on n f32le samples still in wire form. */
size_t cvd_f32le_find_nonfinite(const void *samples, size_t n);

/* What to do with a NaN or an infinity in the input. */
typedef enum cvd_nonfinite_policy {
    CVD_NONFINITE_REJECT = 0, /* an error (line: "!ERR nonfinite"; framed: ERROR 5) */
    CVD_NONFINITE_PASS = 1    /* through to the model as is */
} cvd_nonfinite_policy;

/* ==== framed protocol ====================================================================== */

/* Versions: 1, and 2, whose HELLO adds a token string (docs/PROTOCOL.md). A server answers
 * in the HELLO's version; a listener with tokens takes version 2 only. */
#define CVD_FR_VERSION 2            /* the newest version this code speaks */
#define CVD_FR_VERSION_MIN 1        /* the oldest */
#define CVD_FR_VERSIONS_TEXT "1, 2" /* every version it speaks, for ERROR 2's text */

#define CVD_FR_HEADER_BYTES 5       /* u32 length + u8 type */
#define CVD_FR_DATA_HEADER_BYTES 21 /* + u32 seq + u64 first frame + u32 dropped */
#define CVD_FR_MAX_STRING 1024      /* bytes of one string, at most */
/* smallest max_message (a HELLO with its strings at their longest needs 2067 bytes, 3093 in
 * version 2) */
#define CVD_FR_MIN_MESSAGE 1024
#define CVD_FR_MAX_MESSAGE_LIMIT (64u << 20) /* largest max_message */
#define CVD_FR_DEFAULT_MAX_MESSAGE (1u << 20)
#define CVD_FR_MAX_CHANNELS 65535 /* u16 on the wire */

/* Message types (the u8 after the length). */
typedef enum cvd_fr_type {
    CVD_FR_HELLO = 1,  /* client -> server, first message */
    CVD_FR_ACCEPT = 2, /* server -> client, answer to HELLO */
    CVD_FR_DATA = 3,   /* both ways: frames */
    CVD_FR_END = 4,    /* client: no more input, flush; server: all output sent */
    CVD_FR_PING = 5,   /* either way: u64 token */
    CVD_FR_PONG = 6,   /* answer to PING: the same token */
    CVD_FR_ERROR = 7,  /* either way: u16 code, string text */
    CVD_FR_BYE = 8     /* either way: the sender closes next */
} cvd_fr_type;

/* "HELLO", ...; "unknown" for anything else. */
const char *cvd_fr_type_name(int type);

/* ERROR codes. */
typedef enum cvd_fr_errcode {
    CVD_FR_E_BAD_MESSAGE = 1,         /* malformed, unexpected or out-of-order message */
    CVD_FR_E_UNSUPPORTED_VERSION = 2, /* text names the versions the server speaks */
    CVD_FR_E_UNKNOWN_MODEL = 3,
    CVD_FR_E_BAD_FORMAT = 4,     /* sample format, rate, channels or block not possible */
    CVD_FR_E_NONFINITE = 5,      /* a NaN or infinity, and the listener rejects them */
    CVD_FR_E_TOO_LARGE = 6,      /* a message longer than the receiver's max_message */
    CVD_FR_E_TIMEOUT = 7,        /* the peer was silent too long */
    CVD_FR_E_BUSY = 8,           /* no room for another stream */
    CVD_FR_E_UNKNOWN_STREAM = 9, /* subscribe: no such published stream */
    CVD_FR_E_INTERNAL = 10,
    CVD_FR_E_SHUTTING_DOWN = 11, /* the server stops: the stream was cut, not completed */
    CVD_FR_E_UNAUTHORIZED = 12,  /* no token, or one the listener does not know */
    CVD_FR_E_FORBIDDEN = 13      /* the token does not allow this role or stream name */
} cvd_fr_errcode;

/* "bad_message", "unsupported_version", ... "shutting_down", "unauthorized", "forbidden";
 * "unknown" otherwise. */
const char *cvd_fr_error_name(int code);

typedef enum cvd_fr_role {
    CVD_ROLE_PROCESS = 0,  /* my samples through a model, its output back to me */
    CVD_ROLE_SUBSCRIBE = 1 /* receive the output of a published stream */
} cvd_fr_role;

/* HELLO. Strings are NUL-terminated UTF-8 without NUL bytes, at most CVD_FR_MAX_STRING bytes;
 * for the encoder NULL means "". */
typedef struct cvd_fr_hello {
    uint16_t version;   /* CVD_FR_VERSION_MIN..CVD_FR_VERSION */
    uint8_t role;       /* cvd_fr_role */
    uint8_t format;     /* cvd_sample_format of the DATA both ways */
    uint32_t rate;      /* frames per second the client means; 0: unspecified */
    uint16_t channels;  /* process: channels of the client's frames, 0 = the model's;
                           subscribe: the channels expected, 0 = any */
    uint32_t block;     /* frames per DATA the client intends; 0 = any */
    const char *model;  /* "" = the listener's default model */
    const char *stream; /* process: publish my output under this name ("" = do not);
                           subscribe: the stream to follow */
    const char *token;  /* version 2: the client's token ("" = none); version 1 has none
                           (the decoder gives ""; the encoder refuses a non-empty one) */
} cvd_fr_hello;

/* ACCEPT. */
typedef struct cvd_fr_accept {
    uint16_t version;      /* the version of this session: the HELLO's */
    uint8_t format;        /* the sample format of DATA both ways (the HELLO's) */
    uint32_t rate;         /* the model's rate; 0: unknown */
    uint16_t in_channels;  /* channels of the frames the client sends (>= 1) */
    uint16_t out_channels; /* channels of the frames the server sends (>= 1) */
    uint32_t block;        /* the server's DATA carry at most this many frames; 0 = no bound */
    uint32_t latency;      /* frames the output lags the input (cvd_model_latency) */
    uint32_t max_message;  /* the longest message (length field) this server accepts and
                              sends, >= CVD_FR_MIN_MESSAGE */
    const char *model;     /* the model's name */
} cvd_fr_accept;

/* DATA. */
typedef struct cvd_fr_data {
    uint32_t seq;           /* 0 for a direction's first DATA, then +1 (mod 2^32) */
    uint64_t first_frame;   /* index of its first frame in the stream */
    uint32_t dropped;       /* frames lost just before this one (server -> subscriber); else 0 */
    const uint8_t *samples; /* n_frames * frame bytes, interleaved, in the session's format */
    size_t n_frames;
    size_t bytes; /* of samples */
} cvd_fr_data;

/* ERROR. */
typedef struct cvd_fr_error {
    uint16_t code;    /* cvd_fr_errcode; unknown codes are passed on */
    const char *text; /* UTF-8, NUL-terminated */
} cvd_fr_error;

/* A decoded message. Pointers point into the decoder and stay valid until the next call
 * on that decoder. */
typedef struct cvd_fr_msg {
    int type; /* cvd_fr_type */
    union {
        cvd_fr_hello hello;   /* CVD_FR_HELLO */
        cvd_fr_accept accept; /* CVD_FR_ACCEPT */
        cvd_fr_data data;     /* CVD_FR_DATA */
        cvd_fr_error error;   /* CVD_FR_ERROR */
        uint64_t token;       /* CVD_FR_PING, CVD_FR_PONG */
    };
} cvd_fr_msg;

/* Which side's traffic a decoder reads. */
typedef enum cvd_fr_side {
    CVD_FR_SERVER = 0, /* a server reading a client: HELLO first */
    CVD_FR_CLIENT = 1  /* a client reading a server: ACCEPT or ERROR first */
} cvd_fr_side;

typedef struct cvd_fr_decoder cvd_fr_decoder;

/* A decoder for messages whose length field is at most max_message
 * (CVD_FR_MIN_MESSAGE..CVD_FR_MAX_MESSAGE_LIMIT; 0 = CVD_FR_DEFAULT_MAX_MESSAGE). Allocates
 * max_message + a few KiB, here only. */
int cvd_fr_decoder_create(cvd_fr_side side, size_t max_message, cvd_fr_decoder **out, cvd_err *err);
void cvd_fr_decoder_destroy(cvd_fr_decoder *d); /* NULL is fine */
/* Back to the state after create (a new connection). */
void cvd_fr_decoder_reset(cvd_fr_decoder *d);
size_t cvd_fr_decoder_max_message(const cvd_fr_decoder *d);
/* Changes max_message (reallocates; only between messages, e.g. a client after ACCEPT). */
int cvd_fr_decoder_set_max_message(cvd_fr_decoder *d, size_t max_message, cvd_err *err);

/* Server side: the layout of the DATA the client will send, known once the server has
 * accepted (its ACCEPT's format and in_channels). Until this is called, DATA is an error.
 * A client-side decoder learns it from the ACCEPT it decodes (format, out_channels). */
int cvd_fr_decoder_set_data_layout(cvd_fr_decoder *d, int format, int channels, cvd_err *err);

/*
 * Decodes from data[0..len). Returns
 *    1  a message is in *msg; *used bytes of data were consumed (call again with the rest),
 *    0  all len bytes were consumed (*used = len) without completing a message,
 *   <0  the input is malformed (CVD_EFORMAT): err's message says how and
 *       cvd_fr_decoder_error() gives the ERROR code to answer with; *used is where the
 *       decoder stopped. The decoder stays failed: later calls return the same error.
 *
 * Checks everything in docs/PROTOCOL.md: lengths (a length over max_message fails as soon as
 * its 4 bytes arrive), types, directions, the order of messages (HELLO first and once, DATA
 * only after the session is accepted and before END, nothing after BYE), exact payload sizes,
 * strings (UTF-8, no NUL, at most CVD_FR_MAX_STRING bytes), field values (version, role,
 * format), DATA's frame size, sequence numbers and frame indices.
 *
 * An unsupported HELLO version fails with code CVD_FR_E_UNSUPPORTED_VERSION and a message
 * naming the versions spoken; only the version field of such a HELLO is read.
 */
int cvd_fr_decode(cvd_fr_decoder *d, const void *data, size_t len, size_t *used, cvd_fr_msg *msg,
                  cvd_err *err);
/* The ERROR code for the decoder's failure (CVD_FR_E_*), 0 if it has not failed. */
int cvd_fr_decoder_error(const cvd_fr_decoder *d);
/* At the end of the byte stream: 0 if it ended between messages, else CVD_EFORMAT ("the
 * connection ended inside a DATA message: 12 of 37 bytes"). */
int cvd_fr_decoder_finish(const cvd_fr_decoder *d, cvd_err *err);
/* Bytes of an incomplete message held (0 between messages). */
size_t cvd_fr_decoder_pending(const cvd_fr_decoder *d);

/* Encoders: append one whole message to b. 0, CVD_ERANGE (does not fit: b unchanged) or
 * CVD_EINVAL (a field out of range, a string too long or not UTF-8: b unchanged). */
int cvd_fr_put_hello(cvd_bytes *b, const cvd_fr_hello *h, cvd_err *err);
int cvd_fr_put_accept(cvd_bytes *b, const cvd_fr_accept *a, cvd_err *err);
/* n_frames frames of `channels` floats, converted to `format` straight into b. */
int cvd_fr_put_data(cvd_bytes *b, uint32_t seq, uint64_t first_frame, uint32_t dropped, int format,
                    const float *frames, size_t n_frames, int channels, cvd_err *err);
/* Samples already in wire form (bytes must be whole frames: the decoder checks). */
int cvd_fr_put_data_bytes(cvd_bytes *b, uint32_t seq, uint64_t first_frame, uint32_t dropped,
                          const void *samples, size_t bytes, cvd_err *err);
int cvd_fr_put_end(cvd_bytes *b, cvd_err *err);
int cvd_fr_put_ping(cvd_bytes *b, uint64_t token, cvd_err *err);
int cvd_fr_put_pong(cvd_bytes *b, uint64_t token, cvd_err *err);
/* text (NULL = "") longer than CVD_FR_MAX_STRING is cut at a character boundary; bytes that
 * are not UTF-8 become '?', so an ERROR can always be sent. */
int cvd_fr_put_error(cvd_bytes *b, int code, const char *text, cvd_err *err);
int cvd_fr_put_bye(cvd_bytes *b, cvd_err *err);

/* Bytes of a DATA message with n_frames frames of frame_bytes bytes (length field + 4). */
size_t cvd_fr_data_size(size_t n_frames, size_t frame_bytes);
/* Most frames one DATA may carry under max_message (0 if not even one fits). */
size_t cvd_fr_max_frames(size_t max_message, size_t frame_bytes);

/* ==== raw protocol ========================================================================= */

/* Turns a byte stream of interleaved samples into float frames, keeping an incomplete frame
 * across calls. */
typedef struct cvd_raw_decoder cvd_raw_decoder;

int cvd_raw_decoder_create(cvd_sample_format format, int channels, cvd_raw_decoder **out,
                           cvd_err *err);
void cvd_raw_decoder_destroy(cvd_raw_decoder *d);
void cvd_raw_decoder_reset(cvd_raw_decoder *d);
/* Decodes from data[0..len) into out (room for max_frames frames): returns the frames written
 * and sets *used to the bytes consumed. Stops early only when out is full; the bytes of a
 * trailing incomplete frame are consumed and kept. */
size_t cvd_raw_decode(cvd_raw_decoder *d, const void *data, size_t len, size_t *used, float *out,
                      size_t max_frames);
/* Bytes of an incomplete frame held; at the end of the stream they are a truncated frame
 * (the server drops them and may log it). */
size_t cvd_raw_decoder_pending(const cvd_raw_decoder *d);
size_t cvd_raw_frame_bytes(const cvd_raw_decoder *d);
/* n_frames frames of `channels` floats -> out (n_frames * channels * sample bytes); returns
 * the bytes written. */
size_t cvd_raw_encode(cvd_sample_format format, const float *frames, size_t n_frames, int channels,
                      void *out);

/* ==== numbers as text, in the C locale ===================================================== */

/* The one text codec for float values: the line protocol uses it, and so do the tools' csv
 * files. Both directions use the C locale's "." whatever the process's locale (setlocale) is,
 * and are thread-safe; neither allocates (the C locale object is made once, on first use). */

#define CVD_TEXT_VALUE_CHARS 16 /* most bytes one value takes in output, separator included */

/* strtof in the C locale: skips leading white space, reads the longest number at s. Returns
 *    0           *out is the number (a value below float's range rounds to 0 or a
 *                subnormal); *end (may be NULL) points past it,
 *    CVD_ERANGE  finite text beyond float's range: *out is +-infinity, *end past it,
 *    CVD_EFORMAT no number at s: *end = s, *out unchanged,
 *    CVD_ENOMEM  the C locale cannot be had. */
int cvd_text_parse_float(const char *s, char **end, float *out);

/* Frames as text, one line each: "%.9g" values (enough to read back the same float) joined
 * by "," and ended by "\n", into out[0..cap): as many whole frames as fit. Returns the bytes
 * written (*frames_done frames), CVD_EINVAL (channels < 1) or CVD_ENOMEM (no C locale).
 * cap >= n_frames * channels * CVD_TEXT_VALUE_CHARS always suffices. */
long cvd_text_format_frames(const float *frames, size_t n_frames, int channels, char *out,
                            size_t cap, size_t *frames_done);

/* ==== line protocol ======================================================================== */

#define CVD_LINE_DEFAULT_MAX 65536 /* bytes of a line, its "\r\n" or "\n" not counted */
#define CVD_LINE_MAX_LIMIT (16u << 20)
#define CVD_LINE_VALUE_CHARS CVD_TEXT_VALUE_CHARS /* bytes one value takes, at most */
#define CVD_LINE_ERROR_MAX 320 /* most bytes of an "!ERR ...\n" line the decoder makes */

typedef struct cvd_line_decoder cvd_line_decoder;

/* A decoder for frames of `channels` values, lines of at most max_line bytes (0 =
 * CVD_LINE_DEFAULT_MAX; at most CVD_LINE_MAX_LIMIT), and a NaN/Inf policy. */
int cvd_line_decoder_create(int channels, size_t max_line, cvd_nonfinite_policy nonfinite,
                            cvd_line_decoder **out, cvd_err *err);
void cvd_line_decoder_destroy(cvd_line_decoder *d);
void cvd_line_decoder_reset(cvd_line_decoder *d);

typedef struct cvd_line_result {
    size_t used;            /* bytes of the input consumed */
    size_t frames;          /* frames written to out */
    int error;              /* 1: a line was rejected; its answer follows the frames */
    const char *error_line; /* "!ERR code line N ...\n", NUL-terminated; valid until the
                               next call (NULL when error is 0) */
    size_t error_len;       /* bytes of error_line, its "\n" included */
} cvd_line_result;

/*
 * Decodes lines from data[0..len) into out (room for max_frames >= 1 frames of `channels`
 * floats). Stops when the input is consumed, when out is full, or right after a rejected line
 * (res->error: send error_line after the output of res->frames, then call again with the rest).
 * A line longer than the limit is rejected as soon as the limit is passed; its rest is skipped.
 * Never fails.
 */
void cvd_line_decode(cvd_line_decoder *d, const void *data, size_t len, float *out,
                     size_t max_frames, cvd_line_result *res);
/* End of input: decodes a last line that has no "\n" (into out: room for one frame).
 * res->used is 0. The decoder is then reset. */
void cvd_line_finish(cvd_line_decoder *d, float *out, cvd_line_result *res);
/* Number of the line being read (1-based): lines seen so far + 1. */
unsigned long long cvd_line_number(const cvd_line_decoder *d);

/* Encodes frames, one line each: cvd_text_format_frames (below). */
long cvd_line_encode(const float *frames, size_t n_frames, int channels, char *out, size_t cap,
                     size_t *frames_done);
/* An error line of the server's own ("!ERR <code> <text>\n") into out[0..cap), cut to fit;
 * returns its length. For errors that are not a line's (e.g. "internal", "shutting_down"). */
size_t cvd_line_error(char *out, size_t cap, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Parses one number (the whole NUL-terminated s, no blanks) as the line protocol does, in the
 * C locale: 0 and *out, or CVD_EFORMAT (not a number), CVD_ERANGE (finite but beyond float's
 * range; values below its range round to 0 or a subnormal), CVD_ENOMEM (no C locale). */
int cvd_line_parse_value(const char *s, float *out);

#ifdef __cplusplus
}
#endif

#endif /* CONVD_PROTO_H */
