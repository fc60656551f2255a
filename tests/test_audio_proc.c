/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A live stream's processing (server/audio_proc.c) inside the audio engine, in-process, as the
 * callback runs it (no device needed):
 *
 *   - device rates 44100, 48000, 88200, 96000 against a model at 48000: a sweep through the
 *     resampler pair and back stays within -90 dB of the input, delayed by exactly the latency
 *     the engine reports (found again by cross-correlation); the callback allocates nothing;
 *   - a chain amp + cabinet IR in the engine equals the same chain run offline (what convd-run
 *     runs), frame for frame, delayed by the reported latency;
 *   - a preset switch under a running stream: no step between frames larger than the signal's
 *     own plus the crossfade's envelope, nothing allocated, and once the fade is over the
 *     output is bit for bit a fresh run of the new chain; gains ramp, bypass fades.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <poll.h>
#include <sndfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc_count.h"
#include "audio.h"
#include "audio_proc.h"
#include "convd_model.h"
#include "daemon_util.h"

#define NAM_W "tests/data/nam/wide16_tanh.nam" /* 1 -> 1, latency 0, 48 kHz */
#define NAM_N "tests/data/nam/nano_tanh.nam"   /* 1 -> 1, latency 0 */

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(120);
}

static void suite_fini(void)
{
    du_tmp_remove();
}

TestSuite(audioproc, .init = suite_init, .fini = suite_fini);

/* a mono WAV (float) at rate of the n samples h */
static const char *write_wav(const char *name, const float *h, int n, int rate)
{
    const char *path = du_tmp(name);
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    cr_assert_not_null(f, "%s: %s", path, sf_strerror(NULL));
    cr_assert_eq(sf_writef_float(f, h, n), n);
    sf_close(f);
    return path;
}

/* an impulse response model from h (not normalised) at its rate */
static cvd_model *ir_model(const char *name, const float *h, int n, int rate)
{
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.normalize = 0;
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_ir_load(write_wav(name, h, n, rate), &o, &m, &err), 0, "%s", err.msg);
    return m;
}

static cvd_audio_engine *chain_engine(cvd_model **models, int n, int rate, int block, int crossfade)
{
    cvd_chain *chain = NULL;
    cvd_err err = {0};
    cvd_chain_config cc = {.rate = rate, .max_block = block, .fixed = 1, .in_channels = 1};
    if (n > 0)
        cr_assert_eq(cvd_chain_create(models, NULL, n, &cc, &chain, &err), 0, "%s", err.msg);
    cvd_audio_proc_config pc = {
        .in_channels = 1, .out_channels = 1, .block = block, .rate = rate, .crossfade = crossfade};
    cvd_audio_proc *proc = NULL;
    cr_assert_eq(cvd_audio_proc_create(&pc, chain, 1.0f, 1.0f, &proc, &err), 0, "%s", err.msg);
    cvd_audio_engine_config ec = {.in_channels = 1,
                                  .capture_channels = 1,
                                  .out_channels = 1,
                                  .play_channels = 1,
                                  .block = block,
                                  .rate = rate};
    cvd_audio_engine *e = NULL;
    cr_assert_eq(cvd_audio_engine_create_proc(&ec, proc, NULL, &e, &err), 0, "%s", err.msg);
    return e;
}

/* an exponential sine sweep from f0 to f1 Hz over n frames at rate, amplitude a */
static float *sweep(size_t n, double rate, double f0, double f1, double a)
{
    float *x = malloc(sizeof(float) * n);
    const double T = (double)n / rate, k = log(f1 / f0);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        double ph = 2 * M_PI * f0 * T / k * (exp(t * k / T) - 1);
        /* 10 ms fades at both ends */
        double w = fmin(1.0, fmin((double)i, (double)(n - 1 - i)) / (0.01 * rate));
        x[i] = (float)(a * w * sin(ph));
    }
    return x;
}

