/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live audio through PortAudio, the manager: see audio.h and docs/AUDIO.md. The engine the
 * callback runs is audio_engine.c (no PortAudio, no libuv there), its rings spsc.c; finding
 * devices, listing them and --check are audio_device.c.
 *
 * Threads: the PortAudio callback runs cvd_audio_engine_process() and nothing else; every
 * function here runs on the daemon's main loop (or, cvd_audio_prepared_create, on libuv's
 * thread pool), and only there are PortAudio, the log, the metrics registry and the
 * publish/subscribe registry called.
 *
 * Long because: the manager's three parts (the streams on the main loop, their reload, the
 * control socket's commands) all work on the same streams.
 */
#include "audio.h"

#include <errno.h>
#include <math.h>
#include <pa_linux_alsa.h>
#include <portaudio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "audio_device.h"
#include "log.h"
#include "pubsub.h"

_Static_assert(CVD_AUDIO_INPUT_UNDERFLOW == paInputUnderflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_INPUT_OVERFLOW == paInputOverflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_OUTPUT_UNDERFLOW == paOutputUnderflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_OUTPUT_OVERFLOW == paOutputOverflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_PRIMING_OUTPUT == paPrimingOutput, "PortAudio flag values");

/* ---- the manager (main loop) -------------------------------------------------------------- */

typedef struct astream {
    cvd_audio *a;
    cvd_runtime *rt; /* referenced: holds conf and model */
    const cvd_conf_stream *conf;
    cvd_model *model; /* NULL: none (a chain's first model) */
    /* the chain running now: the config's, or what convd-ctl set */
    int chain_idx[CVD_CONF_CHAIN_MAX];
    int n_chain;
    double in_db, out_db; /* the user's gains: the config's, or what convd-ctl set */
    int bypass;
    int in_ch, out_ch, play_ch;
    int cap_ch; /* channels opened on the capture device: in_ch, or the highest mapped one */
    cvd_audio_engine *eng;
    PaStream *pa;
    int running;
    int realtime; /* real-time scheduling was asked for and the stream started with it */
    int jack;     /* the stream runs on PortAudio's JACK host API */
    int no_retry; /* its JACK server went away: PortAudio cannot reconnect in this process */
    double lat_in, lat_out;
    cvd_pub *pub;
    int pub_warned;
    cvd_sub *sub;
    double sub_retry;
    int sub_warned;
    float *buf; /* a chunk of frames (out_ch), for publishing and the source */
    int buf_frames;
    cvd_stream_stats *stats;
    cvd_audio_counters seen;   /* counters already added to the metrics */
    cvd_audio_counters logged; /* at the last log line */
    double last_log;
    uint64_t progress_callbacks;
    double progress_at;
    double retry_at;
    int backoff; /* seconds before the next retry: 1, 2, 4, ... 30 */
    int failures;
} astream;

struct cvd_audio {
    uv_loop_t *loop;
    uv_timer_t timer;
    int timer_init, timer_period;
    int pa;        /* holds PortAudio up */
    int abandoned; /* PortAudio streams left open (see stream_failed): no Pa_Terminate */
    astream **s;
    int n, cap;
    double last_health, last_second;
    int stopped;
};

struct cvd_audio_prepared {
    int n;
    cvd_net **nets;     /* per stream of the runtime; NULL without a model or with a chain */
    cvd_chain **chains; /* per stream that runs a chain (NULL: none, or no model) */
    float *gin, *gout;  /* the chains' level gains */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int pa_callback(const void *in, void *out, unsigned long frames,
                       const PaStreamCallbackTimeInfo *ti, PaStreamCallbackFlags flags, void *user)
{
    (void)ti;
    cvd_audio_engine_process(user, in, out, frames, flags);
#ifdef CVD_TEST_HOOKS
    if (cvd_audio_engine_test_failed(user))
        return paAbort; /* test builds only: the device "fails" */
#endif
    return paContinue;
}

static cvd_model *stream_model(const cvd_runtime *rt, const cvd_conf_stream *st)
{
    return st->model_index >= 0 ? rt->models[st->model_index] : NULL;
}

/* input channels (0: none), and the channels of a processed frame */
static void stream_channels(const cvd_runtime *rt, const cvd_conf_stream *st, int *in, int *out)
{
    const cvd_model *m = stream_model(rt, st);
    int ch = st->channels ? st->channels : m ? cvd_model_in_channels(m) : 1;
    *in = st->input[0] ? ch : 0;
    *out = m ? cvd_model_out_channels(m) : ch;
}

/* " (capture channels 1,2 of 4)" for the log */
static void describe_map(char *buf, size_t cap, const char *what, const short *map, int n, int of)
{
    int o = snprintf(buf, cap, " (%s channel%s ", what, n > 1 ? "s" : "");
    for (int k = 0; k < n && o < (int)cap - 8; k++)
        o += snprintf(buf + o, cap - (size_t)o, "%s%d", k ? "," : "", map[k] + 1);
    snprintf(buf + o, cap - (size_t)o, " of %d)", of);
}

/* channels to open on the capture device: the input's, or up to the highest mapped one */
static int capture_channels(const cvd_conf_stream *st, int in)
{
    int n = st->n_in_map ? 0 : in;
    for (int k = 0; k < st->n_in_map; k++)
        if (st->in_map[k] + 1 > n)
            n = st->in_map[k] + 1;
    return n;
}

static const char *model_path(const astream *s)
{
    return s->model ? s->rt->conf->models[s->conf->model_index].path : "";
}

/* 1 when the stream runs its models in a cvd_audio_proc (a chain): it has input, and no model
 * or a first model that streams frame by frame; else (a windowed model) a lone net */
static int runs_chain(const cvd_runtime *rt, const cvd_conf_stream *st)
{
    const cvd_model *m = stream_model(rt, st);
    return st->input[0] && (m == NULL || (cvd_model_mode(m) == CVD_MODE_STREAMING &&
                                          cvd_model_rate_ratio(m) == 1.0));
}

/* "amp, cab" */
static void chain_names(const cvd_runtime *rt, const int *idx, int n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < n && o < cap; k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", k ? ", " : "",
                              rt->conf->models[idx[k]].name);
    if (n == 0)
        snprintf(buf, cap, "none");
}

/* The chain of models idx[0..n) for stream st, in fixed mode, with the gains its levels ask
 * for (NAM's calibration: the stream's input_level_dbu against the first model's, and the
 * normalisation of [model] normalize = yes). note: what the log should say of the levels. */
