/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_acl.c - server/acl.c: allow lists (parse, match, refuse bad entries by name) and the
 * per-address connection counts (against a plain reference, and from many threads).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "acl.h"
#include "testutil.h"

/* A sockaddr for a numeric address ("10.1.2.3", "::1"). */
static struct sockaddr_storage sa_of(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, addr, &a->sin6_addr), 1, "%s", addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, addr, &a->sin_addr), 1, "%s", addr);
    }
    return ss;
}

static int allows(const cvd_acl *a, const char *addr)
{
    struct sockaddr_storage ss = sa_of(addr);
    return cvd_acl_allows(a, (struct sockaddr *)&ss);
}

static cvd_acl parse_ok(const char *text)
{
    cvd_acl a;
    char why[256] = "";
    cr_assert_eq(cvd_acl_parse(text, &a, why, sizeof why), 0, "'%s': %s", text, why);
    return a;
}

Test(acl, the_issues_example_and_matching)
{
    cvd_acl a = parse_ok("127.0.0.1/32, 10.1.0.0/16, [::1]/128");
    char txt[256];
    cr_assert_eq(a.n, 3);
    cvd_acl_format(&a, txt, sizeof txt);
    cr_assert_str_eq(txt, "127.0.0.1/32, 10.1.0.0/16, [::1]/128");
    cr_assert(allows(&a, "127.0.0.1"));
    cr_assert(!allows(&a, "127.0.0.2"), "127.0.0.2 is outside 127.0.0.1/32");
    cr_assert(allows(&a, "10.1.0.0") && allows(&a, "10.1.255.255") && allows(&a, "10.1.7.9"));
    cr_assert(!allows(&a, "10.2.0.1") && !allows(&a, "10.0.255.255"));
    cr_assert(allows(&a, "::1"));
    cr_assert(!allows(&a, "::2") && !allows(&a, "fe80::1"));
    /* an IPv4 client seen through a dual-stack socket */
    cr_assert(allows(&a, "::ffff:10.1.2.3"));
    cr_assert(!allows(&a, "::ffff:10.2.2.3"));

    /* no list: everyone */
    cvd_acl none;
    memset(&none, 0, sizeof none);
    cr_assert(allows(&none, "203.0.113.9") && allows(&none, "2001:db8::1"));
    cvd_acl_format(&none, txt, sizeof txt);
    cr_assert_str_eq(txt, "all");
}

Test(acl, prefixes_at_every_length_and_bare_addresses)
{
    /* a network at every prefix length holds its first and last address and nothing next
     * to it */
    for (int p = 1; p <= 32; p++) {
        uint32_t net = p == 32 ? 0xC0A80101u : (0xC0A80000u & (0xffffffffu << (32 - p)));
        uint32_t size = p == 32 ? 1 : 1u << (32 - p);
        char text[64], first[32], last[32], after[32];
        struct in_addr x;
        x.s_addr = htonl(net);
        snprintf(text, sizeof text, " %s/%d ", inet_ntoa(x), p);
        cvd_acl a = parse_ok(text);
        snprintf(first, sizeof first, "%s", inet_ntoa(x));
        x.s_addr = htonl(net + size - 1);
        snprintf(last, sizeof last, "%s", inet_ntoa(x));
        x.s_addr = htonl(net + size);
        snprintf(after, sizeof after, "%s", inet_ntoa(x));
        cr_assert(allows(&a, first) && allows(&a, last), "/%d: %s..%s", p, first, last);
        if (net + size != 0)
            cr_assert(!allows(&a, after), "/%d admits %s", p, after);
    }
    cvd_acl a = parse_ok("0.0.0.0/0");
    cr_assert(allows(&a, "1.2.3.4") && allows(&a, "255.255.255.255"));
    cr_assert(!allows(&a, "2001:db8::1"), "an IPv4 rule admits IPv6");
    a = parse_ok("::/0");
    cr_assert(allows(&a, "2001:db8::1") && allows(&a, "1.2.3.4"));
    a = parse_ok("2001:db8:abcd::/48,fe80::/10");
    cr_assert(allows(&a, "2001:db8:abcd:ffff::1") && !allows(&a, "2001:db8:abce::1"));
    cr_assert(allows(&a, "febf::1") && !allows(&a, "fec0::1"));
    a = parse_ok("::1, 192.0.2.7,[2001:db8::5]");
    char txt[256];
    cvd_acl_format(&a, txt, sizeof txt);
    cr_assert_str_eq(txt, "[::1]/128, 192.0.2.7/32, [2001:db8::5]/128");
    cr_assert(allows(&a, "192.0.2.7") && !allows(&a, "192.0.2.8"));
    cr_assert(allows(&a, "2001:db8::5") && !allows(&a, "2001:db8::6"));
}

