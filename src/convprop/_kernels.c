/* convprop._kernels: compiled loops for the CPU paths that NumPy cannot vectorise well.
 *
 * Each function takes C-contiguous float32 or float64 arrays (any object with the buffer
 * protocol), checks their formats and sizes against the geometry it is given, releases
 * the GIL and runs over a half-open range [lo, hi) of independent planes, on `threads`
 * threads (an optional last argument, 1 by default) of the team in _kernels_team.h. The
 * Python side (convprop/native.py) decides how many threads the work is worth; the
 * equations and their labels are those of docs/derivations.md and of the NumPy code that
 * computes the same thing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Py_ssize_t N, C, H, W, K, R, S, P, Q, sh, sw, dh, dw, pt, pl;
} ConvGeom;

typedef struct {
    Py_ssize_t N, C, H, W, R, S, P, Q, sh, sw, ph, pw;
} PoolGeom;

/* The scalars of one Adam step (_kernels_adam.h), already reduced on the host to the values
 * NumPy multiplies by (each is cast to T before use, as NumPy casts a Python float next to a T
 * array). */
typedef struct {
    double decay;     /* (ADAMW3) 1 - lr * weight_decay */
    double l2;        /* weight_decay: (ADAM3)'s lambda, or AdamW's when decoupled */
    double weight;    /* (ADAM4) 1 - beta1, the lerp weight */
    double beta2;     /* (ADAM5) */
    double one_minus_beta2;
    double bc2_sqrt;  /* (ADAM6) sqrt(1 - beta2**t) */
    double eps;
    double step_size; /* (ADAM7) lr / (1 - beta1**t) */
    int maximize, amsgrad, decoupled;
} AdamScalars;

/* Output columns q in [q0, q1) whose input column left + q*stride lies inside [0, W). */
static inline void valid_range(Py_ssize_t left, Py_ssize_t stride, Py_ssize_t W, Py_ssize_t Q,
                               Py_ssize_t *q0, Py_ssize_t *q1)
{
    Py_ssize_t first = left >= 0 ? 0 : (-left + stride - 1) / stride;
    Py_ssize_t last = W - 1 - left < 0 ? 0 : (W - 1 - left) / stride + 1;
    if (first > Q) first = Q;
    if (last > Q) last = Q;
    if (last < first) last = first;
    *q0 = first;
    *q1 = last;
}

/* Rows and columns of the input region a stride-1 depthwise plane reads (_kernels_depthwise.h). */
static inline Py_ssize_t wide_rows(const ConvGeom *g) { return g->P + (g->R - 1) * g->dh; }
static inline Py_ssize_t wide_cols(const ConvGeom *g) { return g->Q + (g->S - 1) * g->dw; }

/* Channels the layout changes of the FFT algorithm move per position and pass. */
#define PERM_BLOCK 16


/* The loops, one header per concept, each compiled for float and for double. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#define T float
#define BITS uint32_t
#define SQRT sqrtf
#define FMA fmaf
#define SFX f32
#include "_kernels_im2col.h"
#include "_kernels_depthwise.h"
#include "_kernels_direct.h"
#include "_kernels_pool.h"
#include "_kernels_winograd.h"
#include "_kernels_winograd4.h"
#include "_kernels_bias.h"
#include "_kernels_layout.h"
#include "_kernels_dft.h"
#include "_kernels_bins.h"
#include "_kernels_elementwise.h"
#include "_kernels_adam.h"
#undef T
#undef BITS
#undef SQRT
#undef FMA
#undef SFX
#undef DK
#undef VQ

#define T double
#define BITS uint64_t
#define SQRT sqrt
#define FMA fma
#define SFX f64
#include "_kernels_im2col.h"
#include "_kernels_depthwise.h"
#include "_kernels_direct.h"
#include "_kernels_pool.h"
#include "_kernels_winograd.h"
#include "_kernels_winograd4.h"
#include "_kernels_bias.h"
#include "_kernels_layout.h"
#include "_kernels_dft.h"
#include "_kernels_bins.h"
#include "_kernels_elementwise.h"
#include "_kernels_adam.h"
#undef T
#undef BITS
#undef SQRT
#undef FMA
#undef SFX
#undef DK
#undef VQ

#include "_kernels_team.h"

/* ------------------------------------------------------------------ argument checking */

/* 'f' -> 4, 'd' -> 8, 'i' (int32) -> -4, anything else -> 0. */
static int buffer_kind(const Py_buffer *view)
{
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') ++f;
    if (f[0] == '\0' || f[1] != '\0') return 0;
    if (*f == 'f' && view->itemsize == 4) return 4;
    if (*f == 'd' && view->itemsize == 8) return 8;
    if ((*f == 'i' || *f == 'l') && view->itemsize == 4) return -4;
    return 0;
}

/* The element size of a float32/float64 buffer (4 or 8); 0 with a TypeError otherwise. */
static int float_kind(PyObject *obj, const char *op)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return 0;
    int kind = buffer_kind(&view);
    PyBuffer_Release(&view);
    if (kind != 4 && kind != 8) {
        PyErr_Format(PyExc_TypeError, "%s: expected a float32 or float64 array", op);
        return 0;
    }
    return kind;
}

