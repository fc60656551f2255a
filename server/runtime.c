/* SPDX-License-Identifier: Apache-2.0 */
/* Runtimes: see runtime.h. */
#include "runtime.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin_models.h"
#include "convd_model.h"
#include "nats.h"

int cvd_runtime_load_model(const char *path, cvd_model **out, cvd_err *err)
{
    *out = NULL;
    if (strncmp(path, "builtin:", 8) == 0) {
        const char *name = path + 8;
        for (const cvd_builtin_model *b = cvd_builtin_models; b->name; b++)
            if (strcmp(b->name, name) == 0)
                return cvd_json_model_parse(b->text, b->len, path, NULL, out, err);
        size_t n = 0;
        char known[256] = "";
        for (const cvd_builtin_model *b = cvd_builtin_models; b->name; b++) {
            n += (size_t)snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                                  n ? ", " : "", b->name);
            if (strlen(known) >= sizeof known - 1)
                break;
        }
        return cvd_err_set(err, CVD_EINVAL, "%s: no built-in model of that name (built in: %s)",
                           path, known[0] ? known : "none");
    }
    return cvd_model_load(path, out, err);
}

/* FNV-1a, 64 bits, over n bytes, continuing from h */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t cvd_runtime_file_hash(const char *path)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ull, path, strlen(path));
    if (strncmp(path, "builtin:", 8) == 0)
        return h;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        unsigned char buf[65536];
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0)
            h = fnv1a(h, buf, (size_t)r);
        h = fnv1a(h, &st.st_size, sizeof st.st_size);
    } else if (fstat(fd, &st) == 0) {
        /* a folder (a SavedModel): what it says of itself */
        h = fnv1a(h, &st.st_mtim, sizeof st.st_mtim);
        h = fnv1a(h, &st.st_ino, sizeof st.st_ino);
    }
    close(fd);
    return h ? h : 1;
}

void cvd_runtime_unref(cvd_runtime *rt)
{
    if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
        return;
    for (int i = 0; rt->models && i < rt->conf->n_models; i++)
        cvd_model_unref(rt->models[i]);
    for (int i = 0; rt->tls && i < rt->conf->n_listens; i++)
        cvd_tls_ctx_unref(rt->tls[i]);
    for (int i = 0; rt->tokens && i < rt->conf->n_listens; i++)
        cvd_tokens_destroy(rt->tokens[i]);
    free(rt->models);
    free(rt->model_hash);
    free(rt->memfigs);
    free(rt->tls);
    free(rt->tokens);
    cvd_conf_destroy(rt->conf);
    free(rt);
}

cvd_runtime *cvd_runtime_ref(cvd_runtime *rt)
{
    atomic_fetch_add(&rt->refs, 1);
    return rt;
}

/* The channels an impulse response (model i) is given: the output channels of
 * the model before it in the first stream or listener that runs it, or the
 * stream's channels when it comes first (models are loaded before impulse
 * responses); 1 when nothing says. */
static int ir_in_channels(const cvd_runtime *rt, int i)
{
    const cvd_conf *c = rt->conf;
    for (int s = 0; s < c->n_streams + c->n_listens; s++) {
        const int *idx =
            s < c->n_streams ? c->streams[s].chain_index : c->listens[s - c->n_streams].chain_index;
        const int n =
            s < c->n_streams ? c->streams[s].n_chain : c->listens[s - c->n_streams].n_chain;
        const int ch =
            s < c->n_streams ? c->streams[s].channels : c->listens[s - c->n_streams].channels;
        for (int k = 0; k < n; k++) {
            if (idx[k] != i)
                continue;
            if (k == 0)
                return ch > 0 ? ch : 1;
            const cvd_model *prev = rt->models[idx[k - 1]];
            return prev ? cvd_model_out_channels(prev) : 1;
        }
    }
    return 1;
}

