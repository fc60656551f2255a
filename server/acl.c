/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allow lists and per-address connection counts (acl.h).
 */
#include "acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t cap, const char *fmt, ...)
{
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One rule from s[0..n) (trimmed, non-empty). */
static int parse_rule(const char *s, size_t n, cvd_acl_rule *r, char *why, size_t cap)
{
    char addr[64];
    const char *slash = NULL, *a = s, *aend;
    int bracket = 0;
    long prefix = -1;

    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return fail(why, cap, "'%.*s': no ']' after the IPv6 address", (int)n, s);
        a = s + 1;
        aend = close;
        bracket = 1;
        if (close + 1 < s + n) {
            if (close[1] != '/')
                return fail(why, cap, "'%.*s': only '/PREFIX' may follow ']'", (int)n, s);
            slash = close + 1;
        }
    } else {
        slash = memchr(s, '/', n);
        aend = slash ? slash : s + n;
    }
    if (aend == a)
        return fail(why, cap, "'%.*s': no address", (int)n, s);
    if ((size_t)(aend - a) >= sizeof addr)
        return fail(why, cap, "'%.*s': not an address", (int)n, s);
    memcpy(addr, a, (size_t)(aend - a));
    addr[aend - a] = '\0';
    if (slash) {
        const char *p = slash + 1, *end = s + n;
        if (p == end)
            return fail(why, cap, "'%.*s': no prefix length after '/'", (int)n, s);
        prefix = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9' || prefix > 1000)
                return fail(why, cap, "'%.*s': the prefix length is not a number", (int)n, s);
            prefix = prefix * 10 + (*p - '0');
        }
    }
    memset(r, 0, sizeof *r);
    if (strchr(addr, '%'))
        return fail(why, cap, "'%.*s': scope ids (%%...) are not allowed", (int)n, s);
    if (strchr(addr, ':')) {
        if (inet_pton(AF_INET6, addr, r->addr) != 1)
            return fail(why, cap, "'%.*s': not an IPv6 address", (int)n, s);
        r->family = 6;
        if (prefix > 128)
            return fail(why, cap, "'%.*s': an IPv6 prefix is 0..128", (int)n, s);
        r->prefix = (uint8_t)(prefix < 0 ? 128 : prefix);
    } else {
        if (bracket)
            return fail(why, cap, "'%.*s': brackets are for IPv6 addresses", (int)n, s);
        if (inet_pton(AF_INET, addr, r->addr) != 1)
            return fail(why, cap,
                        "'%.*s': not a numeric IPv4 address (a.b.c.d, no names, no leading "
                        "zeros)",
                        (int)n, s);
        r->family = 4;
        if (prefix > 32)
            return fail(why, cap, "'%.*s': an IPv4 prefix is 0..32", (int)n, s);
        r->prefix = (uint8_t)(prefix < 0 ? 32 : prefix);
    }
    /* bits past the prefix: say which network was meant */
    const int bytes = r->family == 4 ? 4 : 16;
    uint8_t net[16];
    int host_bits = 0;
    for (int i = 0; i < bytes; i++) {
        int keep = r->prefix - 8 * i;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        net[i] = r->addr[i] & mask;
        host_bits |= net[i] != r->addr[i];
    }
    if (host_bits) {
        char txt[64];
        inet_ntop(r->family == 4 ? AF_INET : AF_INET6, net, txt, sizeof txt);
        return fail(why, cap, "'%.*s': bits set past the /%d prefix (the network is %s%s%s/%d)",
                    (int)n, s, r->prefix, r->family == 6 ? "[" : "", txt, r->family == 6 ? "]" : "",
                    r->prefix);
    }
    return 0;
}

int cvd_acl_parse(const char *text, cvd_acl *out, char *why, size_t why_cap)
{
    const char *p = text;
    memset(out, 0, sizeof *out);
    if (text == NULL)
        return fail(why, why_cap, "no list");
    for (;;) {
        const char *e = strchr(p, ',');
        const char *end = e ? e : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (a == b)
            return fail(why, why_cap,
                        out->n == 0 && e == NULL ? "an empty list"
                                                 : "an empty entry (two commas, or "
                                                   "a comma at an end)");
        for (const char *q = a; q < b; q++)
            if (is_blank(*q))
                return fail(why, why_cap,
                            "'%.*s': blanks inside an entry (separate entries "
                            "with commas)",
                            (int)(b - a), a);
        if (out->n == CVD_ACL_MAX)
            return fail(why, why_cap, "more than %d entries", CVD_ACL_MAX);
        if (parse_rule(a, (size_t)(b - a), &out->rules[out->n], why, why_cap) < 0)
            return -1;
        out->n++;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The address as 16 bytes (IPv4 as IPv4-mapped) and whether it is IPv4; -1 if neither. */
static int addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(key, mapped_prefix, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return memcmp(key, mapped_prefix, 12) == 0 ? 4 : 6;
    }
    return -1;
}

int cvd_acl_allows(const cvd_acl *a, const struct sockaddr *sa)
{
    uint8_t key[16];
    if (a == NULL || a->n == 0)
        return 1;
    int fam = addr_key(sa, key);
    if (fam < 0)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const cvd_acl_rule *r = &a->rules[i];
        if (r->family == 4 && fam == 4 && prefix_match(key + 12, r->addr, r->prefix))
            return 1;
        /* an IPv6 rule sees an IPv4 client as ::ffff:a.b.c.d, as the socket does */
        if (r->family == 6 && prefix_match(key, r->addr, r->prefix))
            return 1;
    }
    return 0;
}

