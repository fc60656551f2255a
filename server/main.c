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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "audio.h"
#include "daemon.h"
#include "log.h"

#define DEFAULT_CONFIG "/etc/convd/convd.conf"

static void usage(FILE *f)
{
    fprintf(f, "usage: convd [-c FILE | --builtin-config] [--workers N]\n"
               "             [--log-level error|warning|info|debug]\n"
               "       convd --check [-c FILE]\n"
               "       convd --list-devices\n"
               "       convd --help | --version\n"
               "\n"
               "  -c, --config FILE  configuration (default " DEFAULT_CONFIG
               ", or the built-in\n"
               "                     default when that file does not exist)\n"
               "  --builtin-config   the built-in default (demo models on 127.0.0.1), even if\n"
               "                     " DEFAULT_CONFIG " exists\n"
               "  --check            load the configuration and its models, report, exit\n"
               "  --list-devices     the audio devices [stream NAME] sections may name, exit\n"
               "  --workers N        worker threads (overrides [server] workers)\n"
               "  --log-level LEVEL  overrides [server] log_level until a reload\n"
               "\n"
               "Signals: SIGTERM/SIGINT stop (streams are flushed), SIGHUP reloads.\n"
               "Reference: docs/CONFIG.md, docs/PROTOCOL.md, docs/AUDIO.md.\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int check = 0, workers = 0, level = -1, builtin = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else if (strcmp(a, "--builtin-config") == 0) {
            builtin = 1;
        } else if (strcmp(a, "--check") == 0) {
            check = 1;
        } else if (strcmp(a, "--list-devices") == 0) {
            return cvd_audio_list_devices(stdout);
        } else if (strcmp(a, "--workers") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 256) {
                fprintf(stderr, "convd: --workers %s: must be 1..256\n", argv[i]);
                return 2;
            }
            workers = (int)v;
        } else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
            level = cvd_log_level_parse(argv[++i]);
            if (level < 0) {
                fprintf(stderr, "convd: --log-level %s: error, warning, info or debug\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("convd 0.1\n");
            return 0;
        } else {
            fprintf(stderr, "convd: %s: unknown option\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (builtin && config) {
        fprintf(stderr, "convd: --builtin-config and -c exclude each other\n");
        return 2;
    }
    if (config == NULL && !builtin && access(DEFAULT_CONFIG, F_OK) == 0)
        config = DEFAULT_CONFIG;

    cvd_log_init(level >= 0 ? level : CVD_LOG_INFO);
    if (check)
        return cvd_daemon_check(config);
    if (config == NULL)
        cvd_log_info("%s: serving the built-in default configuration",
                     builtin ? "--builtin-config" : "no " DEFAULT_CONFIG);
    return cvd_daemon_run(config, workers, level);
}
