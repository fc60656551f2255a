/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tokens file (tokens.h).
 */
#include "tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKENS_FILE_MAX (16u << 20)

struct cvd_token {
    unsigned char hash[SHA256_DIGEST_LENGTH];
    int process;
    char **publish; /* globs */
    int n_publish;
    char **subscribe;
    int n_subscribe;
    int line;
};

struct cvd_tokens {
    cvd_token *t;
    int n, cap;
};

static void token_clear(cvd_token *k)
{
    for (int i = 0; i < k->n_publish; i++)
        free(k->publish[i]);
    for (int i = 0; i < k->n_subscribe; i++)
        free(k->subscribe[i]);
    free(k->publish);
    free(k->subscribe);
}

void cvd_tokens_destroy(cvd_tokens *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->n; i++)
        token_clear(&t->t[i]);
    /* the hashes of secrets: not left in freed memory */
    if (t->t)
        OPENSSL_cleanse(t->t, sizeof *t->t * (size_t)t->cap);
    free(t->t);
    free(t);
}

int cvd_tokens_count(const cvd_tokens *t)
{
    return t ? t->n : 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int add_glob(char ***v, int *n, const char *s, size_t len)
{
    char **nv = realloc(*v, sizeof *nv * (size_t)(*n + 1));
    if (nv == NULL)
        return -1;
    *v = nv;
    nv[*n] = strndup(s, len);
    if (nv[*n] == NULL)
        return -1;
    (*n)++;
    return 0;
}

/* The roles of one line: "process,publish=studio-*,subscribe=studio-*". */
static int parse_roles(cvd_token *k, const char *p, const char *end, const char *name, int line,
                       cvd_err *err)
{
    if (p == end)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s:%d: the token has no roles (process, publish=GLOB, "
                           "subscribe=GLOB, separated by commas)",
                           name, line);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *a = p, *b = comma ? comma : end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        size_t len = (size_t)(b - a);
        if (len == 0)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s:%d: an empty role (two commas, or a comma "
                               "at an end)",
                               name, line);
        if (len == 7 && memcmp(a, "process", 7) == 0) {
            k->process = 1;
        } else if ((len > 8 && memcmp(a, "publish=", 8) == 0) ||
                   (len > 10 && memcmp(a, "subscribe=", 10) == 0)) {
            int pub = a[0] == 'p';
            const char *g = a + (pub ? 8 : 10);
            for (const char *q = g; q < b; q++)
                if (is_blank(*q) || (unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
                    return cvd_err_set(err, CVD_EFORMAT,
                                       "%s:%d: '%.*s': a stream pattern has no blanks and only "
                                       "printable ASCII",
                                       name, line, (int)len, a);
            int rc = pub ? add_glob(&k->publish, &k->n_publish, g, (size_t)(b - g))
                         : add_glob(&k->subscribe, &k->n_subscribe, g, (size_t)(b - g));
            if (rc < 0)
                return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        } else if ((len == 7 && memcmp(a, "publish", 7) == 0) ||
                   (len == 9 && memcmp(a, "subscribe", 9) == 0) ||
                   (len == 8 && memcmp(a, "publish=", 8) == 0) ||
                   (len == 10 && memcmp(a, "subscribe=", 10) == 0)) {
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s:%d: '%.*s' needs the streams it may use: %.*s=GLOB (e.g. "
                               "%.*s=studio-*, or =* for every stream)",
                               name, line, (int)len, a, a[0] == 'p' ? 7 : 9, a, a[0] == 'p' ? 7 : 9,
                               a);
        } else {
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s:%d: unknown role '%.*s' (process, publish=GLOB, "
                               "subscribe=GLOB)",
                               name, line, (int)len, a);
        }
        p = comma ? comma + 1 : end;
        if (comma && p == end)
            return cvd_err_set(err, CVD_EFORMAT, "%s:%d: an empty role (a comma at the end)", name,
                               line);
    }
    return CVD_OK;
}

int cvd_tokens_parse(const char *text, const char *name, cvd_tokens **out, cvd_err *err)
{
    cvd_tokens *t = calloc(1, sizeof *t);
    const char *p = text;
    int line = 0, rc = CVD_OK;
    *out = NULL;
    if (name == NULL)
        name = "(tokens)";
    if (t == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    while (*p) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        const char *a = p, *ls = p;
        line++;
        p = eol ? eol + 1 : end;
        while (a < end && is_blank(*a))
            a++;
        /* a comment: a line starting with '#', or the rest after " #" */
        const char *e = a;
        while (e < end && !(*e == '#' && (e == a || is_blank(e[-1]))))
            e++;
        while (e > a && is_blank(e[-1]))
            e--;
        if (e == a)
            continue;
        const char *tok_end = a;
        while (tok_end < e && !is_blank(*tok_end))
            tok_end++;
        size_t tlen = (size_t)(tok_end - a);
        for (const char *q = a; q < tok_end; q++)
            if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e) {
                rc = cvd_err_set(err, CVD_EFORMAT,
                                 "%s:%d: a token is printable ASCII without blanks (byte 0x%02x "
                                 "at column %d)",
                                 name, line, (unsigned char)*q, (int)(q - ls) + 1);
                goto fail;
            }
        if (tlen > CVD_TOKEN_MAX) {
            rc = cvd_err_set(err, CVD_EFORMAT, "%s:%d: a token of %zu bytes: at most %d", name,
                             line, tlen, CVD_TOKEN_MAX);
            goto fail;
        }
        if (t->n == t->cap) {
            int nc = t->cap ? 2 * t->cap : 16;
            cvd_token *nt = realloc(t->t, sizeof *nt * (size_t)nc);
            if (nt == NULL) {
                rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
                goto fail;
            }
            t->t = nt;
            t->cap = nc;
        }
        cvd_token *k = &t->t[t->n];
        memset(k, 0, sizeof *k);
        k->line = line;
        SHA256((const unsigned char *)a, tlen, k->hash);
        t->n++;
        const char *r = tok_end;
        while (r < e && is_blank(*r))
            r++;
        if ((rc = parse_roles(k, r, e, name, line, err)) < 0)
            goto fail;
        for (int i = 0; i < t->n - 1; i++)
            if (memcmp(t->t[i].hash, k->hash, sizeof k->hash) == 0) {
                rc = cvd_err_set(err, CVD_EFORMAT, "%s:%d: the same token as line %d", name, line,
                                 t->t[i].line);
                goto fail;
            }
    }
    *out = t;
    return CVD_OK;
fail:
    cvd_tokens_destroy(t);
    return rc;
}

int cvd_tokens_load(const char *path, cvd_tokens **out, cvd_err *err)
{
    struct stat st;
    char *buf;
    int fd, rc;
    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cvd_err_set(err, CVD_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: not a regular file", path);
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        close(fd);
        return cvd_err_set(err, CVD_EIO,
                           "%s: %s by every user (mode %04o); tokens are secrets: chmod o-rwx "
                           "%s",
                           path, st.st_mode & S_IROTH ? "readable" : "writable",
                           (unsigned)(st.st_mode & 07777), path);
    }
    if ((uint64_t)st.st_size > TOKENS_FILE_MAX) {
        close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: larger than %u bytes", path, TOKENS_FILE_MAX);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (strlen(buf) != got) {
        OPENSSL_cleanse(buf, got);
        free(buf);
        return cvd_err_set(err, CVD_EFORMAT, "%s: a NUL byte in the file", path);
    }
    rc = cvd_tokens_parse(buf, path, out, err);
    OPENSSL_cleanse(buf, got);
    free(buf);
    return rc;
}

const cvd_token *cvd_tokens_find(const cvd_tokens *t, const char *token)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    const cvd_token *found = NULL;
    if (t == NULL || token == NULL || token[0] == '\0')
        return NULL;
    SHA256((const unsigned char *)token, strlen(token), h);
    /* every entry is compared, in constant time each: the time says nothing of the match */
    for (int i = 0; i < t->n; i++) {
        int eq = CRYPTO_memcmp(h, t->t[i].hash, sizeof h) == 0;
        if (eq && found == NULL)
            found = &t->t[i];
    }
    OPENSSL_cleanse(h, sizeof h);
    return found;
}

static int glob_any(char *const *globs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (fnmatch(globs[i], name, 0) == 0)
            return 1;
    return 0;
}

int cvd_token_may_process(const cvd_token *k)
{
    return k && k->process;
}

int cvd_token_may_publish(const cvd_token *k, const char *stream)
{
    /* publishing is processing too: a token with publish=GLOB alone may run streams that
     * publish under names matching GLOB, and no others */
    return k && stream && glob_any(k->publish, k->n_publish, stream);
}

int cvd_token_may_subscribe(const cvd_token *k, const char *stream)
{
    return k && stream && glob_any(k->subscribe, k->n_subscribe, stream);
}

int cvd_token_line(const cvd_token *k)
{
    return k ? k->line : 0;
}

int cvd_tokens_claim_publish(const cvd_tokens *t, const char *stream)
{
    if (t == NULL || stream == NULL)
        return 0;
    for (int i = 0; i < t->n; i++)
        if (glob_any(t->t[i].publish, t->t[i].n_publish, stream))
            return 1;
    return 0;
}