int cvd_runtime_chain(const cvd_runtime *rt, const int *idx, int n, double rate, int block,
                      int fixed, long hop, cvd_chain **out, cvd_err *err)
{
    cvd_model *models[CVD_CHAIN_MAX_MODELS];
    const char *names[CVD_CHAIN_MAX_MODELS];
    *out = NULL;
    if (n < 1 || n > CVD_CHAIN_MAX_MODELS)
        return cvd_err_set(err, CVD_EINVAL, "a chain of %d models (1 to %d)", n,
                           CVD_CHAIN_MAX_MODELS);
    for (int k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= rt->conf->n_models)
            return cvd_err_set(err, CVD_EINVAL, "no such model");
        models[k] = rt->models[idx[k]];
        names[k] = rt->conf->models[idx[k]].name;
    }
    cvd_chain_config cc = {.rate = rate,
                           .max_block = block,
                           .fixed = fixed,
                           .in_channels = cvd_model_in_channels(models[0]),
                           .hop = hop,
                           /* threads = 2 of a model that runs alone (docs/THREADS.md) */
                           .threads = n == 1 ? cvd_runtime_model_threads(rt, models[0]) : 1};
    return cvd_chain_create(models, names, n, &cc, out, err);
}

void cvd_runtime_chain_levels(const cvd_runtime *rt, const int *idx, int n, cvd_levels *lv,
                              int *normalize)
{
    cvd_model *models[CVD_CHAIN_MAX_MODELS];
    int k;
    *normalize = 0;
    for (k = 0; k < n && k < CVD_CHAIN_MAX_MODELS; k++) {
        models[k] = rt->models[idx[k]];
        if (rt->conf->models[idx[k]].normalize)
            *normalize = 1;
    }
    cvd_levels_of_chain(models, k, lv);
}

