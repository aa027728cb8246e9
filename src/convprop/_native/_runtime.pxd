# cython: language_level=3
"""What every kernel family shares: the C geometry structs (src/common.h), the parallel
runner (src/parallel.h), and the argument checks whose error messages name the op, what it
expected and what came."""

from cpython.buffer cimport Py_buffer


cdef extern from "common.h":
    ctypedef struct ConvGeom:
        Py_ssize_t N, C, H, W, K, R, S, P, Q
        Py_ssize_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left

    ctypedef struct PoolGeom:
        Py_ssize_t N, C, H, W, R, S, P, Q
        Py_ssize_t stride_h, stride_w, pad_h, pad_w

    ctypedef struct AdamScalars:
        double decay, l2, weight, beta2, one_minus_beta2, bc2_sqrt, eps, step_size
        int maximize, amsgrad, decoupled

    # the largest element count the kernels accept: byte offsets of float64 arrays must fit
    Py_ssize_t SIZE_LIMIT

    Py_ssize_t wide_rows(const ConvGeom *g) noexcept nogil
    Py_ssize_t wide_cols(const ConvGeom *g) noexcept nogil


# task(ctx, worker, lo, hi): one family's loop over planes [lo, hi) as thread `worker`
ctypedef Py_ssize_t (*range_task)(void *ctx, int worker, Py_ssize_t lo,
                                   Py_ssize_t hi) noexcept nogil


cdef class Flat:
    """A C-contiguous array read as a flat run of `count` elements of `kind` (4: float32,
    8: float64, -4: int32), held until the object goes."""
    cdef Py_buffer view
    cdef bint held
    cdef char *data
    cdef Py_ssize_t count
    cdef int kind


cdef class Block:
    """Memory of the kernels' own (scratch, partial sums), freed when the object goes;
    `stride` bytes per worker where it is per-worker scratch."""
    cdef char *data
    cdef size_t stride


cdef Flat take(object obj, str op, str name, int kind, Py_ssize_t count, bint writable,
               str rule, tuple fields, tuple values)
cdef Flat take_float(object obj, str op, str name, bint writable)
cdef int check_count(Flat a, str op, str name, Py_ssize_t count, str rule, tuple fields,
                     tuple values) except -1
cdef Block allocate(Py_ssize_t count, size_t itemsize)
cdef Block scratch(Py_ssize_t count, size_t itemsize, int workers)
cdef bint fits(const Py_ssize_t *values, int n) noexcept nogil
cdef int check_range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t total, str op, str what) except -1
cdef int check_threads(int threads, str op) except -1
cdef int conv_geometry(tuple geom, ConvGeom *g, str op) except -1
cdef int pool_geometry(tuple geom, PoolGeom *g, str op) except -1
cdef int team_size(Py_ssize_t lo, Py_ssize_t hi, int threads) noexcept nogil
cdef Py_ssize_t run_parallel(range_task task, void *ctx, Py_ssize_t lo, Py_ssize_t hi,
                             int threads, Py_ssize_t align) noexcept nogil