Test(acl, bad_lists_are_refused_by_entry)
{
    struct {
        const char *text, *want;
    } cases[] = {
        {"", "an empty list"},
        {"   ", "an empty list"},
        {"127.0.0.1,", "an empty entry"},
        {",127.0.0.1", "an empty entry"},
        {"127.0.0.1,,::1", "an empty entry"},
        {"10.1.2.3/16", "'10.1.2.3/16': bits set past the /16 prefix (the network is 10.1.0.0/16)"},
        {"[2001:db8::1]/32", "(the network is [2001:db8::]/32)"},
        {"10.0.0.0/33", "an IPv4 prefix is 0..32"},
        {"::/129", "an IPv6 prefix is 0..128"},
        {"10.0.0.0/", "no prefix length"},
        {"10.0.0.0/x", "not a number"},
        {"10.0.0.0/-1", "not a number"},
        {"localhost", "not a numeric IPv4 address"},
        {"127.000.000.001", "not a numeric IPv4 address"},
        {"1.2.3", "not a numeric IPv4 address"},
        {"[127.0.0.1]", "brackets are for IPv6"},
        {"[::1", "no ']'"},
        {"[::1]x", "only '/PREFIX' may follow ']'"},
        {"fe80::1%eth0", "scope ids"},
        {"::g", "not an IPv6 address"},
        {"10.0.0.1 10.0.0.2", "blanks inside an entry"},
        {"/8", "no address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvd_acl a;
        char why[256] = "";
        cr_assert_eq(cvd_acl_parse(cases[i].text, &a, why, sizeof why), -1, "'%s' was accepted",
                     cases[i].text);
        cr_assert(strstr(why, cases[i].want), "'%s': \"%s\", expected \"%s\"", cases[i].text, why,
                  cases[i].want);
    }
    /* the most entries, and one more */
    char big[8192] = "";
    for (int i = 0; i < CVD_ACL_MAX; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s10.0.%d.1", i ? "," : "", i);
    cvd_acl a = parse_ok(big);
    cr_assert_eq(a.n, CVD_ACL_MAX);
    strcat(big, ",10.9.9.9");
    char why[256];
    cr_assert_eq(cvd_acl_parse(big, &a, why, sizeof why), -1);
    cr_assert(strstr(why, "more than 64 entries"), "%s", why);
}

Test(acl, address_text)
{
    const char *in[] = {"10.1.2.3", "::1", "::ffff:10.1.2.3", "2001:db8::7"};
    const char *out[] = {"10.1.2.3", "::1", "10.1.2.3", "2001:db8::7"};
    for (int i = 0; i < 4; i++) {
        struct sockaddr_storage ss = sa_of(in[i]);
        char buf[64];
        cvd_addr_text((struct sockaddr *)&ss, buf, sizeof buf);
        cr_assert_str_eq(buf, out[i]);
    }
}

/* ---- per-address counts --------------------------------------------------------------------- */

Test(acl, per_address_counts_match_a_reference)
{
    enum { N = 300 };
    static int ref[N];
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    const int max = 5;
    struct sockaddr_storage sas[N];
    for (int i = 0; i < N; i++) {
        char a[64];
        if (i % 3 == 0)
            snprintf(a, sizeof a, "2001:db8::%x", i);
        else
            snprintf(a, sizeof a, "10.%d.%d.1", i / 200, i % 200);
        sas[i] = sa_of(a);
    }
    /* random acquires and releases: the table grows, shrinks and moves entries around */
    for (int step = 0; step < 200000; step++) {
        int i = (int)tu_randint(&rng, N);
        struct sockaddr *sa = (struct sockaddr *)&sas[i];
        if (tu_randint(&rng, 2) == 0) {
            int r = cvd_peer_acquire(sa, max);
            cr_assert_eq(r, ref[i] < max ? 1 : 0,
                         "step %d, address %d: acquire gave %d with %d open", step, i, r, ref[i]);
            if (r == 1)
                ref[i]++;
        } else if (ref[i] > 0) {
            cvd_peer_release(sa);
            ref[i]--;
        }
        if (step % 997 == 0)
            for (int k = 0; k < N; k++)
                cr_assert_eq(cvd_peer_count((struct sockaddr *)&sas[k]), ref[k],
                             "step %d, address %d (seed %llu)", step, k,
                             (unsigned long long)tu_seed());
    }
    for (int k = 0; k < N; k++)
        while (ref[k]-- > 0)
            cvd_peer_release((struct sockaddr *)&sas[k]);
    for (int k = 0; k < N; k++)
        cr_assert_eq(cvd_peer_count((struct sockaddr *)&sas[k]), 0);
    /* an IPv4 client and its mapped IPv6 form are one source */
    struct sockaddr_storage v4 = sa_of("192.0.2.1"), m6 = sa_of("::ffff:192.0.2.1");
    cr_assert_eq(cvd_peer_acquire((struct sockaddr *)&v4, 2), 1);
    cr_assert_eq(cvd_peer_acquire((struct sockaddr *)&m6, 2), 1);
    cr_assert_eq(cvd_peer_acquire((struct sockaddr *)&v4, 2), 0, "a third from the same source");
    cvd_peer_release((struct sockaddr *)&m6);
    cvd_peer_release((struct sockaddr *)&v4);
    cr_assert_eq(cvd_peer_count((struct sockaddr *)&v4), 0);
    /* no limit: nothing counted */
    cr_assert_eq(cvd_peer_acquire((struct sockaddr *)&v4, 0), 2);
    cr_assert_eq(cvd_peer_count((struct sockaddr *)&v4), 0);
}

static void *hammer(void *arg)
{
    struct sockaddr_storage *sa = arg;
    for (int i = 0; i < 20000; i++) {
        int r = cvd_peer_acquire((struct sockaddr *)sa, 1000000);
        if (r == 1)
            cvd_peer_release((struct sockaddr *)sa);
    }
    return NULL;
}

Test(acl, per_address_counts_from_many_threads)
{
    struct sockaddr_storage a = sa_of("198.51.100.1"), b = sa_of("2001:db8::99");
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, hammer, i % 2 ? &a : &b);
    /* meanwhile, a limit of 3 on a third address holds */
    struct sockaddr_storage c = sa_of("203.0.113.3");
    int got = 0;
    for (int i = 0; i < 10; i++)
        got += cvd_peer_acquire((struct sockaddr *)&c, 3) == 1;
    cr_assert_eq(got, 3);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(cvd_peer_count((struct sockaddr *)&a), 0);
    cr_assert_eq(cvd_peer_count((struct sockaddr *)&b), 0);
    cr_assert_eq(cvd_peer_count((struct sockaddr *)&c), 3);
}