int cvd_runtime_create(const char *path, cvd_runtime **out, cvd_err *err)
{
    static atomic_ullong generation;
    cvd_runtime *rt;
    int rc;

    *out = NULL;
    rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    atomic_init(&rt->refs, 1);
    rc = path ? cvd_conf_load(path, &rt->conf, err) : cvd_conf_load_default(&rt->conf, err);
    if (rc < 0) {
        free(rt);
        return rc;
    }
    const cvd_conf *c = rt->conf;
    rt->models = calloc((size_t)c->n_models + 1, sizeof *rt->models);
    rt->model_hash = calloc((size_t)c->n_models + 1, sizeof *rt->model_hash);
    if (rt->models == NULL || rt->model_hash == NULL) {
        cvd_runtime_unref(rt);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    /* models first, then impulse responses, which take the channels of what feeds
     * them */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->n_models; i++) {
            const cvd_conf_model *cm = &c->models[i];
            const int ir =
                !cm->builtin && (cm->type == CVD_CONF_MODEL_IR || cvd_model_is_ir_path(cm->path));
            if (ir != pass)
                continue;
            /* what the file holds, before it is read: a file rewritten in place
             * meanwhile is read again on the next reload */
            rt->model_hash[i] = cvd_runtime_file_hash(cm->path);
            if (ir) {
                cvd_ir_options o;
                cvd_ir_options_init(&o);
                o.rate = cm->rate;
                o.normalize = cm->ir_normalize;
                o.in_channels = ir_in_channels(rt, i);
                rc = cvd_ir_load(cm->path, &o, &rt->models[i], err);
            } else {
                rc = cvd_runtime_load_model(cm->path, &rt->models[i], err);
            }
            if (rc == 0)
                rc = cvd_model_can_stream(rt->models[i], err);
            if (rc < 0) {
                cvd_err_prefix(err, "%s:%d: path", c->file, cm->path_line);
                cvd_runtime_unref(rt);
                return rc;
            }
            double file_rate = cvd_model_sample_rate(rt->models[i]);
            if (cm->rate > 0 && file_rate > 0 && file_rate != (double)cm->rate && !ir) {
                rc = cvd_err_set(err, CVD_EINVAL,
                                 "%s:%d: rate: model '%s' declares %.0f Hz in its file, not %d",
                                 c->file, cm->rate_line, cm->name, file_rate, cm->rate);
                cvd_runtime_unref(rt);
                return rc;
            }
            if (cm->rate > 0 && file_rate <= 0)
                cvd_model_set_sample_rate(rt->models[i], cm->rate);
            if (cm->hop != 0 && cvd_model_mode(rt->models[i]) != CVD_MODE_WINDOWED) {
                rc =
                    cvd_err_set(err, CVD_EINVAL,
                                "%s:%d: hop: model '%s' streams frame by frame (it has no window); "
                                "hop applies to windowed models only",
                                c->file, cm->hop_line, cm->name);
                cvd_runtime_unref(rt);
                return rc;
            }
        }
    /* every listener's channels agree with its model */
    for (int i = 0; i < c->n_listens; i++) {
        const cvd_conf_listen *l = &c->listens[i];
        if (l->model_index < 0)
            continue;
        int in = cvd_model_in_channels(rt->models[l->model_index]);
        if (l->channels != 0 && l->channels != in) {
            rc = cvd_err_set(err, CVD_EINVAL,
                             "%s:%d: channels: %d, but model '%s' takes %d input channels", c->file,
                             l->line, l->channels, l->model, in);
            cvd_runtime_unref(rt);
            return rc;
        }
    }
    /* every listener's chain (model = a, b), and a model its rate resamples,
     * builds: channels agree, no model that runs on windows or changes the frame
     * rate among others or resampled, a rate the resampler takes */
    for (int i = 0; i < c->n_listens; i++) {
        const cvd_conf_listen *l = &c->listens[i];
        int resampled = 0; /* rate = set, and a model runs at another (conn.c's rule) */
        for (int k = 0; l->rate_line && k < l->n_chain; k++) {
            const double mr = cvd_model_sample_rate(rt->models[l->chain_index[k]]);
            resampled |= mr > 0 && mr != (double)l->rate;
        }
        if (l->n_chain < 2 && !resampled)
            continue;
        cvd_chain *ch = NULL;
        rc = cvd_runtime_chain(
            rt, l->chain_index, l->n_chain, resampled ? l->rate : 0, l->block, 0,
            l->n_chain == 1 ? cvd_runtime_model_hop(rt, rt->models[l->chain_index[0]]) : 0, &ch,
            err);
        cvd_chain_destroy(ch);
        if (rc < 0) {
            cvd_err_prefix(err, "%s:%d: model", c->file, l->line);
            cvd_runtime_unref(rt);
            return rc;
        }
    }
    /* every audio stream's channels and models agree (docs/AUDIO.md) */
    for (int i = 0; i < c->n_streams; i++) {
        cvd_conf_stream *st = &c->streams[i];
        if (st->model_index < 0)
            continue;
        const cvd_model *m = rt->models[st->model_index];
        const cvd_model *last = rt->models[st->chain_index[st->n_chain - 1]];
        const int line = st->model_line ? st->model_line : st->line;
        int in = cvd_model_in_channels(m);
        rc = 0;
        if (st->n_in_map && st->n_in_map != in)
            rc = cvd_err_set(err, CVD_EINVAL,
                             "%s:%d: input_channels: %d channels listed, but model '%s' takes %d",
                             c->file, st->in_map_line, st->n_in_map, st->model, in);
        else if (st->channels != 0 && st->channels != in)
            rc = cvd_err_set(err, CVD_EINVAL,
                             "%s:%d: channels: %d, but model '%s' takes %d input channels", c->file,
                             line, st->channels, st->model, in);
        for (int k = 0; rc == 0 && k < st->n_chain; k++) {
            const cvd_model *mk = rt->models[st->chain_index[k]];
            if (st->output[0] &&
                (cvd_model_mode(mk) != CVD_MODE_STREAMING || cvd_model_rate_ratio(mk) != 1.0))
                rc = cvd_err_set(err, CVD_EINVAL,
                                 "%s:%d: model: '%s' does not give one output frame per input "
                                 "frame (%s, %g frames out per frame in), so it cannot feed a "
                                 "playback device; use output = none and publish = yes",
                                 c->file, line, st->chain[k], cvd_run_mode_name(cvd_model_mode(mk)),
                                 cvd_model_rate_ratio(mk));
        }
        if (rc == 0 && st->n_out_map) {
            const int gives = cvd_model_out_channels(last);
            if (st->n_out_map != gives && gives != 1) /* mono plays on every one listed */
                rc = cvd_err_set(err, CVD_EINVAL,
                                 "%s:%d: output_channels: %d channels listed, but model '%s' "
                                 "gives %d",
                                 c->file, st->out_map_line, st->n_out_map,
                                 st->chain[st->n_chain - 1], gives);
        }
        if (rc == 0 && cvd_model_mode(m) == CVD_MODE_STREAMING && cvd_model_rate_ratio(m) == 1.0) {
            /* the chain builds: channels agree from one model to the next, rates
             * resample */
            cvd_chain *ch = NULL;
            rc = cvd_runtime_chain(rt, st->chain_index, st->n_chain, st->rate, st->block, 1, 0, &ch,
                                   err);
            cvd_chain_destroy(ch);
            if (rc < 0)
                cvd_err_prefix(err, "%s:%d: model", c->file, line);
        } else if (rc == 0 && st->n_chain > 1) {
            rc = cvd_err_set(err, CVD_EINVAL, "%s:%d: model: '%s' (%s) runs alone, not in a chain",
                             c->file, line, st->model, cvd_run_mode_name(cvd_model_mode(m)));
        } else if (rc == 0 && cvd_model_sample_rate(m) > 0 &&
                   cvd_model_sample_rate(m) != (double)st->rate) {
            rc = cvd_err_set(err, CVD_EINVAL,
                             "%s:%d: model: '%s' runs at %.0f Hz, the stream at %d (a %s model "
                             "is not resampled)",
                             c->file, line, st->model, cvd_model_sample_rate(m), st->rate,
                             cvd_run_mode_name(cvd_model_mode(m)));
        }
        if (rc < 0) {
            cvd_runtime_unref(rt);
            return rc;
        }
    }
    /* streams without a model play their own channels */
    for (int i = 0; i < c->n_streams; i++) {
        const cvd_conf_stream *st = &c->streams[i];
        const int ch = st->channels ? st->channels : 1;
        if (st->model_index < 0 && st->n_out_map && st->n_out_map != ch && ch != 1) {
            rc = cvd_err_set(err, CVD_EINVAL,
                             "%s:%d: output_channels: %d channels listed, but the stream has %d "
                             "(channels)",
                             c->file, st->out_map_line, st->n_out_map, ch);
            cvd_runtime_unref(rt);
            return rc;
        }
    }
    /* the streams' memory figures, measured once per model (memfig.h) */
    rt->memfigs = calloc((size_t)c->n_models + 1, sizeof *rt->memfigs);
    rt->tls = calloc((size_t)c->n_listens + 1, sizeof *rt->tls);
    rt->tokens = calloc((size_t)c->n_listens + 1, sizeof *rt->tokens);
    if (rt->memfigs == NULL || rt->tls == NULL || rt->tokens == NULL) {
        cvd_runtime_unref(rt);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < c->n_models; i++) {
        rc = cvd_memfig_measure(rt->models[i], c->models[i].hop, &rt->memfigs[i], err);
        if (rc < 0) {
            cvd_err_prefix(err, "%s:%d: path", c->file, c->models[i].path_line);
            cvd_runtime_unref(rt);
            return rc;
        }
    }
    /* the listeners' certificates, keys and tokens: read here, at start and on
     * every reload */
    for (int i = 0; i < c->n_listens; i++) {
        const cvd_conf_listen *l = &c->listens[i];
        if (l->tls_cert[0]) {
            rc = cvd_tls_server_ctx_create(l->tls_cert, l->tls_key,
                                           l->tls_client_ca[0] ? l->tls_client_ca : NULL,
                                           &rt->tls[i], err);
            if (rc < 0) {
                int line = strstr(err->msg, "tls_client_ca") ? l->tls_client_ca_line
                           : strstr(err->msg, "tls_key")     ? l->tls_key_line
                                                             : l->tls_cert_line;
                cvd_err_prefix(err, "%s:%d", c->file, line);
                cvd_runtime_unref(rt);
                return rc;
            }
        }
        if (l->tokens[0]) {
            rc = cvd_tokens_load(l->tokens, &rt->tokens[i], err);
            if (rc < 0) {
                cvd_err_prefix(err, "%s:%d: tokens", c->file, l->tokens_line);
                cvd_runtime_unref(rt);
                return rc;
            }
        }
    }
    /* every [nats] section's model gives outputs a takeover can recompute
     * (docs/SCALE.md) */
    for (int i = 0; i < c->n_nats; i++) {
        const cvd_nats_conf *n = &c->nats[i];
        const int mi = n->model_index;
        if (mi < 0)
            continue;
        rc = cvd_nats_check_model(rt->models[mi], c->models[mi].hop, n->block, err);
        if (rc < 0) {
            cvd_err_prefix(err, "%s:%d: model: '%s'", c->file, n->at.model, n->model);
            cvd_runtime_unref(rt);
            return rc;
        }
    }
    rt->generation = atomic_fetch_add(&generation, 1) + 1;
    *out = rt;
    return CVD_OK;
}