/* Get a C-contiguous buffer of `count` elements of kind `kind`; 0 on success. */
static int get_array(PyObject *obj, Py_buffer *view, int writable, int kind, Py_ssize_t count,
                     const char *op, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) { /* not a buffer at all: say which */
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: %s must be an array, got %.100s", op, name,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (buffer_kind(view) != kind) {
        PyErr_Format(PyExc_TypeError, "%s: %s has the wrong element type (format '%s')", op,
                     name, view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len != count * view->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %s holds %zd elements; the geometry needs %zd", op,
                     name, view->len / view->itemsize, count);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The largest element count the kernels accept: byte offsets of float64 arrays must fit. */
#define SIZE_LIMIT (PY_SSIZE_T_MAX / 16)

/* 1 when the product of the n positive values stays below SIZE_LIMIT. */
static int fits(const Py_ssize_t *values, int n)
{
    Py_ssize_t product = 1;
    for (int i = 0; i < n; ++i) {
        if (values[i] > SIZE_LIMIT / product) return 0;
        product *= values[i];
    }
    return 1;
}

static int parse_conv_geom(PyObject *tuple, ConvGeom *g, const char *op)
{
    if (!PyArg_ParseTuple(tuple, "nnnnnnnnnnnnnnn", &g->N, &g->C, &g->H, &g->W, &g->K, &g->R,
                          &g->S, &g->P, &g->Q, &g->sh, &g->sw, &g->dh, &g->dw, &g->pt, &g->pl))
        return -1;
    if (g->N < 1 || g->C < 1 || g->H < 1 || g->W < 1 || g->K < 1 || g->R < 1 || g->S < 1 ||
        g->P < 1 || g->Q < 1 || g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1 || g->pt < 0 ||
        g->pl < 0) {
        PyErr_Format(PyExc_ValueError, "%s: invalid convolution geometry", op);
        return -1;
    }
    /* every element count and offset the kernels form must fit, with room for the bytes */
    const Py_ssize_t x[] = {g->N, g->C, g->H, g->W}, y[] = {g->N, g->K, g->P, g->Q};
    const Py_ssize_t cols[] = {g->N, g->C, g->R, g->S, g->P, g->Q}, w[] = {g->K, g->R, g->S};
    const Py_ssize_t reach[] = {g->P + (g->R - 1) * g->dh + 2, g->Q + (g->S - 1) * g->dw + 2,
                                4};
    if (fits(x, 4) && fits(y, 4) && fits(cols, 6) && fits(w, 3) && fits(reach, 3) &&
        g->H + g->pt < SIZE_LIMIT && g->W + g->pl < SIZE_LIMIT &&
        g->sh < SIZE_LIMIT / g->P && g->sw < SIZE_LIMIT / g->Q)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: the geometry's sizes overflow", op);
    return -1;
}

static int parse_pool_geom(PyObject *tuple, PoolGeom *g, const char *op)
{
    if (!PyArg_ParseTuple(tuple, "nnnnnnnnnnnn", &g->N, &g->C, &g->H, &g->W, &g->R, &g->S,
                          &g->P, &g->Q, &g->sh, &g->sw, &g->ph, &g->pw))
        return -1;
    if (g->N < 1 || g->C < 1 || g->H < 1 || g->W < 1 || g->R < 1 || g->S < 1 || g->P < 1 ||
        g->Q < 1 || g->sh < 1 || g->sw < 1 || g->ph < 0 || g->pw < 0) {
        PyErr_Format(PyExc_ValueError, "%s: invalid pooling geometry", op);
        return -1;
    }
    const Py_ssize_t x[] = {g->N, g->C, g->H, g->W}, y[] = {g->N, g->C, g->P, g->Q};
    const Py_ssize_t taps[] = {g->R, g->S};
    if (fits(x, 4) && fits(y, 4) && fits(taps, 2) && g->R * g->S <= INT32_MAX &&
        g->sh < SIZE_LIMIT / g->P && g->sw < SIZE_LIMIT / g->Q)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: the geometry's sizes overflow", op);
    return -1;
}

static int check_range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t total, const char *op)
{
    if (lo < 0 || hi > total || lo > hi) {
        PyErr_Format(PyExc_ValueError, "%s: range [%zd, %zd) outside [0, %zd)", op, lo, hi, total);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ entry points */

#define RELEASE_ALL(views, n)                                                                \
    for (int i_ = 0; i_ < (n); ++i_) PyBuffer_Release(&(views)[i_])

/* The loops an entry point can run. */
enum {
    OP_IM2COL, OP_COL2IM,
    OP_DW_FORWARD, OP_DW_DATA, OP_DW_WEIGHT, OP_DW_BOTH, OP_DIRECT_FORWARD, OP_DIRECT_WEIGHT,
    OP_MAXPOOL_FORWARD, OP_MAXPOOL_BACKWARD,
    OP_WINO_INPUT, OP_WINO_OUTPUT, OP_WINO_DY, OP_WINO_DX,
    OP_WINO4_INPUT, OP_WINO4_OUTPUT, OP_WINO4_DY, OP_WINO4_DX,
    OP_ADD_BIAS, OP_BIAS_GRAD, OP_TO_PLANES, OP_TO_SPATIAL,
    OP_RELU_FORWARD, OP_RELU_BACKWARD, OP_ADAM,
    OP_DFT_FORWARD, OP_DFT_INVERSE, OP_BINS,
};

/* One call's loop and arguments, read by every thread of the team (_kernels_team.h). */
typedef struct {
    int op, kind;             /* the loop; 4 (float) or 8 (double) */
    void *a[5];               /* the arrays, in the loop's order (NULL where absent) */
    ConvGeom conv;
    PoolGeom pool;
    AdamScalars adam;
    Py_ssize_t n[8];          /* the loop's integer arguments */
    const Py_ssize_t *offs;   /* the depthwise tap offsets */
    char *scratch;            /* `scratch_bytes` per worker */
    size_t scratch_bytes;
} Call;

/* Chunks per thread: fine enough that a fast core takes more of them than a slow one,
 * coarse enough that claiming one costs nothing beside it. */
#define CHUNKS_PER_THREAD 8

/* The loop of `ctx` (a Call) over [lo, hi), as worker number `worker`. */
static Py_ssize_t run_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi)
{
    const Call *c = ctx;
    void *const *a = c->a;
    const Py_ssize_t *n = c->n;
    void *s = c->scratch ? c->scratch + (size_t)worker * c->scratch_bytes : NULL;
#define BY_KIND(name, ...) (c->kind == 4 ? name##_f32(__VA_ARGS__) : name##_f64(__VA_ARGS__))
    switch (c->op) {
    case OP_IM2COL: BY_KIND(im2col, a[0], a[1], &c->conv, (int)n[0], lo, hi); break; /* n: wide */
    case OP_COL2IM: BY_KIND(col2im, a[0], a[1], &c->conv, lo, hi); break;
    case OP_DW_FORWARD: /* x, w, bias (a[3], may be NULL), y */
        BY_KIND(dw_forward, a[0], a[1], a[3], a[2], s, c->offs, &c->conv, lo, hi);
        break;
    case OP_DW_DATA:
        BY_KIND(dw_backward_data, a[0], a[1], a[2], s, c->offs, &c->conv, lo, hi);
        break;
    case OP_DW_BOTH: /* dy, x, w, dx, plane_sums */
        BY_KIND(dw_backward_both, a[0], a[1], a[2], a[3], a[4], s, c->offs, &c->conv, lo, hi);
        break;
    case OP_DW_WEIGHT: /* dy, x, plane_sums; n = (k0, kc) */
        BY_KIND(dw_backward_weight, a[0], a[1], a[3], s, c->offs, &c->conv, n[0], n[1], lo, hi);
        break;
    case OP_DIRECT_FORWARD: /* x, wt, b (may be NULL), y; n = (G, Kpad, unit) */
        BY_KIND(direct_forward, a[0], a[1], a[2], a[3], s, c->offs, &c->conv, n[0], n[1], (int)n[2],
                lo, hi);
        break;
    case OP_DIRECT_WEIGHT: /* x, dy, partials; n = (G, Kpad, Tpad, slices) */
        BY_KIND(direct_weight, a[0], a[1], a[2], s, c->offs, &c->conv, n[0], n[1], n[2], n[3], lo,
                hi);
        break;
    case OP_MAXPOOL_FORWARD: BY_KIND(maxpool_forward, a[0], a[1], a[2], &c->pool, lo, hi); break;
    case OP_MAXPOOL_BACKWARD: return BY_KIND(maxpool_backward, a[0], a[1], a[2], &c->pool, lo, hi);
    case OP_WINO_INPUT: BY_KIND(wino_input, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_WINO_OUTPUT: BY_KIND(wino_output, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_WINO_DY: BY_KIND(wino_dy, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_WINO_DX: BY_KIND(wino_dx, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_WINO4_INPUT: BY_KIND(wino4_input, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_WINO4_OUTPUT:
        BY_KIND(wino4_output, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi);
        break;
    case OP_WINO4_DY: BY_KIND(wino4_dy, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_WINO4_DX: BY_KIND(wino4_dx, a[0], a[1], s, &c->conv, n[0], n[1], lo, hi); break;
    case OP_ADD_BIAS: BY_KIND(add_bias, a[0], a[1], n[0], n[1], lo, hi); break;
    case OP_BIAS_GRAD: /* dy, parts; n = (K, PQ, k0, kc) */
        BY_KIND(bias_grad, a[0], a[1], n[0], n[1], n[2], n[3], lo, hi);
        break;
    case OP_TO_PLANES:
        BY_KIND(spatial_to_planes, a[0], a[1], n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7],
                lo, hi);
        break;
    case OP_TO_SPATIAL:
        BY_KIND(planes_to_spatial, a[0], a[1], n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7],
                lo, hi);
        break;
    case OP_RELU_FORWARD: BY_KIND(relu_forward, a[0], a[1], lo, hi); break;
    case OP_RELU_BACKWARD: BY_KIND(relu_backward, a[0], a[1], a[2], lo, hi); break;
    case OP_ADAM: BY_KIND(adam_step, a[0], a[1], a[2], a[3], a[4], &c->adam, lo, hi); break;
    case OP_DFT_FORWARD: /* planes, coef, spec; n = (M, h, w, Lh, Wb, conj) */
        BY_KIND(dft_small_forward, a[0], a[1], a[2], s, n[0], n[1], n[2], n[3], n[4], (int)n[5],
                lo, hi);
        break;
    case OP_DFT_INVERSE: /* spec, coef, planes; n = (M, h, w, Lh, Wb, conj) */
        BY_KIND(dft_small_inverse, a[0], a[1], a[2], s, n[0], n[1], n[2], n[3], n[4], (int)n[5],
                lo, hi);
        break;
    case OP_BINS: /* a, b, y; n = (M, L, Nc, at, bt) */
        BY_KIND(bin_products, a[0], a[1], a[2], s, n[0], n[1], n[2], (int)n[3], (int)n[4], lo, hi);
        break;
    }
#undef BY_KIND
    return 0;
}

/* threads (the optional last argument of every entry point) must be at least 1. */
static int check_threads(int threads, const char *op)
{
    if (threads >= 1) return 0;
    PyErr_Format(PyExc_ValueError, "%s: threads must be at least 1, got %d", op, threads);
    return -1;
}

/* The threads a call over [lo, hi) will use: never more than there are planes. */
static int team_size(Py_ssize_t lo, Py_ssize_t hi, int threads)
{
    if (threads > TEAM_MAX) threads = TEAM_MAX;
    return hi - lo < threads ? (int)(hi - lo > 1 ? hi - lo : 1) : threads;
}

/* Give every worker of the call `bytes` of scratch; 0, or -1 with MemoryError. */
static int alloc_scratch(Call *c, size_t bytes, int threads)
{
    c->scratch_bytes = (bytes + 63) / 64 * 64; /* each worker's block on its own cache lines */
    c->scratch = PyMem_RawMalloc(c->scratch_bytes * (size_t)threads);
    if (c->scratch) return 0;
    PyErr_NoMemory();
    return -1;
}

/* Run the call over [lo, hi) on `threads` threads, without the GIL; the loop's result.
 * `align` rounds the chunks of element-wise loops to whole vectors. */
static Py_ssize_t run_call(Call *c, Py_ssize_t lo, Py_ssize_t hi, int threads, Py_ssize_t align)
{
    threads = team_size(lo, hi, threads);
    Py_ssize_t grain = (hi - lo + (Py_ssize_t)threads * CHUNKS_PER_THREAD - 1) /
                       ((Py_ssize_t)threads * CHUNKS_PER_THREAD);
    grain = (grain + align - 1) / align * align;
    Py_ssize_t result;
    Py_BEGIN_ALLOW_THREADS;
    result = team_run(run_range, c, lo, hi, threads, grain);
    Py_END_ALLOW_THREADS;
    return result;
}

static PyObject *py_im2col_col2im(PyObject *args, int op, const char *name)
{
    PyObject *io, *oo, *geo;
    Py_ssize_t lo, hi;
    int threads = 1, wide = 0; /* im2col only: (I7)'s order */
    Call c = {.op = op};
    Py_buffer v[2];
    if (!PyArg_ParseTuple(args, op == OP_IM2COL ? "OOO!nn|ip" : "OOO!nn|i", &io, &oo,
                          &PyTuple_Type, &geo, &lo, &hi, &threads, &wide))
        return NULL;
    c.n[0] = wide;
    if (parse_conv_geom(geo, &c.conv, name) || check_range(lo, hi, c.conv.N * c.conv.C, name) ||
        check_threads(threads, name))
        return NULL;
    const ConvGeom *g = &c.conv;
    const Py_ssize_t nx = g->N * g->C * g->H * g->W;
    const Py_ssize_t ncols = g->N * g->C * g->R * g->S * g->P * g->Q;
    c.kind = float_kind(io, name);
    if (!c.kind) return NULL;
    const int to_cols = op == OP_IM2COL;
    if (get_array(io, &v[0], 0, c.kind, to_cols ? nx : ncols, name, to_cols ? "x" : "dcols"))
        return NULL;
    if (get_array(oo, &v[1], 1, c.kind, to_cols ? ncols : nx, name, to_cols ? "cols" : "dx")) {
        PyBuffer_Release(&v[0]);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf;
    run_call(&c, lo, hi, threads, 1);
    RELEASE_ALL(v, 2);
    Py_RETURN_NONE;
}

static PyObject *py_im2col(PyObject *self, PyObject *args)
{
    (void)self;
    return py_im2col_col2im(args, OP_IM2COL, "im2col");
}

static PyObject *py_col2im(PyObject *self, PyObject *args)
{
    (void)self;
    return py_im2col_col2im(args, OP_COL2IM, "col2im");
}

/* offs[t] = r*dh*Wr + s*dw: the wide offset of depthwise tap t = r*S + s (_kernels_depthwise.h) */
static void dw_offsets(const ConvGeom *g, Py_ssize_t *offs)
{
    const Py_ssize_t Wr = wide_cols(g);
    for (Py_ssize_t r = 0; r < g->R; ++r)
        for (Py_ssize_t s = 0; s < g->S; ++s) offs[r * g->S + s] = r * g->dh * Wr + s * g->dw;
}

/* Shared by the three depthwise passes: two inputs and one output, sizes by role. */
static PyObject *depthwise(PyObject *args, int op, const char *name)
{
    PyObject *ao, *bo, *oo, *geo, *biaso = Py_None;
    Py_ssize_t lo, hi;
    int threads = 1;
    Call c = {.op = op};
    ConvGeom *g = &c.conv;
    Py_buffer v[4];
    if (!PyArg_ParseTuple(args, "OOOOO!nn|i", &ao, &bo, &biaso, &oo, &PyTuple_Type, &geo, &lo,
                          &hi, &threads))
        return NULL;
    if (op != OP_DW_FORWARD && biaso != Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: only the forward pass takes a bias", name);
        return NULL;
    }
    if (parse_conv_geom(geo, g, name) || check_threads(threads, name)) return NULL;
    if (g->K % g->C != 0) {
        PyErr_Format(PyExc_ValueError, "%s: K=%zd is not a multiple of C=%zd", name, g->K, g->C);
        return NULL;
    }
    const Py_ssize_t nx = g->N * g->C * g->H * g->W, ny = g->N * g->K * g->P * g->Q;
    const Py_ssize_t nw = g->K * g->R * g->S;
    Py_ssize_t sizes[3], total;
    if (op == OP_DW_FORWARD) { /* x, w -> y */
        sizes[0] = nx, sizes[1] = nw, sizes[2] = ny, total = g->N * g->K;
    } else if (op == OP_DW_DATA) { /* dy, w -> dx */
        sizes[0] = ny, sizes[1] = nw, sizes[2] = nx, total = g->N * g->C;
    } else { /* dy, x -> dw */
        sizes[0] = ny, sizes[1] = nx, sizes[2] = nw, total = g->K;
    }
    if (check_range(lo, hi, total, name)) return NULL;
    c.kind = float_kind(ao, name);
    if (!c.kind) return NULL;
    PyObject *objs[3] = {ao, bo, oo};
    static const char *names[3] = {"first input", "second input", "output"};
    for (int i = 0; i < 3; ++i) {
        if (get_array(objs[i], &v[i], i == 2, c.kind, sizes[i], name, names[i])) {
            RELEASE_ALL(v, i);
            return NULL;
        }
        c.a[i] = v[i].buf;
    }
    const int has_bias = op == OP_DW_FORWARD && biaso != Py_None; /* (F1)'s bias, fused */
    if (has_bias && get_array(biaso, &v[3], 0, c.kind, g->K, name, "bias")) {
        RELEASE_ALL(v, 3);
        return NULL;
    }
    c.a[3] = has_bias ? v[3].buf : NULL;
    /* each worker's wide region, a wide plane between two margins and the per-tap sums (see
     * _kernels_depthwise.h); offs[t] = r*dh*Wr + s*dw, the wide offset of tap t = r*S + s */
    const Py_ssize_t Wr = wide_cols(g), Hr = wide_rows(g), RS = g->R * g->S;
    const Py_ssize_t elements = 3 * Hr * Wr + g->P * Wr;
    /* the weight pass runs over the N planes of each filter in [lo, hi) */
    threads = op == OP_DW_WEIGHT ? team_size(0, g->N * (hi - lo), threads)
                                 : team_size(lo, hi, threads);
    Py_ssize_t *offs = PyMem_RawMalloc((size_t)RS * sizeof(Py_ssize_t));
    if (!offs || alloc_scratch(&c, (size_t)elements * (size_t)c.kind, threads)) {
        if (!offs) PyErr_NoMemory();
        PyMem_RawFree(offs);
        RELEASE_ALL(v, 3 + has_bias);
        return NULL;
    }
    dw_offsets(g, offs);
    c.offs = offs;
    if (op != OP_DW_WEIGHT) {
        run_call(&c, lo, hi, threads, 1);
    } else if (hi > lo) {
        /* (B2) plane by plane in memory order, each plane's tap sums apart, then each filter's
         * N shares added in the order of n (see dw_backward_weight) */
        const Py_ssize_t kc = hi - lo, planes = g->N * kc, sums_dims[] = {g->N, kc, RS};
        void *plane_sums = fits(sums_dims, 3)
                               ? PyMem_RawMalloc((size_t)(planes * RS) * (size_t)c.kind)
                               : NULL; /* N*K*R*S past the size limit: no memory either */
        if (!plane_sums) {
            PyErr_NoMemory();
            PyMem_RawFree(c.scratch);
            PyMem_RawFree(offs);
            RELEASE_ALL(v, 3);
            return NULL;
        }
        c.a[3] = plane_sums, c.n[0] = lo, c.n[1] = kc;
        run_call(&c, 0, planes, threads, 1);
        if (c.kind == 4) dw_weight_sum_f32(plane_sums, c.a[2], g->N, lo, kc, RS);
        else dw_weight_sum_f64(plane_sums, c.a[2], g->N, lo, kc, RS);
        PyMem_RawFree(plane_sums);
    }
    PyMem_RawFree(c.scratch);
    PyMem_RawFree(offs);
    RELEASE_ALL(v, 3 + has_bias);
    Py_RETURN_NONE;
}

static PyObject *py_dw_forward(PyObject *self, PyObject *args)
{
    (void)self;
    return depthwise(args, OP_DW_FORWARD, "depthwise_forward");
}

static PyObject *py_dw_backward_data(PyObject *self, PyObject *args)
{
    (void)self;
    return depthwise(args, OP_DW_DATA, "depthwise_backward_data");
}

static PyObject *py_dw_backward_weight(PyObject *self, PyObject *args)
{
    (void)self;
    return depthwise(args, OP_DW_WEIGHT, "depthwise_backward_weight");
}

/* depthwise_backward(dy, x, w, dx, dw, geom, threads=1): (B3) and (B2) of a depthwise layer
 * with stride 1 in one pass over dy (dw_backward_both), then each filter's N plane shares
 * added in the order of n (dw_weight_sum): the bits of the two separate passes. */
static PyObject *py_dw_backward(PyObject *self, PyObject *args)
{
    PyObject *objs[5], *geo;
    int threads = 1;
    Call c = {.op = OP_DW_BOTH};
    ConvGeom *g = &c.conv;
    Py_buffer v[5];
    const char *name = "depthwise_backward";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOO!|i", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &PyTuple_Type, &geo, &threads))
        return NULL;
    if (parse_conv_geom(geo, g, name) || check_threads(threads, name)) return NULL;
    if (g->K % g->C != 0 || g->sh != 1 || g->sw != 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected K a multiple of C and stride 1, got K=%zd, C=%zd, "
                     "stride=(%zd, %zd)", name, g->K, g->C, g->sh, g->sw);
        return NULL;
    }
    const Py_ssize_t RS = g->R * g->S;
    const Py_ssize_t sizes[5] = {g->N * g->K * g->P * g->Q, g->N * g->C * g->H * g->W, g->K * RS,
                                 g->N * g->C * g->H * g->W, g->K * RS};
    static const char *names[5] = {"dy", "x", "w", "dx", "dw"};
    c.kind = float_kind(objs[0], name);
    if (!c.kind) return NULL;
    for (int i = 0; i < 5; ++i) {
        if (get_array(objs[i], &v[i], i >= 3, c.kind, sizes[i], name, names[i])) {
            RELEASE_ALL(v, i);
            return NULL;
        }
        c.a[i] = v[i].buf;
    }
    const Py_ssize_t Wr = wide_cols(g), Hr = wide_rows(g);
    /* dxr and xr (Hr*Wr each), then dy's wide plane between margins of up to Hr*Wr each */
    const Py_ssize_t elements = 4 * Hr * Wr + g->P * Wr, sums_dims[] = {g->N, g->K, RS};
    threads = team_size(0, g->N * g->C, threads);
    Py_ssize_t *offs = PyMem_RawMalloc((size_t)RS * sizeof(Py_ssize_t));
    void *plane_sums = fits(sums_dims, 3)
                           ? PyMem_RawMalloc((size_t)(g->N * g->K * RS) * (size_t)c.kind)
                           : NULL; /* N*K*R*S past the size limit: no memory either */
    if (!offs || !plane_sums || alloc_scratch(&c, (size_t)elements * (size_t)c.kind, threads)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        PyMem_RawFree(offs);
        PyMem_RawFree(plane_sums);
        RELEASE_ALL(v, 5);
        return NULL;
    }
    dw_offsets(g, offs);
    c.offs = offs;
    void *dw = c.a[4];
    c.a[4] = plane_sums;
    run_call(&c, 0, g->N * g->C, threads, 1);
    if (c.kind == 4) dw_weight_sum_f32(plane_sums, dw, g->N, 0, g->K, RS);
    else dw_weight_sum_f64(plane_sums, dw, g->N, 0, g->K, RS);
    PyMem_RawFree(plane_sums);
    PyMem_RawFree(c.scratch);
    PyMem_RawFree(offs);
    RELEASE_ALL(v, 5);
    Py_RETURN_NONE;
}

/* The direct sums' sizes (_kernels_direct.h): w (K, C/G*R*S), the filters padded to Kpad
 * and the taps to a multiple of 6 per group, `slices` partial sums of that size, and DR row
 * regions and turned rows of dy per thread must all fit; checked before any buffer is taken. */
static int direct_sizes_fit(const ConvGeom *g, Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t slices,
                            const char *op)
{
    const Py_ssize_t Cg = g->C / G, taps = Cg * g->R * g->S;
    const Py_ssize_t w_dims[] = {g->K, taps}, partial_dims[] = {slices, G, taps + 5, Kpad};
    const Py_ssize_t region_dims[] = {DR, Cg, direct_rows(g), direct_cols(g)};
    const Py_ssize_t dyT_dims[] = {DR, g->Q, Kpad};
    if (fits(w_dims, 2) && fits(partial_dims, 4) && fits(region_dims, 4) && fits(dyT_dims, 3))
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: the geometry's sizes overflow", op);
    return -1;
}

/* direct_forward(x, w, b or None, y, geom, groups, lo, hi, threads=1): (F1) as its sum,
 * over output rows (n, g, p) in [lo, hi) (_kernels_direct.h). */
static PyObject *py_direct_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *wo, *bo, *yo, *geo;
    Py_ssize_t G, lo, hi;
    int threads = 1;
    Call c = {.op = OP_DIRECT_FORWARD};
    ConvGeom *g = &c.conv;
    Py_buffer v[4];
    const char *op = "direct_forward";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOO!nnn|i", &xo, &wo, &bo, &yo, &PyTuple_Type, &geo, &G, &lo,
                          &hi, &threads))
        return NULL;
    if (parse_conv_geom(geo, g, op) || check_threads(threads, op)) return NULL;
    if (G < 1 || g->C % G != 0 || g->K % G != 0) {
        PyErr_Format(PyExc_ValueError, "%s: groups=%zd does not divide C=%zd and K=%zd", op, G,
                     g->C, g->K);
        return NULL;
    }
    if (check_range(lo, hi, g->N * G * g->P, op)) return NULL;
    c.kind = float_kind(xo, op);
    if (!c.kind) return NULL;
    const Py_ssize_t Cg = g->C / G, Kg = g->K / G, taps = Cg * g->R * g->S;
    const Py_ssize_t DKn = 64 / c.kind, Kpad = (Kg + DKn - 1) / DKn * DKn;
    if (direct_sizes_fit(g, G, Kpad, 1, op)) return NULL;
    if (get_array(xo, &v[0], 0, c.kind, g->N * g->C * g->H * g->W, op, "x")) return NULL;
    if (get_array(wo, &v[1], 0, c.kind, g->K * taps, op, "w")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(yo, &v[2], 1, c.kind, g->N * g->K * g->P * g->Q, op, "y")) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    const int has_bias = bo != Py_None;
    if (has_bias && get_array(bo, &v[3], 0, c.kind, g->K, op, "b")) {
        RELEASE_ALL(v, 3);
        return NULL;
    }
    const Py_ssize_t rows = direct_rows(g), cols = direct_cols(g);
    threads = team_size(lo, hi, threads);
    void *wt = PyMem_RawMalloc((size_t)(G * taps * Kpad) * (size_t)c.kind);
    Py_ssize_t *offs = PyMem_RawMalloc((size_t)taps * sizeof(Py_ssize_t));
    if (!wt || !offs || alloc_scratch(&c, (size_t)(Cg * rows * cols) * (size_t)c.kind, threads)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        PyMem_RawFree(wt);
        PyMem_RawFree(offs);
        RELEASE_ALL(v, 3 + has_bias);
        return NULL;
    }
    const int unit = direct_unit_blocks(g, Kg, taps, c.kind);
    const Py_ssize_t KB = unit ? 4 : DKn; /* VK or DK of _kernels_direct.h */
    if (c.kind == 4) direct_filters_f32(v[1].buf, wt, G, Kg, taps, Kpad, KB);
    else direct_filters_f64(v[1].buf, wt, G, Kg, taps, Kpad, KB);
    for (Py_ssize_t ch = 0; ch < Cg; ++ch)
        for (Py_ssize_t r = 0; r < g->R; ++r)
            for (Py_ssize_t s_ = 0; s_ < g->S; ++s_)
                offs[(ch * g->R + r) * g->S + s_] = (ch * rows + r) * cols + s_ * g->dw;
    c.a[0] = v[0].buf, c.a[1] = wt, c.a[2] = has_bias ? v[3].buf : NULL, c.a[3] = v[2].buf;
    c.n[0] = G, c.n[1] = Kpad, c.n[2] = unit;
    c.offs = offs;
    run_call(&c, lo, hi, threads, 1);
    PyMem_RawFree(c.scratch);
    PyMem_RawFree(wt);
    PyMem_RawFree(offs);
    RELEASE_ALL(v, 3 + has_bias);
    Py_RETURN_NONE;
}

/* direct_weight(dy, x, dw, geom, groups, slices, lo, hi, threads=1): (B2) as (DS3), the
 * output rows cut into `slices` slices; slices [lo, hi) are summed, then every slice's
 * partial is added into dw in slice order (the others count as zero). */
static PyObject *py_direct_weight(PyObject *self, PyObject *args)
{
    PyObject *dyo, *xo, *dwo, *geo;
    Py_ssize_t G, slices, lo, hi;
    int threads = 1;
    Call c = {.op = OP_DIRECT_WEIGHT};
    ConvGeom *g = &c.conv;
    Py_buffer v[3];
    const char *op = "direct_weight";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO!nnnn|i", &dyo, &xo, &dwo, &PyTuple_Type, &geo, &G, &slices,
                          &lo, &hi, &threads))
        return NULL;
    if (parse_conv_geom(geo, g, op) || check_threads(threads, op)) return NULL;
    if (G < 1 || g->C % G != 0 || g->K % G != 0) {
        PyErr_Format(PyExc_ValueError, "%s: groups=%zd does not divide C=%zd and K=%zd", op, G,
                     g->C, g->K);
        return NULL;
    }
    if (slices < 1 || slices > g->N * G * g->P) {
        PyErr_Format(PyExc_ValueError, "%s: slices must be in [1, %zd] (output rows), got %zd",
                     op, g->N * G * g->P, slices);
        return NULL;
    }
    if (check_range(lo, hi, slices, op)) return NULL;
    c.kind = float_kind(dyo, op);
    if (!c.kind) return NULL;
    const Py_ssize_t Cg = g->C / G, Kg = g->K / G, taps = Cg * g->R * g->S;
    const Py_ssize_t DKn = 64 / c.kind, Kpad = (Kg + DKn - 1) / DKn * DKn;
    const Py_ssize_t Tpad = (taps + 5) / 6 * 6;
    if (direct_sizes_fit(g, G, Kpad, slices, op)) return NULL;
    if (get_array(dyo, &v[0], 0, c.kind, g->N * g->K * g->P * g->Q, op, "dy")) return NULL;
    if (get_array(xo, &v[1], 0, c.kind, g->N * g->C * g->H * g->W, op, "x")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(dwo, &v[2], 1, c.kind, g->K * taps, op, "dw")) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    const Py_ssize_t rows = direct_rows(g), cols = direct_cols(g);
    threads = team_size(lo, hi, threads);
    const Py_ssize_t per_slice = G * Tpad * Kpad;
    void *partials = PyMem_RawMalloc((size_t)(slices * per_slice) * (size_t)c.kind);
    Py_ssize_t *offs = PyMem_RawMalloc((size_t)Tpad * sizeof(Py_ssize_t));
    void *row = PyMem_RawMalloc((size_t)Kpad * (size_t)c.kind); /* direct_weight_sum's */
    const size_t scratch = (size_t)(DR * (Cg * rows * cols + g->Q * Kpad)) * (size_t)c.kind;
    if (!partials || !offs || !row || alloc_scratch(&c, scratch, threads)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        PyMem_RawFree(partials);
        PyMem_RawFree(offs);
        PyMem_RawFree(row);
        RELEASE_ALL(v, 3);
        return NULL;
    }
    for (Py_ssize_t t = 0; t < Tpad; ++t) {
        const Py_ssize_t ch = t / (g->R * g->S), r = t / g->S % g->R, s_ = t % g->S;
        offs[t] = t < taps ? (ch * rows + r) * cols + s_ * g->dw : 0;
    }
    c.a[0] = v[1].buf, c.a[1] = v[0].buf, c.a[2] = partials;
    c.n[0] = G, c.n[1] = Kpad, c.n[2] = Tpad, c.n[3] = slices;
    c.offs = offs;
    /* the slices [lo, hi) zero their own partials (direct_weight); the others count as zero */
    const size_t slice_bytes = (size_t)per_slice * (size_t)c.kind;
    memset(partials, 0, (size_t)lo * slice_bytes);
    memset((char *)partials + (size_t)hi * slice_bytes, 0, (size_t)(slices - hi) * slice_bytes);
    run_call(&c, lo, hi, threads, 1);
    Py_BEGIN_ALLOW_THREADS;
    if (c.kind == 4)
        direct_weight_sum_f32(partials, v[2].buf, row, G, Kg, taps, Kpad, Tpad, slices);
    else direct_weight_sum_f64(partials, v[2].buf, row, G, Kg, taps, Kpad, Tpad, slices);
    Py_END_ALLOW_THREADS;
    PyMem_RawFree(c.scratch);
    PyMem_RawFree(partials);
    PyMem_RawFree(offs);
    PyMem_RawFree(row);
    RELEASE_ALL(v, 3);
    Py_RETURN_NONE;
}