static int stream_chain(const cvd_runtime *rt, const cvd_conf_stream *st, const int *idx, int n,
                        cvd_chain **chain, float *gin, float *gout, char *note, size_t nn,
                        cvd_err *err)
{
    *chain = NULL;
    *gin = *gout = 1.0f;
    note[0] = '\0';
    if (n == 0)
        return CVD_OK;
    int rc = cvd_runtime_chain(rt, idx, n, st->rate, st->block, 1, 0, chain, err);
    if (rc < 0)
        return rc;
    cvd_levels lv;
    int normalize = 0;
    cvd_runtime_chain_levels(rt, idx, n, &lv, &normalize);
    const int calibrate = st->input_level_line != 0;
    const double in_db = cvd_input_gain_db(&lv, 0, calibrate, st->input_level_dbu);
    const double out_db = cvd_output_gain_db(
        &lv, 0, normalize ? CVD_OUTPUT_NORMALIZED : CVD_OUTPUT_RAW, CVD_NAM_INTERFACE_DBU);
    *gin = cvd_db_to_gain(in_db);
    *gout = cvd_db_to_gain(out_db);
    size_t o = 0;
    if (calibrate && o < nn)
        o += (size_t)snprintf(
            note + o, nn - o,
            lv.has_input_level ? "; input calibrated %+.1f dB (interface %.1f dBu, model %.1f dBu)"
                               : "; input not calibrated (%.1f dB: the model's file has no "
                                 "input_level_dbu)",
            in_db, st->input_level_dbu, lv.input_level_dbu);
    if (normalize && o < nn)
        o += (size_t)snprintf(note + o, nn - o,
                              lv.has_loudness ? "; output normalised %+.1f dB (loudness %.1f dB)"
                                              : "; output not normalised (%.1f dB: no model of "
                                                "the chain declares its loudness)",
                              out_db, lv.loudness);
    for (int k = 0; k < cvd_chain_model_count(*chain) && o < nn; k++) {
        int assumed = 0;
        double r = cvd_chain_model_rate(*chain, k, &assumed);
        if (assumed)
            o += (size_t)snprintf(note + o, nn - o,
                                  "; model '%s' declares no sample rate: it runs at %.0f Hz (set "
                                  "[model %s] rate = ... if it was captured at another)",
                                  rt->conf->models[idx[k]].name, r, rt->conf->models[idx[k]].name);
    }
    return CVD_OK;
}

static astream *astream_new(cvd_audio *a, cvd_runtime *rt, int idx, cvd_err *err)
{
    astream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    s->a = a;
    s->rt = cvd_runtime_ref(rt);
    s->conf = &rt->conf->streams[idx];
    s->model = stream_model(rt, s->conf);
    s->n_chain = s->conf->n_chain;
    memcpy(s->chain_idx, s->conf->chain_index, sizeof s->chain_idx);
    s->in_db = s->conf->input_gain_db;
    s->out_db = s->conf->output_gain_db;
    stream_channels(rt, s->conf, &s->in_ch, &s->out_ch);
    s->cap_ch = capture_channels(s->conf, s->in_ch);
    s->backoff = 1;
    s->stats = cvd_metrics_stream(s->conf->name);
    if (s->stats)
        atomic_store(&s->stats->audio, 1);
    return s;
}

static int open_pub(astream *s, cvd_err *err)
{
    cvd_pub_info info = {.channels = s->out_ch,
                         .rate = s->conf->rate,
                         .latency = s->eng ? cvd_audio_engine_latency(s->eng)
                                           : (s->model ? cvd_model_latency(s->model) : 0)};
    snprintf(info.model, sizeof info.model, "%s", s->conf->model);
    return cvd_pub_create(s->conf->name, &info, &s->pub, err);
}

static void astream_close(astream *s, int graceful)
{
    if (s->pa != NULL) {
        if (graceful)
            Pa_StopStream(s->pa);
        else
            Pa_AbortStream(s->pa);
        Pa_CloseStream(s->pa);
        s->pa = NULL;
    }
    s->running = 0;
    if (s->stats)
        atomic_store(&s->stats->audio_running, 0);
    if (s->eng)
        cvd_audio_engine_collect(s->eng, 1);
}

static void astream_free(astream *s)
{
    if (s == NULL)
        return;
    astream_close(s, 0);
    cvd_pub_destroy(s->pub);
    cvd_sub_destroy(s->sub);
    if (!s->no_retry) /* else a stream left open may still point at the engine: kept */
        cvd_audio_engine_destroy(s->eng);
    cvd_runtime_unref(s->rt);
    free(s->buf);
    free(s);
}

