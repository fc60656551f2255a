/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw float32 files (.f32, or f32 on standard input and output): frames of interleaved
 * little-endian floats and nothing else, so the channel count is given, and a regular file's
 * size must be a whole number of frames.
 */
#include "audiofile.h"
#include "audiofile_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int af_raw_open_read(cvd_af *af, int fd, const struct stat *st, int channels, cvd_err *err)
{
    af->info.channels = channels;
    if (S_ISREG(st->st_mode)) {
        off_t pos = lseek(fd, 0, SEEK_CUR);
        long long bytes = (long long)st->st_size - (pos > 0 ? (long long)pos : 0);
        long long fb = 4LL * channels;
        if (bytes % fb != 0)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: %lld bytes is not a whole number of frames of float32 x "
                               "%d channel%s (%lld bytes each)",
                               af->name, bytes, channels, channels == 1 ? "" : "s", fb);
        af->info.frames = bytes / fb;
    }
    return CVD_OK;
}

long af_raw_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int C = af->info.channels;
    const size_t fb = sizeof(float) * (size_t)C;
    size_t got = fread(frames, 1, fb * (size_t)max_frames, af->fp);
    long n;
    if (ferror(af->fp))
        return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, strerror(errno));
    if (got % fb != 0)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: ends inside a frame: %lld bytes is not a whole number of "
                           "frames of float32 x %d channel%s (%zu bytes each)",
                           af->name, (long long)(af->count * (long long)fb + (long long)got), C,
                           C == 1 ? "" : "s", fb);
    n = (long)(got / fb);
    if (!af_host_is_little_endian())
        af_swap_floats(frames, (size_t)n * C);
    return n;
}

int af_raw_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    const int C = af->info.channels;
    int rc = CVD_OK;
    if (af_host_is_little_endian()) {
        if (fwrite(frames, sizeof(float) * (size_t)C, (size_t)n, af->fp) != (size_t)n)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    } else {
        for (long t = 0; t < n * C && rc == CVD_OK; t++) {
            float v = frames[t];
            af_swap_floats(&v, 1);
            if (fwrite(&v, sizeof v, 1, af->fp) != 1)
                rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        }
    }
    return rc;
}