/* run x (n frames, mono) through the engine in blocks of `block`, n frames out */
static float *run_engine(cvd_audio_engine *e, const float *x, size_t n, int block, long *allocs)
{
    float *y = calloc(n, sizeof(float));
    long before = alloc_count();
    for (size_t k = 0; k < n; k += (size_t)block) {
        size_t m = n - k < (size_t)block ? n - k : (size_t)block;
        cvd_audio_engine_process(e, x + k, y + k, (unsigned long)m, 0);
    }
    if (allocs)
        *allocs = alloc_count() - before;
    return y;
}

Test(audioproc, device_rates_resample_to_a_48k_model_and_back_within_90_db)
{
    static const int rates[] = {44100, 48000, 88200, 96000};
    const float one = 1.0f;
    cvd_model *m = ir_model("identity.wav", &one, 1, 48000); /* an identity at 48 kHz */
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        const int rate = rates[r], block = 64;
        const size_t n = (size_t)rate; /* a second */
        cvd_audio_engine *e = chain_engine(&m, 1, rate, block, 0);
        const int lat = cvd_audio_engine_latency(e);
        cr_assert(rate == 48000 ? lat == 0 : lat > 0, "%d Hz: latency %d", rate, lat);
        /* in band for every rate: 50 Hz .. 18 kHz */
        float *x = sweep(n, rate, 50, 18000, 0.5);
        long allocs = -1;
        float *y = run_engine(e, x, n, block, &allocs);
        cr_expect_eq(allocs, 0, "%d Hz: the callback allocated %ld times", rate, allocs);
        /* the delay measured: the lag of the cross-correlation's peak */
        int best = -1;
        double best_c = -1;
        for (int d = 0; d < 2048; d++) {
            double c = 0;
            for (size_t i = (size_t)rate / 4; i < (size_t)rate / 2; i++)
                c += (double)x[i] * y[i + (size_t)d];
            if (c > best_c) {
                best_c = c;
                best = d;
            }
        }
        cr_expect_eq(best, lat, "%d Hz: measured delay %d frames, reported %d", rate, best, lat);
        /* the error against the input delayed by the reported latency, after the start */
        double err = 0, sig = 0;
        for (size_t i = (size_t)lat + (size_t)rate / 50; i < n - (size_t)rate / 50; i++) {
            double dlt = (double)y[i] - x[i - (size_t)lat];
            err += dlt * dlt;
            sig += (double)x[i - (size_t)lat] * x[i - (size_t)lat];
        }
        double db = 10 * log10(err / sig + 1e-30);
        cr_expect_lt(db, -90.0, "%d Hz: error %.1f dB against the input delayed %d frames", rate,
                     db, lat);
        cvd_audio_engine_destroy(e);
        free(x);
        free(y);
    }
    cvd_model_unref(m);
}

/* amp (a .nam without a rate... this one declares 48 kHz) + a cabinet IR, at 44.1 kHz: the
 * engine's output is the offline chain's (what convd-run runs) delayed by the latency */
