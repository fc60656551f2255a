/* SPDX-License-Identifier: Apache-2.0 */
/* The NATS transport's pure parts: see nats_wire.h. */
#include "nats_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_token_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int cvd_nats_id_valid(const char *s, size_t n)
{
    if (s == NULL || n < 1 || n > CVD_NATS_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_token_char((unsigned char)s[i]))
            return 0;
    return 1;
}

int cvd_nats_prefix_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0, tok = 0;
    if (n < 1 || n > CVD_NATS_PREFIX_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (tok == 0)
                return 0;
            tok = 0;
        } else if (is_token_char((unsigned char)s[i])) {
            tok++;
        } else {
            return 0;
        }
    }
    return tok > 0;
}

int cvd_nats_partition(const char *id, size_t len, int n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)id[i];
        h *= 16777619u;
    }
    return n > 0 ? (int)(h % (uint32_t)n) : 0;
}

int cvd_nats_parse_frame(const char *s, int64_t *out)
{
    int64_t x = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        x = x * 10 + (*s - '0');
        if (x > CVD_NATS_FRAME_MAX)
            return -1;
    }
    *out = x;
    return 0;
}

int cvd_nats_parse_part_subject(const char *subject, const char *prefix, int *part, const char **id,
                                size_t *id_len)
{
    size_t pl = strlen(prefix);
    const char *p;
    long n = 0;
    int digits = 0;

    if (strncmp(subject, prefix, pl) != 0 || strncmp(subject + pl, ".part.", 6) != 0)
        return -1;
    p = subject + pl + 6;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        n = n * 10 + (*p - '0');
        if (n > 1000000000L)
            return -1;
    }
    if (digits == 0 || *p != '.')
        return -1;
    *part = (int)n;
    *id = p + 1;
    *id_len = strlen(p + 1);
    return 0;
}

int cvd_nats_subject(char *buf, size_t n, const char *prefix, const char *kind, const char *rest)
{
    int w = snprintf(buf, n, "%s.%s.%s", prefix, kind, rest);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* a decimal number followed by an optional unit from `units` (each a letter and its
 * multiplier) */
static int parse_scaled(const char *s, const char *letters, const double *mult, double *out)
{
    char *end;
    double x;
    if (s == NULL || *s == '\0' || strchr("0123456789.+-", *s) == NULL)
        return -1;
    errno = 0;
    x = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(x))
        return -1;
    if (*end != '\0') {
        const char *u = strchr(letters, *end);
        if (u == NULL || *end == '\0' || end[1] != '\0')
            return -1;
        x *= mult[u - letters];
    }
    *out = x;
    return 0;
}

int cvd_nats_parse_seconds(const char *s, double *out)
{
    static const double mult[] = {1, 60, 3600, 86400};
    double x;
    if (parse_scaled(s, "smhd", mult, &x) < 0 || x < 0)
        return -1;
    *out = x;
    return 0;
}

int cvd_nats_parse_bytes(const char *s, int64_t *out)
{
    static const double mult[] = {1024.0, 1048576.0, 1073741824.0, 1099511627776.0};
    double x;
    if (s && strcmp(s, "-1") == 0) {
        *out = -1;
        return 0;
    }
    if (parse_scaled(s, "KMGT", mult, &x) < 0 || x < 0 || x > 9.0e18 || x != floor(x))
        return -1;
    *out = (int64_t)x;
    return 0;
}

/* ---- leases ----------------------------------------------------------------------------- */

int cvd_nats_lease_format(char *buf, size_t n, const cvd_nats_lease *l)
{
    int w = snprintf(buf, n, "%s %" PRIu64, l->owner, l->epoch);
    return w < 0 || (size_t)w >= n ? -1 : w;
}

