/* convprop._native: the worker threads that share one kernel call (POSIX threads).
 *
 * Included by parallel.h only. team_run(task, ctx, lo, hi, threads, grain) runs
 * task(ctx, worker, a, b) over [lo, hi) cut into chunks of `grain` planes, which the calling
 * thread (worker 0) and up to threads - 1 workers claim in turn; it returns when every chunk
 * is done, with the sum of the task's results.
 *
 * Why a team of its own rather than an OpenMP runtime's. Both were built and timed on the
 * same kernels (docs/performance.md, "Threads: the worker team"); on the 2-core machine
 * measured, one Fashion-MNIST epoch of the default net ran about 11 % slower on GNU
 * libgomp than here. Two things this team does that an OpenMP parallel region cannot:
 * - The caller waits only for the workers that came. An OpenMP region ends at a barrier
 *   that waits for every thread of its team, also for one that was asleep when the call
 *   began and is still being woken when the work is done; on a virtual machine waking a
 *   thread whose CPU went idle can take milliseconds. Here the caller takes chunks itself,
 *   then closes the call: slots still open belong to workers that never came.
 * - A worker that finished a call watches for the next one in two phases: spin_ns spinning,
 *   then yield_ns giving the CPU up between looks (sched_yield), and only then sleeps.
 *   Yielding lets NumPy's BLAS threads, which run between kernels, have the cores, yet
 *   keeps the worker's CPU from going idle. libgomp only spins (GOMP_SPINCOUNT), then
 *   sleeps: a long spin took the cores from BLAS, a short one put the workers to sleep.
 *
 * Protocol. The caller takes `busy` (another caller that finds it taken runs its call
 * alone), writes the call's fields, opens `slots` = workers wanted and bumps `generation`.
 * A worker that sees a new generation claims a slot (its worker number) by decrementing
 * `slots`, reads the fields, takes chunks from `next` until none is left and counts itself
 * in `finished`. The caller takes chunks too, then closes the call by swapping `slots` to 0
 * and waits for the claims made.
 *
 * Fork. A child made by fork() has only the forking thread: team_after_fork_in_child
 * (registered with pthread_atfork) forgets the parent's workers, and the child's first
 * call with more than one thread starts its own.
 */
#ifndef CONVPROP_NATIVE_TEAM_H
#define CONVPROP_NATIVE_TEAM_H

#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* One task over planes [lo, hi), run by thread number `worker` (0: the caller). */
typedef Py_ssize_t (*range_task)(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi);

#define MAX_THREADS 64 /* threads of one call, the caller included */

/* How long a worker watches for the next call before it sleeps (team_set_wait; both 0 for
 * OMP_WAIT_POLICY=passive, read by convprop.backend):
 * - the spin, 0.1 ms, catches calls that follow each other; longer pure spins slowed the
 *   BLAS calls between kernels, whose threads then shared the cores with the spinner;
 * - the yielding watch, 3 ms, lets those threads run yet keeps the worker's CPU awake: a
 *   kernel called after a pause of more than 0.1 ms otherwise ran, for most of its time,
 *   on the calling thread alone (a depthwise forward 2.50 ms with the spin alone, 1.46 ms
 *   with the watch). */
#define TEAM_SPIN_NS 100000LL
#define TEAM_YIELD_NS 3000000LL
static long long spin_ns = TEAM_SPIN_NS, yield_ns = TEAM_YIELD_NS;

static struct {
    pthread_mutex_t busy;   /* held by the caller whose call the team runs */
    pthread_mutex_t sleep;  /* with `wake`: where idle workers sleep */
    pthread_cond_t wake;
    int started;            /* workers started (numbers 1..started); changed under `busy` */
    atomic_uint generation; /* bumped once per call */
    atomic_int sleepers;    /* workers asleep on `wake` (or about to be) */
    atomic_int slots;       /* worker numbers not yet claimed in this call */
    atomic_int finished;    /* claims done in this call */
    atomic_llong next;      /* first plane of the next chunk */
    atomic_llong total;     /* sum of the task's results */
    range_task task;
    void *ctx;
    Py_ssize_t hi, grain;
} team = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .sleep = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

static void team_set_wait(long long spin, long long yield)
{
    spin_ns = spin > 0 ? spin : 0;
    yield_ns = yield > 0 ? yield : 0;
}

static long long monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Take chunks of the current call until none is left; their results go to team.total. */
static void team_take_chunks(int worker)
{
    const Py_ssize_t hi = team.hi, grain = team.grain;
    Py_ssize_t sum = 0;
    for (;;) {
        const Py_ssize_t a = (Py_ssize_t)atomic_fetch_add(&team.next, grain);
        if (a >= hi) break;
        sum += team.task(team.ctx, worker, a, a + grain < hi ? a + grain : hi);
    }
    if (sum) atomic_fetch_add(&team.total, sum);
}