void cvd_acl_format(const cvd_acl *a, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    if (a == NULL || a->n == 0) {
        snprintf(buf, cap, "all");
        return;
    }
    for (int i = 0; i < a->n && len < cap; i++) {
        const cvd_acl_rule *r = &a->rules[i];
        char txt[64];
        inet_ntop(r->family == 4 ? AF_INET : AF_INET6, r->addr, txt, sizeof txt);
        int k = snprintf(buf + len, cap - len, "%s%s%s%s/%d", i ? ", " : "",
                         r->family == 6 ? "[" : "", txt, r->family == 6 ? "]" : "", r->prefix);
        if (k < 0)
            break;
        len += (size_t)k;
    }
}

void cvd_addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
    uint8_t key[16];
    int fam = addr_key(sa, key);
    if (cap == 0)
        return;
    if (fam < 0 || inet_ntop(fam == 4 ? AF_INET : AF_INET6, fam == 4 ? key + 12 : key, buf,
                             (socklen_t)cap) == NULL)
        snprintf(buf, cap, "?");
}

/* ---- connections per source address: an open-addressing table (linear probing) --------- */

typedef struct peer_slot {
    uint8_t key[16];
    int count; /* 0: empty */
} peer_slot;

static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static peer_slot *peers;
static size_t peers_cap, peers_used; /* cap: a power of two, or 0 */

static size_t peer_hash(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static peer_slot *peer_find(const uint8_t key[16])
{
    if (peers_cap == 0)
        return NULL;
    for (size_t i = peer_hash(key) & (peers_cap - 1);; i = (i + 1) & (peers_cap - 1)) {
        if (peers[i].count == 0)
            return NULL;
        if (memcmp(peers[i].key, key, 16) == 0)
            return &peers[i];
    }
}

static peer_slot *peer_insert(const uint8_t key[16])
{
    if (2 * (peers_used + 1) > peers_cap) {
        size_t nc = peers_cap ? 2 * peers_cap : 256;
        peer_slot *nt = calloc(nc, sizeof *nt);
        if (nt == NULL)
            return NULL;
        for (size_t k = 0; k < peers_cap; k++) {
            if (peers[k].count == 0)
                continue;
            size_t i = peer_hash(peers[k].key) & (nc - 1);
            while (nt[i].count != 0)
                i = (i + 1) & (nc - 1);
            nt[i] = peers[k];
        }
        free(peers);
        peers = nt;
        peers_cap = nc;
    }
    size_t i = peer_hash(key) & (peers_cap - 1);
    while (peers[i].count != 0)
        i = (i + 1) & (peers_cap - 1);
    memcpy(peers[i].key, key, 16);
    peers_used++;
    return &peers[i];
}

/* Empties slot i, moving later entries of its run back so that every lookup still finds
 * them (deletion without tombstones). */
static void peer_remove_at(size_t i)
{
    const size_t mask = peers_cap - 1;
    size_t j = i;
    peers[i].count = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (peers[j].count == 0)
            break;
        size_t home = peer_hash(peers[j].key) & mask;
        /* j's entry may move to i if its home is not in the cyclic range (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            peers[i] = peers[j];
            peers[j].count = 0;
            i = j;
        }
    }
    peers_used--;
}

int cvd_peer_acquire(const struct sockaddr *sa, int max)
{
    uint8_t key[16];
    int rc = 1;
    if (max <= 0 || addr_key(sa, key) < 0)
        return 2;
    pthread_mutex_lock(&peers_lock);
    peer_slot *s = peer_find(key);
    if (s && s->count >= max)
        rc = 0;
    else if (s)
        s->count++;
    else if ((s = peer_insert(key)) != NULL)
        s->count = 1;
    else
        rc = 2;
    pthread_mutex_unlock(&peers_lock);
    return rc;
}

void cvd_peer_release(const struct sockaddr *sa)
{
    uint8_t key[16];
    if (addr_key(sa, key) < 0)
        return;
    pthread_mutex_lock(&peers_lock);
    peer_slot *s = peer_find(key);
    if (s && --s->count == 0)
        peer_remove_at((size_t)(s - peers));
    pthread_mutex_unlock(&peers_lock);
}

int cvd_peer_count(const struct sockaddr *sa)
{
    uint8_t key[16];
    int n = 0;
    if (addr_key(sa, key) < 0)
        return 0;
    pthread_mutex_lock(&peers_lock);
    peer_slot *s = peer_find(key);
    if (s)
        n = s->count;
    pthread_mutex_unlock(&peers_lock);
    return n;
}
