# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The runtime the compiled kernel families share (see _runtime.pxd).

- Arrays: :class:`Flat` holds a C-contiguous buffer of any shape as a flat run of
  float32, float64 or int32 elements; :func:`take` checks it against what the geometry
  needs and raises the error that names the op, the array, the expected and the got values.
- Geometry: the 15 integers of a convolution and the 12 of a pooling, checked once
  (positive sizes, non-negative padding, element counts whose byte offsets fit).
- Threads: :func:`run_parallel` (src/parallel.h) shares one call's planes between the
  calling thread and the workers of one team (src/team.h); a child forked after calls on
  several threads starts workers of its own.
"""

import re

from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS,
    PyBUF_FORMAT,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from libc.stdint cimport INT32_MAX


cdef extern from "parallel.h":
    int MAX_THREADS
    int CHUNKS_PER_THREAD
    long long TEAM_SPIN_NS
    long long TEAM_YIELD_NS
    long long spin_ns
    long long yield_ns
    int team_register_fork_handler()
    void team_set_wait(long long spin, long long yield_) noexcept nogil
    int parallel_threads(Py_ssize_t lo, Py_ssize_t hi, int threads) noexcept nogil
    int parallel_workers() noexcept nogil
    Py_ssize_t parallel_run "run_parallel" (
        range_task task, void *ctx, Py_ssize_t lo, Py_ssize_t hi, int threads, Py_ssize_t align
    ) noexcept nogil


CONV_FIELDS = (
    "N", "C", "H", "W", "K", "R", "S", "P", "Q",
    "stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left",
)
"""The 15 integers of a convolution's geometry, in the order the kernels take them."""

POOL_FIELDS = ("N", "C", "H", "W", "R", "S", "P", "Q", "stride_h", "stride_w", "pad_h", "pad_w")
"""The 12 integers of a pooling's geometry, in the order the kernels take them."""

_KIND_NAMES = {4: "float32", 8: "float64", -4: "int32"}
_FORMAT_NAMES = {
    ("f", 4): "float32", ("d", 8): "float64", ("e", 2): "float16", ("g", 16): "float128",
    ("i", 4): "int32", ("l", 4): "int32", ("l", 8): "int64", ("q", 8): "int64",
    ("h", 2): "int16", ("b", 1): "int8", ("B", 1): "uint8", ("?", 1): "bool",
    ("Zf", 8): "complex64", ("Zd", 16): "complex128", ("O", 8): "object",
}


# ------------------------------------------------------------------------------- arrays


cdef class Flat:
    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef int buffer_kind(const Py_buffer *view) noexcept:
    """4 for float32, 8 for float64, -4 for int32, 0 for any other element type."""
    cdef const char *f = view.format
    if f == NULL:  # unsigned bytes
        return 0
    if f[0] == b"<" or f[0] == b"=" or f[0] == b"@":
        f += 1
    if f[0] == 0 or f[1] != 0:
        return 0
    if f[0] == b"f" and view.itemsize == 4:
        return 4
    if f[0] == b"d" and view.itemsize == 8:
        return 8
    if (f[0] == b"i" or f[0] == b"l") and view.itemsize == 4:
        return -4
    return 0


cdef str describe(const Py_buffer *view):
    """The element type of a buffer in NumPy's words where it has one."""
    fmt = (view.format if view.format != NULL else b"B").decode("ascii", "replace")
    name = _FORMAT_NAMES.get((fmt.lstrip("<=@"), view.itemsize))
    return f"{name} (format {fmt!r})" if name else f"format {fmt!r} of {view.itemsize} bytes"


cdef Exception buffer_error(object obj, str op, str name, bint writable, Exception error):
    """Why `obj` gave no C-contiguous (writable) buffer, in the op's words."""
    if not PyObject_CheckBuffer(obj):
        return TypeError(f"{op}: {name} must be an array, got {type(obj).__name__}")
    try:
        view = memoryview(obj)
    except Exception:  # e.g. an array of Python objects, which has no buffer of numbers
        return TypeError(f"{op}: {name} has no buffer of numbers ({error}); expected an array")
    if writable and view.readonly:
        return ValueError(f"{op}: {name} is read-only; expected a writable array")
    if not view.c_contiguous:
        return ValueError(
            f"{op}: {name} is not C-contiguous; expected a C-contiguous array, got shape "
            f"{view.shape} with strides {view.strides}"
        )
    return error


