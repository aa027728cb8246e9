"""The input gradient (B3) of a strided convolution as stride-1 sums over dy, one per phase.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  dy (N,K,P,Q), stride s_h x s_w, dilation 1
Row u = h + pad_top of x_pad is read by output row p through kernel row r where
u = p·s_h + r. Its phase a = u mod s_h (u = s_h·i + a) fixes the kernel rows that reach it,
r = a + s_h·m for m = 0 .. M_a - 1 (M_a = ceil((R - a) / s_h)), from the output rows
p = i - m; columns likewise (phase b, taps s = b + s_w·l, l < M_b). So

  dx_pad[n, c, s_h·i + a, s_w·j + b]
      = sum_{k, m, l} w[k, c, a + s_h·m, b + s_w·l] · dy[n, k, i - m, j - l]        (PH1)

is, for each of the s_h·s_w phases (a, b), a stride-1 full correlation of dy with the
sub-kernel w[:, :, a::s_h, b::s_w] turned 180° and its channel roles swapped: (I6)'s
transposed geometry, without (B3)'s zero-dilated dy. The phases' sub-kernels share out the
R·S taps, so the phases together do (B3)'s multiply-adds and no more; each writes the cells
of x of its phase, every cell of x belonging to exactly one phase.                    (PH2)

A phase reads the rows [i_min - M_a + 1, i_max] of dy, where i_min .. i_max are its rows
that fall inside x (not the padding): those past dy's P rows are zero padding of the
stride-1 sum, the ones it does not read are cropped. A phase with no taps (a kernel smaller
than the stride: a 1x1 kernel with stride 2 reaches only phase (0, 0)) or no rows of x
leaves its cells zero, as (B3) does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from convprop._shapes import ConvGeometry


@dataclass(frozen=True)
class Axis:
    """One axis of one phase: the phase's taps, the rows of dy its sum reads, the padding
    that sum adds past them, and the rows of x it writes."""

    taps: int  # M_a: kernel rows a, a + s, ... below R
    dy_rows: slice  # the rows of dy the stride-1 sum reads
    pad_before: int  # zero rows before them (rows of dy before 0)
    pad_after: int  # zero rows after them (rows of dy past P)
    x_rows: slice  # the rows of x (not x_pad) the phase writes, every s-th
    count: int  # how many: the stride-1 sum's output rows


def _axis(phase: int, stride: int, kernel: int, size: int, pad: int, out: int) -> Axis | None:
    """Phase ``phase`` of one axis (x of ``size`` cells, padding ``pad`` before it, dy of
    ``out`` cells, ``kernel`` taps): None where it has no taps or no cell of x or of dy."""
    taps = len(range(phase, kernel, stride))
    first = -((phase - pad) // stride)  # i_min = ceil((pad - phase) / stride): h >= 0
    last = (size - 1 + pad - phase) // stride  # i_max: h <= size - 1
    if taps == 0 or last < first:
        return None
    low, high = max(0, first - taps + 1), min(out, last + 1)  # dy rows read, within dy
    if high <= low:
        return None  # (PH1) sums only dy's zero padding there
    h0 = stride * first + phase - pad
    count = last - first + 1
    return Axis(
        taps=taps,
        dy_rows=slice(low, high),
        pad_before=low - (first - taps + 1),
        pad_after=last + 1 - high,
        x_rows=slice(h0, h0 + stride * (count - 1) + 1, stride),
        count=count,
    )


@dataclass(frozen=True)
class Phase:
    """Phase (a, b) of (PH1): its sub-kernel ``w[:, :, a::stride_h, b::stride_w]``, the
    stride-1 sum over ``dy[:, :, rows.dy_rows, cols.dy_rows]`` in geometry ``geom`` (input dy's
    K channels, output x's C, the sub-kernel's taps), and the cells of dx it writes."""

    a: int
    b: int
    rows: Axis
    cols: Axis
    geom: ConvGeometry

    @property
    def sub_geometry(self) -> ConvGeometry:
        """The forward geometry whose kernel is the phase's sub-kernel (K, C/G, M_a, M_b):
        the one ``rotated_filters`` turns it by."""
        return replace(self.geom, C=self.geom.K, K=self.geom.C)


@functools.lru_cache(maxsize=256)  # a pure function of a frozen geometry, asked every step
def phases(geom: ConvGeometry) -> tuple[Phase, ...] | None:
    """The phases of (PH1) that write cells of x, in row-major order; None where (PH1) does
    not apply (stride 1 on both axes: (I6) needs no phases; dilation above 1)."""
    if (geom.stride_h, geom.stride_w) == (1, 1) or (geom.dil_h, geom.dil_w) != (1, 1):
        return None
    found = []
    for a in range(geom.stride_h):
        rows = _axis(a, geom.stride_h, geom.R, geom.H, geom.pad_top, geom.P)
        for b in range(geom.stride_w):
            cols = _axis(b, geom.stride_w, geom.S, geom.W, geom.pad_left, geom.Q)
            if rows is None or cols is None:
                continue
            sub = ConvGeometry(
                N=geom.N, C=geom.K, H=rows.dy_rows.stop - rows.dy_rows.start,
                W=cols.dy_rows.stop - cols.dy_rows.start, K=geom.C, R=rows.taps, S=cols.taps,
                P=rows.count, Q=cols.count, groups=geom.groups, stride_h=1, stride_w=1,
                dil_h=1, dil_w=1, pad_top=rows.pad_before, pad_bottom=rows.pad_after,
                pad_left=cols.pad_before, pad_right=cols.pad_after,
            )  # fmt: skip
            found.append(Phase(a, b, rows, cols, sub))
    return tuple(found)


def covers_x(geom: ConvGeometry, plan: tuple[Phase, ...]) -> bool:
    """Whether the phases write every cell of x (else the others stay zero, (PH2))."""
    return sum(p.rows.count * p.cols.count for p in plan) == geom.H * geom.W