const cvd_memfig *cvd_runtime_memfig(const cvd_runtime *rt, const cvd_model *m)
{
    for (int i = 0; m && i < rt->conf->n_models; i++)
        if (rt->models[i] == m)
            return &rt->memfigs[i];
    return NULL;
}

int cvd_runtime_publish_claimed(const cvd_runtime *rt, const char *stream)
{
    for (int i = 0; i < rt->conf->n_listens; i++)
        if (rt->tokens[i] && cvd_tokens_claim_publish(rt->tokens[i], stream))
            return 1;
    return 0;
}

long cvd_runtime_model_hop(const cvd_runtime *rt, const cvd_model *m)
{
    for (int i = 0; m && i < rt->conf->n_models; i++)
        if (rt->models[i] == m)
            return rt->conf->models[i].hop;
    return 0;
}

int cvd_runtime_model_threads(const cvd_runtime *rt, const cvd_model *m)
{
    for (int i = 0; m && i < rt->conf->n_models; i++)
        if (rt->models[i] == m)
            return rt->conf->models[i].threads > 1 ? rt->conf->models[i].threads : 1;
    return 1;
}

cvd_model *cvd_runtime_listener_model(const cvd_runtime *rt, int listener)
{
    if (listener < 0 || listener >= rt->conf->n_listens)
        return NULL;
    int mi = rt->conf->listens[listener].model_index;
    return mi >= 0 ? rt->models[mi] : NULL;
}