Test(audioproc, amp_and_cabinet_chain_equals_the_offline_chain)
{
    const int rate = 44100, block = 128;
    const size_t n = 30000;
    cvd_model *amp = du_load_model(NAM_W);
    float h[2000];
    cvd_rng g;
    cvd_rng_seed(&g, 11);
    for (int i = 0; i < 2000; i++)
        h[i] = (float)((cvd_rng_uniform(&g) - 0.5) * exp(-i / 300.0));
    cvd_model *cab = ir_model("cab.wav", h, 2000, 48000);
    cvd_model *models[2] = {amp, cab};
    cvd_audio_engine *e = chain_engine(models, 2, rate, block, 0);
    const int lat = cvd_audio_engine_latency(e);
    float *x = sweep(n, rate, 80, 8000, 0.4);
    long allocs = -1;
    float *y = run_engine(e, x, n, block, &allocs);
    cr_expect_eq(allocs, 0);

    /* offline: the variable-mode chain, whole, flushed */
    cvd_chain *off = NULL;
    cvd_chain_config cc = {.rate = rate, .max_block = 1000, .in_channels = 1};
    cr_assert_eq(cvd_chain_create(models, NULL, 2, &cc, &off, NULL), 0);
    float *ref = calloc(n + 100000, sizeof(float)),
          *tmp = malloc(sizeof(float) * (size_t)cvd_chain_max_out(off));
    size_t got = 0;
    int no = 0;
    for (size_t k = 0; k < n; k += 1000) {
        cr_assert_eq(cvd_chain_process(off, x + k, n - k < 1000 ? (int)(n - k) : 1000, tmp, &no),
                     0);
        memcpy(ref + got, tmp, sizeof(float) * (size_t)no);
        got += (size_t)no;
    }
    while (cvd_chain_flush(off, tmp, &no) == 1 || no > 0) {
        memcpy(ref + got, tmp, sizeof(float) * (size_t)no);
        got += (size_t)no;
        if (no == 0)
            break;
    }
    cr_assert_geq(got, n);
    double worst = 0;
    for (size_t i = (size_t)lat; i < n; i++) {
        double d = fabs((double)y[i] - ref[i - (size_t)lat]);
        if (d > worst)
            worst = d;
    }
    cr_expect_lt(worst, 1e-6, "engine vs offline chain: %g (latency %d)", worst, lat);
    for (int i = 0; i < lat; i++)
        cr_expect_eq(y[i], 0.0f, "silence before the latency");
    cvd_chain_destroy(off);
    cvd_audio_engine_destroy(e);
    cvd_model_unref(amp);
    cvd_model_unref(cab);
    free(x);
    free(y);
    free(ref);
    free(tmp);
}

static double max_step(const float *y, size_t from, size_t to)
{
    double m = 0;
    for (size_t i = from + 1; i < to; i++)
        m = fmax(m, fabs((double)y[i] - y[i - 1]));
    return m;
}

