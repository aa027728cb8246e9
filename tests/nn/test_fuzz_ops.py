"""Fuzzing every public op of convprop.nn.functional and the main modules against PyTorch.

Two properties, each drawn by hypothesis (seeded, so every run draws the same cases):

1. Valid calls, with one NaN, +Inf or -Inf planted in the input now and then, and the input
   laid out non-contiguously, Fortran-ordered, reversed or misaligned: the forward output
   and every input gradient (float64, a random upstream gradient) equal PyTorch's, NaN and
   ±Inf positions included.
2. Hostile calls (a torch tensor, a list, None, a string, an integer, bool, complex, object
   or float16 array, a rank too many or too few, a zero-size axis, hyperparameters that are
   negative, zero, fractional, NaN or as large as 2**62): the op either equals PyTorch's
   result or raises the library's own error (ShapeError, ParameterError, DTypeError or
   BackendError), never IndexError, AttributeError, OverflowError, MemoryError or a NumPy
   message; and no case allocates more than ``PEAK_BYTES`` (tracemalloc).

The work is bounded: sizes stay at a few elements per axis, and no assertion measures time.
"""

from __future__ import annotations

import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convprop
import convprop.nn as nn
import convprop.nn.functional as F
from convprop.errors import BackendError, DTypeError, ParameterError, ShapeError

LIBRARY_ERRORS = (ShapeError, ParameterError, DTypeError, BackendError)
PEAK_BYTES = 32 * 2**20  # no case may allocate more than 32 MiB
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOSTILE_FUZZ = settings(FUZZ, max_examples=60)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- cases -----------------------------------------------------------------------------
@dataclass
class Case:
    """One drawn call: differentiable float64 inputs, other arrays, and the call itself.

    ``call(lib, inputs, others)`` runs the op with ``lib`` = convprop.nn.functional or
    torch.nn.functional; inputs/others are converted to the library's tensors first.
    """

    inputs: dict[str, np.ndarray]
    others: dict[str, np.ndarray]
    call: Callable[[Any, dict[str, Any], dict[str, Any]], Any]


Draw = Callable[[st.SearchStrategy[Any]], Any]


def _values(draw: Draw, shape: tuple[int, ...], *, low: float = -3.0, high: float = 3.0) -> Any:
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def _spatial(draw: Draw, dims: int, low: int = 1, high: int = 6) -> tuple[int, ...]:
    return tuple(draw(st.integers(low, high)) for _ in range(dims))


def conv_case(dims: int, transpose: bool) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        groups = draw(st.sampled_from([1, 1, 2]))
        c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
        kernel = _spatial(draw, dims, 1, 3)
        stride = _spatial(draw, dims, 1, 3)
        dilation = _spatial(draw, dims, 1, 2)
        padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
        size = tuple(
            d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation, strict=True)
        )
        n = draw(st.integers(1, 2))
        if transpose:
            w_shape = (c_in, c_out // groups, *kernel)
            output_padding = tuple(
                draw(st.integers(0, max(0, max(s, d) - 1)))
                for s, d in zip(stride, dilation, strict=True)
            )
        else:
            w_shape = (c_out, c_in // groups, *kernel)
        inputs = {"x": _values(draw, (n, c_in, *size)), "w": _values(draw, w_shape)}
        if draw(st.booleans()):
            inputs["b"] = _values(draw, (c_out,))
        name = f"conv{'_transpose' if transpose else ''}{dims}d"

        def call(lib: Any, a: dict[str, Any], o: dict[str, Any]) -> Any:
            op = getattr(lib, name)
            if transpose:
                return op(a["x"], a["w"], a.get("b"), stride, padding, output_padding, groups,
                          dilation)  # fmt: skip
            return op(a["x"], a["w"], a.get("b"), stride, padding, dilation, groups)

        return Case(inputs, {}, call)

    return make


def pool_case(kind: str, dims: int) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        kernel = _spatial(draw, dims, 1, 3)
        stride = _spatial(draw, dims, 1, 3)
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        dilation = _spatial(draw, dims, 1, 2) if kind == "max" else (1,) * dims
        size = tuple(
            d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation, strict=True)
        )
        x = _values(draw, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size))
        ceil_mode = draw(st.booleans())
        name = f"{kind}_pool{dims}d"

        def call(lib: Any, a: dict[str, Any], o: dict[str, Any]) -> Any:
            op = getattr(lib, name)
            if kind == "max":
                return op(a["x"], kernel, stride, padding, dilation, ceil_mode)
            if kind == "lp":  # torch's lp_pool1d multiplies by kernel_size: an int there
                k, s = (kernel[0], stride[0]) if dims == 1 else (kernel, stride)
                return op(a["x"], 2.0, k, s, ceil_mode)
            return op(a["x"], kernel, stride, padding, ceil_mode, count_include_pad)

        count_include_pad = draw(st.booleans())
        if kind == "lp":  # (Σ x²)^(1/2): positive sums, as PyTorch's own samples
            x = np.abs(x) + 0.5
        return Case({"x": x}, {}, call)

    return make


