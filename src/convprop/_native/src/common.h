/* convprop._native: what every kernel family shares, in C.
 *
 * The geometry structs the bindings fill in after checking them (_runtime.pyx), the
 * scalars of an Adam step, and the few index helpers the loops of several families use.
 * The loops themselves are in one header per family (im2col.h, depthwise.h, ...), each
 * compiled for float and for double through typed.h. Labels are those of
 * docs/derivations.md.
 */
#ifndef CONVPROP_NATIVE_COMMON_H
#define CONVPROP_NATIVE_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The largest element count the kernels accept: byte offsets of float64 arrays (and the
 * sums of a few of them) must fit in a Py_ssize_t. */
#define SIZE_LIMIT (PY_SSIZE_T_MAX / 16)

/* A convolution: x (N, C, H, W), w (K, C/G, R, S), y (N, K, P, Q); the strides, the
 * dilations and the top/left zero padding (the bottom/right padding follows from P, Q). */
typedef struct {
    Py_ssize_t N, C, H, W, K, R, S, P, Q;
    Py_ssize_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
} ConvGeom;

/* A pooling: x (N, C, H, W), an R x S window, y (N, C, P, Q); the strides and the top/left
 * padding (cells that hold -inf for max pooling). */
typedef struct {
    Py_ssize_t N, C, H, W, R, S, P, Q;
    Py_ssize_t stride_h, stride_w, pad_h, pad_w;
} PoolGeom;

/* The scalars of one Adam step (adam.h), already reduced on the host to the values NumPy
 * multiplies by (each is cast to T before use, as NumPy casts a Python float next to a T
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

/* Rows and columns of the input region a stride-1 depthwise plane reads (depthwise.h). */
static inline Py_ssize_t wide_rows(const ConvGeom *g) { return g->P + (g->R - 1) * g->dil_h; }
static inline Py_ssize_t wide_cols(const ConvGeom *g) { return g->Q + (g->S - 1) * g->dil_w; }

/* Channels the layout changes of the FFT algorithm move per position and pass (layout.h). */
#define PERM_BLOCK 16

/* KERNEL: a loop the bindings call. Each is compiled as a function of its own, never inlined
 * into the binding's task, so that its code does not depend on the caller: inlined into a
 * task that reads its arguments from a struct, the 2x2 max-pool loop got a worse register
 * allocation from GCC (-march=native, AVX-512) and ran 13 % slower on one thread.
 *
 * A portable build (the default) on x86-64 with GCC 12 or later and glibc compiles each
 * kernel three times: for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 and FMA, CPUs from 2013 on)
 * and any x86-64, and the loader runs the best one the CPU has (target_clones, an ifunc).
 * Without it FMA is a call to libm's fma per multiply-add and the loops use 128-bit vectors:
 * measured on one thread, direct_forward took 144 times and bin_products 179 times as long;
 * with it, the same times as -march=native. The versions' results differ only where a sum
 * is vectorised (its order follows the vector width), as between two machines of a
 * -march=native build. A -march=native build (setup.py: CONVPROP_NATIVE_ARCH=1, which
 * defines CONVPROP_NATIVE_ARCH) has one version.
 *
 * KERNEL_PART: a piece of a kernel's loop, always inlined, so that it is compiled for each
 * version of each kernel that uses it. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && \
    defined(__GLIBC__) && !defined(CONVPROP_NATIVE_ARCH)
#define KERNEL_TARGETS "arch=x86-64-v4", "arch=x86-64-v3", "default"
#define KERNEL static __attribute__((noinline, target_clones(KERNEL_TARGETS)))
#elif defined(__GNUC__)
#define KERNEL static __attribute__((noinline))
#else
#define KERNEL static
#endif
/* WIDE_KERNEL: a loop whose register blocking needs AVX-512's 32 vector registers (16
 * accumulators of 64 bytes; with AVX2's 16 registers of 32 bytes the same blocking would not
 * fit). It is compiled once, for x86-64-v4, beside the KERNEL clones of the same loop with a
 * smaller blocking, and the binding calls it only where wide_kernels_run() says the CPU has
 * x86-64-v4 (a -march=native build for an AVX-512 machine compiles it as any kernel).
 * WIDE_KERNELS is defined where such loops are compiled at all. */
#if defined(KERNEL_TARGETS)
#define WIDE_KERNELS 1
#define WIDE_KERNEL static __attribute__((noinline, target("arch=x86-64-v4")))
static inline int wide_kernels_run(void) { return __builtin_cpu_supports("x86-64-v4"); }
#elif defined(CONVPROP_NATIVE_ARCH) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512DQ__) && defined(__AVX512VL__)
#define WIDE_KERNELS 1
#define WIDE_KERNEL static __attribute__((noinline))
static inline int wide_kernels_run(void) { return 1; }
#else
static inline int wide_kernels_run(void) { return 0; }
#endif

#if defined(__GNUC__)
#define KERNEL_PART static inline __attribute__((always_inline))
#else
#define KERNEL_PART static inline
#endif

/* FN(name): the name of a loop for the element type being compiled (typed.h). */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#endif
