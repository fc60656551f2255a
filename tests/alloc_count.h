/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CONVD_ALLOC_COUNT_H
#define CONVD_ALLOC_COUNT_H
/* Number of malloc/calloc/realloc/aligned_alloc/posix_memalign calls so far in this process
 * (from code linked into the test binary: the tests and the project's libraries). */
long alloc_count(void);
/* Allocations by the calling thread from any code, the shared libraries' included (FFTW,
 * libsamplerate, libc); -1 where the sanitizers own malloc (then rely on alloc_count()). */
long alloc_count_thread(void);
#endif
