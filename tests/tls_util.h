/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls_util.h - throwaway certificates for the TLS tests, made at run time by
 * scripts/make-test-certs.sh (the openssl command) in the test's temporary folder; a test
 * that cannot make them is skipped, saying why. Include after daemon_util.h.
 */
#ifndef CONVD_TLS_UTIL_H
#define CONVD_TLS_UTIL_H

#include "daemon_util.h"

static char tls_dir[DU_PATH];

/* 1 if an openssl command is on PATH. */
DU_FN int tls_have_openssl(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

/* Makes the certificates (once per test process); skips the test without openssl. */
DU_FN void tls_certs(void)
{
    if (tls_dir[0])
        return;
    if (!tls_have_openssl())
        cr_skip_test("no openssl command to make test certificates (apt-get install openssl)");
    snprintf(tls_dir, sizeof tls_dir, "%s", du_tmp("certs"));
    const char *argv[] = {du_src("scripts/make-test-certs.sh"), tls_dir, NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "make-test-certs.sh failed: %s", p.err);
    du_proc_free(&p);
}

/* The path of a certificate file (ca.pem, server.key, ...). */
DU_FN const char *tls_file(const char *name)
{
    static char bufs[16][DU_PATH];
    static int next;
    char *b = bufs[next++ % 16];
    tls_certs();
    int n = snprintf(b, DU_PATH, "%s/%s", tls_dir, name);
    cr_assert(n > 0 && n < DU_PATH, "path too long");
    return b;
}

#endif
