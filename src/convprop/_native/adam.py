"""An Adam step (ADAM2)-(ADAM7) of ``convprop.optim.adam``, compiled: one pass in place.

The operations of the optimiser's NumPy code, in the same order and precision, element by
element: the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import parallel, twin
from convprop._native._compiled import kernels


def _buffers_like_p(p: Any, g: Any, m: Any, v: Any, v_max: Any, scalars: Any) -> bool:
    """The kernel writes p, m, v (and v_max) in place and reads g alongside: every one a
    C-contiguous array of p's shape and dtype."""
    arrays = (p, g, m, v) if v_max is None else (p, g, m, v, v_max)
    return all(a.flags.c_contiguous and a.dtype == p.dtype and a.shape == p.shape for a in arrays)


@twin(arrays="p, g, m, v", optional="v_max", requires=_buffers_like_p)
def adam_step(p: Any, g: Any, m: Any, v: Any, v_max: Any, scalars: tuple[Any, ...]) -> None:
    """(ADAM2)-(ADAM7) in place: p, m, v (and v_max with amsgrad) are written.

    ``scalars``: (decay, l2, weight, beta2, one_minus_beta2, bc2_sqrt, eps, step_size,
    maximize, amsgrad, decoupled), as ``convprop.optim.adam`` computes them.
    """
    g = numpy.ascontiguousarray(g)
    parallel(kernels.adam_step, p.size, 2 * p.size, p, g, m, v, v_max, scalars)
