/* convprop._kernels: the team of worker threads that share one kernel call.
 *
 * Included once by _kernels.c. team_run(task, ctx, lo, hi, threads, grain) runs
 * task(ctx, worker, a, b) over [lo, hi) cut into chunks of `grain` planes, which the
 * calling thread (worker 0) and up to threads - 1 workers claim in turn; it returns when
 * every chunk is done, with the sum of the task's results.
 *
 * Why in C: a hand-off through Python (a queue, a lock, the GIL, a sleeping thread's
 * wake-up) costs 0.1-0.2 ms on the machines measured, as long as a depthwise plane set
 * takes one core. Here a worker that has just finished a call watches for the next one
 * for a short while (spin_ns, then yield_ns), as OpenMP runtimes do, and only then sleeps
 * on a condition variable; a new call therefore starts on both cores within microseconds
 * when calls follow each other, and chunks claimed in turn let a fast core take more of
 * them than a slow one.
 *
 * Protocol. The caller takes `busy` (another caller that finds it taken runs its call
 * alone), writes the call's fields, opens `slots` = workers wanted and bumps `generation`.
 * A worker that sees a new generation claims a slot (its worker number) by decrementing
 * `slots`, reads the fields, takes chunks from `next` until none is left and counts
 * itself in `finished`. The caller takes chunks too, then closes the call by swapping
 * `slots` to 0: the slots still open are workers that never came, and the caller waits
 * only for the claims made. A worker that wakes late finds no slot and goes back to
 * waiting. */

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* One task over planes [lo, hi), run by worker number `worker` (0 = the caller); its
 * result is summed over the chunks (e.g. invalid entries found). */
typedef Py_ssize_t (*team_task)(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi);

#define TEAM_MAX 64           /* threads of one call, the caller included */
/* How long a worker watches for the next call before it sleeps, in two phases: spin_ns
 * spinning on the CPU, then yield_ns giving the CPU up (sched_yield) between looks. Both are
 * 0 where OMP_WAIT_POLICY=passive asks threads not to spin (read at import).
 * - The spin, 0.1 ms, catches calls that follow each other. Longer pure spins slowed the BLAS
 *   calls between kernels, whose threads then shared the cores with the spinner.
 * - The yielding watch, 3 ms, lets those threads run, yet keeps the worker's CPU from going
 *   idle. On a virtual machine, waking a thread whose CPU went idle can take milliseconds
 *   (the host must schedule that CPU again). A kernel called after a pause of more than
 *   0.1 ms then ran, for most of its time, on the calling thread alone. Measured against the
 *   spin alone, alternating in one process: depthwise forward 2.50 -> 1.46 ms, its weight
 *   gradient 2.99 -> 1.63 ms, lenet1's direct forward 2.47 -> 1.81 ms; forward+backward
 *   steps, BLAS products included, level on every layer of the benchmark suite. */
static long long spin_ns = 100000, yield_ns = 3000000;

static struct {
    pthread_mutex_t busy;     /* held by the caller whose call the team runs */
    pthread_mutex_t sleep;    /* with `wake`: where idle workers sleep */
    pthread_cond_t wake;
    atomic_int started;       /* workers started (worker numbers 1..started) */
    atomic_uint generation;   /* bumped once per call */
    atomic_int sleepers;      /* workers asleep on `wake` (or about to be) */
    atomic_int slots;         /* worker numbers not yet claimed in this call */
    atomic_int finished;      /* claims done in this call */
    atomic_llong next;        /* first plane of the next chunk */
    atomic_llong total;       /* sum of the task's results */
    team_task task;
    void *ctx;
    Py_ssize_t hi, grain;
} team = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .sleep = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

static long long monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Take chunks of the current call until none is left; the results go to team.total. */
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

/* Wait until `generation` differs from `seen`: spin for spin_ns, yield for yield_ns, then
 * sleep. */
static unsigned team_wait(unsigned seen)
{
    unsigned now;
    long long start = 0;
    for (unsigned spins = 0; spin_ns > 0; ++spins) {
        now = atomic_load(&team.generation);
        if (now != seen) return now;
        CPU_RELAX();
        if ((spins & 255) != 255) continue;
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
        if (slot <= 0) continue; /* the call was closed (or is full) before this worker came */
        team_take_chunks(slot);
        atomic_fetch_add(&team.finished, 1);
    }
    return NULL;
}

/* Start workers until `wanted` run (called with `busy` held); returns how many run. */
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

/* OMP_WAIT_POLICY=passive (any case): workers sleep as soon as a call ends. */
static void team_read_wait_policy(void)
{
    const char *policy = getenv("OMP_WAIT_POLICY");
    if (!policy) return;
    static const char passive[] = "passive";
    size_t i = 0;
    for (; passive[i] && policy[i] && (policy[i] | 0x20) == passive[i]; ++i) {
    }
    if (!passive[i] && !policy[i]) spin_ns = yield_ns = 0;
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
}

static Py_ssize_t team_run(team_task task, void *ctx, Py_ssize_t lo, Py_ssize_t hi, int threads,
                           Py_ssize_t grain)
{
    if (grain < 1) grain = 1;
    if (threads > TEAM_MAX) threads = TEAM_MAX;
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