static PyObject *py_maxpool_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *yo, *ao, *geo;
    Py_ssize_t lo, hi;
    int threads = 1;
    Call c = {.op = OP_MAXPOOL_FORWARD};
    const PoolGeom *g = &c.pool;
    Py_buffer v[3];
    const char *op = "max_pool2d_forward";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO!nn|i", &xo, &yo, &ao, &PyTuple_Type, &geo, &lo, &hi,
                          &threads))
        return NULL;
    if (parse_pool_geom(geo, &c.pool, op) || check_range(lo, hi, g->N * g->C, op) ||
        check_threads(threads, op))
        return NULL;
    c.kind = float_kind(xo, op);
    if (!c.kind) return NULL;
    if (get_array(xo, &v[0], 0, c.kind, g->N * g->C * g->H * g->W, op, "x")) return NULL;
    if (get_array(yo, &v[1], 1, c.kind, g->N * g->C * g->P * g->Q, op, "y")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(ao, &v[2], 1, -4, g->N * g->C * g->P * g->Q, op, "argmax")) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf, c.a[2] = v[2].buf;
    run_call(&c, lo, hi, threads, 1);
    RELEASE_ALL(v, 3);
    Py_RETURN_NONE;
}

static PyObject *py_maxpool_backward(PyObject *self, PyObject *args)
{
    PyObject *dyo, *ao, *dxo, *geo;
    Py_ssize_t lo, hi;
    int threads = 1;
    Call c = {.op = OP_MAXPOOL_BACKWARD};
    const PoolGeom *g = &c.pool;
    Py_buffer v[3];
    const char *op = "max_pool2d_backward";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO!nn|i", &dyo, &ao, &dxo, &PyTuple_Type, &geo, &lo, &hi,
                          &threads))
        return NULL;
    if (parse_pool_geom(geo, &c.pool, op) || check_range(lo, hi, g->N * g->C, op) ||
        check_threads(threads, op))
        return NULL;
    c.kind = float_kind(dyo, op);
    if (!c.kind) return NULL;
    if (get_array(dyo, &v[0], 0, c.kind, g->N * g->C * g->P * g->Q, op, "dy")) return NULL;
    if (get_array(ao, &v[1], 0, -4, g->N * g->C * g->P * g->Q, op, "argmax")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(dxo, &v[2], 1, c.kind, g->N * g->C * g->H * g->W, op, "dx")) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf, c.a[2] = v[2].buf;
    const Py_ssize_t invalid = run_call(&c, lo, hi, threads, 1);
    RELEASE_ALL(v, 3);
    return PyLong_FromSsize_t(invalid);
}

