"""The identities of docs/derivations.md computed by hand, with loops and np.pad: the second
witness that every explain topic holds the library's numbers against before printing them.

Nothing here calls convprop's ops. Planes are 2-D float64 arrays (one image, one channel).
"""

from __future__ import annotations

import numpy


def rot180(kernel: numpy.ndarray) -> numpy.ndarray:
    """rot180(w)[r, s] = w[R-1-r, S-1-s] (docs/derivations.md §1)."""
    return numpy.ascontiguousarray(kernel[::-1, ::-1])


def correlate(plane: numpy.ndarray, kernel: numpy.ndarray) -> numpy.ndarray:
    """The valid correlation out[i, j] = Σ_{r,s} kernel[r, s]·plane[i + r, j + s] (F1, one
    channel, stride 1, dilation 1)."""
    R, S = kernel.shape
    rows, cols = plane.shape[0] - R + 1, plane.shape[1] - S + 1
    out = numpy.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = numpy.sum(plane[i : i + R, j : j + S] * kernel)
    return out


def zero_upsample(dy: numpy.ndarray, stride: int) -> numpy.ndarray:
    """dy_up: stride − 1 zeros between neighbouring entries (docs/derivations.md §1)."""
    P, Q = dy.shape
    up = numpy.zeros((stride * (P - 1) + 1, stride * (Q - 1) + 1))
    up[::stride, ::stride] = dy
    return up


def dilate(kernel: numpy.ndarray, dilation: int) -> numpy.ndarray:
    """w_dil: dilation − 1 zeros between neighbouring taps (docs/derivations.md §1)."""
    R, S = kernel.shape
    out = numpy.zeros((dilation * (R - 1) + 1, dilation * (S - 1) + 1))
    out[::dilation, ::dilation] = kernel
    return out


def full_correlation(dy: numpy.ndarray, kernel: numpy.ndarray) -> numpy.ndarray:
    """B3 at stride 1: dy padded by R−1 (S−1) on every side, correlated with rot180(kernel)."""
    R, S = kernel.shape
    return correlate(numpy.pad(dy, ((R - 1, R - 1), (S - 1, S - 1))), rot180(kernel))