/* Wait until `generation` differs from `seen`: spin, yield, then sleep. */
static unsigned team_wait(unsigned seen)
{
    unsigned now;
    long long start = 0;
    for (unsigned spins = 0; spin_ns > 0; ++spins) {
        now = atomic_load(&team.generation);
        if (now != seen) return now;
        CPU_RELAX();
        if ((spins & 255) != 255) continue; /* read the clock every 256 looks */
        if (!start) start = monotonic_ns();
        else if (monotonic_ns() - start > spin_ns) break;
    }
    for (start = yield_ns > 0 ? monotonic_ns() : 0; yield_ns > 0;) {
        now = atomic_load(&team.generation);
        if (now != seen) return now;
        sched_yield();
        if (monotonic_ns() - start > yield_ns) break;
    }
    pthread_mutex_lock(&team.sleep);
    atomic_fetch_add(&team.sleepers, 1);
    while ((now = atomic_load(&team.generation)) == seen)
        pthread_cond_wait(&team.wake, &team.sleep);
    atomic_fetch_sub(&team.sleepers, 1);
    pthread_mutex_unlock(&team.sleep);
    return now;
}

static void *team_worker(void *arg)
{
    unsigned seen = (unsigned)(uintptr_t)arg; /* the generation when it was started */
    for (;;) {
        seen = team_wait(seen);
        int slot = atomic_load(&team.slots);
        while (slot > 0 && !atomic_compare_exchange_weak(&team.slots, &slot, slot - 1)) {
        }
        if (slot <= 0) continue; /* the call was closed (or full) before this worker came */
        team_take_chunks(slot);
        atomic_fetch_add(&team.finished, 1);
    }
    return NULL;
}

/* Start workers until `wanted` run (called with `busy` held); how many run. */
static int team_grow(int wanted)
{
    while (team.started < wanted) {
        pthread_t thread;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr)) break;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        void *seen = (void *)(uintptr_t)atomic_load(&team.generation);
        const int failed = pthread_create(&thread, &attr, team_worker, seen);
        pthread_attr_destroy(&attr);
        if (failed) break; /* run with the workers there are */
        ++team.started;
    }
    return team.started < wanted ? team.started : wanted;
}

/* In a child made by fork() only the forking thread exists: forget the parent's workers. */
static void team_after_fork_in_child(void)
{
    pthread_mutex_init(&team.busy, NULL);
    pthread_mutex_init(&team.sleep, NULL);
    pthread_cond_init(&team.wake, NULL);
    team.started = 0;
    atomic_store(&team.sleepers, 0);
    atomic_store(&team.slots, 0);
    atomic_store(&team.finished, 0);
}

static int team_register_fork_handler(void)
{
    return pthread_atfork(NULL, NULL, team_after_fork_in_child);
}

static Py_ssize_t team_run(range_task task, void *ctx, Py_ssize_t lo, Py_ssize_t hi,
                           int threads, Py_ssize_t grain)
{
    if (grain < 1) grain = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    const Py_ssize_t chunks = (hi - lo + grain - 1) / grain;
    if (chunks < threads) threads = (int)chunks;
    if (threads <= 1 || pthread_mutex_trylock(&team.busy) != 0)
        return task(ctx, 0, lo, hi); /* alone: too little work, or the team serves another call */
    const int workers = team_grow(threads - 1);
    if (workers == 0) {
        pthread_mutex_unlock(&team.busy);
        return task(ctx, 0, lo, hi);
    }
    team.task = task;
    team.ctx = ctx;
    team.hi = hi;
    team.grain = grain;
    atomic_store(&team.next, lo);
    atomic_store(&team.total, 0);
    atomic_store(&team.finished, 0);
    atomic_store(&team.slots, workers);
    atomic_fetch_add(&team.generation, 1);
    if (atomic_load(&team.sleepers) > 0) { /* seq_cst: a worker going to sleep sees the bump */
        pthread_mutex_lock(&team.sleep);
        pthread_cond_broadcast(&team.wake);
        pthread_mutex_unlock(&team.sleep);
    }
    team_take_chunks(0);
    const int claimed = workers - atomic_exchange(&team.slots, 0);
    for (unsigned spins = 0; atomic_load(&team.finished) < claimed; ++spins) {
        if ((spins & 1023) == 1023) sched_yield(); /* a claimant was descheduled */
        else CPU_RELAX();
    }
    const Py_ssize_t total = (Py_ssize_t)atomic_load(&team.total);
    pthread_mutex_unlock(&team.busy);
    return total;
}

#endif