/* Finds the devices, builds the engine if needed, opens and starts the PortAudio stream. */
static int astream_open(astream *s, int *missing, cvd_err *err)
{
    const cvd_conf *c = s->rt->conf;
    const cvd_conf_stream *st = s->conf;
    PaStreamParameters ip, op;
    int in_dev = -1, out_dev = -1, play_ch = 0, rc;
    PaError pe;

    *missing = 0;
    if (st->input[0] && (in_dev = cvd_audio_find_device(c, st, 1, missing, err)) < 0)
        return CVD_EINVAL;
    if (st->output[0] && (out_dev = cvd_audio_find_device(c, st, 0, missing, err)) < 0)
        return CVD_EINVAL;
    memset(&ip, 0, sizeof ip);
    memset(&op, 0, sizeof op);
    if (in_dev >= 0) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(in_dev);
        if (d->maxInputChannels < s->cap_ch)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s:%d: %s: device '%s' has %d capture "
                               "channels; the stream needs %d",
                               c->file,
                               st->n_in_map     ? st->in_map_line
                               : st->input_line ? st->input_line
                                                : st->line,
                               st->n_in_map ? "input_channels" : "input", d->name,
                               d->maxInputChannels, s->cap_ch);
        ip.device = in_dev;
        ip.channelCount = s->cap_ch;
        ip.sampleFormat = paFloat32;
        ip.suggestedLatency = d->defaultLowInputLatency;
    }
    if (out_dev >= 0) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(out_dev);
        play_ch = st->n_out_map ? 0 : s->out_ch;
        for (int k = 0; k < st->n_out_map; k++) /* up to the highest mapped channel */
            if (st->out_map[k] + 1 > play_ch)
                play_ch = st->out_map[k] + 1;
        op.device = out_dev;
        op.sampleFormat = paFloat32;
        op.suggestedLatency = d->defaultLowOutputLatency;
        op.channelCount = play_ch;
        /* a mono stream on a device that only plays in stereo (or more): every channel */
        if (!st->n_out_map && s->out_ch == 1 && d->maxOutputChannels >= 2 &&
            Pa_IsFormatSupported(in_dev >= 0 ? &ip : NULL, &op, st->rate) != paFormatIsSupported)
            op.channelCount = play_ch = 2;
        if (d->maxOutputChannels < play_ch)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s:%d: %s: device '%s' has %d playback "
                               "channels; the stream needs %d",
                               c->file,
                               st->n_out_map     ? st->out_map_line
                               : st->output_line ? st->output_line
                                                 : st->line,
                               st->n_out_map ? "output_channels" : "output", d->name,
                               d->maxOutputChannels, play_ch);
    }
    pe = Pa_IsFormatSupported(in_dev >= 0 ? &ip : NULL, out_dev >= 0 ? &op : NULL, st->rate);
    if (pe != paFormatIsSupported)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s:%d: [stream %s]: the devices refuse %d Hz, %d in "
                           "and %d out channels of float32: %s",
                           c->file, st->line, st->name, st->rate, s->in_ch, play_ch,
                           cvd_portaudio_error(pe));

    /* the engine: kept across device restarts unless the device's channels changed */
    if (s->eng == NULL || play_ch != s->play_ch) {
        cvd_audio_engine_config ec = {.in_channels = s->in_ch,
                                      .capture_channels = s->cap_ch,
                                      .in_map = st->n_in_map ? st->in_map : NULL,
                                      .out_map = st->n_out_map ? st->out_map : NULL,
                                      .n_out_map = st->n_out_map,
                                      .out_channels = s->out_ch,
                                      .play_channels = play_ch,
                                      .block = st->block,
                                      .rate = st->rate,
                                      .publish = st->publish,
                                      .jitter = st->jitter,
                                      .hop = cvd_runtime_model_hop(s->rt, s->model)};
        cvd_audio_engine *ne = NULL;
        if (runs_chain(s->rt, st)) {
            cvd_chain *chain = NULL;
            cvd_audio_proc *proc = NULL;
            float gin, gout;
            char note[1024];
            if ((rc = stream_chain(s->rt, st, s->chain_idx, s->n_chain, &chain, &gin, &gout, note,
                                   sizeof note, err)) < 0)
                return rc;
            cvd_audio_proc_config pc = {.in_channels = s->in_ch,
                                        .out_channels = s->out_ch,
                                        .block = st->block,
                                        .rate = st->rate,
                                        .crossfade =
                                            (int)lround(st->crossfade_ms * 1e-3 * st->rate),
                                        .limit = st->limit};
            if ((rc = cvd_audio_proc_create(&pc, chain, gin, gout, &proc, err)) < 0) {
                cvd_chain_destroy(chain);
                return rc;
            }
            cvd_audio_proc_set_gains(proc, s->in_db, s->out_db);
            cvd_audio_proc_set_bypass(proc, s->bypass);
            if (chain != NULL) {
                char desc[1024];
                char names[1024];
                cvd_chain_describe(chain, desc, sizeof desc);
                chain_names(s->rt, s->chain_idx, s->n_chain, names, sizeof names);
                cvd_log_info("stream %s: model '%s': %s%s", st->name, names, desc, note);
            }
            if ((rc = cvd_audio_engine_create_proc(&ec, proc, s->stats, &ne, err)) < 0)
                return rc;
        } else if ((rc = cvd_audio_engine_create(&ec, s->model, s->stats, &ne, err)) < 0) {
            return rc;
        }
        cvd_audio_engine_destroy(s->eng);
        s->eng = ne;
        s->play_ch = play_ch;
        memset(&s->seen, 0, sizeof s->seen);
        memset(&s->logged, 0, sizeof s->logged);
        free(s->buf);
        s->buf_frames = cvd_audio_engine_chunk(ne) > 1024 ? cvd_audio_engine_chunk(ne) : 1024;
        s->buf = malloc(sizeof(float) * (size_t)s->buf_frames * (size_t)s->out_ch);
        if (s->buf == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }

    pe = Pa_OpenStream(&s->pa, in_dev >= 0 ? &ip : NULL, out_dev >= 0 ? &op : NULL, st->rate,
                       (unsigned long)st->block, paNoFlag, pa_callback, s->eng);
    if (pe != paNoError) {
        s->pa = NULL;
        return cvd_err_set(err, CVD_EIO, "[stream %s]: cannot open the device: %s", st->name,
                           cvd_portaudio_error(pe));
    }
    const PaDeviceInfo *any = Pa_GetDeviceInfo(in_dev >= 0 ? in_dev : out_dev);
    const PaHostApiInfo *host = Pa_GetHostApiInfo(any->hostApi);
    s->realtime = st->realtime && host && host->type == paALSA;
    s->jack = host && host->type == paJACK;
    if (s->realtime)
        PaAlsa_EnableRealtimeScheduling(s->pa, 1);
    pe = Pa_StartStream(s->pa);
    if (pe != paNoError && s->realtime) {
        /* not permitted here (no CAP_SYS_NICE, no RLIMIT_RTPRIO): run without */
        cvd_log_warning("stream %s: real-time scheduling refused (%s); running at normal "
                        "priority",
                        st->name, cvd_portaudio_error(pe));
        Pa_CloseStream(s->pa);
        s->realtime = 0;
        pe = Pa_OpenStream(&s->pa, in_dev >= 0 ? &ip : NULL, out_dev >= 0 ? &op : NULL, st->rate,
                           (unsigned long)st->block, paNoFlag, pa_callback, s->eng);
        if (pe == paNoError)
            pe = Pa_StartStream(s->pa);
    }
    if (pe != paNoError) {
        if (s->pa)
            Pa_CloseStream(s->pa);
        s->pa = NULL;
        return cvd_err_set(err, CVD_EIO, "[stream %s]: cannot start the device: %s", st->name,
                           cvd_portaudio_error(pe));
    }
    const PaStreamInfo *si = Pa_GetStreamInfo(s->pa);
    s->lat_in = si && in_dev >= 0 ? si->inputLatency : 0;
    s->lat_out = si && out_dev >= 0 ? si->outputLatency : 0;
    s->running = 1;
    s->progress_callbacks = 0;
    s->progress_at = now_s();
    const int mlat = cvd_audio_engine_latency(s->eng);
    const double total = s->lat_in + s->lat_out + (double)mlat / st->rate;
    if (s->stats) {
        atomic_store(&s->stats->audio_running, 1);
        atomic_store(&s->stats->audio_latency_us, (unsigned long long)llround(total * 1e6));
    }
    char what[1600], names[1024];
    chain_names(s->rt, s->chain_idx, s->n_chain, names, sizeof names);
    snprintf(what, sizeof what, "%s%s%s%s%s -> %s%s%s -> %s%s%s%s%s",
             in_dev >= 0 ? "capture '" : "", in_dev >= 0 ? Pa_GetDeviceInfo(in_dev)->name : "",
             in_dev >= 0 ? "'" : "source '", in_dev >= 0 ? "" : st->source,
             in_dev >= 0 ? "" : "' (jitter buffer)", s->model ? "model '" : "",
             s->model ? names : "unchanged", s->model ? "'" : "", out_dev >= 0 ? "playback '" : "",
             out_dev >= 0 ? Pa_GetDeviceInfo(out_dev)->name : "", out_dev >= 0 ? "'" : "",
             st->publish ? (out_dev >= 0 ? " and " : "") : "", st->publish ? "subscribers" : "");
    char imap[CVD_CONF_MAP_MAX * 6 + 40] = "", omap[CVD_CONF_MAP_MAX * 6 + 40] = "";
    if (st->n_in_map && in_dev >= 0)
        describe_map(imap, sizeof imap, "capture", st->in_map, st->n_in_map, s->cap_ch);
    if (st->n_out_map && out_dev >= 0)
        describe_map(omap, sizeof omap, "playback", st->out_map, st->n_out_map, play_ch);
    else if (play_ch > s->out_ch)
        snprintf(omap, sizeof omap, " (mono on every channel)");
    cvd_log_info("stream %s: %s [%s]; %d Hz, %d%s -> %d channels%s, block %d (%.2f ms)", st->name,
                 what, host && host->name ? host->name : "?", st->rate,
                 s->in_ch ? s->in_ch : s->out_ch, imap, play_ch ? play_ch : s->out_ch, omap,
                 st->block, 1000.0 * st->block / st->rate);
    cvd_log_info("stream %s: latency %.2f ms: device input %.2f ms + output %.2f ms + model%s "
                 "%d frames (%.2f ms)%s",
                 st->name, total * 1000, s->lat_in * 1000, s->lat_out * 1000,
                 s->n_chain > 1 ? "s and resampling"
                 : s->eng && cvd_audio_engine_proc(s->eng) && s->model &&
                         cvd_model_sample_rate(s->model) > 0 &&
                         cvd_model_sample_rate(s->model) != st->rate
                     ? " and resampling"
                     : "",
                 mlat, 1000.0 * mlat / st->rate,
                 s->realtime ? "; real-time scheduling (SCHED_FIFO) requested" : "");
    return CVD_OK;
}

/* published frames to the subscribers */
static void drain(astream *s)
{
    if (!s->conf->publish || s->eng == NULL)
        return;
    /* at most what is there now: an unpaced device must not keep the loop here */
    size_t budget = cvd_audio_engine_backlog(s->eng);
    while (budget > 0) {
        uint64_t dropped = 0;
        int n = cvd_audio_engine_read(s->eng, s->buf, &dropped);
        if (n == 0 && dropped == 0)
            break;
        size_t used = n > 0 ? (size_t)n : 1; /* a chunk that only reports a gap counts 1 */
        budget = budget > used ? budget - used : 0;
        if (s->pub == NULL)
            continue;
        if (dropped)
            cvd_pub_gap(s->pub, dropped);
        if (n > 0)
            cvd_pub_write(s->pub, s->buf, n);
    }
}

