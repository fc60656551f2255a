/*
 * Frames in and out of files: libsndfile formats, raw float32 and csv (see audiofile.h).
 *
 * Text is read and written with proto's C-locale codec (cvd_text_parse_float,
 * cvd_text_format_frames: the line protocol's own), so a program that called
 * setlocale(LC_ALL, "") under a locale with a decimal comma still reads and writes "0.5".
 */
#include "audiofile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convd_proto.h"

struct cvd_af {
    int writing;
    cvd_af_info info;
    char *name;    /* for messages */
    int fd;        /* sndfile: our descriptor (libsndfile does not close it); else -1 */
    SNDFILE *snd;  /* CVD_AF_SNDFILE */
    FILE *fp;      /* CVD_AF_F32, CVD_AF_CSV */
    int own_fp;    /* 0 for stdin/stdout */
    char *text;     /* csv writing: one chunk of lines */
    size_t text_cap;
    /* csv reading */
    char *line;
    size_t line_cap;
    long lineno;     /* of the last line read */
    long first_line; /* the line that set the channel count */
    float *pending;  /* the first frame, read at open to learn the channel count */
    int has_pending;
    int eof;
    long long count; /* frames read or written so far */
};

/* ---- formats ---------------------------------------------------------------------------- */

int cvd_af_format_parse(const char *name, cvd_af_format *out)
{
    if (name && strcasecmp(name, "f32") == 0)
        *out = CVD_AF_F32;
    else if (name && strcasecmp(name, "csv") == 0)
        *out = CVD_AF_CSV;
    else
        return CVD_EINVAL;
    return CVD_OK;
}

const char *cvd_af_format_name(cvd_af_format f)
{
    switch (f) {
    case CVD_AF_SNDFILE:
        return "sndfile";
    case CVD_AF_F32:
        return "f32";
    case CVD_AF_CSV:
        return "csv";
    default:
        return "unknown";
    }
}

/* The extension of path without its dot ("" if none). */
static const char *extension(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot == NULL || (slash && dot < slash) || dot == path || dot[-1] == '/')
        return "";
    return dot + 1;
}

/* libsndfile's major format for an extension (0: none). Headerless RAW is left out: its
 * ".raw" says nothing about the sample format. */
static int sndfile_major(const char *ext)
{
    SF_FORMAT_INFO fi;
    int count = 0;

    if (*ext == '\0')
        return 0;
    if (strcasecmp(ext, "aif") == 0 || strcasecmp(ext, "aifc") == 0)
        return SF_FORMAT_AIFF;
    if (strcasecmp(ext, "ogg") == 0 || strcasecmp(ext, "opus") == 0)
        return SF_FORMAT_OGG;
    if (strcasecmp(ext, "wave") == 0)
        return SF_FORMAT_WAV;
    sf_command(NULL, SFC_GET_FORMAT_MAJOR_COUNT, &count, sizeof count);
    for (int i = 0; i < count; i++) {
        fi.format = i;
        if (sf_command(NULL, SFC_GET_FORMAT_MAJOR, &fi, sizeof fi) != 0 || fi.extension == NULL)
            continue;
        if ((fi.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_RAW)
            continue;
        if (strcasecmp(ext, fi.extension) == 0)
            return fi.format & SF_FORMAT_TYPEMASK;
    }
    return 0;
}

int cvd_af_sndfile_writable(const char *path)
{
    return sndfile_major(extension(path)) != 0;
}

cvd_af_format cvd_af_format_of(const char *path, cvd_af_format given)
{
    const char *ext;
    if (strcmp(path, "-") == 0)
        return given;
    ext = extension(path);
    if (strcasecmp(ext, "f32") == 0)
        return CVD_AF_F32;
    if (strcasecmp(ext, "csv") == 0)
        return CVD_AF_CSV;
    if (sndfile_major(ext) != 0)
        return CVD_AF_SNDFILE;
    return given != CVD_AF_UNKNOWN ? given : CVD_AF_SNDFILE;
}

/* ---- common ----------------------------------------------------------------------------- */

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_floats(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4], t;
        memcpy(b, &x[i], 4);
        t = b[0], b[0] = b[3], b[3] = t;
        t = b[1], b[1] = b[2], b[2] = t;
        memcpy(&x[i], b, 4);
    }
}

