/* SPDX-License-Identifier: Apache-2.0 */
/* Counts the malloc-family calls of the test binary (linked with -Wl,--wrap=...), so tests
 * can assert that real-time paths allocate nothing. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "alloc_count.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

static atomic_long allocs;

long alloc_count(void)
{
    return atomic_load(&allocs);
}

void *__wrap_malloc(size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    atomic_fetch_add(&allocs, 1);
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return __real_aligned_alloc(a, n);
}

int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return __real_posix_memalign(p, a, n);
}

/* The shared libraries' allocations (libc's own, FFTW's, libsamplerate's) do not go through
 * the linker wraps: they call malloc by name. Defining the malloc family here interposes it
 * for the whole process, counted per thread (another thread of the test runner may allocate
 * at any time). Not under AddressSanitizer or ThreadSanitizer, which interpose malloc
 * themselves: there alloc_count_thread() says -1 and tests check the wrap counter only. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#include <errno.h>
#include <malloc.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);

static _Thread_local long thread_allocs;

void *malloc(size_t n)
{
    thread_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    thread_allocs++;
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    thread_allocs++;
    return __libc_realloc(p, n);
}

void *memalign(size_t a, size_t n)
{
    thread_allocs++;
    return __libc_memalign(a, n);
}

void *aligned_alloc(size_t a, size_t n)
{
    thread_allocs++;
    return __libc_memalign(a, n);
}

int posix_memalign(void **p, size_t a, size_t n)
{
    thread_allocs++;
    if (a < sizeof(void *) || (a & (a - 1)) != 0)
        return EINVAL;
    void *q = __libc_memalign(a, n);
    if (q == NULL && n != 0)
        return ENOMEM;
    *p = q;
    return 0;
}

long alloc_count_thread(void)
{
    return thread_allocs;
}
#else
long alloc_count_thread(void)
{
    return -1;
}
#endif
