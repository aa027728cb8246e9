"""Convolutions on Tensors in 1, 2 and 3 spatial dimensions (re-exported by nn.functional).

1-D maps onto the 2-D pairs with H = 1 (x (N, C, L) viewed as (N, C, 1, L)), so it runs the
fast 2-D algorithms; 3-D runs the N-d im2col pairs (CN1)–(CN6), (CTN1)–(CTN3). Unbatched
inputs ((C, *spatial)) are accepted as PyTorch accepts them: a batch of one, removed again.
So is PyTorch's one-element form of a per-axis argument (stride=(2,) for (2, 2) or (2, 2, 2)).
The views are recorded reshapes (RS1, RS2), so every gradient still comes from a pair.
"""

from __future__ import annotations

from typing import Any

from convprop._shapes import _is_int
from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array, is_array
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_output_size, require_array
from convprop.functional.conv2d import conv2d_backward, conv2d_forward
from convprop.functional.conv2d_relu import conv2d_relu_backward, conv2d_relu_forward
from convprop.functional.conv_transpose2d import (
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from convprop.functional.conv_transpose_nd import (
    conv_transpose_nd_backward,
    conv_transpose_nd_forward,
)
from convprop.functional.convnd import conv_nd_backward, conv_nd_forward


def _data(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


def _checked(op: str, value: Any) -> Any:
    """``value`` if it is a Tensor or an array; a DTypeError naming the op otherwise."""
    if not isinstance(value, Tensor):
        require_array(op, "input", value)
    return value


def _batched(op: str, x: Any, dims: int) -> tuple[Tensor, bool]:
    """(x with a batch axis, whether one was added); refuses other ranks."""
    x = _tensor(_checked(op, x))
    if x.ndim == dims + 1:
        return x.unsqueeze(0), True
    if x.ndim != dims + 2:
        raise ShapeError(
            f"{op}: input must be (N, C, *spatial) or unbatched (C, *spatial) with {dims} "
            f"spatial axes; expected {dims + 2} or {dims + 1} dimensions, got {x.ndim} "
            f"(input.shape={x.shape})"
        )
    return x, False


def _needs_batch(input: Any, dims: int) -> bool:
    """True for an unbatched input (C, *spatial) of ``dims`` spatial axes."""
    return getattr(input, "ndim", None) == dims + 1


def _per_axis(value: Any, dims: int) -> Any:
    """PyTorch's one-element form ((2,) or [2]) of a per-axis argument as ``dims`` copies, as
    its convolutions expand it; any other value unchanged (the pairs validate it)."""
    if isinstance(value, (tuple, list)) and len(value) == 1 and _is_int(value[0]):
        return (value[0],) * dims
    return value


def _one_to_two(op: str, value: Any, name: str, fill: int) -> Any:
    """A 1-D hyperparameter as the 2-D pair (fill, value)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not _is_int(value):
        raise ParameterError(
            f"{op}: {name} must be an int or a 1-tuple; expected e.g. 1 or (1,), got {value!r}"
        )
    return (fill, int(value))


def _per_axis_ints(value: Any, dims: int) -> tuple[int, ...] | None:
    """An int or ``dims`` ints as a tuple; None for anything else (the op validates it)."""
    if _is_int(value):
        return (int(value),) * dims
    if isinstance(value, (tuple, list)) and len(value) == dims and all(map(_is_int, value)):
        return tuple(int(v) for v in value)
    return None


_BOUNDED: set[tuple[Any, ...]] = set()
_BOUNDED_KEPT = 512
"""Calls :func:`_bound_output` passed: a network asks the same few on every step (the check
took 5 µs of a 35 µs convolution of one image)."""


def _bound_output(name: str, x: Any, w: Any, hyper: dict[str, Any]) -> None:
    """Refuse, before any allocation, an output too large for memory (a padding, stride or
    dilation of 2**31 makes one): (F1)'s and (CT1)'s output sizes from well-formed integers;
    anything else is left to the op's own checks. Calls that passed, with hashable
    arguments, are remembered."""
    if not (is_array(x) and is_array(w)) or x.ndim != w.ndim or x.ndim < 3:
        return
    # the check reads the values as ints: 1, 1.0 and True need not differ in this key
    key: tuple[Any, ...] | None = (name, x.shape, w.shape, x.dtype.itemsize, *hyper.items())
    try:
        if key in _BOUNDED:
            return
    except TypeError:  # a list among the hyperparameters: checked afresh each time
        key = None
    if _check_bound(name, x, w, hyper) and key is not None:
        if len(_BOUNDED) >= _BOUNDED_KEPT:
            _BOUNDED.clear()
        _BOUNDED.add(key)


def _check_bound(name: str, x: Any, w: Any, hyper: dict[str, Any]) -> bool:
    """:func:`_bound_output`'s check itself; False where the values were not ints that it
    could check (the op's own checks refuse them)."""
    dims = x.ndim - 2
    stride, padding, dilation, extra = (
        _per_axis_ints(hyper.get(key, default), dims)
        for key, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("output_padding", 0))
    )
    if stride is None or padding is None or dilation is None or extra is None:
        return False
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(extra) < 0:
        return False
    sizes = zip(x.shape[2:], w.shape[2:], stride, padding, dilation, extra, strict=True)
    if "transpose" in name:  # (CT1)
        out = [(n - 1) * s - 2 * p + d * (k - 1) + e + 1 for n, k, s, p, d, e in sizes]
        groups = hyper.get("groups", 1)
        channels = int(w.shape[1]) * (int(groups) if _is_int(groups) else 1)
    else:  # (F1)
        out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d, _ in sizes]
        channels = int(w.shape[0])
    if min(out) >= 1:
        where = f"x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}"
        check_output_size(name, (int(x.shape[0]), channels, *out), x.dtype.itemsize, where)
    return True


def _record_conv(
    name: str, labels: str, pair: tuple[Any, Any], x: Any, weight: Any, bias: Any, **hyper: Any
) -> Tensor:
    forward, backward_pair = pair
    x_data, w_data = _data(x), _data(weight)
    _bound_output(name, x_data, w_data, hyper)
    y, cache = forward(x_data, w_data, _data(bias), **hyper)

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        return backward_pair(dy, cache, need_dx=needs[0])

    return record(name, labels, y, cache, (x, weight, bias), backward)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    algorithm: str = "auto",
    relu: bool = False,
) -> Tensor:
    """2-D cross-correlation (F1); backward (B1)–(B3), skipping dx when input needs none.
    With ``relu``, max(y, 0) as one op with it (functional/conv2d_relu.py: CB1–CB4)."""
    added = _needs_batch(input, 2)
    x = _tensor(input).unsqueeze(0) if added else input
    name, labels, pair = (
        ("conv2d_relu", "CB3, CB4", (conv2d_relu_forward, conv2d_relu_backward))
        if relu
        else ("conv2d", "B1, B2, B3", (conv2d_forward, conv2d_backward))
    )
    y = _record_conv(
        name, labels, pair, x, weight, bias,
        stride=_per_axis(stride, 2), padding=_per_axis(padding, 2),
        dilation=_per_axis(dilation, 2), groups=groups, algorithm=algorithm,
    )  # fmt: skip
    return y.squeeze(0) if added else y


