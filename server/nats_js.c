/* SPDX-License-Identifier: Apache-2.0 */
/* libnats helpers of the NATS transport: the connection and batches of acknowledged writes
 * (see nats_internal.h). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "nats.h"
#include "nats_internal.h"

static pthread_mutex_t guards_mu = PTHREAD_MUTEX_INITIALIZER;
static cvd_nats_guard *guards; /* every guard ever made (never reused: a late callback of a
                                * closed one must find NULL, not another object) */

cvd_nats_guard *cvd_nats_guard_create(void *target)
{
    cvd_nats_guard *gd = calloc(1, sizeof *gd);
    if (gd == NULL)
        return NULL;
    atomic_init(&gd->active, 0);
    atomic_init(&gd->target, target);
    pthread_mutex_lock(&guards_mu);
    gd->next = guards;
    guards = gd;
    pthread_mutex_unlock(&guards_mu);
    return gd;
}

void *cvd_nats_guard_enter(cvd_nats_guard *gd)
{
    atomic_fetch_add(&gd->active, 1);
    return atomic_load(&gd->target);
}

void cvd_nats_guard_leave(cvd_nats_guard *gd)
{
    atomic_fetch_sub(&gd->active, 1);
}

void cvd_nats_guard_close(cvd_nats_guard *gd)
{
    if (gd == NULL)
        return;
    atomic_store(&gd->target, NULL);
    while (atomic_load(&gd->active) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    /* gd itself stays: a late callback may still enter it (and find NULL) */
}

const char *cvd_nats_status_text(natsStatus s, char *buf, size_t n)
{
    const char *last = nats_GetLastError(NULL);
    if (last && *last && s != NATS_OK)
        snprintf(buf, n, "%s (%s)", natsStatus_GetText(s), last);
    else
        snprintf(buf, n, "%s", natsStatus_GetText(s));
    return buf;
}

/* the first line of a file, for tokens and passwords; refuses files others may read */
static int read_secret(const char *path, const char *what, char *out, size_t n, cvd_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cvd_err_set(err, CVD_EIO, "%s %s: %s", what, path, strerror(errno));
    if (fgets(out, (int)n, f) == NULL) {
        fclose(f);
        return cvd_err_set(err, CVD_EIO, "%s %s: empty", what, path);
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (out[0] == '\0')
        return cvd_err_set(err, CVD_EIO, "%s %s: the first line is empty", what, path);
    return CVD_OK;
}

static atomic_int lib_used; /* libnats was opened (natsOptions_Create opens it) */

void cvd_nats_shutdown(void)
{
    if (!atomic_exchange(&lib_used, 0))
        return;
    natsStatus s = nats_CloseAndWait(10000);
    if (s != NATS_OK)
        cvd_log_warning("nats: the library's threads did not end: %s", natsStatus_GetText(s));
}

int cvd_nats_connect(const cvd_nats_conf *c, const char *name, natsErrHandler on_error,
                     natsConnectionHandler on_disconnect, natsConnectionHandler on_reconnect,
                     natsConnectionHandler on_closed, void *closure, natsConnection **out,
                     cvd_err *err)
{
    natsOptions *o = NULL;
    natsStatus s;
    char buf[512], secret[1024];
    int rc = CVD_OK;
    const char *urls[64];
    char copy[sizeof c->servers];
    int n = 0;

    *out = NULL;
    atomic_store(&lib_used, 1);
    snprintf(copy, sizeof copy, "%s", c->servers);
    for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok && n < 64;
         tok = strtok_r(NULL, ", ", &save))
        urls[n++] = tok;
    if (n == 0)
        return cvd_err_set(err, CVD_EINVAL, "servers: no URL");
    if ((s = natsOptions_Create(&o)) != NATS_OK)
        return cvd_err_set(err, CVD_ENOMEM, "nats: %s", natsStatus_GetText(s));
    s = natsOptions_SetServers(o, urls, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(o, 100, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(o, 5000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(o, 3);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(o, 64 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPendingMsgs(o, 1000000);
    if (s == NATS_OK && on_error)
        s = natsOptions_SetErrorHandler(o, on_error, closure);
    if (s == NATS_OK && on_disconnect)
        s = natsOptions_SetDisconnectedCB(o, on_disconnect, closure);
    if (s == NATS_OK && on_reconnect)
        s = natsOptions_SetReconnectedCB(o, on_reconnect, closure);
    if (s == NATS_OK && on_closed)
        s = natsOptions_SetClosedCB(o, on_closed, closure);
    if (s != NATS_OK) {
        rc = cvd_err_set(err, CVD_EINVAL, "nats options: %s",
                         cvd_nats_status_text(s, buf, sizeof buf));
        goto done;
    }
    if (c->tls_ca[0] || c->tls_cert[0]) {
        s = natsOptions_SetSecure(o, true);
        if (s == NATS_OK && c->tls_ca[0]) {
            s = natsOptions_LoadCATrustedCertificates(o, c->tls_ca);
            if (s != NATS_OK) {
                rc = cvd_err_set(err, CVD_EIO, "tls_ca %s: %s", c->tls_ca,
                                 cvd_nats_status_text(s, buf, sizeof buf));
                goto done;
            }
        }
        if (s == NATS_OK && c->tls_cert[0]) {
            s = natsOptions_LoadCertificatesChain(o, c->tls_cert, c->tls_key);
            if (s != NATS_OK) {
                rc = cvd_err_set(err, CVD_EIO, "tls_cert %s / tls_key %s: %s", c->tls_cert,
                                 c->tls_key, cvd_nats_status_text(s, buf, sizeof buf));
                goto done;
            }
        }
    }
    if (c->creds[0]) {
        s = natsOptions_SetUserCredentialsFromFiles(o, c->creds, NULL);
        if (s != NATS_OK) {
            rc = cvd_err_set(err, CVD_EIO, "creds %s: %s", c->creds,
                             cvd_nats_status_text(s, buf, sizeof buf));
            goto done;
        }
    }
    if (c->token_file[0]) {
        if ((rc = read_secret(c->token_file, "token_file", secret, sizeof secret, err)) < 0)
            goto done;
        s = natsOptions_SetToken(o, secret);
    }
    if (c->user[0]) {
        if ((rc = read_secret(c->password_file, "password_file", secret, sizeof secret, err)) < 0)
            goto done;
        s = natsOptions_SetUserInfo(o, c->user, secret);
    }
    memset(secret, 0, sizeof secret);
    if (s != NATS_OK) {
        rc = cvd_err_set(err, CVD_EINVAL, "nats credentials: %s",
                         cvd_nats_status_text(s, buf, sizeof buf));
        goto done;
    }
    s = natsConnection_Connect(out, o);
    if (s != NATS_OK) {
        *out = NULL;
        rc = cvd_err_set(err, CVD_EIO, "cannot connect to %s: %s", c->servers,
                         cvd_nats_status_text(s, buf, sizeof buf));
    }
done:
    natsOptions_Destroy(o);
    return rc;
}

/* ---- batches of acknowledged writes ------------------------------------------------------ */

struct cvd_nats_batch {
    jsCtx *js;
    cvd_nats_guard *guard;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    double timeout;
    cvd_nats_write *w;
    natsMsg **msgs; /* what libnats holds, by write index */
    int n, pending;
};

static void batch_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    cvd_nats_batch *b = cvd_nats_guard_enter(closure);
    (void)js;
    if (b == NULL) {
        cvd_nats_guard_leave(closure);
        natsMsg_Destroy(msg);
        return;
    }
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->n; i++) {
        if (b->msgs[i] != msg)
            continue;
        cvd_nats_write *w = &b->w[i];
        if (pa) {
            w->seq = pa->Sequence;
            w->status = NATS_OK;
        } else {
            w->status = pae ? pae->Err : NATS_ERR;
            w->jerr = pae ? pae->ErrCode : 0;
        }
        w->done = 1;
        b->msgs[i] = NULL;
        b->pending--;
        break;
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    cvd_nats_guard_leave(closure);
    natsMsg_Destroy(msg);
}

int cvd_nats_batch_create(natsConnection *nc, double timeout, cvd_nats_batch **out)
{
    jsOptions jo;
    cvd_nats_batch *b = calloc(1, sizeof *b);
    *out = NULL;
    if (b == NULL)
        return CVD_ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    b->timeout = timeout;
    b->guard = cvd_nats_guard_create(b);
    if (b->guard == NULL) {
        cvd_nats_batch_destroy(b);
        return CVD_ENOMEM;
    }
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)(timeout * 1000);
    jo.PublishAsync.AckHandler = batch_ack;
    jo.PublishAsync.AckHandlerClosure = b->guard;
    jo.PublishAsync.MaxPending = 1000000;
    if (natsConnection_JetStream(&b->js, nc, &jo) != NATS_OK) {
        cvd_nats_batch_destroy(b);
        return CVD_EIO;
    }
    *out = b;
    return CVD_OK;
}

void cvd_nats_batch_destroy(cvd_nats_batch *b)
{
    if (b == NULL)
        return;
    cvd_nats_guard_close(b->guard);
    jsCtx_Destroy(b->js);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->mu);
    free(b->msgs);
    free(b);
}

void cvd_nats_batch_run(cvd_nats_batch *b, cvd_nats_write *w, int n)
{
    jsPubOptions po;
    char num[32];

    if (n <= 0)
        return;
    pthread_mutex_lock(&b->mu);
    natsMsg **msgs = realloc(b->msgs, (size_t)n * sizeof *msgs);
    if (msgs == NULL) {
        pthread_mutex_unlock(&b->mu);
        for (int i = 0; i < n; i++) {
            w[i].status = NATS_NO_MEMORY;
            w[i].done = 1;
        }
        return;
    }
    b->msgs = msgs;
    b->w = w;
    b->n = n;
    b->pending = 0;
    for (int i = 0; i < n; i++) {
        natsMsg *m = NULL;
        natsStatus s;
        w[i].done = 0;
        w[i].seq = 0;
        w[i].jerr = 0;
        b->msgs[i] = NULL;
        s = natsMsg_Create(&m, w[i].subject, NULL, w[i].data, w[i].len);
        if (s == NATS_OK && w[i].expect_last != (uint64_t)-1) {
            snprintf(num, sizeof num, "%llu", (unsigned long long)w[i].expect_last);
            s = natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", num);
        }
        if (s == NATS_OK && w[i].kv_delete)
            s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
        if (s == NATS_OK && w[i].msg_id)
            s = natsMsgHeader_Set(m, "Nats-Msg-Id", w[i].msg_id);
        if (s == NATS_OK) {
            jsPubOptions_Init(&po);
            po.MaxWait = (int64_t)(b->timeout * 1000);
            b->msgs[i] = m;
            b->pending++;
            /* the handler may run before this returns: it takes the lock */
            pthread_mutex_unlock(&b->mu);
            s = js_PublishMsgAsync(b->js, &m, &po);
            pthread_mutex_lock(&b->mu);
            if (s != NATS_OK && m != NULL) {
                /* not taken: ours to destroy; no handler will come */
                for (int k = 0; k < n; k++)
                    if (b->msgs[k] == m) {
                        b->msgs[k] = NULL;
                        b->pending--;
                    }
            }
        }
        if (s != NATS_OK && !w[i].done) {
            natsMsg_Destroy(m);
            w[i].status = s;
            w[i].done = 1;
        }
    }
    /* every message taken gets its handler: an acknowledgement or libnats's timeout */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + b->timeout + 2.0;
    while (b->pending > 0) {
        struct timespec dl = {(time_t)end, (long)((end - (double)(time_t)end) * 1e9)};
        if (pthread_cond_timedwait(&b->cond, &b->mu, &dl) == ETIMEDOUT)
            break;
    }
    for (int i = 0; i < n; i++)
        if (!w[i].done) {
            /* no answer at all: libnats still holds it; it is forgotten here */
            w[i].status = NATS_TIMEOUT;
            w[i].done = 1;
        }
    b->n = 0;
    b->w = NULL;
    pthread_mutex_unlock(&b->mu);
}

/* ---- reading the log back --------------------------------------------------------------- */

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* standard base64 (padding optional) into a malloc'd buffer */
static unsigned char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s), k = 0;
    unsigned char *out = malloc(n / 4 * 3 + 4);
    unsigned v = 0;
    int bits = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=')
            break;
        int d = b64_value((unsigned char)s[i]);
        if (d < 0) {
            free(out);
            return NULL;
        }
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(v >> bits);
        }
    }
    *len = k;
    return out;
}

