/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uv_check.h - libuv calls that cannot fail in a correct program (timers and idles on a live
 * loop, stopping what runs): a failure is a bug, so the daemon aborts naming the call and
 * uv_strerror. Expected failures (sockets, threads, descriptors) are handled where they
 * happen instead.
 */
#ifndef CONVD_UV_CHECK_H
#define CONVD_UV_CHECK_H

#include <stdlib.h>
#include <uv.h>

#include "log.h"

#define CVD_UV_CHECK(call)                                                                         \
    do {                                                                                           \
        int cvd_uv_rc_ = (call);                                                                   \
        if (cvd_uv_rc_ < 0) {                                                                      \
            cvd_log_error("%s: %s", #call, uv_strerror(cvd_uv_rc_));                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
