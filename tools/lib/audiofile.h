/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audiofile.h - frames in and out of files for the command-line tools.
 *
 * A frame is one float per channel; buffers are always frames with channels interleaved
 * (x[t * channels + c]). Formats:
 *
 *   sndfile  .wav and anything libsndfile reads (.flac, .aiff, .ogg, .caf, ...). Reading
 *            goes by the file's contents; writing chooses the container by the extension and
 *            writes 32-bit float where the container allows it (WAV, AIFF, CAF, W64, AU...),
 *            else 24- or 16-bit PCM (FLAC) or the container's codec (Ogg Vorbis).
 *   f32      raw little-endian float32, interleaved. No header: the channel count must be
 *            given, and the sample rate is unknown.
 *   csv      text, one frame per line, values separated by commas (fields may be quoted, "...",
 *            with "" for a quote). Reading skips blank lines and lines starting with '#',
 *            takes a first line with no number in it for a header row naming the columns
 *            (or as told: cvd_af_read_opts), and takes the channel count from the first
 *            frame, less a time column; columns can be chosen by index or name. Writing
 *            prints each value with %.9g (enough to read back the same float), after a header
 *            line when cvd_af_set_columns() names the columns. Both use the C locale's
 *            decimal point whatever the process's locale.
 *   npy      NumPy's .npy (format 1.0, 2.0, 3.0): little-endian float32 ('<f4') or float64
 *            ('<f8'), C order, shape (frames, channels) or (frames,) for one channel. The
 *            header is checked strictly; float64 values are converted to float32 (beyond its
 *            range: an error). Written as '<f4', shape (frames, channels).
 *
 * The path "-" is standard input (reading) or standard output (writing); its format must be
 * given (f32 or csv). Reads are streamed in blocks: nothing needs the whole file in memory.
 *
 * Every error sets a cvd_err whose message starts with the file's name ("-" is called
 * "standard input" / "standard output") and says what is wrong. Not real-time safe.
 */
#ifndef CONVD_AUDIOFILE_H
#define CONVD_AUDIOFILE_H

#include <stdio.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cvd_af_format {
    CVD_AF_UNKNOWN = 0, /* not decided: "-" without a format */
    CVD_AF_SNDFILE,     /* through libsndfile */
    CVD_AF_F32,
    CVD_AF_CSV,
    CVD_AF_NPY
} cvd_af_format;

/* "f32" | "csv" | "npy" (case-insensitive) -> format; CVD_EINVAL for anything else. */
int cvd_af_format_parse(const char *name, cvd_af_format *out);
/* "sndfile", "f32", "csv", "npy", "unknown" */
const char *cvd_af_format_name(cvd_af_format f);

/* The format of `path`:
 *   "-"                              -> `given` (CVD_AF_UNKNOWN if none was given)
 *   *.f32 / *.csv / *.npy            -> CVD_AF_F32 / CVD_AF_CSV / CVD_AF_NPY
 *   an extension libsndfile writes   -> CVD_AF_SNDFILE (.wav, .flac, .aiff, .ogg, ...)
 *   anything else                    -> `given` if set, else CVD_AF_SNDFILE (libsndfile then
 *                                       reads it by its contents). */
cvd_af_format cvd_af_format_of(const char *path, cvd_af_format given);

/* 1 if libsndfile can write a file with this path's extension. */
int cvd_af_sndfile_writable(const char *path);

/* What is known of a file. */
typedef struct cvd_af_info {
    cvd_af_format format;
    int channels;     /* 0: not known (an empty csv read without a channel count) */
    double rate;      /* frames per second; 0: not known (f32, csv, npy) */
    long long frames; /* total frames; -1: not known until the end (csv, pipes) */
} cvd_af_info;

typedef struct cvd_af cvd_af;

/* Opens `path` for reading. `channels` is the channel count for f32 (required, >= 1); for csv
 * it is only used when the file has no frame at all; libsndfile and npy files have their
 * own. The caller compares cvd_af_get_info()->channels with what it expects. */
int cvd_af_open_read(const char *path, cvd_af_format format, int channels, cvd_af **out,
                     cvd_err *err);

