/* convprop._native: one Adam/AdamW step (ADAM2-ADAM7) in one pass over the elements.
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. It works on flat C-contiguous
 * arrays over a half-open range [lo, hi) of elements, so that threads can share one call
 * without writing the same element. Labels are those of src/convprop/optim/adam.py.
 */

/* max(a, b) as NumPy's maximum: a NaN on either side wins. */
static inline T FN(nan_max)(T a, T b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }

/* (ADAM4)-(ADAM7) for Adam's defaults (no maximize, no weight decay, beta1 > 0.5, no
 * amsgrad): the same operations as the general loop below, without its branches, so that
 * the compiler makes it a vector loop. */
KERNEL_PART void FN(adam_plain)(T *p, const T *grad, T *m, T *v, const AdamScalars *a,
                                Py_ssize_t lo, Py_ssize_t hi)
{
    const T weight = (T)a->weight, beta2 = (T)a->beta2, c2 = (T)a->one_minus_beta2;
    const T bc2 = (T)a->bc2_sqrt, eps = (T)a->eps, step_size = (T)a->step_size;
#pragma omp simd
    for (Py_ssize_t i = lo; i < hi; ++i) {
        const T g = grad[i];
        const T mi = m[i] + weight * (g - m[i]); /* (ADAM4) as PyTorch's lerp */
        T vi = v[i] * beta2;                     /* (ADAM5) */
        vi = vi + c2 * g * g;                    /* (ADAM5) */
        m[i] = mi;
        v[i] = vi;
        const T denom = SQRT(vi) / bc2 + eps; /* (ADAM6) */
        p[i] = p[i] - step_size * mi / denom; /* (ADAM7) */
    }
}

/* (ADAM2)-(ADAM7) element by element, each operation in the order and precision of the
 * NumPy code of Adam.step (no fused multiply-add: the build keeps ISO C contraction off),
 * so that both give the same bits. vmax is NULL without amsgrad. */
KERNEL void FN(adam_step)(T *p, const T *grad, T *m, T *v, T *vmax, const AdamScalars *a,
                          Py_ssize_t lo, Py_ssize_t hi)
{
    const int small_weight = fabs(a->weight) < 0.5;
    if (!a->maximize && a->l2 == 0 && small_weight && !a->amsgrad) {
        FN(adam_plain)(p, grad, m, v, a, lo, hi);
        return;
    }
    const T decay = (T)a->decay, l2 = (T)a->l2, weight = (T)a->weight;
    const T rest = (T)(1 - a->weight), beta2 = (T)a->beta2, c2 = (T)a->one_minus_beta2;
    const T bc2 = (T)a->bc2_sqrt, eps = (T)a->eps, step_size = (T)a->step_size;
    for (Py_ssize_t i = lo; i < hi; ++i) {
        T g = a->maximize ? -grad[i] : grad[i];         /* (ADAM2) */
        if (a->l2 != 0 && a->decoupled) p[i] *= decay; /* (ADAMW3) */
        else if (a->l2 != 0) g = g + l2 * p[i];        /* (ADAM3) */
        if (small_weight) m[i] += weight * (g - m[i]); /* (ADAM4) as PyTorch's lerp */
        else m[i] = g - (g - m[i]) * rest;
        v[i] *= beta2;      /* (ADAM5) */
        v[i] += c2 * g * g; /* (ADAM5) */
        T second = v[i];
        if (a->amsgrad) second = vmax[i] = FN(nan_max)(vmax[i], v[i]); /* (ADAM5A) */
        const T denom = SQRT(second) / bc2 + eps;                       /* (ADAM6) */
        p[i] -= step_size * m[i] / denom;                               /* (ADAM7) */
    }
}
