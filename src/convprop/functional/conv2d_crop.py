"""Geometry far beyond the input: the convolution over the part that the windows read.

Along one axis (rows; columns likewise), window p reads the rows
  p*stride - pad_top + r*dil,  r = 0 .. R-1  (x coordinates; outside [0, H) a padded zero)
so the windows that meet x are p_lo <= p <= p_hi with
  p_lo = max(0, ceil((pad_top - ext + 1) / stride)),  ext = dil*(R-1) + 1
  p_hi = min(P-1, floor((H - 1 + pad_top) / stride))                                  (CR1)
and together they read x rows from start = p_lo*stride - pad_top to stop = p_hi*stride -
pad_top + ext (exclusive). The outputs p outside [p_lo, p_hi] read only padded zeros: their
sums (F1) are 0 (the bias alone), and by (B2), (B3) their dy reaches neither dw nor dx. The
outputs inside are the convolution of x[max(0, start) : min(H, stop)] padded by
  pad_top' = max(0, -start),  pad_bottom' = max(0, stop - H)                           (CR2)
with the same dilation and stride (its S1 gives P' = p_hi - p_lo + 1), or stride 1 where
P' = 1 (one window: the stride never applies). A stride of 10^7 on
an 8x8 input, or a padding of 10^6 with a stride as large, so costs what the 8x8 input costs,
not what the padded plane would. (Non-finite weights: the outputs left out are 0 + b where
0·∞ in the full sums would be NaN.)
"""

from __future__ import annotations

from dataclasses import dataclass

from convprop._shapes import ConvGeometry


@dataclass(frozen=True, slots=True)
class AxisCrop:
    """One axis of the reduced problem: outputs [p_lo, p_hi], x rows [x_lo, x_hi) and the
    padding (CR2) around them. ``p_lo > p_hi`` when every window reads padding only."""

    p_lo: int
    p_hi: int
    x_lo: int
    x_hi: int
    pad_lo: int
    pad_hi: int

    @property
    def span(self) -> int:
        """Rows of the reduced padded input."""
        return self.x_hi - self.x_lo + self.pad_lo + self.pad_hi

    @property
    def empty(self) -> bool:
        return self.p_lo > self.p_hi

    def stride(self, stride: int) -> int:
        """The reduced problem's stride: 1 for a single window (CR2)."""
        return 1 if self.p_hi == self.p_lo else stride


def axis_crop(size: int, pad_lo: int, kernel: int, stride: int, dil: int, out: int) -> AxisCrop:
    """(CR1), (CR2) along one axis."""
    ext = dil * (kernel - 1) + 1
    p_lo = max(0, -(-(pad_lo - ext + 1) // stride))  # (CR1) first window meeting x
    p_hi = min(out - 1, (size - 1 + pad_lo) // stride)  # (CR1) last window meeting x
    if p_lo > p_hi:
        return AxisCrop(p_lo, p_hi, 0, 0, 0, 0)
    start = p_lo * stride - pad_lo
    stop = p_hi * stride - pad_lo + ext
    x_lo, x_hi = max(0, start), min(size, stop)
    return AxisCrop(p_lo, p_hi, x_lo, x_hi, x_lo - start, stop - x_hi)  # (CR2)


@dataclass(frozen=True, slots=True)
class Crop:
    """The reduced problem of a convolution (rows, columns)."""

    rows: AxisCrop
    cols: AxisCrop

    @property
    def empty(self) -> bool:
        return self.rows.empty or self.cols.empty

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return ((self.rows.pad_lo, self.rows.pad_hi), (self.cols.pad_lo, self.cols.pad_hi))


REDUCE_FROM = 2**16
"""Planes (padded, or spanned by the strided outputs) below this many elements are never
reduced: every ordinary layer keeps its own geometry and algorithms."""


def _plane(span_h: int, span_w: int, steps_h: int, steps_w: int) -> int:
    """The larger of the padded plane and the plane the strided outputs span (the
    stride-dilated dy of an input gradient)."""
    return max(span_h * span_w, steps_h * steps_w)


def crop(geom: ConvGeometry) -> Crop | None:
    """The reduced problem where it costs under 1/16 of the full one (geometry far beyond
    the input: huge strides, paddings); None for every ordinary layer."""
    rows = axis_crop(geom.H, geom.pad_top, geom.R, geom.stride_h, geom.dil_h, geom.P)
    cols = axis_crop(geom.W, geom.pad_left, geom.S, geom.stride_w, geom.dil_w, geom.Q)
    full = _plane(geom.H + geom.pad_top + geom.pad_bottom, geom.W + geom.pad_left +
                  geom.pad_right, geom.P * geom.stride_h, geom.Q * geom.stride_w)  # fmt: skip
    if full < REDUCE_FROM:
        return None
    reduced = Crop(rows, cols)
    if reduced.empty:
        return reduced
    steps_h = (rows.p_hi - rows.p_lo + 1) * rows.stride(geom.stride_h)
    steps_w = (cols.p_hi - cols.p_lo + 1) * cols.stride(geom.stride_w)
    return reduced if 16 * _plane(rows.span, cols.span, steps_h, steps_w) <= full else None