static cvd_af *af_new(const char *path, int writing, cvd_af_format format, cvd_err *err)
{
    cvd_af *af = calloc(1, sizeof *af);
    if (af == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    af->writing = writing;
    af->fd = -1;
    af->info.format = format;
    af->info.frames = -1;
    af->name =
        strdup(strcmp(path, "-") == 0 ? (writing ? "standard output" : "standard input") : path);
    if (af->name == NULL) {
        free(af);
        cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    return af;
}

static void af_free(cvd_af *af)
{
    free(af->text);
    free(af->line);
    free(af->pending);
    free(af->name);
    free(af);
}

const cvd_af_info *cvd_af_get_info(const cvd_af *af)
{
    return &af->info;
}

const char *cvd_af_name(const cvd_af *af)
{
    return af->name;
}

static int no_c_locale(cvd_af *af, cvd_err *err)
{
    return cvd_err_set(err, CVD_ENOMEM, "%s: cannot create the C locale", af->name);
}

/* ---- csv reading ------------------------------------------------------------------------- */

/* Shows at most 40 characters of a bad field, trimmed. */
static void field_excerpt(const char *p, size_t n, char *buf, size_t cap)
{
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n > 40)
        snprintf(buf, cap, "%.37s...", p);
    else
        snprintf(buf, cap, "%.*s", (int)n, p);
}

/* Parses one data line into out[0..channels-1] (channels > 0), or counts its fields when
 * out is NULL (returned). Errors name the line and the field. */
static int csv_parse_line(cvd_af *af, const char *line, float *out, int channels, cvd_err *err)
{
    const char *p = line;
    int field = 0;
    for (;;) {
        const char *start = p, *end;
        char shown[48], *endp;
        float v = 0;
        int rc;
        size_t len = strcspn(p, ",");
        field++;
        if (out && field > channels) {
            int total = field;
            for (const char *q = p + len; *q; q++)
                total += *q == ',';
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: line %ld: %d values, expected %d (one per channel, as on "
                               "line %ld)",
                               af->name, af->lineno, total, channels, af->first_line);
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (p == start + len) {
            return cvd_err_set(err, CVD_EFORMAT, "%s: line %ld: field %d is empty", af->name,
                               af->lineno, field);
        }
        rc = cvd_text_parse_float(p, &endp, &v);
        if (rc == CVD_ENOMEM)
            return no_c_locale(af, err);
        end = endp;
        if (end != p) {
            int range = rc == CVD_ERANGE;
            while (*end == ' ' || *end == '\t')
                end++;
            if (end == start + len && range) {
                field_excerpt(start, len, shown, sizeof shown);
                return cvd_err_set(err, CVD_EFORMAT,
                                   "%s: line %ld: field %d \"%s\" is beyond the float32 range",
                                   af->name, af->lineno, field, shown);
            }
        }
        if (end == p || end != start + len) {
            field_excerpt(start, len, shown, sizeof shown);
            return cvd_err_set(err, CVD_EFORMAT, "%s: line %ld: field %d \"%s\" is not a number",
                               af->name, af->lineno, field, shown);
        }
        if (out)
            out[field - 1] = v;
        p = start + len;
        if (*p == '\0')
            break;
        p++; /* the comma */
    }
    if (out && field < channels)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: line %ld: %d value%s, expected %d (one per channel, as on line "
                           "%ld)",
                           af->name, af->lineno, field, field == 1 ? "" : "s", channels,
                           af->first_line);
    return field;
}

/* The next data line (NUL-terminated, without its end of line), NULL at the end of input;
 * *rc < 0 on a read error. */
static const char *csv_next_line(cvd_af *af, int *rc, cvd_err *err)
{
    *rc = CVD_OK;
    for (;;) {
        ssize_t n;
        const char *p;
        errno = 0;
        n = getline(&af->line, &af->line_cap, af->fp);
        if (n < 0) {
            if (ferror(af->fp))
                *rc = cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name,
                                  strerror(errno ? errno : EIO));
            return NULL;
        }
        af->lineno++;
        if ((size_t)n != strlen(af->line)) {
            *rc = cvd_err_set(err, CVD_EFORMAT, "%s: line %ld: contains a NUL byte (not text)",
                              af->name, af->lineno);
            return NULL;
        }
        while (n > 0 && (af->line[n - 1] == '\n' || af->line[n - 1] == '\r'))
            af->line[--n] = '\0';
        p = af->line;
        if (af->lineno == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
            (unsigned char)p[2] == 0xBF)
            p += 3; /* a UTF-8 byte order mark */
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        return p;
    }
}

static int csv_open_read(cvd_af *af, int channels, cvd_err *err)
{
    int rc;
    const char *line = csv_next_line(af, &rc, err);
    if (rc < 0)
        return rc;
    if (line == NULL) { /* no frame at all */
        af->eof = 1;
        af->info.channels = channels > 0 ? channels : 0;
        af->info.frames = 0;
        return CVD_OK;
    }
    rc = csv_parse_line(af, line, NULL, 0, err);
    if (rc < 0)
        return rc;
    af->info.channels = rc;
    af->first_line = af->lineno;
    af->pending = malloc(sizeof(float) * (size_t)rc);
    if (af->pending == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    rc = csv_parse_line(af, line, af->pending, af->info.channels, err);
    if (rc < 0)
        return rc;
    af->has_pending = 1;
    return CVD_OK;
}

static long csv_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int C = af->info.channels;
    long n = 0;
    if (af->has_pending && max_frames > 0) {
        memcpy(frames, af->pending, sizeof(float) * (size_t)C);
        af->has_pending = 0;
        n = 1;
    }
    while (n < max_frames && !af->eof) {
        int rc;
        const char *line = csv_next_line(af, &rc, err);
        if (rc < 0)
            return rc;
        if (line == NULL) {
            af->eof = 1;
            break;
        }
        rc = csv_parse_line(af, line, frames + (size_t)n * C, C, err);
        if (rc < 0)
            return rc;
        n++;
    }
    return n;
}

/* ---- reading ------------------------------------------------------------------------------ */

static int open_fd_read(cvd_af *af, const char *path, struct stat *st, cvd_err *err)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cvd_err_set(err, CVD_EIO, "%s: cannot open: %s", af->name, strerror(errno));
    if (fstat(fd, st) != 0) {
        int e = errno;
        if (fd != 0)
            close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: %s", af->name, strerror(e));
    }
    if (S_ISDIR(st->st_mode)) {
        if (fd != 0)
            close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: is a directory", af->name);
    }
    return fd;
}