/* The four Winograd transforms, F(2x2, 3x3) and F(4x4, 3x3): one input, one output, sizes
 * by role; m output cells per tile side, (m + 2)^2 tile positions. */
static PyObject *winograd(PyObject *args, int op, const char *name)
{
    PyObject *io, *oo, *geo;
    Py_ssize_t Th, Tw, lo, hi;
    int threads = 1;
    Call c = {.op = op};
    const ConvGeom *g = &c.conv;
    Py_buffer v[2];
    const int four = op == OP_WINO4_INPUT || op == OP_WINO4_OUTPUT || op == OP_WINO4_DY ||
                     op == OP_WINO4_DX;
    const Py_ssize_t m = four ? 4 : 2, positions = (m + 2) * (m + 2);
    if (!PyArg_ParseTuple(args, "OOO!nnnn|i", &io, &oo, &PyTuple_Type, &geo, &Th, &Tw, &lo, &hi,
                          &threads))
        return NULL;
    if (parse_conv_geom(geo, &c.conv, name) || check_threads(threads, name)) return NULL;
    if (Th != (g->P + m - 1) / m || Tw != (g->Q + m - 1) / m || g->R != 3 || g->S != 3 ||
        g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: needs a 3x3 kernel, stride 1, dilation 1 and ceil(P/%zd) x "
                     "ceil(Q/%zd) tiles", name, m, m);
        return NULL;
    }
    const Py_ssize_t NT = g->N * Th * Tw;
    const Py_ssize_t nx = g->N * g->C * g->H * g->W, ny = g->N * g->K * g->P * g->Q;
    const Py_ssize_t nVx = positions * g->C * NT, nVy = positions * g->K * NT;
    Py_ssize_t in_size, out_size, total;
    if (op == OP_WINO_INPUT || op == OP_WINO4_INPUT)
        in_size = nx, out_size = nVx, total = g->N * g->C;
    else if (op == OP_WINO_OUTPUT || op == OP_WINO4_OUTPUT)
        in_size = nVy, out_size = ny, total = g->N * g->K;
    else if (op == OP_WINO_DY || op == OP_WINO4_DY)
        in_size = ny, out_size = nVy, total = g->N * g->K;
    else in_size = nVx, out_size = nx, total = g->N * g->C;
    if (check_range(lo, hi, total, name)) return NULL;
    c.kind = float_kind(io, name);
    if (!c.kind) return NULL;
    if (get_array(io, &v[0], 0, c.kind, in_size, name, "input")) return NULL;
    if (get_array(oo, &v[1], 1, c.kind, out_size, name, "output")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    /* blocks of transformed tiles and row buffers (_kernels_winograd.h, _kernels_winograd4.h) */
    const Py_ssize_t elements = four ? wino4_scratch(Tw) : wino_scratch(Tw);
    threads = team_size(lo, hi, threads);
    if (alloc_scratch(&c, (size_t)elements * (size_t)c.kind, threads)) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf, c.n[0] = Th, c.n[1] = Tw;
    run_call(&c, lo, hi, threads, 1);
    PyMem_RawFree(c.scratch);
    RELEASE_ALL(v, 2);
    Py_RETURN_NONE;
}

