/* convprop._native: the one place where a kernel call is shared between threads.
 *
 * Included by _runtime.pyx only; the families reach run_parallel through its .pxd, so that
 * the team of worker threads (team.h) is one for the whole process.
 *
 * run_parallel(task, ctx, lo, hi, threads, align) runs task(ctx, worker, a, b) over [lo, hi)
 * cut into chunks of `grain` planes (CHUNKS_PER_THREAD per thread: fine enough that a fast
 * core takes more of them than a slow one, coarse enough that claiming one costs nothing
 * beside it; element-wise loops round the grain up to `align` elements), which the calling
 * thread and the team's workers claim in turn. `worker` is the thread's number in the call,
 * 0 <= worker < threads, for per-worker scratch. It returns the sum of the task's results
 * (e.g. invalid entries found). Every plane is computed by exactly one thread, so the
 * results do not depend on the thread count.
 */
#ifndef CONVPROP_NATIVE_PARALLEL_H
#define CONVPROP_NATIVE_PARALLEL_H

#include "common.h"
#include "team.h"

#define CHUNKS_PER_THREAD 8

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
    return team_run(task, ctx, lo, hi, threads, grain);
}

/* Workers the team has started in this process (0 in a child forked since). */
static inline int parallel_workers(void) { return team.started; }

#endif