int cvd_af_open_read(const char *path, cvd_af_format format, int channels, cvd_af **out,
                     cvd_err *err)
{
    const int is_std = strcmp(path, "-") == 0;
    struct stat st;
    cvd_af *af;
    int fd, rc = CVD_OK;

    *out = NULL;
    if (format == CVD_AF_UNKNOWN && !is_std)
        format = cvd_af_format_of(path, CVD_AF_UNKNOWN);
    if (is_std && format != CVD_AF_F32 && format != CVD_AF_CSV)
        return cvd_err_set(err, CVD_EINVAL, "standard input: its format must be given: f32 or csv");
    if (format == CVD_AF_F32 && channels <= 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: raw float32 has no header: the channel count must be given",
                           is_std ? "standard input" : path);
    af = af_new(path, 0, format, err);
    if (af == NULL)
        return CVD_ENOMEM;
    fd = open_fd_read(af, path, &st, err);
    if (fd < 0) {
        af_free(af);
        return fd;
    }

    if (format == CVD_AF_SNDFILE) {
        SF_INFO si;
        memset(&si, 0, sizeof si);
        af->fd = fd;
        af->snd = sf_open_fd(fd, SFM_READ, &si, SF_FALSE);
        if (af->snd == NULL) {
            rc = cvd_err_set(err, CVD_EFORMAT,
                             "%s: not an audio file libsndfile can read (%s); raw float32 and "
                             "text need the extension .f32 or .csv",
                             af->name, sf_strerror(NULL));
        } else if (si.channels <= 0) {
            rc = cvd_err_set(err, CVD_EFORMAT, "%s: %d channels", af->name, si.channels);
        } else {
            af->info.channels = si.channels;
            af->info.rate = si.samplerate;
            af->info.frames =
                si.frames >= 0 && si.frames < (sf_count_t)LLONG_MAX / 2 ? (long long)si.frames : -1;
        }
        if (rc < 0)
            goto fail;
        *out = af;
        return CVD_OK;
    }

    af->fp = is_std ? stdin : fdopen(fd, "rb");
    if (af->fp == NULL) {
        rc = cvd_err_set(err, CVD_EIO, "%s: %s", af->name, strerror(errno));
        close(fd);
        goto fail;
    }
    af->own_fp = !is_std;
    if (format == CVD_AF_F32) {
        af->info.channels = channels;
        if (S_ISREG(st.st_mode)) {
            off_t pos = lseek(fd, 0, SEEK_CUR);
            long long bytes = (long long)st.st_size - (pos > 0 ? (long long)pos : 0);
            long long fb = 4LL * channels;
            if (bytes % fb != 0) {
                rc = cvd_err_set(err, CVD_EFORMAT,
                                 "%s: %lld bytes is not a whole number of frames of float32 x "
                                 "%d channel%s (%lld bytes each)",
                                 af->name, bytes, channels, channels == 1 ? "" : "s", fb);
                goto fail;
            }
            af->info.frames = bytes / fb;
        }
    } else {
        rc = csv_open_read(af, channels, err);
        if (rc < 0)
            goto fail;
    }
    *out = af;
    return CVD_OK;

fail:
    cvd_af_close(af, NULL);
    return rc;
}