#define WINOGRAD_ENTRY(fn, op, name)                                                             \
    static PyObject *fn(PyObject *self, PyObject *args)                                          \
    {                                                                                            \
        (void)self;                                                                              \
        return winograd(args, op, name);                                                         \
    }
WINOGRAD_ENTRY(py_wino_input, OP_WINO_INPUT, "winograd_input")
WINOGRAD_ENTRY(py_wino_output, OP_WINO_OUTPUT, "winograd_output")
WINOGRAD_ENTRY(py_wino_dy, OP_WINO_DY, "winograd_dy")
WINOGRAD_ENTRY(py_wino_dx, OP_WINO_DX, "winograd_dx")
WINOGRAD_ENTRY(py_wino4_input, OP_WINO4_INPUT, "winograd4_input")
WINOGRAD_ENTRY(py_wino4_output, OP_WINO4_OUTPUT, "winograd4_output")
WINOGRAD_ENTRY(py_wino4_dy, OP_WINO4_DY, "winograd4_dy")
WINOGRAD_ENTRY(py_wino4_dx, OP_WINO4_DX, "winograd4_dx")

/* The bias of a convolution: add_bias(y, b, K, PQ, lo, hi) over planes of y (N, K, PQ) and
 * bias_grad(dy, db, K, PQ, lo, hi) over filters. */
