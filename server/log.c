/* SPDX-License-Identifier: Apache-2.0 */
/* Logging: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_int log_level = CVD_LOG_INFO;
static int under_journal;

static const char *const names[] = {"error", "warning", "info", "debug"};
static const char *const prefixes[] = {"<3>", "<4>", "<6>", "<7>"};

/* journald sets JOURNAL_STREAM=DEV:INODE of the stream it gave us as stderr */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void cvd_log_init(int level)
{
    cvd_log_set_level(level);
    under_journal = stderr_is_journal();
}

void cvd_log_set_level(int level)
{
    if (level < CVD_LOG_ERROR)
        level = CVD_LOG_ERROR;
    if (level > CVD_LOG_DEBUG)
        level = CVD_LOG_DEBUG;
    atomic_store(&log_level, level);
}

int cvd_log_level(void)
{
    return atomic_load(&log_level);
}

int cvd_log_enabled(int level)
{
    return level <= atomic_load(&log_level);
}

void cvd_log(int level, const char *fmt, ...)
{
    char line[2048];
    int n;
    va_list ap;

    if (!cvd_log_enabled(level))
        return;
    if (level < CVD_LOG_ERROR || level > CVD_LOG_DEBUG)
        level = CVD_LOG_ERROR;
    if (under_journal)
        n = snprintf(line, sizeof line, "%s", prefixes[level]);
    else
        n = snprintf(line, sizeof line, "convd: %s: ", names[level]);
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* one line: no newlines inside (a message naming user input must not forge lines) */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
