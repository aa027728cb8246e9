/* convprop._native: the loops of one family, compiled for float and for double.
 *
 * A binding defines KERNELS (and, for a family in two headers, MORE_KERNELS) as the quoted
 * name of its loop header, then includes this file: every FN(name) of the header becomes
 * name_f32 (T = float) and name_f64 (T = double). The build keeps floating-point
 * contraction off (setup.py: -ffp-contract=off), so that a * b + c is rounded twice as in
 * NumPy; a loop that wants a fused multiply-add says FMA.
 */
#include "common.h"

#define T float
#define BITS uint32_t
#define SQRT sqrtf
#define FMA fmaf
#define SFX f32
#include KERNELS
#ifdef MORE_KERNELS
#include MORE_KERNELS
#endif
#undef T
#undef BITS
#undef SQRT
#undef FMA
#undef SFX

#define T double
#define BITS uint64_t
#define SQRT sqrt
#define FMA fma
#define SFX f64
#include KERNELS
#ifdef MORE_KERNELS
#include MORE_KERNELS
#endif
#undef T
#undef BITS
#undef SQRT
#undef FMA
#undef SFX