static void no_wake(void *ctx)
{
    (void)ctx;
}

/* an output-only stream: its source's frames into the jitter buffer */
static void feed_source(astream *s, double now)
{
    cvd_err err = {0};
    if (s->conf->input[0] || s->eng == NULL)
        return;
    if (s->sub == NULL) {
        cvd_pub_info info;
        if (now < s->sub_retry)
            return;
        s->sub_retry = now + 0.5;
        int ring = 2 * s->conf->jitter + 2 * s->conf->block;
        if (cvd_sub_create(s->conf->source, ring, 0, no_wake, NULL, &s->sub, &info, &err) < 0) {
            if (!s->sub_warned)
                cvd_log_info("stream %s: waiting for stream '%s' to be published", s->conf->name,
                             s->conf->source);
            s->sub_warned = 1;
            return;
        }
        if (info.channels != s->out_ch || (info.rate && info.rate != s->conf->rate)) {
            if (s->sub_warned != 2)
                cvd_log_warning("stream %s: source '%s' has %d channels at %d Hz; this stream "
                                "plays %d at %d Hz: not playing it",
                                s->conf->name, s->conf->source, info.channels, info.rate, s->out_ch,
                                s->conf->rate);
            s->sub_warned = 2;
            cvd_sub_destroy(s->sub);
            s->sub = NULL;
            return;
        }
        s->sub_warned = 0;
        cvd_log_info("stream %s: playing stream '%s' (model %s, latency %d frames), jitter "
                     "buffer %d frames",
                     s->conf->name, s->conf->source, info.model[0] ? info.model : "none",
                     info.latency, s->conf->jitter);
    }
    for (;;) {
        int room = cvd_audio_engine_feed_room(s->eng);
        if (room <= 0)
            return;
        uint64_t dropped = 0;
        int state = 0;
        int n = cvd_sub_read(s->sub, s->buf, room < s->buf_frames ? room : s->buf_frames, &dropped,
                             &state);
        if (n > 0)
            cvd_audio_engine_feed(s->eng, s->buf, n);
        if (state != 0) {
            cvd_audio_engine_source_ended(s->eng);
            cvd_log_info("stream %s: source '%s' ended; waiting for it again", s->conf->name,
                         s->conf->source);
            cvd_sub_destroy(s->sub);
            s->sub = NULL;
            s->sub_retry = now + 0.5;
            return;
        }
        if (n == 0)
            return;
    }
}

static void stream_failed(astream *s, double now, const char *why)
{
    s->failures++;
    if (s->stats)
        atomic_fetch_add(&s->stats->audio_failures, 1);
    if (s->jack) {
        /* PortAudio 19.6's JACK host asserts (aborts the process) when it closes a stream
         * whose server has gone, and cannot connect to a new server without Pa_Terminate,
         * which would close it: the stream is left open and not retried */
        cvd_log_error("stream %s: %s: stopped; its JACK server is gone, and PortAudio cannot "
                      "reconnect to one in a running process: restart convd once the JACK "
                      "server runs again (the rest of the daemon goes on serving)",
                      s->conf->name, why);
        s->pa = NULL;
        s->a->abandoned++;
        s->no_retry = 1;
        astream_close(s, 0);
        return;
    }
    cvd_log_error("stream %s: %s: stopped; retrying in %d s", s->conf->name, why, s->backoff);
    astream_close(s, 0);
    s->retry_at = now + s->backoff;
    s->backoff = s->backoff * 2 > 30 ? 30 : s->backoff * 2;
}

static int count_running(const cvd_audio *a)
{
    int n = 0;
    for (int i = 0; i < a->n; i++)
        n += a->s[i]->running;
    return n;
}

static void try_restart(cvd_audio *a, astream *s, double now)
{
    cvd_err err = {0};
    int missing = 0;
    if (count_running(a) == 0 && a->pa && !a->abandoned) {
        /* nothing is running: PortAudio again, so that a device plugged back in is seen */
        Pa_Terminate();
        PaError pe = Pa_Initialize();
        if (pe != paNoError) {
            cvd_log_error("PortAudio: %s", Pa_GetErrorText(pe));
            s->retry_at = now + s->backoff;
            return;
        }
    }
    if (astream_open(s, &missing, &err) == 0) {
        cvd_log_info("stream %s: running again (after %d failure%s)", s->conf->name, s->failures,
                     s->failures == 1 ? "" : "s");
        s->backoff = 1;
        return;
    }
    s->retry_at = now + s->backoff;
    cvd_log_warning("stream %s: %s; retrying in %d s", s->conf->name, err.msg, s->backoff);
    s->backoff = s->backoff * 2 > 30 ? 30 : s->backoff * 2;
}

/* once a second: counters to the metrics, and at most one warning line per stream per 10 s */
static void account(astream *s, double now)
{
    cvd_audio_counters c;
    if (s->eng == NULL)
        return;
    cvd_audio_engine_counters(s->eng, &c);
    if (s->stats) {
        cvd_stream_stats *m = s->stats;
        for (int k = 0; k < 4; k++)
            atomic_fetch_add(&m->audio_xruns[k], c.flags[k] - s->seen.flags[k]);
        atomic_fetch_add(&m->audio_underruns, c.underruns - s->seen.underruns);
        atomic_fetch_add(&m->frames_in, c.frames_in - s->seen.frames_in);
        atomic_fetch_add(&m->frames_out, c.frames_out - s->seen.frames_out);
        if (c.block_ns_max > atomic_load(&m->audio_block_ns_max))
            atomic_store(&m->audio_block_ns_max, c.block_ns_max);
        if (s->running && s->pa)
            atomic_store(&m->audio_cpu_permille,
                         (unsigned long long)llround(Pa_GetStreamCpuLoad(s->pa) * 1000));
    }
    cvd_metrics_dropped(CVD_DROP_AUDIO_RING, c.ring_dropped - s->seen.ring_dropped);
    s->seen = c;

    const cvd_audio_counters *l = &s->logged;
    uint64_t d[6] = {c.flags[0] - l->flags[0],   c.flags[1] - l->flags[1],
                     c.flags[2] - l->flags[2],   c.flags[3] - l->flags[3],
                     c.underruns - l->underruns, c.ring_dropped - l->ring_dropped};
    int any = 0;
    for (int k = 0; k < 6; k++)
        any |= d[k] != 0;
    if (!any || (s->last_log > 0 && now - s->last_log < 10))
        return;
    const double budget_ms = 1000.0 * s->conf->block / s->conf->rate;
    cvd_log_warning("stream %s: since %s: input underflow %llu, input overflow %llu, output "
                    "underflow %llu, output overflow %llu, underruns %llu, ring drops %llu "
                    "frames; cpu load %.2f, longest block %.3f ms of %.3f",
                    s->conf->name, s->last_log > 0 ? "the last report" : "the start",
                    (unsigned long long)d[0], (unsigned long long)d[1], (unsigned long long)d[2],
                    (unsigned long long)d[3], (unsigned long long)d[4], (unsigned long long)d[5],
                    s->running && s->pa ? Pa_GetStreamCpuLoad(s->pa) : 0.0,
                    (double)c.block_ns_max * 1e-6, budget_ms);
    s->logged = c;
    s->last_log = now;
}