def adaptive_case(name: str, dims: int) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        size = _spatial(draw, dims, 1, 7)
        out = _spatial(draw, dims, 1, 4)
        x = _values(draw, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size))
        return Case({"x": x}, {}, lambda lib, a, o: getattr(lib, name)(a["x"], out))

    return make


def unary_case(name: str, **kwargs: Any) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        shape = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4))))
        x = _values(draw, shape, low=-5.0, high=5.0)
        return Case({"x": x}, {}, lambda lib, a, o: getattr(lib, name)(a["x"], **kwargs))

    return make


def softmax_case(name: str) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        shape = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4))))
        dim = draw(st.integers(-len(shape), len(shape) - 1))
        x = _values(draw, shape, low=-5.0, high=5.0)
        return Case({"x": x}, {}, lambda lib, a, o: getattr(lib, name)(a["x"], dim))

    return make


def linear_case(draw: Draw) -> Case:
    batch = (draw(st.integers(1, 3)),)  # (N, C): convprop's linear refuses (*, C) with a ShapeError
    c_in, c_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    inputs = {"x": _values(draw, (*batch, c_in)), "w": _values(draw, (c_out, c_in))}
    if draw(st.booleans()):
        inputs["b"] = _values(draw, (c_out,))
    return Case(inputs, {}, lambda lib, a, o: lib.linear(a["x"], a["w"], a.get("b")))


def flatten_case(draw: Draw) -> Case:
    shape = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 4))))
    start = draw(st.integers(-len(shape), len(shape) - 1))
    x = _values(draw, shape)
    return Case({"x": x}, {}, lambda lib, a, o: torch_or_ours(lib).flatten(a["x"], start))


def torch_or_ours(lib: Any) -> Any:
    """torch.flatten is torch's, not torch.nn.functional's."""
    return torch if lib is TF else lib


def norm_case(name: str) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        groups = draw(st.integers(1, 2))
        c = groups * draw(st.integers(1, 2))
        shape = (draw(st.integers(2, 3)), c, *_spatial(draw, draw(st.integers(0, 2)), 1, 3))
        inputs = {"x": _values(draw, shape), "g": _values(draw, (c,)), "b": _values(draw, (c,))}
        if name == "group_norm":
            return Case(
                inputs, {}, lambda lib, a, o: lib.group_norm(a["x"], groups, a["g"], a["b"])
            )
        if name == "layer_norm":
            tail = shape[draw(st.integers(1, len(shape) - 1)) :]
            inputs["g"], inputs["b"] = _values(draw, tail), _values(draw, tail)
            return Case(inputs, {}, lambda lib, a, o: lib.layer_norm(a["x"], tail, a["g"], a["b"]))
        training = draw(st.booleans())
        others = {"mean": _values(draw, (c,)), "var": _values(draw, (c,), low=0.5, high=2.0)}

        def call(lib: Any, a: dict[str, Any], o: dict[str, Any]) -> Any:
            return lib.batch_norm(a["x"], o["mean"], o["var"], a["g"], a["b"], training, 0.1)

        return Case(inputs, others, call)

    return make


def interpolate_case(draw: Draw) -> Case:
    dims = draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["nearest", "linear" if dims == 1 else "bilinear"]))
    size = _spatial(draw, dims, 1, 6)
    x = _values(draw, (1, draw(st.integers(1, 2)), *_spatial(draw, dims, 1, 4)))

    def call(lib: Any, a: dict[str, Any], o: dict[str, Any]) -> Any:
        align = None if mode == "nearest" else False
        return lib.interpolate(a["x"], size=size, mode=mode, align_corners=align)

    return Case({"x": x}, {}, call)


