"""The strided input gradient as stride-1 sums, one per phase (PH1, PH2 of conv2d_phases).

Witnessed by the naive (B3) reference in scatter form (tests/reference.py): each phase's
sum computed by the naive (F1) reference on the rows of dy it reads, with its sub-kernel
turned 180°, and put into the phase's cells of x, on a grid of strides 2 and 3, kernels
smaller than, equal to and larger than the stride, symmetric and asymmetric padding, sizes
that are no multiple of the stride, and groups; and by the partition of x's cells (PH2).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convprop._shapes import conv_geometry
from convprop.functional import conv2d_direct
from convprop.functional._conv_common import rotated_filters
from convprop.functional.conv2d_phases import covers_x, phases
from reference import conv2d_dx_ref, conv2d_ref

GRID = [
    # (H, W, R, S, stride, ((top, bottom), (left, right)), groups)
    (H, W, R, S, stride, pads, groups)
    for H, W in [(7, 8), (9, 5)]
    for R, S in [(1, 1), (2, 3), (3, 3), (5, 4)]
    for stride in [(2, 2), (3, 2), (2, 3)]
    for pads in [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (0, 1))]
    for groups in [1, 2]
    if H + sum(pads[0]) >= R and W + sum(pads[1]) >= S
]


def _geometry(H: int, W: int, R: int, S: int, stride: tuple[int, int], pads: object,
              groups: int) -> object:  # fmt: skip
    return conv_geometry("test", (2, 4, H, W), (6, 4 // groups, R, S), None, stride=stride,
                         padding=pads, dilation=1, groups=groups)  # fmt: skip


@pytest.mark.parametrize(("H", "W", "R", "S", "stride", "pads", "groups"), GRID)
def test_phases_sum_to_the_B3_reference(
    H: int, W: int, R: int, S: int, stride: tuple[int, int], pads: object, groups: int
) -> None:
    """(PH1): every phase's stride-1 sum over its rows of dy, by the naive (F1), in its cells
    of x; cells of no phase zero; the whole equals (B3)."""
    geom = _geometry(H, W, R, S, stride, pads, groups)
    rng = np.random.default_rng(H * 100 + R * 10 + S)
    w = rng.standard_normal(geom.w_shape)
    dy = rng.standard_normal(geom.y_shape)
    plan = phases(geom)
    assert plan is not None
    dx = np.zeros(geom.x_shape)
    for phase in plan:
        sub = rotated_filters(w[:, :, phase.a :: stride[0], phase.b :: stride[1]],
                              phase.sub_geometry)  # fmt: skip
        part = dy[:, :, phase.rows.dy_rows, phase.cols.dy_rows]
        pad = ((phase.geom.pad_top, phase.geom.pad_bottom),
               (phase.geom.pad_left, phase.geom.pad_right))  # fmt: skip
        out = conv2d_ref(part, sub, padding=pad, groups=groups)  # (F1) of the phase's sum
        assert out.shape == (2, 4, phase.rows.count, phase.cols.count)
        dx[:, :, phase.rows.x_rows, phase.cols.x_rows] = out
    expected = conv2d_dx_ref(dy, w, geom.x_shape, stride=stride, padding=pads, groups=groups)
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("H", "W", "R", "S", "stride", "pads", "groups"), GRID[::5])
def test_each_cell_of_x_belongs_to_one_phase_and_the_taps_are_shared_out(
    H: int, W: int, R: int, S: int, stride: tuple[int, int], pads: object, groups: int
) -> None:
    """(PH2): the phases' cells never overlap; a cell that no phase writes is one whose
    phase has no taps or reads no row of dy; the phases' taps are at most R·S, all of them
    where every phase has cells."""
    geom = _geometry(H, W, R, S, stride, pads, groups)
    plan = phases(geom)
    assert plan is not None
    owners = np.zeros((H, W), int)
    for phase in plan:
        owners[phase.rows.x_rows, phase.cols.x_rows] += 1
        taps_of_phase = (len(range(phase.a, R, stride[0])), len(range(phase.b, S, stride[1])))
        assert taps_of_phase == (phase.geom.R, phase.geom.S)
    assert owners.max() <= 1
    assert covers_x(geom, plan) == bool(owners.min() >= 1)
    taps = sum(p.geom.R * p.geom.S for p in plan)
    assert taps <= R * S
    if len(plan) == stride[0] * stride[1]:
        assert taps == R * S


def test_a_kernel_smaller_than_the_stride_reaches_one_phase() -> None:
    """A 1x1 kernel with stride 2 (a ResNet projection): only phase (0, 0) has a tap, the
    other three quarters of dx are zero, and the direct algorithm's input gradient says so."""
    geom = conv_geometry("test", (2, 3, 6, 6), (4, 3, 1, 1), None, stride=2, padding=0,
                         dilation=1, groups=1)  # fmt: skip
    plan = phases(geom)
    assert plan is not None and [(p.a, p.b) for p in plan] == [(0, 0)]
    assert not covers_x(geom, plan)
    rng = np.random.default_rng(5)
    w, dy = rng.standard_normal(geom.w_shape), rng.standard_normal(geom.y_shape)
    dx = conv2d_direct.backward_data(dy, w, geom)
    assert np.all(dx[:, :, 1::2, :] == 0) and np.all(dx[:, :, :, 1::2] == 0)
    np.testing.assert_allclose(dx, conv2d_dx_ref(dy, w, geom.x_shape, stride=2), rtol=1e-12)


@pytest.mark.parametrize(("stride", "dilation"), [(1, 1), (1, 2), (2, 2)])
def test_no_phases_where_PH1_does_not_apply(stride: int, dilation: int) -> None:
    """Stride 1 needs none ((I6) is one sum); a dilation above 1 is not split into phases."""
    geom = conv_geometry("test", (1, 2, 9, 9), (2, 2, 3, 3), None, stride=stride, padding=1,
                         dilation=dilation, groups=1)  # fmt: skip
    assert phases(geom) is None


def test_the_grid_reaches_the_cropped_and_the_padded_rows_of_dy() -> None:
    """Some phases read every row of dy, some fewer (cropped), some pad past it."""
    seen = set()
    for case in GRID:
        for phase in phases(_geometry(*case)) or ():
            rows = phase.rows
            seen.add(("padded", rows.pad_before + rows.pad_after > 0))
            seen.add(("cropped", rows.dy_rows.stop - rows.dy_rows.start < _geometry(*case).P))
    assert seen == set(itertools.product(["padded", "cropped"], [True, False]))
