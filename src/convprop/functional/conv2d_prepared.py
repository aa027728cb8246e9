"""What conv2d_forward checks and decides before it computes, remembered per call signature
(functional/_prepared.py).

Before (F1) is computed, conv2d_forward checks the arrays (kind, dtypes, shapes), derives
the geometry (S1) and picks the algorithm of each pass (``auto``'s cost model, or a named
algorithm's refusals). Its signature:

- x, w and b: array type, shape and dtype;
- stride, padding, dilation, groups and the algorithm name as given, with their types
  (``typed_key``: a bool or a float stride is not an int one, and is checked on its own);
- whether the compiled kernels serve w (they change ``auto``'s estimates), the cost model's
  rates (:func:`convprop.functional.conv2d_select.calibration`) and the size from which a
  layer far beyond its input is cut to the part it reads (``conv2d_crop.REDUCE_FROM``).

Whether a NaN or ±∞ makes ``auto`` keep IEEE semantics (conv2d_ieee) is still asked on every
call. Nothing is remembered while the timing cache chooses (its measurements are its own
table). The forward of one image through ResNet-20 makes 21 such calls (docs/performance.md,
"The call around the kernels").
"""

from __future__ import annotations

from typing import Any

from convprop import _native
from convprop._shapes import ConvGeometry, typed_key
from convprop.functional import conv2d_crop, conv2d_select
from convprop.functional._prepared import PreparedCalls, arrays_signature

CALLS: PreparedCalls[tuple[ConvGeometry, tuple[str, str, str]]] = PreparedCalls()
"""Signature -> the geometry and the algorithms of the three passes (before the IEEE check)."""


def signature(
    x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
    algorithm: Any,
) -> tuple[Any, ...] | None:  # fmt: skip
    """The call's signature (see the module's docstring), or None where it is not remembered."""
    arrays = arrays_signature(x, w, b)
    if arrays is None or conv2d_select.timing_cache_enabled():
        return None
    hyper = map(typed_key, (stride, padding, dilation, groups, algorithm))
    return (*arrays, *hyper, _native.runs_compiled(w), conv2d_select.calibration(),
            conv2d_crop.REDUCE_FROM)  # fmt: skip