def pad_case(draw: Draw) -> Case:
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    x = _values(draw, (1, 2, *_spatial(draw, 2, 3, 5)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    value = 1.5 if mode == "constant" else None
    return Case({"x": x}, {}, lambda lib, a, o: lib.pad(a["x"], pads, mode, value))


def loss_case(name: str) -> Callable[[Draw], Case]:
    def make(draw: Draw) -> Case:
        n, c = draw(st.integers(1, 4)), draw(st.integers(2, 4))
        reduction = draw(st.sampled_from(["mean", "sum", "none"]))
        x = _values(draw, (n, c))
        if name in ("cross_entropy", "nll_loss"):
            labels = np.random.default_rng(n * c).integers(0, c, size=n)
            others = {"t": labels}
        elif name == "binary_cross_entropy":
            x = _values(draw, (n, c), low=0.05, high=0.95)
            others = {"t": _values(draw, (n, c), low=0.0, high=1.0)}
        else:
            others = {"t": _values(draw, (n, c))}

        def call(lib: Any, a: dict[str, Any], o: dict[str, Any]) -> Any:
            return getattr(lib, name)(a["x"], o["t"], reduction=reduction)

        return Case({"x": x}, others, call)

    return make


def dropout_case(name: str) -> Callable[[Draw], Case]:
    """p = 0 in training and any p in evaluation are deterministic, and comparable."""

    def make(draw: Draw) -> Case:
        shape = (2, 3, *_spatial(draw, 2, 1, 3))
        training = draw(st.booleans())
        p = 0.0 if training else draw(st.sampled_from([0.0, 0.3, 0.9]))
        x = _values(draw, shape)
        return Case({"x": x}, {}, lambda lib, a, o: getattr(lib, name)(a["x"], p, training))

    return make


OPS: dict[str, Callable[[Draw], Case]] = {
    **{f"conv{d}d": conv_case(d, False) for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": conv_case(d, True) for d in (1, 2, 3)},
    **{f"{k}_pool{d}d": pool_case(k, d) for k in ("max", "avg") for d in (1, 2, 3)},
    **{f"lp_pool{d}d": pool_case("lp", d) for d in (1, 2)},
    "adaptive_avg_pool1d": adaptive_case("adaptive_avg_pool1d", 1),
    "adaptive_avg_pool2d": adaptive_case("adaptive_avg_pool2d", 2),
    "adaptive_max_pool2d": adaptive_case("adaptive_max_pool2d", 2),
    "linear": linear_case,
    "flatten": flatten_case,
    "relu": unary_case("relu"),
    "leaky_relu": unary_case("leaky_relu", negative_slope=0.2),
    "sigmoid": unary_case("sigmoid"),
    "tanh": unary_case("tanh"),
    "elu": unary_case("elu", alpha=0.7),
    "gelu": unary_case("gelu"),
    "gelu_tanh": lambda draw: unary_case("gelu", approximate="tanh")(draw),
    "silu": unary_case("silu"),
    "softmax": softmax_case("softmax"),
    "log_softmax": softmax_case("log_softmax"),
    "dropout": dropout_case("dropout"),
    "dropout2d": dropout_case("dropout2d"),
    "batch_norm": norm_case("batch_norm"),
    "group_norm": norm_case("group_norm"),
    "layer_norm": norm_case("layer_norm"),
    "interpolate": interpolate_case,
    "pad": pad_case,
    "cross_entropy": loss_case("cross_entropy"),
    "nll_loss": loss_case("nll_loss"),
    "mse_loss": loss_case("mse_loss"),
    "binary_cross_entropy": loss_case("binary_cross_entropy"),
    "binary_cross_entropy_with_logits": loss_case("binary_cross_entropy_with_logits"),
}

# Ops fuzzed with finite values only (and with every hostile argument), where convprop's
# non-finite semantics differ from PyTorch's:
# - lp_pool: with an Inf in a window, PyTorch differentiates its composition
#   avg_pool(x^p)^(1/p) and gets 0·Inf = NaN for every cell of that window; convprop's
#   closed form (LPP3), x^(p−1)/y^(p−1), keeps 0 for the finite cells.
# conv2d under `auto` and adaptive_avg_pool2d pass the planted cases and are not listed.
# - elu: at x = NaN PyTorch's gradient is NaN on its vectorised loop and dy on its scalar
#   loop (small tensors, and the tail elements of large ones); convprop's (EL2) gives NaN.
# - conv_transpose2d: PyTorch's weight gradient multiplies x by the zero-padded dy, so a NaN
#   in x whose outputs are all cropped by the padding still spreads NaN over dw; convprop's
#   sums (CT4) skip the cropped terms. The forward and dx agree.
# - interpolate (linear modes): next to an Inf, an output is Inf where its weight λ on that
#   cell is positive and 0·Inf = NaN where λ = 0; PyTorch's λ comes from its own float
#   rounding of the source position (UP4), which lands a few ulps off 0 at some positions
#   where convprop's exact-to-rounding λ is 0 (and the other way round), so the NaN
#   positions differ at those outputs; finite inputs agree to rounding.
FINITE_ONLY = {"lp_pool1d", "lp_pool2d", "elu", "conv_transpose2d", "interpolate"}


# -- running a case --------------------------------------------------------------------
def layout(array: np.ndarray, kind: str) -> np.ndarray:
    """The same values laid out as ``kind``: contiguous, Fortran, strided, reversed, misaligned."""
    if kind == "fortran":
        return np.asfortranarray(array)
    if kind == "strided":
        wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), dtype=array.dtype)
        wide[..., ::2] = array
        return wide[..., ::2]
    if kind == "reversed":
        return np.ascontiguousarray(array[..., ::-1])[..., ::-1]
    if kind == "misaligned":
        raw = np.zeros(array.nbytes + 1, dtype=np.uint8)
        out = np.frombuffer(raw.data, dtype=array.dtype, count=array.size, offset=1)
        out = out.reshape(array.shape)
        out[...] = array
        return out
    return array


def plant(draw: Draw, array: np.ndarray) -> np.ndarray:
    """A copy with one element (sometimes two) set to NaN, +Inf or -Inf."""
    out = array.copy()
    for _ in range(draw(st.integers(1, 2))):
        index = draw(st.integers(0, out.size - 1))
        out.reshape(-1)[index] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return out


def run_ours(case: Case, inputs: dict[str, np.ndarray], dy_seed: int) -> Any:
    tensors = {k: convprop.tensor(v, requires_grad=True) for k, v in inputs.items()}
    others = {k: v.copy() for k, v in case.others.items()}
    y = case.call(F, tensors, others)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    y.backward(dy)
    return y.numpy(), {k: t.grad for k, t in tensors.items()}


def run_torch(case: Case, inputs: dict[str, np.ndarray], dy_seed: int) -> Any:
    tensors = {
        k: torch.tensor(np.ascontiguousarray(v), requires_grad=True) for k, v in inputs.items()
    }
    others = {k: torch.tensor(v.copy()) for k, v in case.others.items()}
    y = case.call(TF, tensors, others)
    dy = np.random.default_rng(dy_seed).standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(dy))
    return y.detach().numpy(), {
        k: (t.grad.numpy() if t.grad is not None else np.zeros_like(inputs[k]))
        for k, t in tensors.items()
    }