static void on_tick(uv_timer_t *t)
{
    cvd_audio *a = t->data;
    double now = now_s();
    int health = now - a->last_health >= 0.1, second = now - a->last_second >= 1.0;
    if (a->stopped)
        return;
    if (health)
        a->last_health = now;
    if (second)
        a->last_second = now;
    for (int i = 0; i < a->n; i++) {
        astream *s = a->s[i];
        if (s->conf->publish && s->pub == NULL && now >= s->sub_retry) {
            cvd_err err = {0};
            if (open_pub(s, &err) < 0) {
                if (!s->pub_warned)
                    cvd_log_warning("stream %s: cannot publish: %s (trying again)", s->conf->name,
                                    err.msg);
                s->pub_warned = 1;
                s->sub_retry = now + 1;
            } else if (s->pub_warned) {
                cvd_log_info("stream %s: published", s->conf->name);
                s->pub_warned = 0;
            }
        }
        if (s->running) {
            drain(s);
            feed_source(s, now);
            cvd_audio_engine_collect(s->eng, 0);
            if (health) {
                PaError act = Pa_IsStreamActive(s->pa);
                uint64_t cb = cvd_audio_engine_callbacks(s->eng);
                double stall = 2.0 + 20.0 * s->conf->block / s->conf->rate;
                if (cb != s->progress_callbacks) {
                    s->progress_callbacks = cb;
                    s->progress_at = now;
                }
                if (act != 1) {
                    char why[160];
                    snprintf(why, sizeof why, "the device stopped (%s)",
                             act < 0 ? cvd_portaudio_error(act) : "its stream finished");
                    stream_failed(s, now, why);
                } else if (now - s->progress_at > stall) {
                    char why[160];
                    snprintf(why, sizeof why, "no callback from the device for %.1f s",
                             now - s->progress_at);
                    stream_failed(s, now, why);
                }
            }
        } else if (now >= s->retry_at && !s->no_retry) {
            try_restart(a, s, now);
        }
        if (second)
            account(s, now);
    }
}

static void set_timer(cvd_audio *a)
{
    /* the loop turn that drains and feeds the rings: every block, 1 to 5 ms */
    int period = 5;
    for (int i = 0; i < a->n; i++) {
        int ms = (int)(1000.0 * a->s[i]->conf->block / a->s[i]->conf->rate);
        if (ms < period)
            period = ms;
    }
    if (period < 1)
        period = 1;
    if (a->timer_period != period) {
        a->timer_period = period;
        uv_timer_start(&a->timer, on_tick, (uint64_t)period, (uint64_t)period);
    }
}

static cvd_audio *manager_new(uv_loop_t *loop, cvd_err *err)
{
    cvd_audio *a = calloc(1, sizeof *a);
    if (a == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    if (cvd_portaudio_ref(err) < 0) {
        free(a);
        return NULL;
    }
    a->pa = 1;
    a->loop = loop;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    a->timer_init = 1;
    return a;
}

static int add_stream(cvd_audio *a, astream *s)
{
    if (a->n == a->cap) {
        int nc = a->cap ? 2 * a->cap : 4;
        astream **ns = realloc(a->s, sizeof *ns * (size_t)nc);
        if (ns == NULL)
            return CVD_ENOMEM;
        a->s = ns;
        a->cap = nc;
    }
    a->s[a->n++] = s;
    return CVD_OK;
}

int cvd_audio_start(uv_loop_t *loop, cvd_runtime *rt, cvd_audio **out, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    *out = NULL;
    if (c->n_streams == 0)
        return CVD_OK;
    cvd_audio *a = manager_new(loop, err);
    if (a == NULL) {
        cvd_log_error("%s", err->msg);
        return CVD_EIO;
    }
    for (int i = 0; i < c->n_streams; i++) {
        int missing = 0, rc;
        astream *s = astream_new(a, rt, i, err);
        rc = s ? add_stream(a, s) : CVD_ENOMEM;
        if (rc < 0) {
            astream_free(s);
        } else {
            if (s->conf->publish)
                rc = open_pub(s, err);
            if (rc == 0)
                rc = astream_open(s, &missing, err);
            if (rc < 0 && strncmp(err->msg, c->file, strlen(c->file)) != 0)
                cvd_err_prefix(err, "%s:%d", c->file, s->conf->line);
        }
        if (rc < 0) {
            cvd_log_error("%s", err->msg);
            if (missing)
                cvd_audio_log_devices();
            cvd_audio_stop(a);
            *out = a; /* the caller runs the loop for the timer's close, then frees */
            return rc;
        }
    }
    set_timer(a);
    *out = a;
    return CVD_OK;
}

int cvd_audio_running(const cvd_audio *a)
{
    return a ? count_running(a) : 0;
}

void cvd_audio_stop(cvd_audio *a)
{
    if (a == NULL || a->stopped)
        return;
    a->stopped = 1;
    for (int i = 0; i < a->n; i++) {
        astream *s = a->s[i];
        astream_close(s, 1);
        drain(s); /* what the callback published last */
        cvd_pub_destroy(s->pub);
        s->pub = NULL;
        cvd_sub_destroy(s->sub);
        s->sub = NULL;
    }
    if (a->timer_init && !uv_is_closing((uv_handle_t *)&a->timer))
        uv_close((uv_handle_t *)&a->timer, NULL);
}

void cvd_audio_destroy(cvd_audio *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < a->n; i++)
        astream_free(a->s[i]);
    free(a->s);
    if (a->pa && !a->abandoned)
        cvd_portaudio_unref();
    free(a);
}

/* ---- reload ------------------------------------------------------------------------------- */

cvd_audio_prepared *cvd_audio_prepared_create(cvd_runtime *rt, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    cvd_audio_prepared *p = calloc(1, sizeof *p);
    if (p == NULL || (p->nets = calloc((size_t)c->n_streams + 1, sizeof *p->nets)) == NULL ||
        (p->chains = calloc((size_t)c->n_streams + 1, sizeof *p->chains)) == NULL ||
        (p->gin = calloc((size_t)c->n_streams + 1, sizeof *p->gin)) == NULL ||
        (p->gout = calloc((size_t)c->n_streams + 1, sizeof *p->gout)) == NULL) {
        if (p) {
            free(p->nets);
            free(p->chains);
            free(p->gin);
        }
        free(p);
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    p->n = c->n_streams;
    for (int i = 0; i < c->n_streams; i++) {
        const cvd_conf_stream *st = &c->streams[i];
        cvd_model *m = stream_model(rt, st);
        char note[16];
        int rc = 0;
        if (m && runs_chain(rt, st))
            rc = stream_chain(rt, st, st->chain_index, st->n_chain, &p->chains[i], &p->gin[i],
                              &p->gout[i], note, sizeof note, err);
        else if (m)
            rc = cvd_net_create_hop(m, st->block, cvd_runtime_model_hop(rt, m), &p->nets[i], err);
        if (rc < 0) {
            cvd_err_prefix(err, "%s:%d: [stream %s]", c->file, c->streams[i].line,
                           c->streams[i].name);
            cvd_audio_prepared_destroy(p);
            return NULL;
        }
    }
    return p;
}

void cvd_audio_prepared_destroy(cvd_audio_prepared *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->n; i++) {
        cvd_net_destroy(p->nets[i]);
        cvd_chain_destroy(p->chains[i]);
    }
    free(p->nets);
    free(p->chains);
    free(p->gin);
    free(p->gout);
    free(p);
}