Test(audioproc, preset_switch_crossfades_without_a_click_and_ends_as_a_fresh_run)
{
    const int rate = 48000, block = 64, fade = 960; /* 20 ms */
    const size_t n = 48000, at = 200 * 64;          /* the switch at block 200 */
    cvd_model *a = du_load_model(NAM_W), *b = du_load_model(NAM_N);
    cvd_audio_engine *e = chain_engine(&a, 1, rate, block, fade);
    /* a guitar-like signal: two partials, enough level to drive the models */
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.4 * sin(2 * M_PI * 110 * i / rate) + 0.2 * sin(2 * M_PI * 331 * i / rate));
    float *y = calloc(n, sizeof(float));
    for (size_t k = 0; k < at; k += (size_t)block)
        cvd_audio_engine_process(e, x + k, y + k, (unsigned long)block, 0);

    cvd_chain *nb = NULL;
    cvd_chain_config cc = {.rate = rate, .max_block = block, .fixed = 1, .in_channels = 1};
    cr_assert_eq(cvd_chain_create(&b, NULL, 1, &cc, &nb, NULL), 0);
    cr_assert_eq(cvd_audio_engine_swap_chain(e, nb, 1.0f, 1.0f), 0);
    long before = alloc_count();
    for (size_t k = at; k < n; k += (size_t)block)
        cvd_audio_engine_process(e, x + k, y + k, (unsigned long)block, 0);
    cr_expect_eq(alloc_count() - before, 0, "the switch allocated in the callback");
    cr_assert_eq(cvd_audio_engine_collect(e, 0), 1, "the old chain comes back after the fade");
    cvd_audio_proc *p = cvd_audio_engine_proc(e);
    cr_expect_eq(cvd_audio_proc_swaps(p), 1);
    cr_expect_eq(cvd_audio_proc_fades(p), 1);

    /* the old chain alone, and the new one fed from the switch on (a fresh run): the two
     * signals the fade mixes */
    cvd_audio_engine *ea = chain_engine(&a, 1, rate, block, 0);
    float *ya = run_engine(ea, x, n, block, NULL);
    cvd_audio_engine *fresh = chain_engine(&b, 1, rate, block, 0);
    float *yf = run_engine(fresh, x + at, n - at, block, NULL);
    double own = fmax(max_step(ya, at - 2000, at + fade + 2000), max_step(yf, 0, fade + 2000));
    double diff = 0;
    for (size_t i = at; i < at + fade; i++)
        diff = fmax(diff, fabs((double)ya[i] - yf[i - at]));
    /* the envelope's steepest step: pi / (2 * fade) of the difference between the chains */
    double envelope = diff * M_PI / (2.0 * fade);
    double step = max_step(y, at - 2000, at + fade + 2000);
    cr_expect_leq(step, own + envelope + 1e-6,
                  "step %.6f around the switch; the signals' own %.6f + envelope %.6f", step, own,
                  envelope);
    /* without the fade the switch would step by up to the chains' difference */
    cr_expect_gt(diff, 4 * (own + envelope), "the chains differ too little for the test to tell");
    /* before the switch: chain a exactly */
    cr_expect_eq(memcmp(y, ya, sizeof(float) * at), 0);
    /* after the fade: a fresh run of the new chain fed from the switch on, bit for bit */
    cr_expect_eq(memcmp(y + at + fade, yf + fade, sizeof(float) * (n - at - fade)), 0,
                 "after the fade the output is not a fresh run's");
    /* and a click-free switch really mixes: mid-fade it is neither chain alone */
    size_t mid = at + fade / 2;
    cr_expect(fabs(y[mid] - yf[fade / 2]) > 0 || fabs(y[mid] - ya[mid]) > 0);
    cvd_audio_engine_destroy(e);
    cvd_audio_engine_destroy(ea);
    cvd_audio_engine_destroy(fresh);
    cvd_model_unref(a);
    cvd_model_unref(b);
    free(x);
    free(y);
    free(ya);
    free(yf);
}

Test(audioproc, gains_ramp_bypass_fades_and_the_limiter_holds_the_ceiling)
{
    const int rate = 48000, block = 64, fade = 480;
    const size_t n = 8192;
    cvd_audio_engine *e = chain_engine(NULL, 0, rate, block, fade); /* pass-through */
    cvd_audio_proc *p = cvd_audio_engine_proc(e);
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f;
    cvd_audio_proc_set_gains(p, 0, 6.0);
    float *y = run_engine(e, x, n, block, NULL);
    /* the first block ramps from 1 to 2 (+6.02 dB), then holds */
    cr_expect_lt(y[0], 0.6f);
    cr_expect_float_eq(y[block - 1], 0.5f * powf(10, 6.0f / 20), 1e-6);
    cr_expect_float_eq(y[n - 1], 0.5f * powf(10, 6.0f / 20), 1e-6);
    double di, dout;
    cvd_audio_proc_get_gains(p, &di, &dout);
    cr_expect_eq(dout, 6.0);
    free(y);
    /* bypass: the dry input back, along the fade */
    cvd_audio_proc_set_bypass(p, 1);
    y = run_engine(e, x, n, block, NULL);
    cr_expect_gt(y[0], 0.5f);
    cr_expect_float_eq(y[fade + 10], 0.5f, 1e-6);
    cr_expect_leq(max_step(y, 0, n), 0.5 * (powf(10, 6.0f / 20) - 1) / fade + 1e-6);
    cvd_audio_engine_destroy(e);
    free(y);

    /* the limiter: +30 dB of a 0.5 sine never reaches 0 dBFS */
    cvd_audio_proc_config pc = {
        .in_channels = 1, .out_channels = 1, .block = block, .rate = rate, .limit = 1};
    cvd_audio_proc *lp = NULL;
    cr_assert_eq(cvd_audio_proc_create(&pc, NULL, 1.0f, 1.0f, &lp, NULL), 0);
    cvd_audio_proc_set_gains(lp, 30, 0);
    float buf[64];
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * sin(2 * M_PI * 200 * i / rate));
    double peak = 0;
    for (size_t k = 0; k + block <= n; k += block) {
        cvd_audio_proc_process(lp, x + k, block, buf);
        for (int i = 0; i < block; i++)
            peak = fmax(peak, fabs(buf[i]));
    }
    cr_expect_lt(peak, 1.0);
    cr_expect_gt(peak, 0.7);
    cr_expect_lt(cvd_audio_proc_limiter_gain(lp), 1.0f);
    cvd_audio_proc_destroy(lp);
    free(x);
}

