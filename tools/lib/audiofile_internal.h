/* SPDX-License-Identifier: Apache-2.0 */
/* Private to tools/lib's audio files: the open file (struct cvd_af) and what the format files
 * share with audiofile.c, which opens, reads, writes and closes through them:
 * audiofile_sndfile.c (libsndfile: WAV, FLAC, AIFF, Ogg, ...), audiofile_raw.c (raw float32),
 * audiofile_csv.c (text), audiofile_npy.c (NumPy's .npy). */
#ifndef CONVD_AUDIOFILE_INTERNAL_H
#define CONVD_AUDIOFILE_INTERNAL_H

#include <sndfile.h>
#include <stdio.h>
#include <sys/stat.h>

/* after audiofile.h (not included here: audiofile.c includes this, and the include graph stays
 * one-way) */

struct cvd_af {
    int writing;
    cvd_af_info info;
    char *name;   /* for messages */
    int fd;       /* sndfile: our descriptor (libsndfile does not close it); else -1 */
    SNDFILE *snd; /* CVD_AF_SNDFILE */
    FILE *fp;     /* CVD_AF_F32, CVD_AF_CSV */
    int own_fp;   /* 0 for stdin/stdout */
    char *text;   /* csv writing: one chunk of lines */
    size_t text_cap;
    /* csv reading */
    char *line;
    size_t line_cap;
    long lineno;     /* of the last line read */
    long first_line; /* the line that set the channel count */
    float *pending;  /* the first frame, read at open to learn the channel count */
    char *pending_time;
    int has_pending;
    int eof;
    long long count; /* frames read or written so far */
    /* csv and npy reading: the file's columns, the channels chosen among them */
    int n_fields;     /* columns per line (frame) */
    int *sel;         /* the column of each channel */
    int time_field;   /* the time column, -1 none */
    int plain;        /* every column a channel, in order (csv messages say "values") */
    char **names;     /* the header row's names, NULL without one */
    long header_line; /* its line */
    char *fbuf;       /* the fields of the current line, unquoted */
    size_t fbuf_cap;
    size_t *fpos;
    int fpos_cap;
    char *tbuf; /* the time column's text of the frames of the last read */
    size_t tbuf_len, tbuf_cap, *toff;
    long n_times, toff_cap;
    /* npy */
    int npy_item; /* reading: 4 or 8 bytes per value */
    long long npy_total;
    unsigned char *rowbuf;
    int npy_seekable; /* writing: the header is rewritten at the end; else kept in memory */
    float *mem;
    size_t mem_len, mem_cap;
    /* csv writing */
    int time_out; /* a time column first */
};

/* ---- audiofile.c: shared by the formats ----------------------------------------------------- */

/* The extension of path without its dot ("" if none). */
const char *af_extension(const char *path);
int af_host_is_little_endian(void);
/* Reverses the bytes of each of n floats. */
void af_swap_floats(float *x, size_t n);
/* "NAME: cannot create the C locale" (CVD_ENOMEM). */
int af_no_c_locale(cvd_af *af, cvd_err *err);
/* Keeps the text of the time column of the frame just parsed (or `text`) for cvd_af_time. */
int af_time_push(cvd_af *af, const char *text, cvd_err *err);
/* The channels of csv and npy input: the columns asked for, or every column but the time
 * column (af->n_fields and, with a header row, af->names set). */
int af_select_columns(cvd_af *af, const cvd_af_read_opts *o, cvd_err *err);

/* ---- audiofile_sndfile.c -------------------------------------------------------------------- */

/* libsndfile's major format for an extension (0: none). */
int af_sndfile_major(const char *ext);
/* Opens the descriptor fd (af takes it) as an audio file libsndfile reads. */
int af_sndfile_open_read(cvd_af *af, int fd, cvd_err *err);
long af_sndfile_read(cvd_af *af, float *frames, long max_frames, cvd_err *err);
/* Creates path in the format its extension names, the best sample format the format takes. */
int af_sndfile_open_write(cvd_af *af, const char *path, int channels, int rate, cvd_err *err);
int af_sndfile_write(cvd_af *af, const float *frames, long n, cvd_err *err);
/* Closes af->snd (an error only when writing). */
int af_sndfile_close(cvd_af *af, cvd_err *err);

/* ---- audiofile_raw.c ------------------------------------------------------------------------ */

/* Raw float32 of `channels` channels from af->fp (st: its file, to count the frames). */
int af_raw_open_read(cvd_af *af, int fd, const struct stat *st, int channels, cvd_err *err);
long af_raw_read(cvd_af *af, float *frames, long max_frames, cvd_err *err);
int af_raw_write(cvd_af *af, const float *frames, long n, cvd_err *err);

/* ---- audiofile_csv.c ------------------------------------------------------------------------ */

/* Reads up to the first frame (the header row, the channel count, the columns chosen). */
int af_csv_open_read(cvd_af *af, int channels, const cvd_af_read_opts *o, cvd_err *err);
long af_csv_read(cvd_af *af, float *frames, long max_frames, cvd_err *err);
int af_csv_write(cvd_af *af, const float *frames, const char *const *times, long n, cvd_err *err);

/* ---- audiofile_npy.c ------------------------------------------------------------------------ */

/* Reads and checks the header (st: the file, to check its size). */
int af_npy_open_read(cvd_af *af, const struct stat *st, const cvd_af_read_opts *o, cvd_err *err);
long af_npy_read(cvd_af *af, float *frames, long max_frames, cvd_err *err);
int af_npy_open_write(cvd_af *af, cvd_err *err);
int af_npy_write(cvd_af *af, const float *frames, long n, cvd_err *err);
/* Writes the header with the frame count (or the whole file kept in memory). */
int af_npy_finish(cvd_af *af, cvd_err *err);

#endif