static int same_device_setup(const cvd_conf_stream *x, const cvd_conf_stream *y)
{
    return strcmp(x->input, y->input) == 0 && strcmp(x->output, y->output) == 0 &&
           x->rate == y->rate && x->channels == y->channels && x->block == y->block &&
           x->publish == y->publish && strcmp(x->source, y->source) == 0 &&
           x->jitter == y->jitter && x->realtime == y->realtime && x->n_in_map == y->n_in_map &&
           memcmp(x->in_map, y->in_map, sizeof(short) * (size_t)x->n_in_map) == 0 &&
           x->n_out_map == y->n_out_map &&
           memcmp(x->out_map, y->out_map, sizeof(short) * (size_t)x->n_out_map) == 0 &&
           x->limit == y->limit && x->crossfade_ms == y->crossfade_ms;
}

/* the new runtime's model for a running stream is another one (by name, path or file) */
static int model_changed(const astream *s, const cvd_runtime *rt, const cvd_conf_stream *ns)
{
    if (strcmp(s->conf->model, ns->model) != 0 || s->conf->n_chain != ns->n_chain)
        return 1;
    if (ns->model_index < 0)
        return 0;
    if (s->conf->input_level_dbu != ns->input_level_dbu ||
        (s->conf->input_level_line != 0) != (ns->input_level_line != 0))
        return 1;
    for (int k = 0; k < ns->n_chain; k++) {
        const cvd_conf_model *a = &s->rt->conf->models[s->conf->chain_index[k]],
                             *b = &rt->conf->models[ns->chain_index[k]];
        if (strcmp(s->conf->chain[k], ns->chain[k]) != 0 || strcmp(a->path, b->path) != 0 ||
            a->rate != b->rate || a->type != b->type || a->ir_normalize != b->ir_normalize ||
            a->normalize != b->normalize)
            return 1;
    }
    const char *np = rt->conf->models[ns->model_index].path;
    return strcmp(model_path(s), np) != 0 ||
           rt->conf->models[ns->model_index].hop != s->rt->conf->models[s->conf->model_index].hop;
}

/* The models of the running chain (found in the new file as nidx) whose files hold something
 * else than when the running ones were loaded (a cabinet IR rewritten in place: same path,
 * new content), named in `names` ("cab (cab.wav)"); how many. */
static int files_changed(const astream *s, const cvd_runtime *rt, const int *nidx, char *names,
                         size_t cap)
{
    int n = 0;
    size_t o = 0;
    names[0] = '\0';
    for (int k = 0; k < s->n_chain; k++) {
        if (s->rt->model_hash[s->chain_idx[k]] == rt->model_hash[nidx[k]])
            continue;
        const cvd_conf_model *cm = &rt->conf->models[nidx[k]];
        if (o < cap)
            o += (size_t)snprintf(names + o, cap - o, "%s'%s' (%s)", n ? ", " : "", cm->name,
                                  cm->path);
        n++;
    }
    return n;
}

static void start_new(cvd_audio *a, cvd_runtime *rt, int j, double now)
{
    cvd_err err = {0};
    int missing = 0;
    astream *s = astream_new(a, rt, j, &err);
    if (s == NULL || add_stream(a, s) < 0) {
        astream_free(s);
        cvd_log_error("stream %s: out of memory", rt->conf->streams[j].name);
        return;
    }
    if (s->conf->publish && open_pub(s, &err) < 0) {
        cvd_log_warning("stream %s: cannot publish: %s (trying again)", s->conf->name, err.msg);
        s->pub_warned = 1;
    }
    if (astream_open(s, &missing, &err) < 0) {
        s->retry_at = now + s->backoff;
        cvd_log_error("stream %s: %s; retrying in %d s", s->conf->name, err.msg, s->backoff);
        s->backoff *= 2;
    }
}

/* A chain set with convd-ctl whose files changed: built again from the new runtime's models
 * and crossfaded to, as convd-ctl does. */
static int refresh_ctl_chain(astream *s, cvd_runtime *rt, const cvd_conf_stream *ns, const int *idx,
                             const char *names)
{
    cvd_chain *chain = NULL;
    float gin, gout;
    char note[1024];
    cvd_err err = {0};
    if (s->eng == NULL || cvd_audio_engine_proc(s->eng) == NULL)
        return 0; /* not open: built from the new files when it opens */
    int rc = stream_chain(rt, ns, idx, s->n_chain, &chain, &gin, &gout, note, sizeof note, &err);
    if (rc == 0 && chain != NULL &&
        (cvd_chain_in_channels(chain) != s->in_ch || cvd_chain_out_channels(chain) != s->out_ch))
        rc = cvd_err_set(&err, CVD_EINVAL, "it takes %d channels and gives %d, not %d and %d",
                         cvd_chain_in_channels(chain), cvd_chain_out_channels(chain), s->in_ch,
                         s->out_ch);
    if (rc == 0) {
        if (cvd_audio_proc_swapping(cvd_audio_engine_proc(s->eng)))
            cvd_audio_engine_collect(s->eng, !s->running);
        rc = cvd_audio_engine_swap_chain(s->eng, chain, gin, gout);
        if (rc < 0)
            cvd_err_set(&err, rc, "%s",
                        rc == CVD_ESTATE ? "a switch is still fading"
                                         : "it does not fit the stream");
    }
    if (rc < 0) {
        cvd_chain_destroy(chain);
        cvd_log_error("stream %s: reload: model '%s' (set with convd-ctl) from its new files: %s; "
                      "the old one keeps running",
                      ns->name, names, err.msg);
        return 1;
    }
    if (!s->running)
        cvd_audio_engine_collect(s->eng, 1);
    char how[64] = "at once";
    if (s->running && ns->crossfade_ms > 0)
        snprintf(how, sizeof how, "crossfading over %d ms", ns->crossfade_ms);
    cvd_log_info("stream %s: model '%s' (set with convd-ctl) swapped in from its new files "
                 "without stopping the device (reload, %s; latency %d frames)%s",
                 ns->name, names, how, cvd_audio_engine_latency(s->eng), note);
    if (s->pub) {
        cvd_pub_destroy(s->pub);
        s->pub = NULL;
    }
    return 0;
}

