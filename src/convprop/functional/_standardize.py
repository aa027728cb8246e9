"""Standardising rows: the statistics that layer and group normalisation share.

Notation  x2 (R, M): R rows of M values each (one row per sample for layer norm, per
(sample, group) for group norm);  the sums Σ run along a row
  μ[r] = (1/M) Σ x2[r, :]                                                             (LN1)
  σ²[r] = (1/M) Σ (x2[r, :] − μ[r])²           -- the biased variance, as PyTorch     (LN2)
  invstd[r] = 1/√(σ²[r] + eps);  x̂ = (x2 − μ)·invstd                                  (LN3)
Backward, given dx̂ (R, M): μ and σ² depend on every value of their row, so
  dx2 = (invstd/M)·(M·dx̂ − Σ dx̂ − x̂·Σ(dx̂ ⊙ x̂))                                     (LN8)
which is batch normalisation's (BN11) with rows in place of channels.
"""

from __future__ import annotations

import math
from typing import Any

from convprop.backend import Array, get_xp
from convprop.errors import ParameterError


def row_mean(a: Array, M: int) -> Array:
    """Σ a[r, :] / M as (R, 1); a row of no values has mean 0 (no empty-mean warning)."""
    return a.sum(axis=1, keepdims=True) / max(M, 1)


def row_statistics(x2: Array, eps: float) -> tuple[Array, Array]:
    """μ (LN1) and invstd (LN3) of each row of x2 (R, M), both (R, 1)."""
    xp = get_xp(x2)
    M = x2.shape[1]
    mean = row_mean(x2, M)  # (LN1) -> (R, 1)
    centred = x2 - mean
    var = row_mean(centred * centred, M)  # (LN2) -> (R, 1)
    invstd = 1 / xp.sqrt(var + eps)  # (LN3) -> (R, 1)
    return mean, invstd


def standardized(x2: Array, mean: Array, invstd: Array) -> Array:
    """x̂ = (x2 − μ)·invstd (LN3), (R, M)."""
    return (x2 - mean) * invstd


def standardized_backward(dxhat: Array, xhat: Array, invstd: Array) -> Array:
    """dx2 (R, M) from dx̂ (R, M) through the row statistics, equation (LN8)."""
    M = xhat.shape[1]
    sum_dxhat = dxhat.sum(axis=1, keepdims=True)  # (R, 1)
    sum_dxhat_xhat = (dxhat * xhat).sum(axis=1, keepdims=True)  # (R, 1)
    return (invstd / max(M, 1)) * (M * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)  # (LN8)


def check_eps(op: str, eps: Any) -> float:
    """eps must be a finite number > 0 (as batch normalisation's): it keeps (LN3) finite."""
    is_real = isinstance(eps, (int, float)) and not isinstance(eps, bool)
    if not (is_real and 0 < eps < math.inf):
        raise ParameterError(
            f"{op}: eps keeps the division finite; expected a finite number > 0, got {eps!r}"
        )
    return float(eps)
