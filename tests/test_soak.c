/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_soak.c - the soak program (tests/soak/soak.c, `make soak`) for 60 s: healthy clients on
 * raw, line and framed listeners, plain and TLS, beside the hostile mix (connect-close flood,
 * slowloris, huge framed lengths, garbage, never-reading clients, half-open sockets, sources
 * outside `allow`, wrong TLS, wrong tokens). It passes when every healthy stream was served
 * bit-identical and the daemon exited 0 after SIGTERM; this test also checks that the hostile
 * traffic ran and that the daemon counted what it refused. Completion times are printed, not
 * judged (docs/SECURITY.md has the 10-minute run's figures).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_util.h"

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(400);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(soak, .init = suite_init, .fini = suite_fini);

/* a disconnect reason's count in the soak's "daemon counters:" lines, -1 if absent (counters
 * at 0 are left out there) */
static double disconnects(const char *out, const char *reason)
{
    char key[128];
    const char *c = strstr(out, "daemon counters:"), *p;
    snprintf(key, sizeof key, "convd_disconnects_total{reason=\"%s\"} ", reason);
    p = c ? strstr(c, key) : NULL;
    return p ? atof(p + strlen(key)) : -1;
}

/* started / ended by the server for one kind of hostile traffic */
static long hostile_started(const char *out, const char *kind)
{
    const char *p = strstr(out, "hostile traffic");
    long started = -1;
    p = p ? strstr(p, kind) : NULL;
    if (p && sscanf(p + strlen(kind), "%ld", &started) != 1)
        started = -1;
    return started;
}

Test(soak, sixty_seconds_of_hostile_traffic_beside_healthy_clients)
{
    /* a sanitized daemon runs several times slower: its handshake, idle and write timeouts
     * (10 s) are 3x, as the tests' waits are (seen under ASan/UBSan at load 7-10 with 10 s: 3
     * healthy TLS clients refused "no HELLO in time") */
    const char *argv[] = {du_prog("convd-soak"),
                          "--seconds",
                          "60",
                          "--baseline",
                          "15",
                          "--timeout",
                          du_daemon_sanitized() ? "30" : "10",
                          "--model",
                          du_src("tests/data/nam/wide16_tanh.nam"),
                          NULL};
    du_proc p = du_run(argv, 360);
    cr_assert_eq(p.status, 0, "convd-soak failed (exit %d):\n%s\n%s", p.status, p.out, p.err);
    cr_expect(strstr(p.out, "result: PASS") != NULL, "%s", p.out);
    cr_expect(strstr(p.out, "frames lost or altered: 0 lost, 0 altered") != NULL, "%s", p.out);
    /* the hostile mix ran */
    static const char *const kinds[] = {
        "connect-close flood", "slowloris", "huge framed length", "garbage",
        "outside allow",       "wrong TLS", "wrong token",        "block past max_block"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        cr_expect_gt(hostile_started(p.out, kinds[i]), 0, "no %s traffic:\n%s", kinds[i], p.out);
    /* and the daemon counted what it refused */
    static const char *const reasons[] = {"not_allowed", "unauthorized", "tls", "max_block",
                                          "malformed"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        cr_expect_gt(disconnects(p.out, reasons[i]), 0, "no disconnects for %s:\n%s", reasons[i],
                     p.out);
    du_proc_free(&p);
}