long cvd_af_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int C = af->info.channels;
    long n = 0;

    if (af->writing)
        return cvd_err_set(err, CVD_ESTATE, "%s: open for writing", af->name);
    if (max_frames <= 0 || C <= 0)
        return 0;
    switch (af->info.format) {
    case CVD_AF_SNDFILE: {
        sf_count_t got = sf_readf_float(af->snd, frames, (sf_count_t)max_frames);
        if (got < 0)
            return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, sf_strerror(af->snd));
        n = (long)got;
        break;
    }
    case CVD_AF_F32: {
        const size_t fb = sizeof(float) * (size_t)C;
        size_t got = fread(frames, 1, fb * (size_t)max_frames, af->fp);
        if (ferror(af->fp))
            return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, strerror(errno));
        if (got % fb != 0)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: ends inside a frame: %lld bytes is not a whole number of "
                               "frames of float32 x %d channel%s (%zu bytes each)",
                               af->name, (long long)(af->count * (long long)fb + (long long)got), C,
                               C == 1 ? "" : "s", fb);
        n = (long)(got / fb);
        if (!host_is_little_endian())
            swap_floats(frames, (size_t)n * C);
        break;
    }
    case CVD_AF_CSV:
        n = csv_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    default:
        return cvd_err_set(err, CVD_EINVAL, "%s: unknown format", af->name);
    }
    af->count += n;
    return n;
}

/* ---- writing ------------------------------------------------------------------------------ */