int cvd_nats_lease_parse(const char *s, size_t len, cvd_nats_lease *out)
{
    const char *sp = memchr(s, ' ', len);
    size_t ol;
    uint64_t e = 0;
    if (sp == NULL)
        return -1;
    ol = (size_t)(sp - s);
    if (ol == 0 || ol >= sizeof out->owner)
        return -1;
    for (const char *p = sp + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9' || e > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        e = e * 10 + (uint64_t)(*p - '0');
    }
    if (sp + 1 == s + len)
        return -1;
    memcpy(out->owner, s, ol);
    out->owner[ol] = '\0';
    out->epoch = e;
    return 0;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

int cvd_nats_ckpt_add(cvd_nats_ckpt *c, const cvd_nats_ckpt_id *id)
{
    if (c->n_ids == c->cap_ids) {
        size_t nc = c->cap_ids ? c->cap_ids * 2 : 16;
        cvd_nats_ckpt_id *n = realloc(c->ids, nc * sizeof *n);
        if (n == NULL)
            return CVD_ENOMEM;
        c->ids = n;
        c->cap_ids = nc;
    }
    c->ids[c->n_ids++] = *id;
    return CVD_OK;
}

void cvd_nats_ckpt_free(cvd_nats_ckpt *c)
{
    free(c->ids);
    memset(c, 0, sizeof *c);
}

char *cvd_nats_ckpt_format(const cvd_nats_ckpt *c, size_t *len)
{
    /* a line: id (128) + 4 numbers of up to 20 digits + flag + spaces */
    size_t cap = 64 + c->n_ids * (CVD_NATS_ID_MAX + 96), n = 0;
    char *t = malloc(cap);
    if (t == NULL)
        return NULL;
    n += (size_t)snprintf(t + n, cap - n, "convd-ckpt 1 %" PRIu64 " %" PRIu64 " %zu\n", c->epoch,
                          c->frontier, c->n_ids);
    for (size_t i = 0; i < c->n_ids; i++) {
        const cvd_nats_ckpt_id *e = &c->ids[i];
        n += (size_t)snprintf(t + n, cap - n,
                              "%s %" PRId64 " %" PRId64 " %" PRId64 " %" PRIu64 " %d\n", e->id,
                              e->base, e->done, e->replay, e->replay_seq, e->active ? 1 : 0);
    }
    if (len)
        *len = n;
    return t;
}

/* the next space- or newline-ended field of a line */
static int next_field(const char **p, const char *end, char *buf, size_t n)
{
    const char *s = *p;
    size_t k = 0;
    while (s < end && *s != ' ' && *s != '\n') {
        if (k + 1 >= n)
            return -1;
        buf[k++] = *s++;
    }
    buf[k] = '\0';
    if (k == 0)
        return -1;
    if (s < end && *s == ' ')
        s++;
    *p = s;
    return 0;
}

static int field_u64(const char **p, const char *end, uint64_t *out)
{
    char b[32];
    char *e;
    if (next_field(p, end, b, sizeof b) < 0 || b[0] < '0' || b[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(b, &e, 10);
    if (*e != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

static int field_i64(const char **p, const char *end, int64_t *out)
{
    uint64_t v;
    if (field_u64(p, end, &v) < 0 || v > (uint64_t)CVD_NATS_FRAME_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cvd_nats_ckpt_parse(const char *text, size_t len, cvd_nats_ckpt *out, cvd_err *err)
{
    const char *p = text, *end = text + len, *eol;
    char word[CVD_NATS_ID_MAX + 2];
    uint64_t version, count, v;
    int line = 1;

    memset(out, 0, sizeof *out);
    eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL || next_field(&p, eol, word, sizeof word) < 0 ||
        strcmp(word, "convd-ckpt") != 0 || field_u64(&p, eol, &version) < 0 || version != 1 ||
        field_u64(&p, eol, &out->epoch) < 0 || field_u64(&p, eol, &out->frontier) < 0 ||
        field_u64(&p, eol, &count) < 0 || p != eol)
        return cvd_err_set(err, CVD_EFORMAT, "checkpoint: line 1 is not a version 1 header");
    p = eol + 1;
    while (p < end) {
        cvd_nats_ckpt_id e;
        line++;
        memset(&e, 0, sizeof e);
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if (next_field(&p, eol, e.id, sizeof e.id) < 0 || !cvd_nats_id_valid(e.id, strlen(e.id)) ||
            field_i64(&p, eol, &e.base) < 0 || field_i64(&p, eol, &e.done) < 0 ||
            field_i64(&p, eol, &e.replay) < 0 || field_u64(&p, eol, &e.replay_seq) < 0 ||
            field_u64(&p, eol, &v) < 0 || v > 1 || p != eol) {
            cvd_nats_ckpt_free(out);
            return cvd_err_set(err, CVD_EFORMAT, "checkpoint: line %d is not an id's state", line);
        }
        e.active = (int)v;
        if (cvd_nats_ckpt_add(out, &e) < 0) {
            cvd_nats_ckpt_free(out);
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        }
        p = eol < end ? eol + 1 : end;
    }
    if (out->n_ids != count) {
        size_t got = out->n_ids;
        cvd_nats_ckpt_free(out);
        return cvd_err_set(err, CVD_EFORMAT, "checkpoint: %zu ids, the header says %llu", got,
                           (unsigned long long)count);
    }
    return CVD_OK;
}
