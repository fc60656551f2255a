/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pubsub.c - server/pubsub.h on its own: a subscriber that reads too slowly loses frames,
 * and every frame it does get is where the reported losses say it is in the stream.
 */
#include <criterion/criterion.h>

#include "pubsub.h"
#include "testutil.h"

static void no_wake(void *ctx)
{
    (void)ctx;
}

/* Frames carry their stream index (channel 0) and its negation (channel 1). Random writes,
 * gaps and reads of random sizes through a small ring: after each read, the frames read
 * must be the indices the reader computes from what it was told was dropped. */
Test(pubsub, a_slow_subscriber_gets_frames_at_the_indices_its_losses_say)
{
    uint64_t seed = tu_seed();
    for (int round = 0; round < 200; round++) {
        cvd_rng rng;
        cvd_rng_seed(&rng, seed + (uint64_t)round);
        char name[32];
        snprintf(name, sizeof name, "t%d", round);
        cvd_pub_info info = {.channels = 2, .rate = 1000};
        cvd_pub *p = NULL;
        cvd_sub *s = NULL;
        cvd_err err = {0};
        int cap = 1 + (int)tu_randint(&rng, 64);
        cr_assert_eq(cvd_pub_create(name, &info, &p, &err), 0, "%s", err.msg);
        cr_assert_eq(cvd_sub_create(name, cap, 0, no_wake, NULL, &s, NULL, &err), 0, "%s", err.msg);
        uint64_t produced = 0, expect = 0, lost = 0, got = 0;
        float in[2 * 200], out[2 * 200];
        for (int step = 0; step < 400; step++) {
            int what = (int)tu_randint(&rng, 10);
            if (what < 5) { /* a write */
                int n = 1 + (int)tu_randint(&rng, 150);
                for (int i = 0; i < n; i++) {
                    in[2 * i] = (float)(produced + (uint64_t)i);
                    in[2 * i + 1] = -(float)(produced + (uint64_t)i);
                }
                cvd_pub_write(p, in, n);
                produced += (uint64_t)n;
            } else if (what == 5) { /* the producer lost frames itself */
                uint64_t n = 1 + tu_randint(&rng, 20);
                cvd_pub_gap(p, n);
                produced += n;
            } else { /* a read */
                uint64_t dropped = 0;
                int state = 0, max = 1 + (int)tu_randint(&rng, 200);
                int n = cvd_sub_read(s, out, max, &dropped, &state);
                expect += dropped;
                lost += dropped;
                for (int i = 0; i < n; i++) {
                    cr_assert_eq((uint64_t)out[2 * i], expect,
                                 "seed %llu round %d step %d: frame %d of a read of %d (after %llu "
                                 "dropped) is stream frame %.0f, its position says %llu",
                                 (unsigned long long)seed, round, step, i, n,
                                 (unsigned long long)dropped, (double)out[2 * i],
                                 (unsigned long long)expect);
                    cr_assert_eq(out[2 * i + 1], -out[2 * i]);
                    expect++;
                }
                got += (uint64_t)n;
            }
        }
        cvd_pub_destroy(p);
        for (;;) { /* drain: the rest, then the end */
            uint64_t dropped = 0;
            int state = 0;
            int n = cvd_sub_read(s, out, 200, &dropped, &state);
            expect += dropped;
            lost += dropped;
            for (int i = 0; i < n; i++, expect++)
                cr_assert_eq((uint64_t)out[2 * i], expect, "seed %llu round %d: drain",
                             (unsigned long long)seed, round);
            got += (uint64_t)n;
            if (state == 1)
                break;
            cr_assert_gt(n + (int)(dropped > 0), 0, "an unfinished stream reads nothing");
        }
        cr_assert_eq(got + lost, produced, "seed %llu round %d: %llu read + %llu lost != %llu",
                     (unsigned long long)seed, round, (unsigned long long)got,
                     (unsigned long long)lost, (unsigned long long)produced);
        cvd_sub_destroy(s);
    }
}