natsStatus cvd_nats_msg_next(natsConnection *nc, const char *stream, uint64_t seq,
                             const char *subject, double timeout, natsMsg **out, uint64_t *out_seq)
{
    char api[256], req[640];
    natsMsg *reply = NULL, *m = NULL;
    json_error_t jerr;
    natsStatus s;

    *out = NULL;
    snprintf(api, sizeof api, "$JS.API.STREAM.MSG.GET.%s", stream);
    snprintf(req, sizeof req, "{\"seq\":%llu,\"next_by_subj\":\"%s\"}", (unsigned long long)seq,
             subject);
    s = natsConnection_RequestString(&reply, nc, api, req, (int64_t)(timeout * 1000));
    if (s != NATS_OK)
        return s;
    json_t *root =
        json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &jerr);
    natsMsg_Destroy(reply);
    if (root == NULL)
        return NATS_PROTOCOL_ERROR;
    json_t *error = json_object_get(root, "error");
    json_t *msg = json_object_get(root, "message");
    if (error != NULL) {
        json_int_t code = json_integer_value(json_object_get(error, "code"));
        json_decref(root);
        return code == 404 ? NATS_NOT_FOUND : NATS_ERR;
    }
    const char *subj = json_string_value(json_object_get(msg, "subject"));
    const char *data = json_string_value(json_object_get(msg, "data"));
    const char *hdrs = json_string_value(json_object_get(msg, "hdrs"));
    json_int_t mseq = json_integer_value(json_object_get(msg, "seq"));
    unsigned char *body = NULL, *hb = NULL;
    size_t blen = 0, hlen = 0;
    if (subj == NULL || mseq <= 0 || (data && (body = b64_decode(data, &blen)) == NULL) ||
        (hdrs && (hb = b64_decode(hdrs, &hlen)) == NULL)) {
        free(body);
        json_decref(root);
        return NATS_PROTOCOL_ERROR;
    }
    s = natsMsg_Create(&m, subj, NULL, (const char *)body, (int)blen);
    /* the headers: "NATS/1.0\r\nKey: Value\r\n...\r\n\r\n" */
    if (s == NATS_OK && hb != NULL) {
        char *text = malloc(hlen + 1);
        if (text == NULL) {
            s = NATS_NO_MEMORY;
        } else {
            memcpy(text, hb, hlen);
            text[hlen] = '\0';
            char *line = strstr(text, "\r\n"), *next;
            for (line = line ? line + 2 : NULL; s == NATS_OK && line && *line; line = next) {
                next = strstr(line, "\r\n");
                if (next) {
                    *next = '\0';
                    next += 2;
                }
                char *colon = strchr(line, ':');
                if (colon == NULL || colon == line)
                    continue;
                *colon = '\0';
                char *v = colon + 1;
                while (*v == ' ')
                    v++;
                s = natsMsgHeader_Add(m, line, v);
            }
            free(text);
        }
    }
    free(body);
    free(hb);
    json_decref(root);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return s;
    }
    *out = m;
    *out_seq = (uint64_t)mseq;
    return NATS_OK;
}
