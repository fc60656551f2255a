/* SPDX-License-Identifier: Apache-2.0 */
/* Published streams and subscribers: see pubsub.h. */
#include "pubsub.h"

#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cvd_sub {
    cvd_pub *pub; /* NULL once the publisher has gone */
    pthread_mutex_t lock;
    float *ring;
    int cap, head, count; /* frames */
    int channels;
    uint64_t dropped; /* frames lost at the gap */
    int gap_at;       /* frames in the ring before the gap (while dropped > 0) */
    int ended, overrun, disconnect_when_full;
    void (*wake)(void *);
    void *ctx;
    cvd_sub *next;
};

struct cvd_pub {
    char name[72];
    cvd_pub_info info;
    cvd_sub *subs;
    cvd_pub *next;
};

/* the registry lock guards the list of streams and each stream's subscriber list */
static pthread_mutex_t registry = PTHREAD_MUTEX_INITIALIZER;
static cvd_pub *pubs;

static cvd_pub *find(const char *name)
{
    for (cvd_pub *p = pubs; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

int cvd_pub_create(const char *name, const cvd_pub_info *info, cvd_pub **out, cvd_err *err)
{
    cvd_pub *p;
    *out = NULL;
    if (name == NULL || *name == '\0' || strlen(name) >= sizeof p->name)
        return cvd_err_set(err, CVD_EINVAL, "stream name '%s': must be 1 to %zu characters",
                           name ? name : "", sizeof p->name - 1);
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    snprintf(p->name, sizeof p->name, "%s", name);
    p->info = *info;
    pthread_mutex_lock(&registry);
    if (find(name)) {
        pthread_mutex_unlock(&registry);
        free(p);
        return cvd_err_set(err, CVD_ESTATE, "stream '%s' is already published", name);
    }
    p->next = pubs;
    pubs = p;
    pthread_mutex_unlock(&registry);
    *out = p;
    return CVD_OK;
}

/* A full ring loses the frames that do not fit. The gap they leave is kept at its place:
 * frames before it are read with no loss reported, the first frames after it carry the
 * count. A second loss before the first gap has been read discards the frames between the
 * two gaps too, so there is only ever one gap to place. */
void cvd_pub_write(cvd_pub *p, const float *frames, int n)
{
    const int ch = p->info.channels;
    pthread_mutex_lock(&registry);
    for (cvd_sub *s = p->subs; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        int room = s->cap - s->count, take = n < room ? n : room;
        const float *src = frames;
        if (take < n && s->dropped > 0) {
            /* merge with the pending gap: drop what came after it (lost to this slow
             * subscriber too, so counted) */
            s->dropped += (uint64_t)(s->count - s->gap_at);
            cvd_metrics_dropped(CVD_DROP_SLOW_SUBSCRIBER, (uint64_t)(s->count - s->gap_at));
            s->count = s->gap_at;
            room = s->cap - s->count;
            take = n < room ? n : room;
        }
        if (take < n) {
            if (s->dropped == 0)
                s->gap_at = s->count + take; /* the first frames fit before the new gap */
            else /* the ring ends at the pending gap: what fits goes right after it, so the
                  * frames kept are the newest and the ones lost come first */
                src = frames + (size_t)(n - take) * (size_t)ch;
            s->dropped += (uint64_t)(n - take);
            cvd_metrics_dropped(CVD_DROP_SLOW_SUBSCRIBER, (uint64_t)(n - take));
            if (s->disconnect_when_full)
                s->overrun = 1;
        }
        for (int i = 0; i < take; i++) {
            int slot = (s->head + s->count + i) % s->cap;
            memcpy(s->ring + (size_t)slot * ch, src + (size_t)i * ch, sizeof(float) * (size_t)ch);
        }
        s->count += take;
        pthread_mutex_unlock(&s->lock);
        s->wake(s->ctx);
    }
    pthread_mutex_unlock(&registry);
}

void cvd_pub_gap(cvd_pub *p, uint64_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&registry);
    for (cvd_sub *s = p->subs; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (s->dropped > 0) {
            /* one gap only: the frames since the pending one are lost too (to this slow
             * subscriber: counted; the gap n itself is the producer's, counted there) */
            s->dropped += (uint64_t)(s->count - s->gap_at);
            cvd_metrics_dropped(CVD_DROP_SLOW_SUBSCRIBER, (uint64_t)(s->count - s->gap_at));
            s->count = s->gap_at;
        } else {
            s->gap_at = s->count;
        }
        s->dropped += n;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&registry);
}

void cvd_pub_destroy(cvd_pub *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&registry);
    for (cvd_pub **pp = &pubs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    for (cvd_sub *s = p->subs; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->ended = 1;
        s->pub = NULL;
        pthread_mutex_unlock(&s->lock);
        s->wake(s->ctx);
    }
    pthread_mutex_unlock(&registry);
    free(p);
}

int cvd_sub_create(const char *name, int ring_frames, int disconnect_when_full,
                   void (*wake)(void *ctx), void *ctx, cvd_sub **out, cvd_pub_info *info,
                   cvd_err *err)
{
    cvd_sub *s;
    *out = NULL;
    if (ring_frames < 1)
        ring_frames = 1;
    pthread_mutex_lock(&registry);
    cvd_pub *p = name ? find(name) : NULL;
    if (p == NULL) {
        pthread_mutex_unlock(&registry);
        return cvd_err_set(err, CVD_EINVAL, "no stream named '%s' is published", name ? name : "");
    }
    s = calloc(1, sizeof *s);
    if (s)
        s->ring = malloc(sizeof(float) * (size_t)ring_frames * (size_t)p->info.channels);
    if (s == NULL || s->ring == NULL) {
        pthread_mutex_unlock(&registry);
        if (s)
            free(s->ring);
        free(s);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    s->pub = p;
    s->cap = ring_frames;
    s->channels = p->info.channels;
    s->disconnect_when_full = disconnect_when_full;
    s->wake = wake;
    s->ctx = ctx;
    s->next = p->subs;
    p->subs = s;
    if (info)
        *info = p->info;
    pthread_mutex_unlock(&registry);
    *out = s;
    return CVD_OK;
}

int cvd_sub_read(cvd_sub *s, float *out, int max, uint64_t *dropped, int *state)
{
    pthread_mutex_lock(&s->lock);
    int n = s->count < max ? s->count : max;
    *dropped = 0;
    if (s->dropped > 0) {
        if (s->gap_at > 0) {
            /* the frames before the gap first */
            if (n > s->gap_at)
                n = s->gap_at;
            s->gap_at -= n;
        } else if (n > 0 || s->ended) {
            /* the frames after the gap, with the count; or, the stream over, the count */
            *dropped = s->dropped;
            s->dropped = 0;
        }
    }
    for (int i = 0; i < n; i++) {
        int slot = (s->head + i) % s->cap;
        memcpy(out + (size_t)i * s->channels, s->ring + (size_t)slot * s->channels,
               sizeof(float) * (size_t)s->channels);
    }
    s->head = (s->head + n) % s->cap;
    s->count -= n;
    *state = s->overrun ? 2 : (s->ended && s->count == 0 && s->dropped == 0) ? 1 : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void cvd_sub_destroy(cvd_sub *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&registry);
    if (s->pub) {
        for (cvd_sub **pp = &s->pub->subs; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
    }
    pthread_mutex_unlock(&registry);
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s);
}

int cvd_sub_overrun(cvd_sub *s)
{
    pthread_mutex_lock(&s->lock);
    int o = s->overrun;
    pthread_mutex_unlock(&s->lock);
    return o;
}

int cvd_pub_count(void)
{
    int n = 0;
    pthread_mutex_lock(&registry);
    for (cvd_pub *p = pubs; p; p = p->next)
        n++;
    pthread_mutex_unlock(&registry);
    return n;
}