static int sndfile_open_write(cvd_af *af, const char *path, int channels, int rate, cvd_err *err)
{
    static const int subtypes[] = {SF_FORMAT_FLOAT,  SF_FORMAT_PCM_24, SF_FORMAT_PCM_16,
                                   SF_FORMAT_VORBIS, SF_FORMAT_OPUS,   SF_FORMAT_MPEG_LAYER_III};
    const char *ext = extension(path);
    int major = sndfile_major(ext);
    SF_INFO si;

    if (major == 0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s: unknown output format (use an audio extension such as .wav, "
                           ".flac, .aiff, .ogg, or .f32 for raw float32, .csv for text)",
                           af->name);
    memset(&si, 0, sizeof si);
    si.channels = channels;
    si.samplerate = rate;
    for (size_t i = 0; i < sizeof subtypes / sizeof subtypes[0]; i++) {
        int sub = subtypes[i];
        if (major == SF_FORMAT_OGG && strcasecmp(ext, "opus") == 0 && sub == SF_FORMAT_VORBIS)
            continue;
        si.format = major | sub;
        if (sf_format_check(&si))
            break;
        si.format = 0;
    }
    if (si.format == 0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s: libsndfile cannot write this format with %d channel%s at %d Hz",
                           af->name, channels, channels == 1 ? "" : "s", rate);
    af->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (af->fd < 0)
        return cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", af->name, strerror(errno));
    af->snd = sf_open_fd(af->fd, SFM_WRITE, &si, SF_FALSE);
    if (af->snd == NULL)
        return cvd_err_set(err, CVD_EIO, "%s: libsndfile cannot write it: %s", af->name,
                           sf_strerror(NULL));
    /* integer formats: clip overs instead of wrapping around */
    sf_command(af->snd, SFC_SET_CLIPPING, NULL, SF_TRUE);
    return CVD_OK;
}

int cvd_af_open_write(const char *path, cvd_af_format format, int channels, double rate,
                      cvd_af **out, cvd_err *err)
{
    const int is_std = strcmp(path, "-") == 0;
    cvd_af *af;
    int rc = CVD_OK;

    *out = NULL;
    if (format == CVD_AF_UNKNOWN && !is_std)
        format = cvd_af_format_of(path, CVD_AF_UNKNOWN);
    if (is_std && format != CVD_AF_F32 && format != CVD_AF_CSV)
        return cvd_err_set(err, CVD_EINVAL,
                           "standard output: its format must be given: f32 or csv");
    if (channels <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: channels=%d: must be >= 1",
                           is_std ? "standard output" : path, channels);
    if (!(rate > 0) || rate > 1e9)
        rate = 48000;
    af = af_new(path, 1, format, err);
    if (af == NULL)
        return CVD_ENOMEM;
    af->info.channels = channels;
    af->info.rate = format == CVD_AF_SNDFILE ? (double)lround(rate) : rate;
    af->info.frames = 0;
    if (format == CVD_AF_SNDFILE) {
        rc = sndfile_open_write(af, path, channels, (int)lround(rate), err);
    } else {
        af->fp = is_std ? stdout : fopen(path, "wb");
        af->own_fp = !is_std;
        if (af->fp == NULL)
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", af->name, strerror(errno));
    }
    if (rc < 0) {
        cvd_af_close(af, NULL);
        return rc;
    }
    *out = af;
    return CVD_OK;
}

static int csv_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    const int C = af->info.channels;
    /* a chunk holds at least one frame's line */
    const size_t cap = (size_t)C * CVD_TEXT_VALUE_CHARS + 1 > 16384
                           ? (size_t)C * CVD_TEXT_VALUE_CHARS + 1
                           : 16384;
    if (af->text_cap < cap) {
        char *p = realloc(af->text, cap);
        if (p == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        af->text = p;
        af->text_cap = cap;
    }
    for (long t = 0; t < n;) {
        size_t done = 0;
        long len = cvd_text_format_frames(frames + (size_t)t * C, (size_t)(n - t), C, af->text,
                                          af->text_cap, &done);
        if (len == CVD_ENOMEM)
            return no_c_locale(af, err);
        if (len < 0 || done == 0)
            return cvd_err_set(err, CVD_EINVAL, "%s: cannot format %d channels", af->name, C);
        if (fwrite(af->text, 1, (size_t)len, af->fp) != (size_t)len)
            return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        t += (long)done;
    }
    return CVD_OK;
}

int cvd_af_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    const int C = af->info.channels;
    int rc = CVD_OK;

    if (!af->writing)
        return cvd_err_set(err, CVD_ESTATE, "%s: open for reading", af->name);
    if (n <= 0)
        return CVD_OK;
    switch (af->info.format) {
    case CVD_AF_SNDFILE:
        if (sf_writef_float(af->snd, frames, (sf_count_t)n) != (sf_count_t)n)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, sf_strerror(af->snd));
        break;
    case CVD_AF_F32:
        if (host_is_little_endian()) {
            if (fwrite(frames, sizeof(float) * (size_t)C, (size_t)n, af->fp) != (size_t)n)
                rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        } else {
            for (long t = 0; t < n * C && rc == CVD_OK; t++) {
                float v = frames[t];
                swap_floats(&v, 1);
                if (fwrite(&v, sizeof v, 1, af->fp) != 1)
                    rc =
                        cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
            }
        }
        break;
    case CVD_AF_CSV:
        rc = csv_write(af, frames, n, err);
        break;
    default:
        rc = cvd_err_set(err, CVD_EINVAL, "%s: unknown format", af->name);
    }
    if (rc == CVD_OK) {
        af->count += n;
        af->info.frames = af->count;
    }
    return rc;
}