/* raw listener: sends len bytes, then the end of input; returns what came back (*got bytes) */
static float *du_raw_roundtrip(int port, const void *data, size_t len, size_t *got)
{
    int fd = du_connect(port);
    size_t sent = 0, cap = len + 65536, have = 0;
    char *buf = malloc(cap);
    int wr_open = 1;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
        cr_assert_geq(poll(&pf, 1, 20000), 1, "raw: no progress in 20 s");
        if (pf.revents & POLLOUT) {
            size_t chunk = len - sent < 4096 ? len - sent : 4096;
            ssize_t w = send(fd, (const char *)data + sent, chunk, MSG_NOSIGNAL);
            cr_assert_geq(w, 0);
            sent += (size_t)w;
            if (sent == len) {
                shutdown(fd, SHUT_WR);
                wr_open = 0;
            }
        }
        if (pf.revents & (POLLIN | POLLHUP)) {
            if (have == cap)
                buf = realloc(buf, cap *= 2);
            ssize_t r = recv(fd, buf + have, cap - have, 0);
            cr_assert_geq(r, 0);
            if (r == 0)
                break;
            have += (size_t)r;
        }
    }
    close(fd);
    *got = have;
    return (float *)(void *)buf;
}

/* A framed session whose HELLO says 44100 for a 48 kHz model, and a raw listener with
 * rate = 44100 running amp + cabinet: the daemon resamples; what comes back is the offline
 * chain at 44100 (what convd-run --rate computes), frame for frame */