cdef Flat acquire(object obj, str op, str name, bint writable):
    cdef Flat a = Flat.__new__(Flat)
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT
    if writable:
        flags |= PyBUF_WRITABLE
    try:
        PyObject_GetBuffer(obj, &a.view, flags)
    except (TypeError, ValueError, BufferError) as error:
        raise buffer_error(obj, op, name, writable, error) from None
    a.held = True
    a.data = <char *>a.view.buf
    a.count = a.view.len // a.view.itemsize if a.view.itemsize > 0 else 0
    a.kind = buffer_kind(&a.view)
    if a.kind != 0 and (<size_t>a.data) % <size_t>a.view.itemsize != 0:
        raise ValueError(
            f"{op}: {name} is not aligned to its {a.view.itemsize}-byte elements; expected an "
            f"aligned array, got address {<size_t>a.data:#x}"
        )
    return a


cdef Flat take(object obj, str op, str name, int kind, Py_ssize_t count, bint writable,
               str rule, tuple fields, tuple values):
    """`obj` as a flat array of `count` elements (any count where it is -1) of `kind` (4
    float32, 8 float64, -4 int32; 0: float32 or float64, whichever it is), writable where
    asked. A wrong count names `rule` (e.g. "N*C*H*W") and the values of its letters, read
    from `values` by the names in `fields`."""
    cdef Flat a = acquire(obj, op, name, writable)
    if kind == 0:
        if a.kind != 4 and a.kind != 8:
            raise TypeError(
                f"{op}: expected a float32 or float64 array for {name}, got {describe(&a.view)}"
            )
    elif a.kind != kind:
        raise TypeError(
            f"{op}: {name} has the wrong element type; expected {_KIND_NAMES[kind]}, got "
            f"{describe(&a.view)}"
        )
    if count >= 0:
        check_count(a, op, name, count, rule, fields, values)
    return a


cdef int check_count(Flat a, str op, str name, Py_ssize_t count, str rule, tuple fields,
                     tuple values) except -1:
    """A ValueError unless `a` holds `count` elements (see take)."""
    if a.count != count:
        raise ValueError(size_message(op, name, a.count, rule, count, fields, values))
    return 0


cdef Flat take_float(object obj, str op, str name, bint writable):
    """`obj` as a flat float32 or float64 array of any size: the first array of a call,
    whose element type the others must share."""
    return take(obj, op, name, 0, -1, writable, None, None, None)


cdef str size_message(str op, str name, Py_ssize_t got, str rule, Py_ssize_t count,
                      tuple fields, tuple values):
    """``<op>: <name> holds <got> elements; expected <rule> = <count> (<letter>=<value>, ...)``"""
    text = f"{op}: {name} holds {got} elements; expected {rule} = {count}"
    if fields is None or values is None:
        return text
    letters = set(re.findall(r"[A-Za-z_]\w*", rule))
    detail = ", ".join(f"{f}={v}" for f, v in zip(fields, values) if f in letters)
    return f"{text} ({detail})" if detail else text


cdef str named(tuple fields, tuple values):
    """``N=1, C=3, ...``: the values of a geometry by name."""
    return ", ".join(f"{f}={v}" for f, v in zip(fields, values))


# -------------------------------------------------------------------------- memory


cdef class Block:
    def __dealloc__(self):
        PyMem_RawFree(self.data)


cdef Block allocate(Py_ssize_t count, size_t itemsize):
    """`count` elements of `itemsize` bytes (at least one), uninitialised."""
    cdef Block b = Block.__new__(Block)
    cdef size_t n = <size_t>(count if count > 0 else 1)
    if n > <size_t>SIZE_LIMIT:
        raise MemoryError(f"{count} elements of {itemsize} bytes")
    b.stride = n * itemsize
    b.data = <char *>PyMem_RawMalloc(b.stride)
    if b.data == NULL:
        raise MemoryError(f"{count} elements of {itemsize} bytes")
    return b


cdef Block scratch(Py_ssize_t count, size_t itemsize, int workers):
    """`count` elements of scratch for each of `workers` threads, each worker's block on its
    own cache lines: worker i's starts at data + i * stride."""
    cdef Block b = Block.__new__(Block)
    cdef size_t n = <size_t>(count if count > 0 else 1)
    if n > <size_t>SIZE_LIMIT // <size_t>workers:
        raise MemoryError(f"{workers} x {count} elements of scratch")
    b.stride = (n * itemsize + 63) // 64 * 64
    b.data = <char *>PyMem_RawMalloc(b.stride * <size_t>workers)
    if b.data == NULL:
        raise MemoryError(f"{workers} x {count} elements of scratch")
    return b


# ---------------------------------------------------------------------------- checks


cdef bint fits(const Py_ssize_t *values, int n) noexcept nogil:
    """True when the product of the n positive values stays below SIZE_LIMIT."""
    cdef Py_ssize_t product = 1
    cdef int i
    for i in range(n):
        if values[i] > SIZE_LIMIT // product:
            return False
        product *= values[i]
    return True