int cvd_af_close(cvd_af *af, cvd_err *err)
{
    int rc = CVD_OK;
    if (af == NULL)
        return CVD_OK;
    if (af->snd) {
        int e = sf_close(af->snd);
        if (e != 0 && af->writing)
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot finish the file: %s", af->name,
                             sf_error_number(e));
    }
    if (af->fd >= 0 && close(af->fd) != 0 && af->writing && rc == CVD_OK)
        rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    if (af->fp) {
        if (af->writing && (fflush(af->fp) != 0 || ferror(af->fp)) && rc == CVD_OK)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        if (af->own_fp && fclose(af->fp) != 0 && af->writing && rc == CVD_OK)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    }
    af_free(af);
    return rc;
}

/* ---- whole files ---------------------------------------------------------------------------- */

int cvd_af_read_all(cvd_af *af, float **frames, long *n, cvd_err *err)
{
    const int C = af->info.channels > 0 ? af->info.channels : 1;
    float *buf = NULL;
    long cap = 0, len = 0;
    int rc = CVD_OK;

    *frames = NULL;
    *n = 0;
    if (af->info.frames > 0 && af->info.frames < LONG_MAX / 2)
        cap = (long)(af->info.frames - af->count) + 1;
    if (cap > 0 && (buf = malloc(sizeof(float) * (size_t)cap * (size_t)C)) == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    for (;;) {
        long got;
        if (len == cap) {
            long ncap = cap < 4096 ? 4096 : cap * 2;
            float *nb = realloc(buf, sizeof(float) * (size_t)ncap * (size_t)C);
            if (nb == NULL) {
                rc = cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        got = cvd_af_read(af, buf + (size_t)len * C, cap - len, err);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        if (got == 0)
            break;
        len += got;
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *frames = buf;
    *n = len;
    return CVD_OK;
}

int cvd_af_load(const char *path, cvd_af_format format, int channels, float **frames, long *n,
                cvd_af_info *info, cvd_err *err)
{
    cvd_af *af;
    int rc = cvd_af_open_read(path, format, channels, &af, err);

    *frames = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    rc = cvd_af_read_all(af, frames, n, err);
    if (rc == CVD_OK && info) {
        *info = af->info;
        info->frames = *n;
    }
    cvd_af_close(af, NULL);
    return rc;
}

int cvd_af_save(const char *path, cvd_af_format format, int channels, double rate,
                const float *frames, long n, cvd_err *err)
{
    cvd_af *af;
    int rc = cvd_af_open_write(path, format, channels, rate, &af, err);
    if (rc < 0)
        return rc;
    rc = cvd_af_write(af, frames, n, err);
    if (rc < 0) {
        cvd_af_close(af, NULL);
        return rc;
    }
    return cvd_af_close(af, err);
}
