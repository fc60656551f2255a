/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_memfig.c - server/memfig.c: the memory figure of a model's stream state bounds the
 * real state of a net built at any block size, for every model the tests have (NAM WaveNets,
 * convd JSON graphs, Keras files streaming and windowed, the demo models, and the shared
 * standard NAM model when ../shared is there), and is not wildly above it.
 */
#include <criterion/criterion.h>
#include <glob.h>

#include "convd_model.h"
#include "memfig.h"
#include "testutil.h"

static void check_model(const char *path, size_t *checked)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    if (cvd_model_load(path, &m, &err) < 0 || cvd_model_can_stream(m, NULL) < 0) {
        cvd_model_unref(m);
        return; /* a model made to be refused (tests/data/.../bad) */
    }
    cvd_memfig f = {0};
    cr_assert_eq(cvd_memfig_measure(m, 0, &f, &err), 0, "%s: %s", path, err.msg);
    const int blocks[] = {1,    2,    3,    7,    8,    9,    31,   63,    64,
                          65,   100,  255,  256,  257,  999,  1000, 1024,  2047,
                          4095, 4096, 4097, 6000, 8191, 8192, 8193, 12345, 65536};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        const int b = blocks[i];
        cvd_net *n = NULL;
        cr_assert_eq(cvd_net_create(m, b, &n, &err), 0, "%s, block %d: %s", path, b, err.msg);
        size_t real = cvd_net_state_bytes(n), fig = cvd_memfig_net_bytes(&f, b);
        size_t out = (size_t)cvd_net_max_out(n), out_fig = cvd_memfig_max_out(&f, b);
        cvd_net_destroy(n);
        cr_assert_geq(out_fig, out, "%s, block %d: the output bound %zu is below max_out %zu", path,
                      b, out_fig, out);
        cr_assert_geq(fig, real, "%s, block %d: the figure %zu is below the real %zu bytes", path,
                      b, fig, real);
        /* an upper bound, but one that means something: within 2x (and 256 KiB) */
        cr_assert_leq(fig, 2 * real + 256 * 1024, "%s, block %d: the figure %zu is far above %zu",
                      path, b, fig, real);
        (*checked)++;
    }
    cvd_model_unref(m);
}

Test(memfig, bounds_every_test_model_at_every_block_size)
{
    const char *patterns[] = {"tests/data/nam/*.nam",     "tests/data/tools/*.json",
                              "tests/data/keras/*.keras", "tests/data/keras/*.h5",
                              "config/models/*.json",     "../shared/models/nam/*.nam"};
    size_t checked = 0, models = 0;
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        glob_t g;
        if (glob(patterns[p], 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            size_t before = checked;
            check_model(g.gl_pathv[i], &checked);
            models += checked > before;
        }
        globfree(&g);
    }
    cr_assert_gt(models, 20, "only %zu models checked (run from the top of the tree)", models);
    cr_log_info("memfig: %zu models, %zu (model, block) pairs", models, checked);
}

Test(memfig, the_formula)
{
    cvd_memfig f = {.base = 1000, .per_frame = 10};
    cr_assert_eq(cvd_memfig_net_bytes(&f, 1), 1000);
    cr_assert_eq(cvd_memfig_net_bytes(&f, 0), 1000);
    cr_assert_eq(cvd_memfig_net_bytes(&f, 65536), 1000 + 10 * 65535);
    f.out_base = 3;
    f.out_per_frame = 2;
    cr_assert_eq(cvd_memfig_max_out(&f, 5), 3 + 2 * 4);
}
