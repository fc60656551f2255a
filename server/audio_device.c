/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live audio's devices through PortAudio: PortAudio's reference count, finding a [stream]'s
 * devices by name, listing them (convd --list-devices, the log), and convd --check's device
 * pass. Main loop only (or a program's one thread): see audio_device.h.
 */
#include "audio_device.h"

#include <fcntl.h>
#include <portaudio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static int pa_users; /* PortAudio is initialised while this is > 0 (main loop only) */

int cvd_portaudio_ref(cvd_err *err)
{
    if (pa_users++ > 0)
        return CVD_OK;
    PaError pe = Pa_Initialize();
    if (pe != paNoError) {
        pa_users = 0;
        return cvd_err_set(err, CVD_EIO, "PortAudio: %s", Pa_GetErrorText(pe));
    }
    return CVD_OK;
}

void cvd_portaudio_unref(void)
{
    if (pa_users > 0 && --pa_users == 0)
        Pa_Terminate();
}

static const char *host_name(const PaDeviceInfo *d)
{
    const PaHostApiInfo *h = Pa_GetHostApiInfo(d->hostApi);
    return h && h->name ? h->name : "?";
}

static void describe_device(int i, char *buf, size_t n)
{
    const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
    if (d == NULL) {
        snprintf(buf, n, "%3d  ?", i);
        return;
    }
    snprintf(buf, n, "%3d  %s  [%s]  %d in, %d out, %.0f Hz%s%s", i, d->name, host_name(d),
             d->maxInputChannels, d->maxOutputChannels, d->defaultSampleRate,
             i == Pa_GetDefaultInputDevice() ? "  (default input)" : "",
             i == Pa_GetDefaultOutputDevice() ? "  (default output)" : "");
}

void cvd_audio_log_devices(void)
{
    char line[512];
    int n = Pa_GetDeviceCount();
    if (n <= 0) {
        cvd_log_error("  (PortAudio finds no device at all)");
        return;
    }
    for (int i = 0; i < n; i++) {
        describe_device(i, line, sizeof line);
        cvd_log_error("  %s", line);
    }
}

/* Standard error to /dev/null (the host APIs print there while PortAudio probes); returns
 * the saved descriptor for unquiet_stderr, or -1 when nothing was changed. */
static int quiet_stderr(void)
{
    fflush(stderr);
    int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved < 0 || null < 0 || dup2(null, 2) < 0) {
        if (saved >= 0)
            close(saved);
        if (null >= 0)
            close(null);
        return -1;
    }
    close(null);
    return saved;
}

static void unquiet_stderr(int saved)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

int cvd_audio_list_devices(FILE *f, int verbose)
{
    cvd_err err = {0};
    char line[512], version[160];
    const int saved = verbose ? -1 : quiet_stderr();
    const int up = cvd_portaudio_ref(&err);
    const int n = up < 0 ? 0 : Pa_GetDeviceCount();
    char **lines = calloc((size_t)(n > 0 ? n : 1), sizeof *lines);
    for (int i = 0; lines && i < n; i++) { /* described while quiet: it may probe too */
        describe_device(i, line, sizeof line);
        lines[i] = strdup(line);
    }
    snprintf(version, sizeof version, "%s", up < 0 ? "" : Pa_GetVersionText());
    if (up >= 0)
        cvd_portaudio_unref();
    unquiet_stderr(saved);
    if (up < 0) {
        fprintf(stderr, "convd: %s\n", err.msg);
        free(lines);
        return 1;
    }
    /* Pa_GetVersionText() is "PortAudio V19.6.0-devel, revision ...": said once */
    fprintf(f, "%s%s: %d device%s (index, name, [host API], channels, default rate)\n",
            strncmp(version, "PortAudio", 9) == 0 ? "" : "PortAudio ", version, n < 0 ? 0 : n,
            n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\n", lines && lines[i] ? lines[i] : "?");
        if (lines)
            free(lines[i]);
    }
    free(lines);
    return 0;
}

static int dev_channels(const PaDeviceInfo *d, int input)
{
    return input ? d->maxInputChannels : d->maxOutputChannels;
}

