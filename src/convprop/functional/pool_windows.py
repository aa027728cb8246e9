"""What the windows of a pooling call read: the taps that meet x, and x_pad only where it is cheap.

Notation (one spatial axis; every axis alike)  x has ``size`` cells, the window ``kernel``
taps r spaced ``dil`` apart, ``out`` windows ``stride`` apart, ``pad`` cells of padding on
each side (convprop.functional.pool_nd, PN1-PN3). Window o reads, through tap r, the cell
  i = o*stride - pad + r*dil  of x, or padding where i is outside [0, size).
A cell of padding holds −∞ for max pooling (it never wins) and 0 for average pooling (it
adds 0; count_include_pad counts it in the divisor, which (AP1) computes apart), so the
reads of padding can be left out. Tap r reads x for the windows o_lo <= o <= o_hi,
  o_lo = max(0, ⌈(pad - r*dil) / stride⌉),  o_hi = min(out - 1, ⌊(pad + size - 1 - r*dil) / stride⌋)
the cells x[i_lo : i_lo + (o_hi - o_lo)*stride + 1 : stride],  i_lo = o_lo*stride - pad + r*dil;
tap r is live when o_lo <= o_hi                                                          (PN5)
The live taps satisfy r*dil in [pad - o*stride, pad - o*stride + size) for some window o:
for stride <= size these ranges touch, one range [pad - (out-1)*stride, pad + size);
for stride > size there are at most two windows ((out-1)*stride <= size + stride - 2 by
PN1, PN2 and the padding rule 2*pad <= kernel). Their count follows x and the output,
never the window: a window of 3001 taps on a single cell has one live tap.

A pooling pass reads x_pad (PN3) while it holds at most READ_PADDED_UP_TO times the cells
of x: every ordinary padding keeps its path (one ``pad`` copy, each tap a strided slice of
x_pad over every output). Beyond, each live tap reads its cells of x directly for the
outputs o_lo..o_hi (PN5): no padded copy, so memory follows x and y. Both orders visit
the same taps in the same order and leave out only reads of the fill value, which change
no maximum and add +0.0 to sums that start at +0.0: the results are the same bits.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Protocol

from convprop.backend import Array

READ_PADDED_UP_TO = 4
"""x_pad is built while it holds at most this many times the cells of x (PN5)."""

KEPT_UP_TO = 1024
"""Windows of at most this many live taps keep their cuts (a few hundred bytes each)."""

Index = tuple[slice, ...]
"""An index of an (N, C, *spatial) array: all of N and C, one slice per spatial axis."""


class PoolWindowsGeometry(Hashable, Protocol):
    """The geometry fields read here (convprop.functional.pool_nd.PoolNdGeometry)."""

    @property
    def size(self) -> tuple[int, ...]: ...
    @property
    def kernel(self) -> tuple[int, ...]: ...
    @property
    def stride(self) -> tuple[int, ...]: ...
    @property
    def padding(self) -> tuple[int, ...]: ...
    @property
    def dilation(self) -> tuple[int, ...]: ...
    @property
    def out(self) -> tuple[int, ...]: ...
    @property
    def extra(self) -> tuple[int, ...]: ...


def live_taps(kernel: int, out: int, stride: int, pad: int, size: int, dil: int) -> list[int]:
    """The taps r in [0, kernel) through which some window reads a cell of x (PN5), in order.

    Examples
    --------
    >>> live_taps(3001, 1, 1, 1500, 1, 1)   # a 3001-wide window on one cell
    [1500]
    >>> live_taps(3, 4, 2, 1, 7, 1)
    [0, 1, 2]
    """
    if stride <= size:  # consecutive windows' ranges of r*dil touch (PN5)
        ranges = [(pad - (out - 1) * stride, pad + size)]
    else:  # at most two windows (PN5)
        ranges = [(pad - o * stride, pad - o * stride + size) for o in range(out)]
    live: set[int] = set()
    for lo, hi in ranges:  # r*dil in [lo, hi)
        live.update(range(max(0, -(-lo // dil)), min(kernel, -(-hi // dil))))
    return sorted(live)


def axis_cuts(
    kernel: int, out: int, stride: int, pad: int, size: int, dil: int
) -> list[tuple[int, slice, slice]]:
    """(PN5) along one axis: ``(r, outputs, cells)`` for each live tap r, the windows
    o_lo..o_hi that read x through it and the cells of x they read.

    Examples
    --------
    >>> axis_cuts(5, 3, 1, 2, 3, 1)[0]   # tap 0 reads x only for the last window
    (0, slice(2, 3, None), slice(0, 1, 1))
    """
    cuts = []
    for r in live_taps(kernel, out, stride, pad, size, dil):
        o_lo = max(0, -(-(pad - r * dil) // stride))  # (PN5)
        o_hi = min(out - 1, (pad + size - 1 - r * dil) // stride)  # (PN5)
        i_lo = o_lo * stride - pad + r * dil  # (PN5) the first cell of x it reads
        cells = slice(i_lo, i_lo + (o_hi - o_lo) * stride + 1, stride)
        cuts.append((r, slice(o_lo, o_hi + 1), cells))
    return cuts


@dataclass(frozen=True, slots=True)
class PoolWindows:
    """How a pooling pass reads its windows.

    Fields
    ------
    padded : bool
        True: the taps read x_pad (PN3), every one over all outputs; False: each tap reads
        x itself over the outputs of (PN5).
    widths : tuple of (int, int)
        x_pad's padding before and after x along each spatial axis (the ceil_mode
        overhang included); read only where ``padded``.
    axes : tuple of tuples of (int, slice, slice)
        Along each spatial axis, ``(r, outputs, cells)`` for each live tap r: the windows it
        serves and the cells of x_pad (``padded``) or of x it reads for them; as many
        entries as live taps along the axis, never the window's product.
    steps : tuple of int
        The row-major weights of a tap's offsets in its index t (MPN2).
    kept : tuple or None
        :meth:`cuts` made once, for windows of at most KEPT_UP_TO live taps (every
        ordinary layer); None for larger ones, whose cuts are made as they are read.
    """

    padded: bool
    widths: tuple[tuple[int, int], ...]
    axes: tuple[tuple[tuple[int, slice, slice], ...], ...]
    steps: tuple[int, ...]
    kept: tuple[tuple[int, Index, Index], ...] | None = None

    def cuts(self) -> Iterable[tuple[int, Index, Index]]:
        """``(t, outputs, cells)`` for each live tap in row-major order: t the tap's index
        among all taps of the window (MPN2), ``outputs`` the index of y it serves,
        ``cells`` the index of :meth:`source` it reads there."""
        return self.kept if self.kept is not None else self._cuts()

    def _cuts(self) -> Iterator[tuple[int, Index, Index]]:
        everything = (slice(None), slice(None))
        for taps in itertools.product(*self.axes):
            t = sum(r * step for (r, _, _), step in zip(taps, self.steps, strict=True))
            outputs = (*everything, *(o for _, o, _ in taps))
            cells = (*everything, *(c for _, _, c in taps))
            yield t, outputs, cells

    def source(self, xp: ModuleType, x: Array, fill: float) -> Array:
        """What the cuts read: x_pad with ``fill`` on the padding (PN3), or x itself (PN5)."""
        if not self.padded or not any(a or b for a, b in self.widths):
            return x
        return xp.pad(x, [(0, 0), (0, 0), *self.widths], constant_values=fill)

    def gradient(self, xp: ModuleType, d_source: Array) -> Array:
        """dx (N, C, *size), a fresh array, from the gradient with respect to
        :meth:`source`: x_pad's without its border, or the same array."""
        if not self.padded:
            return d_source
        sides = zip(self.widths, d_source.shape[2:], strict=True)
        inside = (slice(None), slice(None), *(slice(a, n - b) for (a, b), n in sides))
        return xp.ascontiguousarray(d_source[inside])

    def source_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of :meth:`source` for an x of shape ``x_shape`` (N, C, *size)."""
        if not self.padded:
            return tuple(x_shape)
        sides = zip(x_shape[2:], self.widths, strict=True)
        return (*x_shape[:2], *(s + a + b for s, (a, b) in sides))


@functools.lru_cache(maxsize=64)  # a pure function of a frozen geometry, asked every step
def pool_windows(geom: PoolWindowsGeometry) -> PoolWindows:
    """The reads of a pooling call's windows: x_pad (PN3) while it is cheap, else (PN5).

    Examples
    --------
    >>> from convprop.functional.pool_nd import PoolNdGeometry
    >>> geom = PoolNdGeometry(N=1, C=1, size=(1, 1), kernel=(3001, 3001), stride=(1, 1),
    ...                       padding=(1500, 1500), dilation=(1, 1), out=(1, 1), extra=(0, 0))
    >>> windows = pool_windows(geom)
    >>> windows.padded, [t for t, _, _ in windows.cuts()]   # one tap, the window's centre
    (False, [4503000])
    """
    widths = tuple((p, p + e) for p, e in zip(geom.padding, geom.extra, strict=True))
    padded_cells = math.prod(s + a + b for s, (a, b) in zip(geom.size, widths, strict=True))
    padded = padded_cells <= READ_PADDED_UP_TO * math.prod(geom.size)
    axes = []
    for k, o, s, p, n, d in zip(
        geom.kernel, geom.out, geom.stride, geom.padding, geom.size, geom.dilation, strict=True
    ):
        cuts = axis_cuts(k, o, s, p, n, d)  # (PN5)
        if padded:  # (PN3) tap r of every window: x_pad[o*stride + r*dil] for all o
            cuts = [(r, slice(None), slice(r * d, r * d + s * (o - 1) + 1, s)) for r, _, _ in cuts]
        axes.append(tuple(cuts))
    steps = tuple(math.prod(geom.kernel[a + 1 :]) for a in range(len(geom.kernel)))
    windows = PoolWindows(padded=padded, widths=widths, axes=tuple(axes), steps=steps)
    if math.prod(len(cuts) for cuts in axes) > KEPT_UP_TO:
        return windows
    return replace(windows, kept=tuple(windows.cuts()))