def assert_same(name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    """Equal within float64 rounding, with NaN and ±Inf in exactly the same places."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != PyTorch's {theirs.shape}"
    if ours.dtype.kind != "f":  # flatten of integers, booleans, complex numbers: exact
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
        return
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{name}: NaN")
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs), err_msg=f"{name}: +Inf")
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs), err_msg=f"{name}: -Inf")
    finite = np.isfinite(ours)
    np.testing.assert_allclose(
        ours[finite], theirs[finite], rtol=1e-9, atol=1e-10, err_msg=f"{name}: values"
    )


@pytest.mark.parametrize("op", sorted(OPS))
@FUZZ
@given(data=st.data())
def test_valid_calls_equal_pytorch_forward_and_gradients(op: str, data: st.DataObject) -> None:
    case = OPS[op](data.draw)
    inputs = dict(case.inputs)
    if op not in FINITE_ONLY and data.draw(st.booleans()):
        inputs["x"] = plant(data.draw, inputs["x"])
    kind = data.draw(
        st.sampled_from(["contiguous", "fortran", "strided", "reversed", "misaligned"])
    )
    ours_in = {k: layout(v, kind) for k, v in inputs.items()}
    try:
        y_ref, grads_ref = run_torch(case, inputs, dy_seed=7)
    except RuntimeError:  # PyTorch refuses the call (a probability out of [0, 1], ...): so must we
        with pytest.raises(LIBRARY_ERRORS), np.errstate(all="ignore"):
            run_ours(case, ours_in, dy_seed=7)
        return
    with np.errstate(all="ignore"):  # NaN and Inf arithmetic is meant here, not warned about
        y, grads = run_ours(case, ours_in, dy_seed=7)
    assert_same(f"{op} forward", y, y_ref)
    for k in grads:
        assert_same(f"{op} d{k}", grads[k], grads_ref[k])


# -- hostile arguments -----------------------------------------------------------------
def _base(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


X1, X2, X4, X5 = _base((2, 3, 6)), _base((3, 4)), _base((2, 3, 5, 5)), _base((1, 2, 4, 4, 4))
W1, W2, W3 = _base((4, 3, 3), 1), _base((4, 3, 3, 3), 1), _base((2, 2, 2, 2, 2), 1)
LABELS = np.array([0, 1, 3])
UNPOOL_INDICES = np.array([0, 3, 10, 13]).reshape(1, 1, 2, 2).repeat(2, 0).repeat(3, 1)
CONV = ("stride", "padding", "dilation", "groups")
TCONV = ("stride", "padding", "output_padding", "dilation", "groups")
POOL = ("kernel_size", "stride", "padding", "dilation")
AVG = ("kernel_size", "stride", "padding", "divisor_override")

# name -> (call(lib, array, x, **hostile), the valid input x, the keywords made hostile).
# ``array`` turns a NumPy array into the library's own (a torch tensor for PyTorch).
Call = Callable[..., Any]
HOSTILE: dict[str, tuple[Call, np.ndarray, tuple[str, ...]]] = {
    "conv1d": (lambda lib, a, x, **k: lib.conv1d(x, a(W1), **k), X1, CONV),
    "conv2d": (lambda lib, a, x, **k: lib.conv2d(x, a(W2), **k), X4, CONV),
    "conv2d_algorithm": (
        lambda lib, a, x, **k: lib.conv2d(x, a(W2)) if lib is TF else lib.conv2d(x, W2, **k),
        X4,
        ("algorithm",),
    ),
    "conv3d": (lambda lib, a, x, **k: lib.conv3d(x, a(W3), **k), X5, CONV),
    "conv_transpose1d": (
        lambda lib, a, x, **k: lib.conv_transpose1d(x, a(W1.transpose(1, 0, 2).copy()), **k),
        _base((2, 4, 6)),
        TCONV,
    ),
    "conv_transpose2d": (
        lambda lib, a, x, **k: lib.conv_transpose2d(x, a(W2.transpose(1, 0, 2, 3).copy()), **k),
        _base((2, 4, 5, 5)),
        TCONV,
    ),
    "conv_transpose3d": (lambda lib, a, x, **k: lib.conv_transpose3d(x, a(W3), **k), X5, TCONV),
    "linear": (lambda lib, a, x, **k: lib.linear(x, a(_base((5, 4), 2))), X2, ()),
    "flatten": (
        lambda lib, a, x, **k: torch_or_ours(lib).flatten(x, **k),
        X4,
        ("start_dim", "end_dim"),
    ),
    **{
        name: (lambda lib, a, x, _n=name, **k: getattr(lib, _n)(x), X4, ())
        for name in ("relu", "sigmoid", "tanh", "silu")
    },
    "leaky_relu": (lambda lib, a, x, **k: lib.leaky_relu(x, **k), X4, ("negative_slope",)),
    "elu": (lambda lib, a, x, **k: lib.elu(x, **k), X4, ("alpha",)),
    "gelu": (lambda lib, a, x, **k: lib.gelu(x, **k), X4, ("approximate",)),
    "softmax": (lambda lib, a, x, **k: lib.softmax(x, **({"dim": 1} | k)), X4, ("dim",)),
    "log_softmax": (lambda lib, a, x, **k: lib.log_softmax(x, **({"dim": 1} | k)), X4, ("dim",)),
    "dropout": (lambda lib, a, x, **k: lib.dropout(x, **({"p": 0.0} | k)), X4, ("p",)),
    "dropout2d": (lambda lib, a, x, **k: lib.dropout2d(x, **({"p": 0.0} | k)), X4, ("p",)),
    "batch_norm": (
        lambda lib, a, x, **k: lib.batch_norm(
            x, a(np.zeros(3)), a(np.ones(3)), **({"training": True} | k)
        ),
        X4,
        ("momentum", "eps"),
    ),
    "group_norm": (
        lambda lib, a, x, **k: lib.group_norm(x, **({"num_groups": 3} | k)),
        X4,
        ("num_groups", "eps"),
    ),
    "layer_norm": (
        lambda lib, a, x, **k: lib.layer_norm(x, **({"normalized_shape": (5, 5)} | k)),
        X4,
        ("normalized_shape", "eps"),
    ),
    **{
        f"max_pool{d}d": (
            lambda lib, a, x, _d=d, **k: getattr(lib, f"max_pool{_d}d")(
                x, **({"kernel_size": 2} | k)
            ),
            x,
            POOL,
        )
        for d, x in ((1, X1), (2, X4), (3, X5))
    },
    **{
        f"avg_pool{d}d": (
            lambda lib, a, x, _d=d, **k: getattr(lib, f"avg_pool{_d}d")(
                x, **({"kernel_size": 2} | k)
            ),
            x,
            AVG if d > 1 else AVG[:3],
        )
        for d, x in ((1, X1), (2, X4), (3, X5))
    },
    "lp_pool2d": (
        lambda lib, a, x, **k: lib.lp_pool2d(x, **({"norm_type": 2.0, "kernel_size": 2} | k)),
        X4,
        ("norm_type", "kernel_size", "stride"),
    ),
    "lp_pool1d": (
        lambda lib, a, x, **k: lib.lp_pool1d(x, **({"norm_type": 2.0, "kernel_size": 2} | k)),
        X1,
        ("norm_type", "kernel_size", "stride"),
    ),
    "adaptive_avg_pool1d": (
        lambda lib, a, x, **k: lib.adaptive_avg_pool1d(x, **({"output_size": 2} | k)),
        X1,
        ("output_size",),
    ),
    "adaptive_avg_pool2d": (
        lambda lib, a, x, **k: lib.adaptive_avg_pool2d(x, **({"output_size": 2} | k)),
        X4,
        ("output_size",),
    ),
    "adaptive_max_pool2d": (
        lambda lib, a, x, **k: lib.adaptive_max_pool2d(x, **({"output_size": 2} | k)),
        X4,
        ("output_size",),
    ),
    "interpolate": (
        lambda lib, a, x, **k: lib.interpolate(x, **(k or {"scale_factor": 2})),
        X4,
        ("size", "scale_factor"),
    ),
    "pad": (lambda lib, a, x, **k: lib.pad(x, **({"pad": (1, 1)} | k)), X4, ("pad", "value")),
    "max_unpool2d": (
        lambda lib, a, x, **k: lib.max_unpool2d(x, a(UNPOOL_INDICES), **({"kernel_size": 2} | k)),
        X4[:, :, :2, :2],
        ("kernel_size", "stride", "padding", "output_size"),
    ),
    "cross_entropy": (
        lambda lib, a, x, **k: lib.cross_entropy(x, a(LABELS), **k),
        X2,
        ("ignore_index", "label_smoothing", "reduction"),
    ),
    "nll_loss": (
        lambda lib, a, x, **k: lib.nll_loss(x, a(LABELS), **k),
        X2,
        ("ignore_index", "reduction"),
    ),
    "mse_loss": (
        lambda lib, a, x, **k: lib.mse_loss(x, a(np.zeros((3, 4))), **k),
        X2,
        ("reduction",),
    ),
    "binary_cross_entropy_with_logits": (
        lambda lib, a, x, **k: lib.binary_cross_entropy_with_logits(
            x, a(np.full((3, 4), 0.5)), **k
        ),
        X2,
        ("reduction",),
    ),
}

HUGE = [2**31, 2**40, 2**62, 2**64]
PARAMETERS = st.sampled_from(
    [0, -1, -(2**62), 2, 1.5, float("nan"), float("inf"), "a", None, True, (), (1,) * 4, *HUGE]
)
# A layer of 2**31 features fits in some machines' memory (a BatchNorm2d of 8 GiB): it is
# built, as PyTorch builds it, so constructors are fuzzed with the sizes no machine holds.
CONSTRUCTOR_PARAMETERS = st.sampled_from(
    [0, -1, -(2**62), 2, 1.5, float("nan"), float("inf"), "a", None, True, (), (1,) * 4, *HUGE[1:]]
)


def _foreign(x: np.ndarray) -> st.SearchStrategy[Any]:
    """Inputs that are no float array of the right rank, or that are empty."""
    return st.sampled_from(
        [
            torch.from_numpy(x.copy()),
            x.tolist(),
            None,
            "x",
            x.astype(np.int64),
            x > 0,
            x.astype(np.complex128),
            x.astype(object),
            x.astype(np.float16),
            np.float64(1.0),
            x.reshape(-1),
            x[None],
            np.zeros((0, *x.shape[1:])),
            np.zeros((x.shape[0], 0, *x.shape[2:])),
            np.zeros((*x.shape[:-1], 0)),
        ]
    )


def _as_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return torch.tensor(value)
    return value


def _first(result: Any) -> Any:
    return result[0] if isinstance(result, tuple) else result


@pytest.mark.parametrize("op", sorted(HOSTILE))
@HOSTILE_FUZZ
@given(data=st.data())
def test_hostile_arguments_raise_only_the_library_errors(op: str, data: st.DataObject) -> None:
    call, x, names = HOSTILE[op]
    kwargs: dict[str, Any] = {}
    if names and data.draw(st.booleans(), label="hostile keyword"):
        kwargs[data.draw(st.sampled_from(names))] = data.draw(PARAMETERS)
    else:
        x = data.draw(_foreign(x), label="input")
    tracemalloc.start()
    try:  # warnings (an implicit softmax dim, ...) are answers too, not failures
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = call(F, lambda v: v, x, **kwargs)
    except LIBRARY_ERRORS:
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= PEAK_BYTES, f"{op}: allocated {peak} bytes for {kwargs or type(x)}"
    # Accepted: where PyTorch accepts it too, the results are the same. Where PyTorch refuses
    # it (an empty channel axis for a transposed convolution, an alpha of 2**64 that its C++
    # double parameter cannot take, ...), convprop's answer stands: it raised nothing foreign.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = call(TF, _as_torch, _as_torch(x), **kwargs)
    except (RuntimeError, ValueError, TypeError, OverflowError, IndexError):  # PyTorch's
        return
    assert_same(f"{op} forward", _first(y).numpy(), _first(expected).detach().numpy())


# -- the main modules ------------------------------------------------------------------
# name -> (constructor arguments, an input x). The same arguments build torch.nn's module.
MODULES: dict[str, tuple[tuple[Any, ...], np.ndarray]] = {
    "Conv1d": ((3, 4, 3), X1),
    "Conv2d": ((3, 4, 3), X4),
    "Conv3d": ((2, 2, 2), X5),
    "ConvTranspose2d": ((3, 2, 3), X4),
    "Linear": ((4, 5), X2),
    "BatchNorm2d": ((3,), X4),
    "GroupNorm": ((3, 3), X4),
    "LayerNorm": (((5, 5),), X4),
    "MaxPool2d": ((2,), X4),
    "AvgPool2d": ((2,), X4),
    "LPPool2d": ((2.0, 2), np.abs(X4) + 0.5),
    "AdaptiveAvgPool2d": ((2,), X4),
    "Upsample": ((None, 2), X4),
    "Dropout": ((0.0,), X4),
    "LeakyReLU": ((0.2,), X4),
    "ELU": ((0.7,), X4),
    "Softmax": ((1,), X4),
    "Flatten": ((), X4),
}


def _torch_twin(name: str, args: tuple[Any, ...], ours: Any) -> Any:
    """torch.nn's module of the same arguments, holding our parameters (float64)."""
    theirs = getattr(torch.nn, name)(*args).double()
    state = {
        k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in ours.state_dict().items()
    }
    theirs.load_state_dict(state, strict=False)
    return theirs


@pytest.mark.parametrize("name", sorted(MODULES))
@FUZZ
@given(data=st.data())
def test_modules_equal_pytorch_with_planted_non_finite_inputs(
    name: str, data: st.DataObject
) -> None:
    args, x = MODULES[name]
    if data.draw(st.booleans()) and name not in ("LPPool2d", "ConvTranspose2d", "ELU"):
        # FINITE_ONLY's ops (PyTorch's ELU: NaN on its vectorised body, dy on the tail)
        x = plant(data.draw, x)
    convprop.manual_seed(0)
    ours = getattr(nn, name)(*args).double()
    theirs = _torch_twin(name, args, ours)
    kind = data.draw(st.sampled_from(["contiguous", "fortran", "strided", "misaligned"]))
    t = convprop.tensor(layout(x, kind), requires_grad=True)
    with np.errstate(all="ignore"):
        y = ours(t)
        dy = np.random.default_rng(3).standard_normal(y.shape)
        y.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.from_numpy(dy))
    assert_same(f"{name} forward", y.numpy(), ty.detach().numpy())
    assert_same(f"{name} dx", t.grad, tx.grad.numpy())


