/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h - the daemon's main thread: startup, signals, reload, shutdown, systemd.
 *
 * The main thread runs the main loop: signals (SIGTERM/SIGINT stop, SIGHUP reloads; models
 * load on libuv's thread pool, off every loop), systemd notifications and watchdog, the
 * metrics endpoint (metrics_http.h), live audio (audio.h) and the listening sockets
 * (listen.h). Each worker thread (worker.h) runs its own loop and owns the connections it
 * accepted (conn.h) for their whole life; the main thread talks to the workers only through
 * the worker's calls, and they answer through the `done` callback.
 */
#ifndef CONVD_DAEMON_H
#define CONVD_DAEMON_H

/* Runs the daemon until it is stopped; the exit status. workers_override > 0 replaces
 * [server] workers; log_level_override >= 0 replaces log_level until a reload. */
int cvd_daemon_run(const char *config_path, int workers_override, int log_level_override);
/* convd --check: loads a config and its models, prints the result; the exit status. */
int cvd_daemon_check(const char *config_path);

#endif
