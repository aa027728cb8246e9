"""Non-finite values and the conv2d algorithms: which passes keep IEEE semantics.

A NaN or an infinity in x, w or dy must reach exactly the outputs whose sums (F1), (B2),
(B3) contain it, as PyTorch's do: an infinity times a finite number is an infinity, times
0 (a padded cell) is NaN, and NaN plus anything is NaN.

- ``direct``, ``im2col`` and ``depthwise`` compute (F1) and (B2) as those sums over x_pad,
  padded zeros included (as PyTorch does), so they keep IEEE semantics in the forward and
  weight-gradient passes.
- The input gradient (B3) sums over the outputs p, q only (no padded dy). ``im2col``'s
  scatter form (I4)-(I5) does exactly that. ``direct`` and ``depthwise`` compute it as a
  full correlation of a zero-padded dy, and so does im2col's (I6); there an infinite weight
  meets a padded zero and gives NaN where PyTorch gives ±∞. im2col declines (I6) when w
  is not finite (a pass over w, which is small), so its input gradient is always IEEE.
- ``fft``, ``winograd`` and ``winograd4`` transform whole tiles or planes: a single NaN or
  ±∞ mixes into every output of its tile or plane (NaN; ∞ - ∞ in the transforms), so they
  do NOT keep IEEE semantics. Named explicitly, they compute what their transforms give.

``auto`` chooses among all of them by cost; when a transform algorithm was chosen it checks
the inputs with one ``isfinite`` pass each (the forward x and w, the backward dy), and when
only the data pass is direct's or depthwise's it checks w alone, in conv2d's backward (a
forward alone needs no check; conv_transpose2d's forward is that pass); with a non-finite
value it takes the cheapest of the IEEE algorithms instead.
"""

from __future__ import annotations

from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp
from convprop.functional import conv2d_select

IEEE_ALGORITHMS = frozenset({"direct", "im2col", "depthwise"})
"""Algorithms whose forward (F1) and weight gradient (B2) are the direct sums, NaN/±∞
included."""

IEEE_DATA_ALGORITHM = "im2col"
"""The algorithm whose input gradient (B3) sums over the outputs only, as PyTorch's."""


def all_finite(*arrays: Array | None) -> bool:
    """Whether every element of every array given is finite (one ``isfinite`` pass each,
    smallest array first, stopping at the first non-finite one)."""
    for a in sorted((a for a in arrays if a is not None), key=lambda a: a.size):
        if not bool(get_xp(a).isfinite(a).all()):
            return False
    return True


def keeps_ieee(algorithms: tuple[str, str, str]) -> bool:
    """Whether the passes (forward, data, weight) all keep IEEE semantics."""
    forward, data, weight = algorithms
    return forward in IEEE_ALGORITHMS and data == IEEE_DATA_ALGORITHM and weight in IEEE_ALGORITHMS


def ieee_algorithms(
    geom: ConvGeometry, dtype: str, candidates: list[str], compiled: bool
) -> tuple[str, str, str]:
    """The cost model's cheapest choice per pass among the algorithms that keep IEEE
    semantics (``candidates``: those that accept the case; ``direct`` and ``im2col``
    accept every one)."""
    safe = [name for name in candidates if name in IEEE_ALGORITHMS]
    forward, weight = (
        conv2d_select.choose(geom, pass_name, dtype, safe, compiled=compiled)
        for pass_name in ("forward", "weight")
    )
    return (forward, IEEE_DATA_ALGORITHM, weight)
