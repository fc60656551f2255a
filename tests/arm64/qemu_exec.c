/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linked only into the aarch64 test binary that scripts/test-arm64.sh runs under qemu-user.
 *
 * Criterion runs each test in a new process: it forks and executes its own binary again. Under
 * qemu-user that execve reaches the x86-64 kernel, which cannot run an aarch64 file (ENOEXEC)
 * unless binfmt_misc is set up for qemu, which a container or a CI runner rarely has. This
 * execve, which the executable exports ahead of libc's, runs an aarch64 file through the qemu
 * named in CVD_QEMU_EXEC instead (qemu -0 ARGV0 FILE ARGS...); anything else, and everything
 * when CVD_QEMU_EXEC is unset, goes to the kernel unchanged. No allocation: it runs between
 * fork and exec.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* an ELF file for aarch64 (e_machine 183) */
static int is_aarch64_elf(const char *path)
{
    unsigned char h[20];
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long n = syscall(SYS_read, fd, h, sizeof h);
    syscall(SYS_close, fd);
    return n == (long)sizeof h && memcmp(h, "\177ELF", 4) == 0 && h[18] == 183 && h[19] == 0;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    const char *qemu = getenv("CVD_QEMU_EXEC");
    if (qemu != NULL && *qemu && is_aarch64_elf(path)) {
        static char *nargv[256];
        int n = 0;
        nargv[n++] = (char *)qemu;
        nargv[n++] = (char *)"-0";
        nargv[n++] = (char *)(argv[0] ? argv[0] : path);
        nargv[n++] = (char *)path;
        for (int i = 1; argv[0] && argv[i] && n < 255; i++)
            nargv[n++] = argv[i];
        nargv[n] = NULL;
        return (int)syscall(SYS_execve, qemu, nargv, envp);
    }
    return (int)syscall(SYS_execve, path, argv, envp);
}