void cvd_audio_reload(cvd_audio **ap, uv_loop_t *loop, cvd_runtime *rt, cvd_audio_prepared *p)
{
    cvd_err err = {0};
    cvd_audio *a = *ap;
    const cvd_conf *c = rt->conf;
    double now = now_s();
    int *kept;

    if (a == NULL) {
        if (c->n_streams == 0) {
            cvd_audio_prepared_destroy(p);
            return;
        }
        if ((a = manager_new(loop, &err)) == NULL) {
            cvd_log_error("reload: audio: %s", err.msg);
            cvd_audio_prepared_destroy(p);
            return;
        }
        *ap = a;
    }
    if (a->stopped) {
        cvd_audio_prepared_destroy(p);
        return;
    }
    kept = calloc((size_t)c->n_streams + 1, sizeof *kept);
    if (kept == NULL) {
        cvd_log_error("reload: audio: out of memory");
        cvd_audio_prepared_destroy(p);
        return;
    }
    for (int i = 0; i < a->n;) {
        astream *s = a->s[i];
        int j = cvd_conf_find_stream(c, s->conf->name);
        if (j < 0) {
            cvd_log_info("stream %s: removed from the configuration: stopped", s->conf->name);
            astream_free(s);
            a->s[i] = a->s[--a->n];
            continue;
        }
        const cvd_conf_stream *ns = &c->streams[j];
        int in_ch, out_ch;
        stream_channels(rt, ns, &in_ch, &out_ch);
        cvd_model *nm = stream_model(rt, ns);
        int restart = !same_device_setup(s->conf, ns) || in_ch != s->in_ch || out_ch != s->out_ch ||
                      (nm == NULL) != (s->model == NULL);
        int swap = !restart && model_changed(s, rt, ns);
        /* a chain convd-ctl set stays, its models found again by name in the new file */
        int ctl_idx[CVD_CONF_CHAIN_MAX], ctl_kept = !swap;
        for (int k = 0; ctl_kept && k < s->n_chain; k++)
            if ((ctl_idx[k] = cvd_conf_find_model(c, s->rt->conf->models[s->chain_idx[k]].name)) <
                0)
                ctl_kept = 0;
        if (!restart && !swap && !ctl_kept && s->eng && cvd_audio_engine_proc(s->eng)) {
            cvd_log_info("stream %s: a model of the chain set with convd-ctl is no longer in the "
                         "configuration: back to its own",
                         ns->name);
            swap = 1;
        }
        char before[1024], after[1024], changed[1024];
        int refreshed = 0; /* 1: convd-ctl's chain from its new files, 2: could not */
        chain_names(s->rt, s->chain_idx, s->n_chain, before, sizeof before);
        chain_names(rt, ns->chain_index, ns->n_chain, after, sizeof after);
        /* the same models by name, but a file of the running chain holds something new: it
         * was loaded again, and the stream switches to it as convd-ctl would */
        if (!restart && !swap && ctl_kept &&
            files_changed(s, rt, ctl_idx, changed, sizeof changed) > 0) {
            int own = s->n_chain == ns->n_chain &&
                      memcmp(ctl_idx, ns->chain_index, sizeof(int) * (size_t)s->n_chain) == 0;
            cvd_log_info("stream %s: reload: the file of model %s changed: loaded again", ns->name,
                         changed);
            if (own)
                swap = 1; /* the configuration's chain, prepared from the new files */
            else
                refreshed = 1 + refresh_ctl_chain(s, rt, ns, ctl_idx, before);
        }
        if (swap && s->eng != NULL && cvd_audio_engine_proc(s->eng) != NULL) {
            cvd_chain *chain = p && j < p->n ? p->chains[j] : NULL;
            int old_lat = cvd_audio_engine_latency(s->eng);
            int rc = cvd_audio_engine_swap_chain(s->eng, chain, p ? p->gin[j] : 1.0f,
                                                 p ? p->gout[j] : 1.0f);
            if (rc == 0) {
                if (p)
                    p->chains[j] = NULL;
                if (!s->running)
                    cvd_audio_engine_collect(s->eng, 1);
                char how[64] = "at once";
                if (s->running && ns->crossfade_ms > 0)
                    snprintf(how, sizeof how, "crossfading over %d ms", ns->crossfade_ms);
                cvd_log_info("stream %s: model '%s' swapped in without stopping the device "
                             "(reload: replaces '%s', %s; latency %d frames)",
                             ns->name, after, before, how, cvd_audio_engine_latency(s->eng));
                if (s->pub && cvd_audio_engine_latency(s->eng) != old_lat) {
                    cvd_pub_destroy(s->pub);
                    s->pub = NULL;
                }
                s->n_chain = ns->n_chain;
                memcpy(s->chain_idx, ns->chain_index, sizeof s->chain_idx);
            } else {
                cvd_log_info("stream %s: reload: model '%s' replaces '%s'%s: restarting the "
                             "stream",
                             ns->name, after, before,
                             rc == CVD_ESTATE ? " while a switch is still fading"
                                              : " with other channels");
                restart = 1;
            }
        } else if (swap && s->eng != NULL) {
            cvd_net *net = p && j < p->n ? p->nets[j] : NULL;
            int old_lat = cvd_audio_engine_latency(s->eng);
            int rc = net ? cvd_audio_engine_swap(s->eng, net) : CVD_ERANGE;
            if (rc == 0) {
                p->nets[j] = NULL;
                if (!s->running)
                    cvd_audio_engine_collect(s->eng, 1);
                cvd_log_info("stream %s: model '%s' swapped in without stopping the device "
                             "(reload: replaces '%s'; latency %d frames)",
                             ns->name, after, before, cvd_model_latency(nm));
                if (s->pub && cvd_model_latency(nm) != old_lat) {
                    /* subscribers were told the old latency: they see the end, and may
                     * subscribe again */
                    cvd_pub_destroy(s->pub);
                    s->pub = NULL;
                }
                s->n_chain = ns->n_chain;
                memcpy(s->chain_idx, ns->chain_index, sizeof s->chain_idx);
            } else {
                restart = 1;
            }
        } else if (!restart) {
            if (ctl_kept)
                memcpy(s->chain_idx, ctl_idx, sizeof(int) * (size_t)s->n_chain);
            if (!refreshed)
                cvd_log_info("stream %s: reload: model '%s' unchanged, keeps running", ns->name,
                             before);
        }
        if (!restart && s->eng && cvd_audio_engine_proc(s->eng) &&
            (ns->input_gain_db != s->conf->input_gain_db ||
             ns->output_gain_db != s->conf->output_gain_db)) {
            s->in_db = ns->input_gain_db;
            s->out_db = ns->output_gain_db;
            cvd_audio_proc_set_gains(cvd_audio_engine_proc(s->eng), ns->input_gain_db,
                                     ns->output_gain_db);
            cvd_log_info("stream %s: reload: gains now input %+.1f dB, output %+.1f dB", ns->name,
                         ns->input_gain_db, ns->output_gain_db);
        }
        if (restart) {
            cvd_log_info("stream %s: its device settings changed: restarting it (reload)",
                         ns->name);
            astream_free(s);
            a->s[i] = a->s[--a->n];
            continue; /* started below as a new stream */
        }
        /* the stream now belongs to the new runtime */
        cvd_runtime *old = s->rt;
        s->rt = cvd_runtime_ref(rt);
        s->conf = ns;
        s->model = nm;
        cvd_runtime_unref(old);
        kept[j] = 1;
        i++;
    }
    for (int j = 0; j < c->n_streams; j++)
        if (!kept[j])
            start_new(a, rt, j, now);
    free(kept);
    cvd_audio_prepared_destroy(p);
    set_timer(a);
}

/* ---- control (convd-ctl) ------------------------------------------------------------------- */

int cvd_audio_count(const cvd_audio *a)
{
    return a ? a->n : 0;
}

int cvd_audio_find(const cvd_audio *a, const char *name)
{
    for (int i = 0; a && i < a->n; i++)
        if (strcmp(a->s[i]->conf->name, name) == 0)
            return i;
    return -1;
}

void cvd_audio_status_of(cvd_audio *a, int i, cvd_audio_status *st)
{
    const astream *s = a->s[i];
    cvd_audio_proc *p = s->eng ? cvd_audio_engine_proc(s->eng) : NULL;
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", s->conf->name);
    st->running = s->running;
    st->rate = s->conf->rate;
    st->block = s->conf->block;
    st->in_ch = s->in_ch;
    st->out_ch = s->out_ch;
    chain_names(s->rt, s->chain_idx, s->n_chain, st->model, sizeof st->model);
    st->latency = s->eng ? cvd_audio_engine_latency(s->eng) : 0;
    st->latency_ms = (s->lat_in + s->lat_out) * 1000 + 1000.0 * st->latency / s->conf->rate;
    st->input_gain_db = s->in_db;
    st->output_gain_db = s->out_db;
    st->bypass = s->bypass;
    st->limit = s->conf->limit;
    st->crossfade_ms = s->conf->crossfade_ms;
    st->chain = s->in_ch > 0 && runs_chain(s->rt, s->conf);
    st->switching = p ? cvd_audio_proc_swapping(p) : 0;
    st->limiter_gain = p && s->conf->limit ? cvd_audio_proc_limiter_gain(p) : 1.0f;
    if (s->eng) {
        cvd_audio_counters c;
        cvd_audio_engine_counters(s->eng, &c);
        st->callbacks = c.callbacks;
        st->xruns = c.flags[0] + c.flags[1] + c.flags[2] + c.flags[3];
        st->underruns = c.underruns;
        st->swaps = c.swaps;
    }
}

