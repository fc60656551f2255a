/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr, one line per message, safe from any thread (each line is one write).
 * Under journald (JOURNAL_STREAM names our stderr) lines carry sd-daemon priority prefixes
 * ("<3>", "<4>", "<6>", "<7>"); on a terminal or a file they read "convd: level: text".
 * Never call these from an audio callback.
 */
#ifndef CONVD_LOG_H
#define CONVD_LOG_H

enum { CVD_LOG_ERROR = 0, CVD_LOG_WARNING = 1, CVD_LOG_INFO = 2, CVD_LOG_DEBUG = 3 };

void cvd_log_init(int level);
void cvd_log_set_level(int level);
int cvd_log_level(void);
int cvd_log_enabled(int level);
void cvd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cvd_log_error(...) cvd_log(CVD_LOG_ERROR, __VA_ARGS__)
#define cvd_log_warning(...) cvd_log(CVD_LOG_WARNING, __VA_ARGS__)
#define cvd_log_info(...) cvd_log(CVD_LOG_INFO, __VA_ARGS__)
#define cvd_log_debug(...)                                                                         \
    do {                                                                                           \
        if (cvd_log_enabled(CVD_LOG_DEBUG))                                                        \
            cvd_log(CVD_LOG_DEBUG, __VA_ARGS__);                                                   \
    } while (0)

#endif