Test(audioproc, sessions_at_another_rate_are_resampled_like_the_offline_chain)
{
    const int rate = 44100;
    const size_t n = 20000;
    float h[300];
    for (int i = 0; i < 300; i++)
        h[i] = (float)(exp(-i / 40.0) * (i % 7 == 0 ? 1 : -0.3));
    const char *irp = write_wav("cab2.wav", h, 300, 48000);
    char conf[2048];
    snprintf(conf, sizeof conf,
             "[model amp]\npath = %s\n[model cab]\npath = %s\nir_normalize = no\n"
             "[listen framed]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = amp\n"
             "[listen raw]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = amp, cab\n"
             "rate = 44100\nblock = 100\n",
             du_src(NAM_W), irp);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    int pf = du_daemon_port(&d, "framed"), pr = du_daemon_port(&d, "raw");
    float *x = sweep(n, rate, 60, 15000, 0.4);
    du_write_file(du_tmp("in.f32"), x, sizeof(float) * n);

    /* framed, through convd-cat: HELLO rate 44100 */
    char port[16];
    snprintf(port, sizeof port, "%d", pf);
    const char *argv[] = {du_prog("convd-cat"),
                          "-q",
                          "-p",
                          port,
                          "--rate",
                          "44100",
                          "--channels",
                          "1",
                          du_tmp("in.f32"),
                          du_tmp("out.f32"),
                          NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "convd-cat: %s", p.err);
    du_proc_free(&p);
    size_t ny = 0;
    float *y = du_read_f32(du_tmp("out.f32"), &ny);
    cr_assert_eq(ny, n, "%zu frames back for %zu", ny, n);

    cvd_model *amp = du_load_model(NAM_W);
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.normalize = 0;
    cvd_model *cab = NULL;
    cr_assert_eq(cvd_ir_load(irp, &o, &cab, NULL), 0);
    cvd_model *both[2] = {amp, cab};
    for (int k = 1; k <= 2; k++) {
        cvd_chain *c = NULL;
        cvd_chain_config cc = {.rate = rate, .max_block = 1000, .in_channels = 1};
        cr_assert_eq(cvd_chain_create(both, NULL, k, &cc, &c, NULL), 0);
        float *ref = calloc(n + 4096, sizeof(float)),
              *tmp = malloc(sizeof(float) * (size_t)cvd_chain_max_out(c));
        size_t got = 0;
        int no = 0;
        for (size_t i = 0; i < n; i += 1000) {
            cr_assert_eq(cvd_chain_process(c, x + i, 1000, tmp, &no), 0);
            memcpy(ref + got, tmp, sizeof(float) * (size_t)no);
            got += (size_t)no;
        }
        while (got < n + 4096 - 2048) {
            int more = cvd_chain_flush(c, tmp, &no);
            memcpy(ref + got, tmp, sizeof(float) * (size_t)no);
            got += (size_t)no;
            if (more != 1)
                break;
        }
        cr_assert_geq(got, n);
        float *yy = y;
        size_t nyy = ny;
        if (k == 2) {
            /* the raw listener: raw f32 in, raw f32 out, then the end of input */
            yy = du_raw_roundtrip(pr, x, n * sizeof(float), &nyy);
            nyy /= sizeof(float);
            cr_assert_eq(nyy, n, "raw: %zu frames back for %zu", nyy, n);
        }
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)yy[i] - ref[i]));
        cr_expect_lt(worst, 1e-6, "%s: largest difference from the offline chain %g",
                     k == 1 ? "framed, HELLO rate 44100" : "raw, rate = 44100, amp + cab", worst);
        if (yy != y)
            free(yy);
        cvd_chain_destroy(c);
        free(ref);
        free(tmp);
    }
    du_daemon_finish(&d, 20);
    cvd_model_unref(amp);
    cvd_model_unref(cab);
    free(x);
    free(y);
}

/* A model whose file declares no sample rate is said once a load, plainly, naming it; one
 * whose [model] section gives its rate is not; a listener's log line names its chain */
Test(audioproc, an_undeclared_rate_is_said_once_and_the_listener_names_its_chain)
{
    size_t len;
    char *text = du_read_file(du_src(NAM_W), &len);
    cr_assert_not_null(text);
    char *k = strstr(text, "\"sample_rate\"");
    cr_assert_not_null(k);
    memcpy(k, "\"sample_ratX\"", 13); /* an unknown key NAM ignores: no rate declared */
    const char *amp = du_tmp("norate.nam");
    du_write_file(amp, text, len);
    free(text);
    char conf[2048];
    snprintf(conf, sizeof conf,
             "[model bare]\npath = %s\n[model given]\npath = %s\nrate = 48000\n"
             "[listen raw]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = bare, given\n",
             amp, amp);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    char *log;
    du_daemon_wait_log(&d, "listen raw: ", 0, 20, &log);
    free(log);
    du_daemon_finish(&d, 20);
    log = du_daemon_log(&d);
    char want[1024];
    snprintf(want, sizeof want,
             "model bare: %s declares no sample rate: it runs at the rate of each stream or "
             "session it is given, unresampled (set [model bare] rate = ",
             amp);
    const char *hit = strstr(log, want);
    cr_expect_not_null(hit, "%s", log);
    cr_expect(hit == NULL || strstr(hit + 1, want) == NULL, "said more than once:\n%s", log);
    cr_expect_null(strstr(log, "model given: "), "%s", log);
    cr_expect_not_null(strstr(log, ", model bare, given (1 -> 1 channels, latency 0 frames)"), "%s",
                       log);
    free(log);
}
