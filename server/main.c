/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd: the streaming neural DSP daemon.
 *
 *   convd [-c FILE] [--workers N] [--log-level LEVEL]   run
 *   convd --check [-c FILE]                             validate a config and its models
 *
 * With no -c, /etc/convd/convd.conf is read if it exists; otherwise the built-in default
 * configuration serves the demo models compiled into the daemon on 127.0.0.1.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "audio.h"
#include "convd_version.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"

#define DEFAULT_CONFIG "/etc/convd/convd.conf"

static void usage(FILE *f)
{
    fprintf(f, "usage: convd [-c FILE | --builtin-config] [--workers N]\n"
               "             [--log-level error|warning|info|debug]\n"
               "       convd --check [-c FILE]\n"
               "       convd --list-devices [-v]\n"
               "       convd --help | --version\n"
               "\n"
               "  -c, --config FILE  configuration (default " DEFAULT_CONFIG ", or the built-in\n"
               "                     default when that file does not exist)\n"
               "  --builtin-config   the built-in default (demo models on 127.0.0.1), even if\n"
               "                     " DEFAULT_CONFIG " exists\n"
               "  --check            load the configuration and its models, report, exit\n"
               "  --list-devices     the audio devices [stream NAME] sections may name, exit\n"
               "  -v, --verbose      with --list-devices: the host APIs' own messages too\n"
               "  --workers N        worker threads (overrides [server] workers)\n"
               "  --log-level LEVEL  overrides [server] log_level until a reload\n"
               "\n"
               "Models: a relative path in the configuration is looked up in\n"
               "  " CVD_CONF_MODEL_DIR " first (where captures live; $CONVD_MODEL_DIR instead,\n"
               "  when set), then beside the configuration file.\n"
               "Signals: SIGTERM/SIGINT stop (streams are flushed), SIGHUP reloads.\n"
               "Exit status: 0 stopped cleanly (--check: the configuration is good), 1 an\n"
               "error, 2 a usage error.\n"
               "\n"
               "Documentation: convd(8), convd.conf(5); " CVD_DOCDIR "\n"
               "(CONFIG.md, PROTOCOL.md, AUDIO.md).\n");
}

/* The value of option argv[*i] (the next argument), or NULL after a usage error. */
static const char *option_value(int argc, char **argv, int *i, const char *what)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "convd: %s needs a value (%s)\n(convd --help shows the usage)\n", argv[*i],
                what);
        return NULL;
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int check = 0, workers = 0, level = -1, builtin = 0, list = 0, verbose = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if ((config = option_value(argc, argv, &i, "the configuration file")) == NULL)
                return 2;
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else if (strcmp(a, "--builtin-config") == 0) {
            builtin = 1;
        } else if (strcmp(a, "--check") == 0) {
            check = 1;
        } else if (strcmp(a, "--list-devices") == 0) {
            list = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--workers") == 0) {
            char *end;
            const char *v = option_value(argc, argv, &i, "worker threads, 1..256");
            long n;
            if (v == NULL)
                return 2;
            n = strtol(v, &end, 10);
            if (*v == '\0' || *end || n < 1 || n > 256) {
                fprintf(stderr, "convd: --workers %s: must be 1..256\n", v);
                return 2;
            }
            workers = (int)n;
        } else if (strcmp(a, "--log-level") == 0) {
            const char *v = option_value(argc, argv, &i, "error, warning, info or debug");
            if (v == NULL)
                return 2;
            level = cvd_log_level_parse(v);
            if (level < 0) {
                fprintf(stderr, "convd: --log-level %s: error, warning, info or debug\n", v);
                return 2;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("convd " CVD_VERSION "\n");
            return 0;
        } else {
            fprintf(stderr, "convd: %s: unknown option\n(convd --help shows the usage)\n", a);
            return 2;
        }
    }
    if (builtin && config) {
        fprintf(stderr, "convd: --builtin-config and -c exclude each other\n");
        return 2;
    }
    if (list)
        return cvd_audio_list_devices(stdout, verbose);
    int looked_errno = 0;
    if (config == NULL && !builtin) {
        if (access(DEFAULT_CONFIG, F_OK) == 0)
            config = DEFAULT_CONFIG;
        else
            looked_errno = errno;
    }

    cvd_log_init(level >= 0 ? level : CVD_LOG_INFO);
    /* Allocations of 128 KiB and more (a stream's WaveNet state is one block of about 600 KB
     * at block 64) are mappings of their own, unmapped when freed. glibc's default raises that
     * threshold past any such block freed, after which stream state comes from the arenas:
     * streams are built on libuv's pool threads and freed on the workers, and each pool
     * thread's arena kept its peak (a soak's 200 streams left 230 MB of arenas resident; with
     * the threshold fixed, 170). Fixing it turns the dynamic threshold off. Refused where
     * malloc is not glibc's (the sanitizers' allocator, a preloaded one), which keeps its own
     * rules: nothing for the operator to act on. */
    if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1)
        cvd_log_debug("mallopt(M_MMAP_THRESHOLD) refused (not glibc's malloc?): stream state "
                      "may stay in the allocator's arenas after streams end");
    cvd_metrics_set_version(CVD_VERSION);
    if (config == NULL && !builtin)
        /* an operator who forgot -c, or whose package lost its conffile, must not mistake the
         * demo models for the service (a warning: it shows at the default log level) */
        cvd_log_warning("no -c FILE, and no " DEFAULT_CONFIG " (looked for it: %s): serving "
                        "the built-in demo configuration (demo models on 127.0.0.1, ports "
                        "7400-7402; convd --builtin-config asks for it explicitly)",
                        strerror(looked_errno));
    if (check)
        return cvd_daemon_check(config);
    if (config == NULL && builtin)
        cvd_log_info("--builtin-config: serving the built-in demo configuration");
    return cvd_daemon_run(config, workers, level);
}