static PyObject *py_add_bias(PyObject *self, PyObject *args)
{
    PyObject *yo, *bo;
    Py_ssize_t K, PQ, lo, hi;
    int threads = 1;
    Call c = {.op = OP_ADD_BIAS};
    Py_buffer v[2];
    const char *op = "add_bias";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnnnn|i", &yo, &bo, &K, &PQ, &lo, &hi, &threads)) return NULL;
    if (check_threads(threads, op)) return NULL;
    c.kind = float_kind(yo, op);
    if (!c.kind) return NULL;
    if (get_array(bo, &v[1], 0, c.kind, K, op, "b")) return NULL;
    if (PyObject_GetBuffer(yo, &v[0], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)) {
        RELEASE_ALL(v + 1, 1);
        return NULL;
    }
    const Py_ssize_t count = v[0].len / v[0].itemsize;
    const Py_ssize_t dims[] = {K, PQ};
    if (K < 1 || PQ < 1 || !fits(dims, 2) || count % (K * PQ) != 0 ||
        check_range(lo, hi, count / PQ, op)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "%s: y of %zd elements is not (N, %zd, %zd)", op,
                         count, K, PQ);
        RELEASE_ALL(v, 2);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf, c.n[0] = K, c.n[1] = PQ;
    run_call(&c, lo, hi, threads, 1);
    RELEASE_ALL(v, 2);
    Py_RETURN_NONE;
}

static PyObject *py_bias_grad(PyObject *self, PyObject *args)
{
    PyObject *dyo, *dbo;
    Py_ssize_t K, PQ, lo, hi;
    int threads = 1;
    Call c = {.op = OP_BIAS_GRAD};
    Py_buffer v[2];
    const char *op = "bias_grad";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnnnn|i", &dyo, &dbo, &K, &PQ, &lo, &hi, &threads)) return NULL;
    if (check_threads(threads, op)) return NULL;
    c.kind = float_kind(dyo, op);
    if (!c.kind) return NULL;
    if (PyObject_GetBuffer(dyo, &v[0], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)) return NULL;
    const Py_ssize_t count = v[0].len / v[0].itemsize;
    const Py_ssize_t dims[] = {K, PQ};
    if (K < 1 || PQ < 1 || !fits(dims, 2) || count % (K * PQ) != 0 ||
        check_range(lo, hi, K, op)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "%s: dy of %zd elements is not (N, %zd, %zd)", op,
                         count, K, PQ);
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(dbo, &v[1], 1, c.kind, K, op, "db")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    /* plane by plane in memory order, each plane's sum apart (see bias_grad) */
    const Py_ssize_t N = count / (K * PQ), kc = hi - lo, planes = N * kc;
    double *parts = PyMem_RawMalloc((size_t)(planes > 0 ? planes : 1) * sizeof(double));
    if (!parts) {
        RELEASE_ALL(v, 2);
        return PyErr_NoMemory();
    }
    c.a[0] = v[0].buf, c.a[1] = parts;
    c.n[0] = K, c.n[1] = PQ, c.n[2] = lo, c.n[3] = kc;
    if (planes > 0) run_call(&c, 0, planes, threads, 1);
    if (c.kind == 4) bias_grad_sum_f32(parts, v[1].buf, N, lo, kc);
    else bias_grad_sum_f64(parts, v[1].buf, N, lo, kc);
    PyMem_RawFree(parts);
    RELEASE_ALL(v, 2);
    Py_RETURN_NONE;
}

/* spatial_to_planes(src, dst, layout, lo, hi) and planes_to_spatial(src, dst, layout, lo, hi)
 * with layout = (Lh, Lw, M, rows, cols, row0, col0, sh, sw): the spatial array is
 * (Lh, Lw, M), the planes (M, rows, cols); channels [lo, hi). */
static PyObject *permute(PyObject *args, int op, const char *name)
{
    PyObject *so, *do_, *lo_tuple;
    Py_ssize_t Lh, Lw, M, rows, cols, row0, col0, sh, sw, lo, hi;
    int threads = 1;
    Call c = {.op = op};
    Py_buffer v[2];
    if (!PyArg_ParseTuple(args, "OOO!nn|i", &so, &do_, &PyTuple_Type, &lo_tuple, &lo, &hi,
                          &threads))
        return NULL;
    if (!PyArg_ParseTuple(lo_tuple, "nnnnnnnnn", &Lh, &Lw, &M, &rows, &cols, &row0, &col0, &sh,
                          &sw))
        return NULL;
    const Py_ssize_t spatial_dims[] = {Lh, Lw, M}, plane_dims[] = {M, rows, cols};
    /* the last row row0 + (rows-1)*sh must be < Lh; tested by division, which cannot overflow */
    if (Lh < 1 || Lw < 1 || M < 1 || rows < 1 || cols < 1 || row0 < 0 || col0 < 0 || sh < 1 ||
        sw < 1 || !fits(spatial_dims, 3) || !fits(plane_dims, 3) || row0 >= Lh || col0 >= Lw ||
        (rows > 1 && sh > (Lh - 1 - row0) / (rows - 1)) ||
        (cols > 1 && sw > (Lw - 1 - col0) / (cols - 1))) {
        PyErr_Format(PyExc_ValueError, "%s: the planes do not fit the spatial array", name);
        return NULL;
    }
    if (check_range(lo, hi, M, name) || check_threads(threads, name)) return NULL;
    c.kind = float_kind(so, name);
    if (!c.kind) return NULL;
    const int to_planes = op == OP_TO_PLANES;
    const Py_ssize_t spatial = Lh * Lw * M, planes = M * rows * cols;
    if (get_array(so, &v[0], 0, c.kind, to_planes ? spatial : planes, name, "source")) return NULL;
    if (get_array(do_, &v[1], 1, c.kind, to_planes ? planes : spatial, name, "destination")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf;
    const Py_ssize_t n[8] = {Lw, M, rows, cols, row0, col0, sh, sw};
    memcpy(c.n, n, sizeof n);
    run_call(&c, lo, hi, threads, PERM_BLOCK);
    RELEASE_ALL(v, 2);
    Py_RETURN_NONE;
}

static PyObject *py_spatial_to_planes(PyObject *self, PyObject *args)
{
    (void)self;
    return permute(args, OP_TO_PLANES, "spatial_to_planes");
}

static PyObject *py_planes_to_spatial(PyObject *self, PyObject *args)
{
    (void)self;
    return permute(args, OP_TO_SPATIAL, "planes_to_spatial");
}

/* The flat arrays of an element-wise kernel, all of objs[0]'s float type: objs[i] must be a
 * C-contiguous buffer of scale[i] * n elements, n being objs[0]'s element count (scale[0]
 * is 1), writable where writable[i]; [lo, hi) must lie in [0, n). With optional_last,
 * the last array may be None (not held). Returns the number of views held, or -1 with an
 * exception set and nothing held; *kind is 4 or 8. */
static int flat_arrays(const char *op, int count, PyObject *const *objs, const int *scale,
                       const int *writable, const char *const *names, int optional_last,
                       Py_ssize_t lo, Py_ssize_t hi, Py_buffer *views, int *kind)
{
    if (optional_last && objs[count - 1] == Py_None) --count;
    *kind = float_kind(objs[0], op);
    if (!*kind) return -1;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable[0] ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(objs[0], &views[0], flags)) return -1;
    const Py_ssize_t n = views[0].len / views[0].itemsize;
    if (check_range(lo, hi, n, op)) {
        PyBuffer_Release(&views[0]);
        return -1;
    }
    int held = 1;
    for (; held < count; ++held)
        if (get_array(objs[held], &views[held], writable[held], *kind, scale[held] * n, op,
                      names[held])) {
            RELEASE_ALL(views, held);
            return -1;
        }
    return held;
}

/* Elements per chunk of the element-wise loops: whole cache lines of float64. */
#define ELEMENT_ALIGN 64

/* An element-wise call: `count` arrays (objs[order[i]] is the loop's i-th argument), sized
 * and checked by flat_arrays, over the elements [lo, hi). */