int cvd_audio_find_device(const cvd_conf *c, const cvd_conf_stream *st, int input, int *missing,
                          cvd_err *err)
{
    const char *spec = input ? st->input : st->output;
    const char *key = input ? "input" : "output";
    const char *kind = input ? "capture" : "playback";
    int line = input ? st->input_line : st->output_line;
    int n = Pa_GetDeviceCount(), found = -1, matches = 0;
    char names[200] = "";

    if (line == 0)
        line = st->line;
    if (n < 0)
        n = 0;
    if (strcasecmp(spec, "default") == 0) {
        found = input ? Pa_GetDefaultInputDevice() : Pa_GetDefaultOutputDevice();
        if (found == paNoDevice)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: there is no default %s device", c->file,
                               line, key, kind);
        return found;
    }
    if (spec[strspn(spec, "0123456789")] == '\0' && strlen(spec) < 6) {
        found = atoi(spec);
        if (found >= n)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: there is no device %d (%d devices)",
                               c->file, line, key, found, n);
        if (dev_channels(Pa_GetDeviceInfo(found), input) < 1)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: device %d '%s' has no %s channels",
                               c->file, line, key, found, Pa_GetDeviceInfo(found)->name, kind);
        return found;
    }
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d && dev_channels(d, input) > 0 && strcmp(d->name, spec) == 0)
            return i;
    }
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d == NULL || dev_channels(d, input) < 1 || strcasestr(d->name, spec) == NULL)
            continue;
        if (matches++ == 0)
            found = i;
        size_t l = strlen(names);
        if (l < sizeof names - 1)
            snprintf(names + l, sizeof names - l, "%s%d '%s'", l ? ", " : "", i, d->name);
    }
    if (matches == 1)
        return found;
    if (matches > 1)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s:%d: %s: '%s' matches %d %s devices (%s): write more of the name, "
                           "or its index",
                           c->file, line, key, spec, matches, kind, names);
    *missing = 1;
    return cvd_err_set(err, CVD_EINVAL,
                       "%s:%d: %s: no %s device matches '%s'; the devices "
                       "are (convd --list-devices):",
                       c->file, line, key, kind, spec);
}

const char *cvd_portaudio_error(int pe)
{
    if (pe == paUnanticipatedHostError) {
        const PaHostErrorInfo *h = Pa_GetLastHostErrorInfo();
        if (h && h->errorText && h->errorText[0])
            return h->errorText;
    }
    return Pa_GetErrorText(pe);
}

/* ---- --check ------------------------------------------------------------------------------ */

int cvd_audio_check(cvd_runtime *rt, FILE *out)
{
    const cvd_conf *c = rt->conf;
    cvd_err err = {0};
    int bad = 0;
    if (c->n_streams == 0)
        return 0;
    if (cvd_portaudio_ref(&err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < c->n_streams && !bad; i++) {
        const cvd_conf_stream *st = &c->streams[i];
        int in = -1, outd = -1, missing = 0;
        if ((st->input[0] && (in = cvd_audio_find_device(c, st, 1, &missing, &err)) < 0) ||
            (st->output[0] && (outd = cvd_audio_find_device(c, st, 0, &missing, &err)) < 0)) {
            fprintf(stderr, "%s\n", err.msg);
            if (missing) {
                char line[512];
                for (int k = 0; k < Pa_GetDeviceCount(); k++) {
                    describe_device(k, line, sizeof line);
                    fprintf(stderr, "  %s\n", line);
                }
            }
            bad = 1;
            break;
        }
        fprintf(out, "  stream %s: input %s%s%s, output %s%s%s, model %s, %d Hz, block %d%s\n",
                st->name, in >= 0 ? "'" : "", in >= 0 ? Pa_GetDeviceInfo(in)->name : "none",
                in >= 0 ? "'" : "", outd >= 0 ? "'" : "",
                outd >= 0 ? Pa_GetDeviceInfo(outd)->name : "none", outd >= 0 ? "'" : "",
                st->model[0] ? st->model : "none", st->rate, st->block,
                st->publish ? ", published" : "");
    }
    cvd_portaudio_unref();
    return bad;
}
