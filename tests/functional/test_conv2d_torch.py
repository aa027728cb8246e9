"""PyTorch as an extra witness (float64): conv2d, conv_transpose2d and their autograd.

PyTorch is never the specification (the naive reference and finite differences are); it
also witnesses the reference itself. Asymmetric and strided "same" padding are applied
with torch.nn.functional.pad first, since torch.nn.functional.conv2d takes symmetric
padding only and "same" only for stride 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from convprop.functional import (
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from reference import (
    ALGORITHM_NAMES,
    CASES,
    TRANSPOSE_CASES,
    ConvCase,
    TransposeCase,
    as_pair,
    conv2d_dw_ref,
    conv2d_dx_ref,
    conv2d_ref,
    pad_amounts,
    random_inputs,
    random_transpose_inputs,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny shapes: intra-op threads only add contention with the test workers."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TOL = 1e-10


def _params(cases: Any) -> list[Any]:
    return [
        pytest.param(case, algorithm, id=f"{case.name}-{algorithm}")
        for case in cases
        for algorithm in ALGORITHM_NAMES
        if case.applies(algorithm)
    ]


def _close(actual: Any, expected: Any, what: str) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert float(np.max(np.abs(actual - expected))) <= TOL * scale, what


def torch_conv2d(case: ConvCase, x: np.ndarray, w: np.ndarray, b: Any, dy: np.ndarray) -> Any:
    """y, dx, dw, db from torch autograd, padding exactly as convprop defines it."""
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    stride, dilation = as_pair(case.stride), as_pair(case.dilation)
    if case.padding == "same" and stride == (1, 1):
        # torch's own "same" (stride 1): the extra pixel of an even kernel goes bottom/right
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
            yt = F.conv2d(xt, wt, bt, padding="same", dilation=dilation, groups=case.groups)
    else:
        top, bottom, left, right = pad_amounts(
            case.padding, (case.H, case.W), (case.R, case.S), stride, dilation
        )
        x_pad = F.pad(xt, (left, right, top, bottom))
        yt = F.conv2d(x_pad, wt, bt, stride=stride, dilation=dilation, groups=case.groups)
    yt.backward(torch.tensor(dy))
    return (
        yt.detach().numpy(),
        xt.grad.numpy(),
        wt.grad.numpy(),
        None if bt is None else bt.grad.numpy(),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reference_matches_torch(case: ConvCase) -> None:
    """The oracle itself: the naive loops agree with torch on the whole grid."""
    x, w, b, dy = random_inputs(case, "float64", seed=83)
    y_t, dx_t, dw_t, _ = torch_conv2d(case, x, w, b, dy)
    _close(conv2d_ref(x, w, b, **case.hyper), y_t, "y (F1)")
    _close(conv2d_dx_ref(dy, w, case.x_shape, **case.hyper), dx_t, "dx (B3)")
    _close(conv2d_dw_ref(x, dy, case.w_shape, **case.hyper), dw_t, "dw (B2)")


@pytest.mark.parametrize(("case", "algorithm"), _params(CASES))
def test_conv2d_matches_torch_and_autograd(case: ConvCase, algorithm: str) -> None:
    x, w, b, dy = random_inputs(case, "float64", seed=89)
    y_t, dx_t, dw_t, db_t = torch_conv2d(case, x, w, b, dy)
    y, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    dx, dw, db = conv2d_backward(dy, cache)
    _close(y, y_t, "y")
    _close(dx, dx_t, "dx")
    _close(dw, dw_t, "dw")
    if b is None:
        assert db is None
    else:
        _close(db, db_t, "db")


def torch_conv_transpose2d(
    case: TransposeCase, x: np.ndarray, w: np.ndarray, b: Any, dy: np.ndarray
) -> Any:
    """torch's conv_transpose2d takes symmetric padding only: compute with padding 0 and
    crop pad_top/pad_left rows and columns (the definition's "cropped" output)."""
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    top, _, left, _ = pad_amounts(case.padding, (case.H, case.W), (case.R, case.S), 1, 1)
    full = F.conv_transpose2d(
        xt, wt, bt, stride=as_pair(case.stride), padding=0,
        output_padding=as_pair(case.output_padding), dilation=as_pair(case.dilation),
        groups=case.groups,
    )  # fmt: skip
    H_out, W_out = case.y_shape[2:]
    yt = full[:, :, top : top + H_out, left : left + W_out]
    yt.backward(torch.tensor(dy))
    return (
        yt.detach().numpy(),
        xt.grad.numpy(),
        wt.grad.numpy(),
        None if bt is None else bt.grad.numpy(),
    )


def _rotating(cases: Any) -> list[Any]:
    """ "auto" on every case and one named algorithm per case, taking turns (the naive
    reference already checks every algorithm on every case)."""
    params = []
    for i, case in enumerate(cases):
        accepting = [a for a in ALGORITHM_NAMES[:-1] if case.applies(a)]
        for algorithm in ("auto", accepting[i % len(accepting)]):
            params.append(pytest.param(case, algorithm, id=f"{case.name}-{algorithm}"))
    return params


@pytest.mark.parametrize(("case", "algorithm"), _rotating(TRANSPOSE_CASES))
def test_conv_transpose2d_matches_torch_and_autograd(case: TransposeCase, algorithm: str) -> None:
    x, w, b, dy = random_transpose_inputs(case, "float64", seed=97)
    y_t, dx_t, dw_t, db_t = torch_conv_transpose2d(case, x, w, b, dy)
    y, cache = conv_transpose2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    dx, dw, db = conv_transpose2d_backward(dy, cache)
    _close(y, y_t, "y")
    _close(dx, dx_t, "dx")
    _close(dw, dw_t, "dw")
    if b is None:
        assert db is None
    else:
        _close(db, db_t, "db")


def test_symmetric_padding_transpose_matches_torch_padding_argument() -> None:
    """Where torch can express the padding itself, no cropping is needed."""
    case = next(c for c in TRANSPOSE_CASES if c.name == "depthwise_stride2")
    x, w, b, _ = random_transpose_inputs(case, "float64", seed=101)
    y_t = F.conv_transpose2d(
        torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1,
        output_padding=1, groups=case.groups,
    )  # fmt: skip
    y, _ = conv_transpose2d_forward(x, w, b, **case.hyper)
    _close(y, y_t.numpy(), "y")