cvd_model *cvd_runtime_model(const cvd_runtime *rt, const char *name)
{
    int mi = cvd_conf_find_model(rt->conf, name);
    return mi >= 0 ? rt->models[mi] : NULL;
}

/* ---- the runtime in force
 * ---------------------------------------------------------------- */

struct cvd_runtime_slot {
    pthread_mutex_t lock; /* guards rt: readers take a reference under it */
    cvd_runtime *rt;
};

int cvd_runtime_slot_create(cvd_runtime *rt, cvd_runtime_slot **out, cvd_err *err)
{
    cvd_runtime_slot *s = calloc(1, sizeof *s);
    *out = NULL;
    if (s == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->rt = rt;
    *out = s;
    return CVD_OK;
}

void cvd_runtime_slot_destroy(cvd_runtime_slot *s)
{
    if (s == NULL)
        return;
    cvd_runtime_unref(s->rt);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

cvd_runtime *cvd_runtime_slot_get(cvd_runtime_slot *s)
{
    pthread_mutex_lock(&s->lock);
    cvd_runtime *rt = cvd_runtime_ref(s->rt);
    pthread_mutex_unlock(&s->lock);
    return rt;
}

cvd_runtime *cvd_runtime_slot_peek(const cvd_runtime_slot *s)
{
    return s->rt;
}

cvd_runtime *cvd_runtime_slot_swap(cvd_runtime_slot *s, cvd_runtime *rt)
{
    pthread_mutex_lock(&s->lock);
    cvd_runtime *old = s->rt;
    s->rt = rt;
    pthread_mutex_unlock(&s->lock);
    return old;
}