cdef int check_range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t total, str op, str what) except -1:
    if lo < 0 or hi > total or lo > hi:
        raise ValueError(
            f"{op}: range [{lo}, {hi}) outside [0, {total}); expected 0 <= lo <= hi <= "
            f"{total} ({what})"
        )
    return 0


cdef int check_threads(int threads, str op) except -1:
    if threads < 1:
        raise ValueError(f"{op}: threads must be at least 1, got {threads}")
    return 0


cdef int conv_geometry(tuple geom, ConvGeom *g, str op) except -1:
    """Fill `g` from the 15 integers of `geom` (CONV_FIELDS) after checking them."""
    if len(geom) != 15:
        raise TypeError(
            f"{op}: geom holds {len(geom)} values; expected 15 ({', '.join(CONV_FIELDS)})"
        )
    g.N, g.C, g.H, g.W, g.K = geom[0], geom[1], geom[2], geom[3], geom[4]
    g.R, g.S, g.P, g.Q = geom[5], geom[6], geom[7], geom[8]
    g.stride_h, g.stride_w, g.dil_h, g.dil_w = geom[9], geom[10], geom[11], geom[12]
    g.pad_top, g.pad_left = geom[13], geom[14]
    if (g.N < 1 or g.C < 1 or g.H < 1 or g.W < 1 or g.K < 1 or g.R < 1 or g.S < 1
            or g.P < 1 or g.Q < 1 or g.stride_h < 1 or g.stride_w < 1 or g.dil_h < 1
            or g.dil_w < 1 or g.pad_top < 0 or g.pad_left < 0):
        raise ValueError(
            f"{op}: invalid convolution geometry; expected positive N, C, H, W, K, R, S, P, Q, "
            f"strides and dilations and non-negative padding, got {named(CONV_FIELDS, geom)}"
        )
    # every element count and offset the kernels form must fit, with room for the bytes
    cdef Py_ssize_t[4] x = [g.N, g.C, g.H, g.W]
    cdef Py_ssize_t[4] y = [g.N, g.K, g.P, g.Q]
    cdef Py_ssize_t[6] cols = [g.N, g.C, g.R, g.S, g.P, g.Q]
    cdef Py_ssize_t[3] w = [g.K, g.R, g.S]
    cdef Py_ssize_t[3] reach = [g.P + (g.R - 1) * g.dil_h + 2, g.Q + (g.S - 1) * g.dil_w + 2, 4]
    if (g.R - 1 > SIZE_LIMIT // g.dil_h or g.S - 1 > SIZE_LIMIT // g.dil_w
            or not (fits(x, 4) and fits(y, 4) and fits(cols, 6) and fits(w, 3)
                    and fits(reach, 3))
            or g.H + g.pad_top >= SIZE_LIMIT or g.W + g.pad_left >= SIZE_LIMIT
            or g.stride_h >= SIZE_LIMIT // g.P or g.stride_w >= SIZE_LIMIT // g.Q):
        raise ValueError(
            f"{op}: the geometry's sizes overflow; expected element counts, offsets and the "
            f"kernel's reach below {SIZE_LIMIT} (PY_SSIZE_T_MAX / 16), got "
            f"{named(CONV_FIELDS, geom)}"
        )
    return 0


cdef int pool_geometry(tuple geom, PoolGeom *g, str op) except -1:
    """Fill `g` from the 12 integers of `geom` (POOL_FIELDS) after checking them."""
    if len(geom) != 12:
        raise TypeError(
            f"{op}: geom holds {len(geom)} values; expected 12 ({', '.join(POOL_FIELDS)})"
        )
    g.N, g.C, g.H, g.W = geom[0], geom[1], geom[2], geom[3]
    g.R, g.S, g.P, g.Q = geom[4], geom[5], geom[6], geom[7]
    g.stride_h, g.stride_w, g.pad_h, g.pad_w = geom[8], geom[9], geom[10], geom[11]
    if (g.N < 1 or g.C < 1 or g.H < 1 or g.W < 1 or g.R < 1 or g.S < 1 or g.P < 1
            or g.Q < 1 or g.stride_h < 1 or g.stride_w < 1 or g.pad_h < 0 or g.pad_w < 0):
        raise ValueError(
            f"{op}: invalid pooling geometry; expected positive N, C, H, W, R, S, P, Q and "
            f"strides and non-negative padding, got {named(POOL_FIELDS, geom)}"
        )
    cdef Py_ssize_t[4] x = [g.N, g.C, g.H, g.W]
    cdef Py_ssize_t[4] y = [g.N, g.C, g.P, g.Q]
    cdef Py_ssize_t[2] taps = [g.R, g.S]
    if (not (fits(x, 4) and fits(y, 4) and fits(taps, 2)) or g.R * g.S > INT32_MAX
            or g.stride_h >= SIZE_LIMIT // g.P or g.stride_w >= SIZE_LIMIT // g.Q):
        raise ValueError(
            f"{op}: the geometry's sizes overflow; expected element counts and offsets below "
            f"{SIZE_LIMIT} (PY_SSIZE_T_MAX / 16) and R*S taps below 2**31, got "
            f"{named(POOL_FIELDS, geom)}"
        )
    return 0


# --------------------------------------------------------------------------- threads


cdef int team_size(Py_ssize_t lo, Py_ssize_t hi, int threads) noexcept nogil:
    """The threads a call over [lo, hi) asks for (at most 64, at most the planes): the
    number of per-worker scratch blocks it needs."""
    return parallel_threads(lo, hi, threads)


cdef Py_ssize_t run_parallel(range_task task, void *ctx, Py_ssize_t lo, Py_ssize_t hi,
                             int threads, Py_ssize_t align) noexcept nogil:
    """task(ctx, worker, a, b) over [lo, hi) in chunks on up to `threads` threads (called
    without the GIL); the sum of the task's results."""
    return parallel_run(task, ctx, lo, hi, threads, align)


if team_register_fork_handler() != 0:  # pragma: no cover - out of memory at import
    raise ImportError("convprop._native: could not register the fork handler (pthread_atfork)")


def set_wait_policy(bint passive):
    """How the team's idle workers wait for the next call: ``passive`` (OpenMP's
    ``OMP_WAIT_POLICY=passive``, read by convprop.backend) sleeps at once; otherwise a worker
    spins for 0.1 ms, then yields its CPU between looks for 3 ms, then sleeps (src/team.h)."""
    if passive:
        team_set_wait(0, 0)
    else:
        team_set_wait(TEAM_SPIN_NS, TEAM_YIELD_NS)


cdef struct ChunkTrace:
    Py_ssize_t lo       # the call's first plane
    Py_ssize_t *stop    # stop[a - lo] = b for the chunk [a, b) that starts at a
    int *worker         # worker[a - lo] = the thread that ran it


cdef Py_ssize_t trace_chunk(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef ChunkTrace *t = <ChunkTrace *>ctx
    t.stop[lo - t.lo] = hi
    t.worker[lo - t.lo] = worker
    return hi - lo


def chunks(Py_ssize_t lo, Py_ssize_t hi, int threads=1, Py_ssize_t align=1):
    """The chunks that a call over [lo, hi) on `threads` threads is cut into, as the runner
    hands them out: a list of (first, stop, worker) in the order of `first`, `worker` being
    the number of the thread that ran the chunk in its team. A diagnostic of the runner."""
    if lo < 0 or hi < lo:
        raise ValueError(f"chunks: expected 0 <= lo <= hi, got lo={lo}, hi={hi}")
    check_threads(threads, "chunks")
    if align < 1:
        raise ValueError(f"chunks: align must be at least 1, got {align}")
    cdef Block stop = allocate(hi - lo, sizeof(Py_ssize_t))
    cdef Block worker = allocate(hi - lo, sizeof(int))
    cdef ChunkTrace trace
    trace.lo = lo
    trace.stop = <Py_ssize_t *>stop.data
    trace.worker = <int *>worker.data
    cdef Py_ssize_t i
    for i in range(hi - lo):
        trace.stop[i] = -1
    if hi > lo:
        with nogil:
            run_parallel(trace_chunk, &trace, lo, hi, threads, align)
    return [
        (lo + i, trace.stop[i], trace.worker[i]) for i in range(hi - lo) if trace.stop[i] >= 0
    ]


def runtime_info():
    """The worker team that runs the kernels' threads (src/team.h).

    Returns a dict: ``runner`` ("team": POSIX threads of convprop's own), ``workers`` (the
    workers started in this process so far, the calling thread not counted; 0 in a child
    forked since, until its first call on several threads), ``spin_us`` and ``yield_us``
    (how long an idle worker spins, then yields, before it sleeps; 0 and 0 when passive),
    ``max_threads_per_call`` (64) and ``chunks_per_thread`` (8).
    """
    return {
        "runner": "team",
        "workers": parallel_workers(),
        "spin_us": spin_ns // 1000,
        "yield_us": yield_ns // 1000,
        "max_threads_per_call": MAX_THREADS,
        "chunks_per_thread": CHUNKS_PER_THREAD,
    }