def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    algorithm: str = "auto",
) -> Tensor:
    """Transposed convolution, conv2d's adjoint (CT1, CT2); backward (CT3, CT4)."""
    added = _needs_batch(_checked("conv_transpose2d", input), 2)
    x = _tensor(input).unsqueeze(0) if added else input
    y = _record_conv(
        "conv_transpose2d", "CT3, CT4", (conv_transpose2d_forward, conv_transpose2d_backward),
        x, weight, bias, stride=_per_axis(stride, 2), padding=_per_axis(padding, 2),
        output_padding=_per_axis(output_padding, 2), dilation=_per_axis(dilation, 2),
        groups=groups, algorithm=algorithm,
    )  # fmt: skip
    return y.squeeze(0) if added else y


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    algorithm: str = "auto",
) -> Tensor:
    """1-D cross-correlation: conv2d with H = 1 (F1); backward (B1)–(B3)."""
    op = "conv1d"
    x, added = _batched(op, input, 1)
    w = _tensor(weight)
    if w.ndim != 3:
        raise ShapeError(
            f"{op}: weight must be (K, C/groups, S); expected 3 dimensions, got {w.ndim} "
            f"(weight.shape={w.shape})"
        )
    y = conv2d(
        x.unsqueeze(2),
        w.unsqueeze(2),
        bias,
        _one_to_two(op, stride, "stride", 1),
        _one_to_two(op, padding, "padding", 0),
        _one_to_two(op, dilation, "dilation", 1),
        groups,
        algorithm=algorithm,
    ).squeeze(2)
    return y.squeeze(0) if added else y


def conv_transpose1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    algorithm: str = "auto",
) -> Tensor:
    """1-D transposed convolution: conv_transpose2d with H = 1 (CT1)–(CT4)."""
    op = "conv_transpose1d"
    x, added = _batched(op, input, 1)
    w = _tensor(weight)
    if w.ndim != 3:
        raise ShapeError(
            f"{op}: weight must be (C_in, C_out/groups, S); expected 3 dimensions, got "
            f"{w.ndim} (weight.shape={w.shape})"
        )
    y = conv_transpose2d(
        x.unsqueeze(2),
        w.unsqueeze(2),
        bias,
        _one_to_two(op, stride, "stride", 1),
        _one_to_two(op, padding, "padding", 0),
        _one_to_two(op, output_padding, "output_padding", 0),
        groups,
        _one_to_two(op, dilation, "dilation", 1),
        algorithm=algorithm,
    ).squeeze(2)
    return y.squeeze(0) if added else y


def conv3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """3-D cross-correlation by N-d im2col (CN1)–(CN3); backward (CN4)–(CN6)."""
    x, added = _batched("conv3d", input, 3)
    y = _record_conv(
        "conv3d", "CN4, CN5, CN6", (conv_nd_forward, conv_nd_backward), x, weight, bias,
        stride=_per_axis(stride, 3), padding=_per_axis(padding, 3),
        dilation=_per_axis(dilation, 3), groups=groups,
    )  # fmt: skip
    return y.squeeze(0) if added else y


def conv_transpose3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """3-D transposed convolution, conv3d's adjoint (CTN1), (CTN2); backward (CTN3)."""
    x, added = _batched("conv_transpose3d", input, 3)
    y = _record_conv(
        "conv_transpose3d", "CTN3", (conv_transpose_nd_forward, conv_transpose_nd_backward),
        x, weight, bias, stride=_per_axis(stride, 3), padding=_per_axis(padding, 3),
        output_padding=_per_axis(output_padding, 3), dilation=_per_axis(dilation, 3),
        groups=groups,
    )  # fmt: skip
    return y.squeeze(0) if added else y
