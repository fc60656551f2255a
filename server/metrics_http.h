/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_http.h - the metrics endpoint: GET /metrics over HTTP/1.1 on the main loop, one
 * response per connection (Connection: close), the text of cvd_metrics_render(). A request
 * must arrive within 5 s and fit in 8 KiB. Only addresses of metrics_allow are served.
 */
#ifndef CONVD_METRICS_HTTP_H
#define CONVD_METRICS_HTTP_H

#include <uv.h>

#include "acl.h"
#include "config.h"
#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_metrics_http cvd_metrics_http;

/* Listens on conf's metrics address (*out NULL when metrics = none) and logs its URL. On
 * failure ("metrics HOST:PORT: reason") nothing is left but a handle closing on the loop. */
int cvd_metrics_http_start(uv_loop_t *loop, const cvd_conf *conf, cvd_metrics_http **out,
                           cvd_err *err);
/* Who may connect (metrics_allow; a reload sets it again); others are closed at accept and
 * counted (convd_metrics_refused_total). */
void cvd_metrics_http_set_allow(cvd_metrics_http *m, const cvd_acl *allow);
/* The bound port (the real one when configured as 0). */
int cvd_metrics_http_port(const cvd_metrics_http *m);
/* Stops listening; requests in progress finish (each within its timeout). The memory goes
 * when the loop has closed the handle. NULL is fine; once only. */
void cvd_metrics_http_stop(cvd_metrics_http *m);

#ifdef __cplusplus
}
#endif

#endif