int cvd_audio_set_chain(cvd_audio *a, int i, const char *list, char *msg, size_t n)
{
    astream *s = a->s[i];
    const cvd_conf *c = s->rt->conf;
    int idx[CVD_CONF_CHAIN_MAX], k = 0;
    char before[1024], after[1024];
    if (!(s->in_ch > 0 && runs_chain(s->rt, s->conf))) {
        snprintf(msg, n, "stream %s %s: its models cannot be switched", s->conf->name,
                 s->in_ch == 0 ? "plays a source (output-only)" : "runs a windowed model");
        return CVD_EINVAL;
    }
    /* "amp, cab", or "none" */
    if (strcmp(list, "none") != 0) {
        for (const char *p = list; *p;) {
            while (*p == ' ' || *p == ',')
                p++;
            const char *e = p;
            while (*e && *e != ',' && *e != ' ')
                e++;
            if (e == p)
                break;
            char name[CVD_CONF_NAME_MAX + 1];
            if ((size_t)(e - p) > CVD_CONF_NAME_MAX || k == CVD_CONF_CHAIN_MAX) {
                snprintf(msg, n, "model=%s: a list of at most %d model names", list,
                         CVD_CONF_CHAIN_MAX);
                return CVD_EINVAL;
            }
            memcpy(name, p, (size_t)(e - p));
            name[e - p] = '\0';
            if ((idx[k] = cvd_conf_find_model(c, name)) < 0) {
                size_t o = (size_t)snprintf(msg, n, "no model '%s' in %s (models:", name, c->file);
                for (int m = 0; m < c->n_models && o < n; m++)
                    o += (size_t)snprintf(msg + o, n - o, " %s", c->models[m].name);
                if (o < n)
                    snprintf(msg + o, n - o, ")");
                return CVD_EINVAL;
            }
            k++;
            p = e;
        }
    }
    cvd_chain *chain = NULL;
    float gin, gout;
    char note[1024];
    cvd_err err = {0};
    int rc = stream_chain(s->rt, s->conf, idx, k, &chain, &gin, &gout, note, sizeof note, &err);
    if (rc == 0 && chain != NULL &&
        (cvd_chain_in_channels(chain) != s->in_ch || cvd_chain_out_channels(chain) != s->out_ch))
        rc = cvd_err_set(&err, CVD_EINVAL,
                         "it takes %d channels and gives %d; stream %s has %d "
                         "and %d",
                         cvd_chain_in_channels(chain), cvd_chain_out_channels(chain), s->conf->name,
                         s->in_ch, s->out_ch);
    if (rc == 0 && chain == NULL && s->in_ch != s->out_ch && s->in_ch != 1)
        rc = cvd_err_set(&err, CVD_EINVAL,
                         "without a model stream %s would give %d channels, "
                         "not %d",
                         s->conf->name, s->in_ch, s->out_ch);
    chain_names(s->rt, s->chain_idx, s->n_chain, before, sizeof before);
    chain_names(s->rt, idx, k, after, sizeof after);
    if (rc < 0) {
        cvd_chain_destroy(chain);
        snprintf(msg, n, "model '%s': %s", after, err.msg);
        return rc;
    }
    if (s->eng != NULL) {
        if (cvd_audio_proc_swapping(cvd_audio_engine_proc(s->eng)))
            cvd_audio_engine_collect(s->eng, !s->running);
        rc = cvd_audio_engine_swap_chain(s->eng, chain, gin, gout);
        if (rc < 0) {
            cvd_chain_destroy(chain);
            snprintf(msg, n,
                     rc == CVD_ESTATE ? "stream %s is still fading to its last switch; "
                                        "try again in a moment"
                                      : "model '%s' does not fit stream %s",
                     rc == CVD_ESTATE ? s->conf->name : after, s->conf->name);
            return rc;
        }
        if (!s->running)
            cvd_audio_engine_collect(s->eng, 1);
    } else {
        cvd_chain_destroy(chain); /* built when the device opens */
    }
    s->n_chain = k;
    memcpy(s->chain_idx, idx, sizeof(int) * (size_t)k);
    char how[64] = "at once";
    if (s->running && s->conf->crossfade_ms > 0)
        snprintf(how, sizeof how, "crossfading over %d ms", s->conf->crossfade_ms);
    else if (!s->running)
        snprintf(how, sizeof how, "from its next start (not running now)");
    const int lat = s->eng ? cvd_audio_engine_latency(s->eng) : 0;
    snprintf(msg, n, "stream %s: model '%s' replaces '%s', %s; latency %d frames (%.2f ms)%s",
             s->conf->name, after, before, how, lat, 1000.0 * lat / s->conf->rate, note);
    cvd_log_info("%s (convd-ctl)", msg);
    if (s->pub && s->eng) {
        /* subscribers were told the old latency: they see the end, and may subscribe again */
        cvd_pub_destroy(s->pub);
        s->pub = NULL;
    }
    return CVD_OK;
}

int cvd_audio_set_gains(cvd_audio *a, int i, int set_in, double in_db, int set_out, double out_db,
                        char *msg, size_t n)
{
    astream *s = a->s[i];
    if ((set_in && (!(in_db >= -60) || !(in_db <= 60))) ||
        (set_out && (!(out_db >= -60) || !(out_db <= 60)))) {
        snprintf(msg, n, "gains are -60..60 dB");
        return CVD_EINVAL;
    }
    if (!(s->in_ch > 0 && runs_chain(s->rt, s->conf))) {
        snprintf(msg, n, "stream %s has no gains (%s)", s->conf->name,
                 s->in_ch == 0 ? "output-only" : "a windowed model");
        return CVD_EINVAL;
    }
    if (set_in)
        s->in_db = in_db;
    if (set_out)
        s->out_db = out_db;
    if (s->eng && cvd_audio_engine_proc(s->eng))
        cvd_audio_proc_set_gains(cvd_audio_engine_proc(s->eng), s->in_db, s->out_db);
    snprintf(msg, n, "stream %s: input gain %+.1f dB, output gain %+.1f dB", s->conf->name,
             s->in_db, s->out_db);
    cvd_log_info("%s (convd-ctl)", msg);
    return CVD_OK;
}

int cvd_audio_set_bypass(cvd_audio *a, int i, int on, char *msg, size_t n)
{
    astream *s = a->s[i];
    if (!(s->in_ch > 0 && runs_chain(s->rt, s->conf))) {
        snprintf(msg, n, "stream %s cannot be bypassed (%s)", s->conf->name,
                 s->in_ch == 0 ? "output-only" : "a windowed model");
        return CVD_EINVAL;
    }
    s->bypass = on != 0;
    if (s->eng && cvd_audio_engine_proc(s->eng))
        cvd_audio_proc_set_bypass(cvd_audio_engine_proc(s->eng), s->bypass);
    snprintf(msg, n, "stream %s: bypass %s (fading over %d ms)", s->conf->name,
             on ? "on: the input plays unprocessed" : "off: processed again",
             s->conf->crossfade_ms);
    cvd_log_info("%s (convd-ctl)", msg);
    return CVD_OK;
}