static PyObject *elementwise(Call *c, int count, PyObject *const *objs, const int *order,
                             const int *scale, const int *writable, const char *const *names,
                             int optional_last, Py_ssize_t lo, Py_ssize_t hi, int threads,
                             const char *op)
{
    Py_buffer v[5];
    if (check_threads(threads, op)) return NULL;
    const int held = flat_arrays(op, count, objs, scale, writable, names, optional_last, lo, hi,
                                 v, &c->kind);
    if (held < 0) return NULL;
    for (int i = 0; i < count; ++i) c->a[i] = order[i] < held ? v[order[i]].buf : NULL;
    run_call(c, lo, hi, threads, ELEMENT_ALIGN);
    RELEASE_ALL(v, held);
    Py_RETURN_NONE;
}

static const int IN_ORDER[] = {0, 1, 2, 3, 4};

/* relu_forward(x, y, lo, hi) and relu_backward(dy, x, dx, lo, hi): (A1)-(A3) over the
 * elements [lo, hi) of same-sized flat arrays. */
static PyObject *py_relu_forward(PyObject *self, PyObject *args)
{
    PyObject *objs[2];
    Py_ssize_t lo, hi;
    int threads = 1;
    Call c = {.op = OP_RELU_FORWARD};
    static const int scale[] = {1, 1}, writable[] = {0, 1};
    static const char *const names[] = {"x", "y"};
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnn|i", &objs[0], &objs[1], &lo, &hi, &threads)) return NULL;
    return elementwise(&c, 2, objs, IN_ORDER, scale, writable, names, 0, lo, hi, threads,
                       "relu_forward");
}

static PyObject *py_relu_backward(PyObject *self, PyObject *args)
{
    PyObject *objs[3];
    Py_ssize_t lo, hi;
    int threads = 1;
    Call c = {.op = OP_RELU_BACKWARD};
    static const int scale[] = {1, 1, 1}, writable[] = {0, 0, 1};
    static const char *const names[] = {"dy", "x", "dx"};
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnn|i", &objs[0], &objs[1], &objs[2], &lo, &hi, &threads))
        return NULL;
    return elementwise(&c, 3, objs, IN_ORDER, scale, writable, names, 0, lo, hi, threads,
                       "relu_backward");
}

/* adam_step(p, g, m, v, vmax or None, scalars, lo, hi) with scalars = (decay, l2, weight,
 * beta2, one_minus_beta2, bc2_sqrt, eps, step_size, maximize, amsgrad, decoupled):
 * (ADAM2)-(ADAM7) over the elements [lo, hi) of same-sized flat arrays, in place. */
static PyObject *py_adam_step(PyObject *self, PyObject *args)
{
    PyObject *objs[5], *so;
    Py_ssize_t lo, hi;
    int threads = 1;
    Call c = {.op = OP_ADAM};
    AdamScalars *a = &c.adam;
    static const int scale[] = {1, 1, 1, 1, 1}, writable[] = {1, 0, 1, 1, 1};
    static const char *const names[] = {"p", "g", "m", "v", "vmax"};
    const char *op = "adam_step";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOO!nn|i", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &PyTuple_Type, &so, &lo, &hi, &threads))
        return NULL;
    if (!PyArg_ParseTuple(so, "ddddddddppp", &a->decay, &a->l2, &a->weight, &a->beta2,
                          &a->one_minus_beta2, &a->bc2_sqrt, &a->eps, &a->step_size, &a->maximize,
                          &a->amsgrad, &a->decoupled))
        return NULL;
    if (a->amsgrad == (objs[4] == Py_None)) {
        PyErr_Format(PyExc_ValueError, "%s: expected vmax exactly when amsgrad is set", op);
        return NULL;
    }
    return elementwise(&c, 5, objs, IN_ORDER, scale, writable, names, 1, lo, hi, threads, op);
}

/* dft_small_forward(planes, coef, spec, dims, lo, hi) and dft_small_inverse(spec, coef,
 * planes, dims, lo, hi) with dims = (M, h, w, Lh, Wb, conj): (T7) and (T8) for the planes
 * [lo, hi) (_kernels_dft.h); spec is (Lh*Wb, M) complex, given as its 2*Lh*Wb*M reals. */
static PyObject *dft_small(PyObject *args, int op, const char *name)
{
    PyObject *so, *co, *do_, *dims;
    Py_ssize_t M, h, w, Lh, Wb, conj, lo, hi;
    int threads = 1;
    Call c = {.op = op};
    Py_buffer v[3];
    if (!PyArg_ParseTuple(args, "OOOO!nn|i", &so, &co, &do_, &PyTuple_Type, &dims, &lo, &hi,
                          &threads))
        return NULL;
    if (!PyArg_ParseTuple(dims, "nnnnnn", &M, &h, &w, &Lh, &Wb, &conj)) return NULL;
    const Py_ssize_t spec_dims[] = {M, 2 * Lh, Wb}, plane_dims[] = {M, h, w};
    if (M < 1 || h < 1 || w < 1 || Lh < 1 || Wb < 1 || h > 1024 || w > 1024 || Lh > 1024 ||
        Wb > 1024 || (conj != 0 && conj != 1) || !fits(spec_dims, 3) || !fits(plane_dims, 3)) {
        PyErr_Format(PyExc_ValueError, "%s: invalid dimensions (M, h, w, Lh, Wb, conj)", name);
        return NULL;
    }
    if (check_range(lo, hi, M, name) || check_threads(threads, name)) return NULL;
    c.kind = float_kind(so, name);
    if (!c.kind) return NULL;
    const int forward = op == OP_DFT_FORWARD;
    const Py_ssize_t n_planes = M * h * w, n_spec = 2 * Lh * Wb * M;
    const Py_ssize_t n_coef = forward ? 2 * Wb * w + 2 * Lh * h : 2 * Lh * h + 2 * Wb * w;
    if (get_array(so, &v[0], 0, c.kind, forward ? n_planes : n_spec, name, "source")) return NULL;
    if (get_array(co, &v[1], 0, c.kind, n_coef, name, "coef")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(do_, &v[2], 1, c.kind, forward ? n_spec : n_planes, name, "destination")) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    const Py_ssize_t elements =
        (forward ? h * w + 2 * h * Wb : 2 * Lh * Wb + 2 * h * Wb + h * w) * DFT_LANES;
    threads = team_size(lo, hi, threads);
    if (alloc_scratch(&c, (size_t)elements * (size_t)c.kind, threads)) {
        RELEASE_ALL(v, 3);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf, c.a[2] = v[2].buf;
    const Py_ssize_t n[6] = {M, h, w, Lh, Wb, conj};
    memcpy(c.n, n, sizeof n);
    run_call(&c, lo, hi, threads, DFT_LANES);
    PyMem_RawFree(c.scratch);
    RELEASE_ALL(v, 3);
    Py_RETURN_NONE;
}

/* bin_products(a, b, y, (I, M, L, Nc, at, bt), lo, hi, threads=1): y[i] = A[i] @ B[i] for the
 * bins [lo, hi) (_kernels_bins.h), complex, each array given as its reals: a holds A (I, M, L),
 * or with at its transpose (I, L, M); b holds B (I, L, Nc), or with bt (I, Nc, L); y (I, M, Nc). */
static PyObject *py_bin_products(PyObject *self, PyObject *args)
{
    PyObject *ao, *bo, *yo, *dims;
    Py_ssize_t I, M, L, Nc, at, bt, lo, hi;
    int threads = 1;
    Call c = {.op = OP_BINS};
    Py_buffer v[3];
    const char *name = "bin_products";
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO!nn|i", &ao, &bo, &yo, &PyTuple_Type, &dims, &lo, &hi,
                          &threads))
        return NULL;
    if (!PyArg_ParseTuple(dims, "nnnnnn", &I, &M, &L, &Nc, &at, &bt)) return NULL;
    const Py_ssize_t a_dims[] = {2 * I, M, L}, b_dims[] = {2 * I, L, Nc}, y_dims[] = {2 * I, M, Nc};
    if (I < 1 || M < 1 || L < 1 || Nc < 1 || (at != 0 && at != 1) || (bt != 0 && bt != 1) ||
        !fits(a_dims, 3) || !fits(b_dims, 3) || !fits(y_dims, 3)) {
        PyErr_Format(PyExc_ValueError, "%s: invalid dimensions (I, M, L, Nc, at, bt)", name);
        return NULL;
    }
    if (check_range(lo, hi, I, name) || check_threads(threads, name)) return NULL;
    c.kind = float_kind(ao, name);
    if (!c.kind) return NULL;
    if (get_array(ao, &v[0], 0, c.kind, 2 * I * M * L, name, "a")) return NULL;
    if (get_array(bo, &v[1], 0, c.kind, 2 * I * L * Nc, name, "b")) {
        RELEASE_ALL(v, 1);
        return NULL;
    }
    if (get_array(yo, &v[2], 1, c.kind, 2 * I * M * Nc, name, "y")) {
        RELEASE_ALL(v, 2);
        return NULL;
    }
    const Py_ssize_t cb = BIN_CB(c.kind), Ncp = (Nc + cb - 1) / cb * cb; /* _kernels_bins.h */
    threads = team_size(lo, hi, threads);
    const Py_ssize_t elements = 2 * L * Ncp + (at ? 2 * M * L : 0); /* _kernels_bins.h */
    if (alloc_scratch(&c, (size_t)elements * (size_t)c.kind, threads)) {
        RELEASE_ALL(v, 3);
        return NULL;
    }
    c.a[0] = v[0].buf, c.a[1] = v[1].buf, c.a[2] = v[2].buf;
    const Py_ssize_t n[5] = {M, L, Nc, at, bt};
    memcpy(c.n, n, sizeof n);
    run_call(&c, lo, hi, threads, 1);
    PyMem_RawFree(c.scratch);
    RELEASE_ALL(v, 3);
    Py_RETURN_NONE;
}

