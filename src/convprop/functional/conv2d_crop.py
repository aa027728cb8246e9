"""Geometry far beyond the input: the convolution over the part that the windows read.

Along one axis (rows; columns likewise), window p reads through tap r the row
  p*stride - pad_top + r*dil  of x (outside [0, H) a padded zero)
so tap r meets x for the windows p_lo(r) <= p <= p_hi(r),
  p_lo(r) = max(0, ceil((pad_top - r*dil) / stride)),
  p_hi(r) = min(P-1, floor((H - 1 + pad_top - r*dil) / stride)),
and r is live when p_lo(r) <= p_hi(r). Every other (window, tap) pair multiplies a padded
zero: the outputs no live tap reaches are 0 (the bias alone, F1), and by (B2), (B3) the dy
of a pair that reads a zero reaches neither dw nor dx, so a tap that is never live has
dw = 0. The live taps are cut into runs r_lo..r_hi of consecutive taps (a dead tap inside a
run reads zeros) covering the windows p_lo..p_hi of their taps; together they read the x
rows from start = p_lo*stride - pad_top + r_lo*dil to stop = p_hi*stride - pad_top +
r_hi*dil + 1 (exclusive)                                                               (CR1)
and a run is the convolution of x[max(0, start) : min(H, stop)] padded by
  pad_top' = max(0, -start),  pad_bottom' = max(0, stop - H)                           (CR2)
with the taps w[..., r_lo : r_hi + 1], the same dilation (1 for a single tap) and stride (1
for a single window): its S1 gives P' = p_hi - p_lo + 1. The runs along the rows times the
runs along the columns are pieces whose outputs add up to y (F1), whose dy slices give their
taps' dw (B2) and add their dx into x's rows (B3)                                       (CR3)
A run grows while it reads at most twice the rows its taps read of x (each at most H), so
the pieces together read at most 4·R·S·H·W cells: a stride of 10^7 on an 8x8 input (one
window), a padding of 10^6 with a stride as large, or a dilation of 10^6 with a padding as
large (one live tap: a 1x1 kernel over x) costs what the 8x8 input costs, not what the
padded plane would. (Non-finite weights: the pairs left out give 0 + b where 0·∞ in the full
sums would be NaN.)
"""

from __future__ import annotations

from dataclasses import dataclass

from convprop._shapes import ConvGeometry


@dataclass(frozen=True, slots=True)
class AxisCrop:
    """One axis of one piece of the reduced problem (CR1, CR2): taps [r_lo, r_hi], outputs
    [p_lo, p_hi], x rows [x_lo, x_hi) and the padding around them."""

    r_lo: int
    r_hi: int
    p_lo: int
    p_hi: int
    x_lo: int
    x_hi: int
    pad_lo: int
    pad_hi: int

    @property
    def span(self) -> int:
        """Rows of the piece's padded input."""
        return self.x_hi - self.x_lo + self.pad_lo + self.pad_hi

    def stride(self, stride: int) -> int:
        """The piece's stride: 1 for a single window (CR2)."""
        return 1 if self.p_hi == self.p_lo else stride

    def dilation(self, dil: int) -> int:
        """The piece's dilation: 1 for a single tap (CR2)."""
        return 1 if self.r_hi == self.r_lo else dil

    def steps(self, stride: int) -> int:
        """Rows of the piece's stride-dilated dy (the input gradient's plane)."""
        return (self.p_hi - self.p_lo + 1) * self.stride(stride)


def _run(r_lo: int, r_hi: int, p_lo: int, p_hi: int, size: int, pad: int, stride: int,
         dil: int) -> AxisCrop:  # fmt: skip
    """(CR1), (CR2) for the taps r_lo..r_hi over the windows p_lo..p_hi."""
    start = p_lo * stride - pad + r_lo * dil  # (CR1)
    stop = p_hi * stride - pad + r_hi * dil + 1  # (CR1)
    x_lo, x_hi = max(0, start), min(size, stop)
    return AxisCrop(r_lo, r_hi, p_lo, p_hi, x_lo, x_hi, x_lo - start, stop - x_hi)  # (CR2)


def axis_runs(size: int, pad: int, kernel: int, stride: int, dil: int, out: int
              ) -> tuple[AxisCrop, ...]:  # fmt: skip
    """(CR1), (CR2) along one axis: the runs of live taps, empty when no window meets x."""
    runs: list[AxisCrop] = []
    own = 0  # rows of x the current run's taps read, each through its own windows
    for r in range(kernel):
        p_lo = max(0, -(-(pad - r * dil) // stride))  # (CR1) the first window tap r reads x for
        p_hi = min(out - 1, (size - 1 + pad - r * dil) // stride)  # (CR1) the last
        if p_lo > p_hi:
            continue  # tap r reads only padded zeros
        reads = (p_hi - p_lo) * stride + 1
        if runs:
            last = runs[-1]
            grown = _run(last.r_lo, r, min(last.p_lo, p_lo), max(last.p_hi, p_hi), size, pad,
                         stride, dil)  # fmt: skip
            if grown.span <= 2 * (own + reads):
                runs[-1], own = grown, own + reads
                continue
        runs.append(_run(r, r, p_lo, p_hi, size, pad, stride, dil))
        own = reads
    return tuple(runs)


@dataclass(frozen=True, slots=True)
class Crop:
    """The reduced problem of a convolution: the pieces (CR3) are every run along the rows
    with every run along the columns."""

    rows: tuple[AxisCrop, ...]
    cols: tuple[AxisCrop, ...]

    @property
    def pieces(self) -> list[tuple[AxisCrop, AxisCrop]]:
        """Every (rows, columns) pair of runs; none when no window meets x (y = b)."""
        return [(rows, cols) for rows in self.rows for cols in self.cols]


REDUCE_FROM = 2**16
"""Planes (padded, or spanned by the strided outputs) below this many elements are never
reduced: every ordinary layer keeps its own geometry and algorithms."""


def _plane(span_h: int, span_w: int, steps_h: int, steps_w: int) -> int:
    """The larger of the padded plane and the plane the strided outputs span (the
    stride-dilated dy of an input gradient)."""
    return max(span_h * span_w, steps_h * steps_w)


def crop(geom: ConvGeometry) -> Crop | None:
    """The reduced problem where it costs under 1/16 of the full one (geometry far beyond
    the input: huge strides, paddings, dilations); None for every ordinary layer."""
    full = _plane(geom.H + geom.pad_top + geom.pad_bottom, geom.W + geom.pad_left +
                  geom.pad_right, geom.P * geom.stride_h, geom.Q * geom.stride_w)  # fmt: skip
    if full < REDUCE_FROM:
        return None
    reduced = Crop(
        axis_runs(geom.H, geom.pad_top, geom.R, geom.stride_h, geom.dil_h, geom.P),
        axis_runs(geom.W, geom.pad_left, geom.S, geom.stride_w, geom.dil_w, geom.Q),
    )
    cost = sum(
        _plane(rows.span, cols.span, rows.steps(geom.stride_h), cols.steps(geom.stride_w))
        for rows, cols in reduced.pieces
    )
    return reduced if 16 * cost <= full else None
