/* convprop._native: the one place where a kernel call is shared between threads (OpenMP).
 *
 * Included by _runtime.pyx only; the families reach run_parallel through its .pxd, so that
 * the fork policy below is one state for the whole process.
 *
 * run_parallel(task, ctx, lo, hi, threads, align) runs task(ctx, worker, a, b) over [lo, hi)
 * cut into chunks of `grain` planes (CHUNKS_PER_THREAD per thread: fine enough that a fast
 * core takes more of them than a slow one, coarse enough that claiming one costs nothing
 * beside it; element-wise loops round the grain up to `align` elements), which the threads
 * of an OpenMP team claim in turn (schedule(dynamic, 1)). `worker` is the thread's number in
 * the team, 0 <= worker < threads, for per-worker scratch. It returns the sum of the task's
 * results (e.g. invalid entries found). Every plane is computed by exactly one thread, so
 * the results do not depend on the thread count.
 *
 * How idle threads wait between calls (spin, then sleep) is the OpenMP runtime's policy:
 * OMP_WAIT_POLICY and, for GNU libgomp, GOMP_SPINCOUNT are read by the runtime itself, once,
 * as it loads (_native/_compiled.py asks for a short spin at that moment unless the user chose).
 *
 * Fork. GNU libgomp keeps the team of a thread that ran a parallel region for the next one;
 * a child made by fork() inherits that bookkeeping but not the threads, and its first
 * parallel region waits forever for them. So a child forked after a region of more than one
 * thread ran runs every call on its calling thread alone (parallel_after_fork_in_child,
 * registered with pthread_atfork when _runtime is imported); a child forked before any
 * such region keeps its threads.
 */
#ifndef CONVPROP_NATIVE_PARALLEL_H
#define CONVPROP_NATIVE_PARALLEL_H

#include "common.h"

#include <omp.h>
#include <pthread.h>
#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

/* One task over planes [lo, hi), run by thread number `worker` of the team. */
typedef Py_ssize_t (*range_task)(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi);

#define CHUNKS_PER_THREAD 8
#define MAX_THREADS 64 /* threads of one call, the calling thread included */

static int parallel_used = 0;  /* a region of more than one thread ran in this process */
static int forked_child = 0;   /* forked after such a region: one thread per call */

static void parallel_after_fork_in_child(void)
{
    if (parallel_used) forked_child = 1;
}

static int parallel_register_fork_handler(void)
{
    return pthread_atfork(NULL, NULL, parallel_after_fork_in_child);
}

/* The threads a call over [lo, hi) asks for: at most MAX_THREADS and never more than there
 * are planes; the bindings size their per-worker scratch with it. */
static inline int parallel_threads(Py_ssize_t lo, Py_ssize_t hi, int threads)
{
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (hi - lo < threads) threads = hi - lo > 1 ? (int)(hi - lo) : 1;
    return threads < 1 ? 1 : threads;
}

static Py_ssize_t run_parallel(range_task task, void *ctx, Py_ssize_t lo, Py_ssize_t hi,
                               int threads, Py_ssize_t align)
{
    threads = parallel_threads(lo, hi, threads);
    const Py_ssize_t per_chunk = (Py_ssize_t)threads * CHUNKS_PER_THREAD;
    Py_ssize_t grain = (hi - lo + per_chunk - 1) / per_chunk;
    if (align > 1) grain = (grain + align - 1) / align * align;
    if (grain < 1) grain = 1;
    const Py_ssize_t chunks = (hi - lo + grain - 1) / grain;
    if (chunks < threads) threads = (int)chunks;
    if (threads <= 1 || forked_child) return task(ctx, 0, lo, hi);
    parallel_used = 1;
    Py_ssize_t total = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : total)
    for (Py_ssize_t chunk = 0; chunk < chunks; ++chunk) {
        const Py_ssize_t a = lo + chunk * grain, b = a + grain < hi ? a + grain : hi;
        total += task(ctx, omp_get_thread_num(), a, b);
    }
    return total;
}

/* The file of the OpenMP runtime this module runs on (e.g. .../libgomp.so.1), or "" where
 * the platform cannot tell. */
static const char *openmp_library(void)
{
#if defined(__unix__) || defined(__APPLE__)
    Dl_info info;
    if (dladdr((void *)&omp_get_max_threads, &info) && info.dli_fname) return info.dli_fname;
#endif
    return "";
}

/* _OPENMP: the date of the OpenMP specification the compiler implements (e.g. 201511). */
static inline int openmp_version(void) { return _OPENMP; }

#endif