static PyObject *py_dft_small_forward(PyObject *self, PyObject *args)
{
    (void)self;
    return dft_small(args, OP_DFT_FORWARD, "dft_small_forward");
}

static PyObject *py_dft_small_inverse(PyObject *self, PyObject *args)
{
    (void)self;
    return dft_small(args, OP_DFT_INVERSE, "dft_small_inverse");
}

/* direct_blocking(geom, groups, itemsize) -> "filters" (VK filters x VQ columns) or "columns"
 * (DQ columns x DK filters): the register blocking direct_forward uses (_kernels_direct.h). */
static PyObject *py_direct_blocking(PyObject *self, PyObject *args)
{
    PyObject *geo;
    Py_ssize_t G;
    int itemsize;
    ConvGeom g;
    const char *op = "direct_blocking";
    (void)self;
    if (!PyArg_ParseTuple(args, "O!ni", &PyTuple_Type, &geo, &G, &itemsize)) return NULL;
    if (parse_conv_geom(geo, &g, op)) return NULL;
    if (G < 1 || g.C % G != 0 || g.K % G != 0 || (itemsize != 4 && itemsize != 8)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected groups dividing C=%zd and K=%zd and an itemsize of 4 or 8, "
                     "got groups=%zd, itemsize=%d", op, g.C, g.K, G, itemsize);
        return NULL;
    }
    const int unit = direct_unit_blocks(&g, g.K / G, g.C / G * g.R * g.S, itemsize);
    return PyUnicode_FromString(unit ? "filters" : "columns");
}

/* team_info() -> {"workers": workers started, "spin_ns": how long an idle worker spins,
 * "yield_ns": how long it then watches, yielding the CPU, before it sleeps} */
static PyObject *py_team_info(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return Py_BuildValue("{s:i,s:L,s:L}", "workers", atomic_load(&team.started), "spin_ns",
                         spin_ns, "yield_ns", yield_ns);
}

static PyMethodDef methods[] = {
    {"im2col", py_im2col, METH_VARARGS,
     "im2col(x, cols, geom, lo, hi, threads=1, wide=False): (I1) for planes [lo, hi); "
     "(I7)'s order where wide."},
    {"col2im", py_col2im, METH_VARARGS,
     "col2im(dcols, dx, geom, lo, hi, threads=1): (I5) for planes [lo, hi)."},
    {"depthwise_forward", py_dw_forward, METH_VARARGS,
     "depthwise_forward(x, w, b or None, y, geom, lo, hi, threads=1): (F1) for C/G = 1, "
     "planes (n, k)."},
    {"depthwise_backward_data", py_dw_backward_data, METH_VARARGS,
     "depthwise_backward_data(dy, w, None, dx, geom, lo, hi, threads=1): (B3), planes (n, c)."},
    {"depthwise_backward_weight", py_dw_backward_weight, METH_VARARGS,
     "depthwise_backward_weight(dy, x, None, dw, geom, lo, hi, threads=1): (B2), filters k."},
    {"depthwise_backward", py_dw_backward, METH_VARARGS,
     "depthwise_backward(dy, x, w, dx, dw, geom, threads=1): (B3) and (B2), stride 1, one pass "
     "over dy."},
    {"direct_forward", py_direct_forward, METH_VARARGS,
     "direct_forward(x, w, b or None, y, geom, groups, lo, hi, threads=1): (F1), rows (n, g, p)."},
    {"direct_weight", py_direct_weight, METH_VARARGS,
     "direct_weight(dy, x, dw, geom, groups, slices, lo, hi, threads=1): (B2), slices of rows."},
    {"maxpool_forward", py_maxpool_forward, METH_VARARGS,
     "maxpool_forward(x, y, argmax, geom, lo, hi, threads=1): (MP1), (MP2), planes (n, c)."},
    {"maxpool_backward", py_maxpool_backward, METH_VARARGS,
     "maxpool_backward(dy, argmax, dx, geom, lo, hi, threads=1) -> invalid entries: (MP3)."},
    {"winograd_input", py_wino_input, METH_VARARGS,
     "winograd_input(x, V, geom, Th, Tw, lo, hi, threads=1): (WG2), planes (n, c)."},
    {"winograd_output", py_wino_output, METH_VARARGS,
     "winograd_output(M, y, geom, Th, Tw, lo, hi, threads=1): (WG4), planes (n, k)."},
    {"winograd_dy", py_wino_dy, METH_VARARGS,
     "winograd_dy(dy, Z, geom, Th, Tw, lo, hi, threads=1): (WG5), planes (n, k)."},
    {"winograd_dx", py_wino_dx, METH_VARARGS,
     "winograd_dx(Mbar, dx, geom, Th, Tw, lo, hi, threads=1): (WG6), planes (n, c)."},
    {"winograd4_input", py_wino4_input, METH_VARARGS,
     "winograd4_input(x, V, geom, Th, Tw, lo, hi, threads=1): (WG2), (WG9), planes (n, c)."},
    {"winograd4_output", py_wino4_output, METH_VARARGS,
     "winograd4_output(M, y, geom, Th, Tw, lo, hi, threads=1): (WG4), (WG9), planes (n, k)."},
    {"winograd4_dy", py_wino4_dy, METH_VARARGS,
     "winograd4_dy(dy, Z, geom, Th, Tw, lo, hi, threads=1): (WG5), (WG9), planes (n, k)."},
    {"winograd4_dx", py_wino4_dx, METH_VARARGS,
     "winograd4_dx(Mbar, dx, geom, Th, Tw, lo, hi, threads=1): (WG6), (WG9), planes (n, c)."},
    {"add_bias", py_add_bias, METH_VARARGS,
     "add_bias(y, b, K, PQ, lo, hi, threads=1): (F1)'s bias."},
    {"bias_grad", py_bias_grad, METH_VARARGS, "bias_grad(dy, db, K, PQ, lo, hi, threads=1): (B1)."},
    {"spatial_to_planes", py_spatial_to_planes, METH_VARARGS,
     "spatial_to_planes(src, dst, layout, lo, hi, threads=1): (Lh, Lw, M) -> (M, rows, cols)."},
    {"planes_to_spatial", py_planes_to_spatial, METH_VARARGS,
     "planes_to_spatial(src, dst, layout, lo, hi, threads=1): (M, rows, cols) -> (Lh, Lw, M)."},
    {"relu_forward", py_relu_forward, METH_VARARGS, "relu_forward(x, y, lo, hi, threads=1): (A2)."},
    {"relu_backward", py_relu_backward, METH_VARARGS,
     "relu_backward(dy, x, dx, lo, hi, threads=1): (A1), (A3)."},
    {"adam_step", py_adam_step, METH_VARARGS,
     "adam_step(p, g, m, v, vmax or None, scalars, lo, hi, threads=1): (ADAM2)-(ADAM7) in place."},
    {"bin_products", py_bin_products, METH_VARARGS,
     "bin_products(a, b, y, (I, M, L, Nc, at, bt), lo, hi, threads=1): per-bin complex products."},
    {"dft_small_forward", py_dft_small_forward, METH_VARARGS,
     "dft_small_forward(planes, coef, spec, (M, h, w, Lh, Wb, conj), lo, hi, threads=1): (T7)."},
    {"dft_small_inverse", py_dft_small_inverse, METH_VARARGS,
     "dft_small_inverse(spec, coef, planes, (M, h, w, Lh, Wb, conj), lo, hi, threads=1): (T8)."},
    {"direct_blocking", py_direct_blocking, METH_VARARGS,
     "direct_blocking(geom, groups, itemsize) -> 'filters' or 'columns': direct_forward's blocks."},
    {"team_info", py_team_info, METH_NOARGS,
     "team_info() -> {'workers': worker threads started, 'spin_ns': an idle worker's spin, "
     "'yield_ns': its yielding watch after the spin}."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "Compiled CPU loops of convprop (see native.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void)
{
    static int registered = 0;
    if (!registered && pthread_atfork(NULL, NULL, team_after_fork_in_child) == 0) registered = 1;
    team_read_wait_policy();
    return PyModule_Create(&module);
}