@pytest.mark.parametrize("name", sorted(MODULES))
@HOSTILE_FUZZ
@given(data=st.data())
def test_module_constructors_refuse_hostile_arguments(name: str, data: st.DataObject) -> None:
    """Any one argument made hostile: built (then it runs or refuses x with our errors) or
    refused with our errors; never more than PEAK_BYTES (no 2**40-channel weight is made)."""
    args, x = MODULES[name]
    if not args:
        return
    position = data.draw(st.integers(0, len(args) - 1))
    hostile = (*args[:position], data.draw(CONSTRUCTOR_PARAMETERS), *args[position + 1 :])
    tracemalloc.start()
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = getattr(nn, name)(*hostile)
            module(x)
    except LIBRARY_ERRORS:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= PEAK_BYTES, f"{name}{hostile}: allocated {peak} bytes"


# -- the cases named in the issue ------------------------------------------------------
W_SMALL = _base((2, 3, 3, 3), 5)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: F.conv2d(X4, W_SMALL, padding=2**62), LIBRARY_ERRORS, r"^conv2d: "),
        (lambda: F.conv2d(X4, W_SMALL, dilation=2**40), LIBRARY_ERRORS, r"^conv2d: "),
        (lambda: F.conv1d(X1, W1, padding=2**31), ShapeError, r"^conv2d: the output .* bytes"),
        (lambda: F.conv3d(X5, W3, stride=2**62), ParameterError, r"^conv_nd: stride is too"),
        (lambda: F.conv2d(torch.zeros(2, 3, 5, 5), W_SMALL), DTypeError, r"call \.numpy\(\)"),
        (lambda: F.softmax([1.0, 2.0], 0), DTypeError, r"^softmax: x must be a numpy"),
        (lambda: F.batch_norm(torch.zeros(2, 3), None, None), DTypeError, r"call \.numpy"),
        (lambda: F.avg_pool2d(X4, 2, stride=2**64), ParameterError, r"^avg_pool2d: stride is"),
        (lambda: F.max_pool2d(X4, 2, stride=2**62), ParameterError, r"^max_pool2d: stride is"),
        (lambda: F.pad(X4, (2**62, 1)), ParameterError, r"^pad: pad is too large"),
        (lambda: F.pad(X4, (1, 1), value="a"), ParameterError, r"^pad: value must be a real"),
        (lambda: F.adaptive_avg_pool2d(X4, 10**7), ShapeError, r"^adaptive_avg_pool2d: the out"),
        (lambda: F.interpolate(X4, size=2**40), ParameterError, r"^interpolate: the output size"),
        (lambda: nn.Linear(2**40, 5), ParameterError, r"^weight_and_bias: the parameters"),
        (lambda: nn.BatchNorm2d(2**40), ParameterError, r"^BatchNorm2d: the parameters"),
    ],
)
def test_the_reported_inputs_raise_the_library_errors(call: Any, error: Any, message: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(error, match=message):
            call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= PEAK_BYTES
