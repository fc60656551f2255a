/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Audio files through libsndfile (WAV, FLAC, AIFF, Ogg Vorbis and Opus, MP3: whatever the
 * installed library reads and writes), as floats. The format of an output is its extension's;
 * its sample format the best the format takes (float, then 24 and 16 bit PCM, then the
 * compressed ones), integer formats clipping overs instead of wrapping around.
 */
#include "audiofile.h"
#include "audiofile_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* libsndfile's major format for an extension (0: none). Headerless RAW is left out: its
 * ".raw" says nothing about the sample format. */
int af_sndfile_major(const char *ext)
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
    return af_sndfile_major(af_extension(path)) != 0;
}
int af_sndfile_open_write(cvd_af *af, const char *path, int channels, int rate, cvd_err *err)
{
    static const int subtypes[] = {SF_FORMAT_FLOAT,  SF_FORMAT_PCM_24, SF_FORMAT_PCM_16,
                                   SF_FORMAT_VORBIS, SF_FORMAT_OPUS,   SF_FORMAT_MPEG_LAYER_III};
    const char *ext = af_extension(path);
    int major = af_sndfile_major(ext);
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

int af_sndfile_open_read(cvd_af *af, int fd, cvd_err *err)
{
    SF_INFO si;
    memset(&si, 0, sizeof si);
    af->fd = fd;
    af->snd = sf_open_fd(fd, SFM_READ, &si, SF_FALSE);
    if (af->snd == NULL)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: not an audio file libsndfile can read (%s); raw float32 and "
                           "text need the extension .f32 or .csv",
                           af->name, sf_strerror(NULL));
    if (si.channels <= 0)
        return cvd_err_set(err, CVD_EFORMAT, "%s: %d channels", af->name, si.channels);
    af->info.channels = si.channels;
    af->info.rate = si.samplerate;
    af->info.frames =
        si.frames >= 0 && si.frames < (sf_count_t)LLONG_MAX / 2 ? (long long)si.frames : -1;
    return CVD_OK;
}

long af_sndfile_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    sf_count_t got = sf_readf_float(af->snd, frames, (sf_count_t)max_frames);
    if (got < 0)
        return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, sf_strerror(af->snd));
    return (long)got;
}

int af_sndfile_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    if (sf_writef_float(af->snd, frames, (sf_count_t)n) != (sf_count_t)n)
        return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, sf_strerror(af->snd));
    return CVD_OK;
}

int af_sndfile_close(cvd_af *af, cvd_err *err)
{
    int e = sf_close(af->snd);
    if (e != 0 && af->writing)
        return cvd_err_set(err, CVD_EIO, "%s: cannot finish the file: %s", af->name,
                           sf_error_number(e));
    return CVD_OK;
}