/* csv: is the first line a header row? */
typedef enum cvd_af_header {
    CVD_AF_HEADER_DETECT = 0, /* when none of its fields is a number */
    CVD_AF_HEADER_YES,        /* always (names that look like numbers too) */
    CVD_AF_HEADER_NO          /* never: the first line is data */
} cvd_af_header;

/* What to read of a csv or npy file. A column is named by its index, 1 for the first, or by
 * its name in the header row (csv). */
typedef struct cvd_af_read_opts {
    cvd_af_header header;    /* csv */
    const char *columns;     /* NULL: every column but the time column; else a list such as
                                "2,4-6,temp" (indices, ranges of indices, names) */
    const char *time_column; /* NULL: none; else one column, not a channel: its text (csv) or
                                value (npy) for each frame, from cvd_af_time() */
} cvd_af_read_opts;

/* cvd_af_open_read with options (NULL: the defaults). Columns and a time column apply to csv
 * and npy only (CVD_EINVAL for other formats). */
int cvd_af_open_read_opts(const char *path, cvd_af_format format, int channels,
                          const cvd_af_read_opts *opts, cvd_af **out, cvd_err *err);

/* The header row's name of channel c (NULL when the file has none), and of the time column
 * ("time" when the file names none; NULL without a time column). */
const char *cvd_af_channel_name(const cvd_af *af, int c);
const char *cvd_af_time_name(const cvd_af *af);
/* The time column's text of frame i of the last cvd_af_read() (0 <= i < what it returned);
 * NULL without a time column. Valid until the next read. */
const char *cvd_af_time(const cvd_af *af, long i);

/* Reads up to max_frames frames into `frames` (max_frames * channels floats). Returns the
 * number read, 0 at the end of the input, or a negative error: a malformed csv line (the
 * message names the line and the field), a truncated f32 frame, a read error. A short count
 * does not mean the end: call again until 0. */
long cvd_af_read(cvd_af *af, float *frames, long max_frames, cvd_err *err);

/* Creates (or truncates) `path` for writing frames of `channels` channels; `rate` is written
 * in the header of libsndfile formats (<= 0: 48000). */
int cvd_af_open_write(const char *path, cvd_af_format format, int channels, double rate,
                      cvd_af **out, cvd_err *err);

/* Writes n frames (n * channels floats). */
int cvd_af_write(cvd_af *af, const float *frames, long n, cvd_err *err);

/* csv output: a header line (written now) naming a time column, `time_name` (NULL: none), and
 * the channels, names[0..channels-1]. Call before the first write. With a time column, write
 * with cvd_af_write_times(). Other formats: CVD_EINVAL with a time column, else nothing. */
int cvd_af_set_columns(cvd_af *af, const char *time_name, const char *const *names, cvd_err *err);
/* Writes n frames, each after its time text times[i] (csv with a time column). */
int cvd_af_write_times(cvd_af *af, const float *frames, const char *const *times, long n,
                       cvd_err *err);

const cvd_af_info *cvd_af_get_info(const cvd_af *af);
/* The name used in messages: the path, or "standard input" / "standard output" for "-". */
const char *cvd_af_name(const cvd_af *af);

/* Closes and frees af (NULL is fine). For a file being written, finishes it (headers, buffered
 * data) and returns an error if that fails; the file is complete only if this returns 0. */
int cvd_af_close(cvd_af *af, cvd_err *err);

/* Reads everything left in af into one malloc'd buffer (*frames, free it; never NULL on
 * success), *n frames. */
int cvd_af_read_all(cvd_af *af, float **frames, long *n, cvd_err *err);

/* Convenience: a whole file into one malloc'd buffer (*frames, free it), *n frames; `info`
 * (may be NULL) receives what cvd_af_get_info() would say, with the frame count read. */
int cvd_af_load(const char *path, cvd_af_format format, int channels, float **frames, long *n,
                cvd_af_info *info, cvd_err *err);
/* Convenience: n frames into a new file. */
int cvd_af_save(const char *path, cvd_af_format format, int channels, double rate,
                const float *frames, long n, cvd_err *err);

#ifdef __cplusplus
}
#endif

#endif
