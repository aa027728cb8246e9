"""Pooling as Tensor ops under PyTorch's names and signatures (re-exported by nn.functional).

Each op runs the forward of its pair in convprop.functional and records the pair's
hand-written backward (convprop.autograd). As in PyTorch, every op also takes one sample
without its batch axis ((C, L), (C, H, W) or (C, D, H, W)): the pair then runs on a batch
of one and the axis is dropped again, in the forward and in the recorded backward. A
length-1 sequence stands for every axis (``padding=(1,)``) and an empty stride means the
window, as PyTorch reads them. The labels name the equations of docs/derivations.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array, is_array
from convprop.functional import (
    adaptive_max_pool,
    adaptive_pool2d,
    lp_pool,
    pool1d,
    pool2d,
    pool3d,
    pool_nd,
    unpool,
)
from convprop.functional._checks import check_output_size
from convprop.functional.adaptive_pool2d import adaptive_output_size

OneBackward = Callable[[Array, Any], Array]


def _array(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _lift(input: Any, dims: int) -> tuple[Any, bool]:
    """(array with a batch axis, whether one was added) for PyTorch's unbatched form."""
    x = _array(input)
    unbatched = is_array(x) and x.ndim == dims + 1
    return (x[None] if unbatched else x), unbatched


def _bounded(op: str, x: Any, output_size: Any, dims: int) -> None:
    """Refuse an adaptive output_size whose output could not fit in memory, before any bin."""
    if is_array(x) and x.ndim == dims + 2:
        out = adaptive_output_size(op, output_size, tuple(int(n) for n in x.shape[2:]))
        check_output_size(
            op, (*x.shape[:2], *out), x.dtype.itemsize,
            lambda: f"x.shape={tuple(x.shape)}, output_size={output_size!r}",
        )  # fmt: skip


def _each(value: Any, dims: int) -> Any:
    """PyTorch's length-1 sequences stand for every axis."""
    if isinstance(value, (tuple, list)) and len(value) == 1 and dims > 1:
        return tuple(value) * dims
    return value


def _stride(value: Any, dims: int) -> Any:
    """None or an empty sequence: the window (PyTorch's default)."""
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return None
    return _each(value, dims)


def _record(
    name: str, labels: str, y: Array, cache: Any, input: Any, backward: OneBackward, lift: bool
) -> Tensor:
    """Wrap y (its batch axis dropped for an unbatched call) and record the pair's backward."""
    if lift:
        return record(
            name, labels, y[0], cache, (input,), lambda dy, c, needs: (backward(dy[None], c)[0],)
        )
    return record(name, labels, y, cache, (input,), lambda dy, c, needs: (backward(dy, c),))


def _with_indices(out: Tensor, indices: Array | None, lift: bool) -> Any:
    if indices is None:
        return out
    return out, Tensor(indices[0] if lift else indices)


def _want(op: str, return_indices: Any) -> bool:
    return pool_nd.flag(op, "return_indices", return_indices)


# -- max pooling -------------------------------------------------------------------------
_MAX_PAIRS: dict[int, tuple[Any, Any, Any]] = {
    1: (pool1d.max_pool1d_forward, pool1d.max_pool1d_backward, pool1d.max_pool1d_indices),
    2: (pool2d.max_pool2d_forward, pool2d.max_pool2d_backward, pool2d.max_pool2d_indices),
    3: (pool3d.max_pool3d_forward, pool3d.max_pool3d_backward, pool_nd.max_pool_nd_indices),
}


def _max_labels(cache: Any) -> str:
    if isinstance(cache, pool_nd.MaxPoolNdCache):
        return "MPN3"
    return "PL2, MP3" if isinstance(cache, pool1d.LiftedMaxPool1dCache) else "MP3"


def _max_pool(
    op: str, dims: int, input: Any, hyper: tuple[Any, ...], ceil_mode: bool, return_indices: bool
) -> Any:
    want = _want(op, return_indices)
    kernel_size, stride, padding, dilation = hyper
    x, lift = _lift(input, dims)
    forward, backward, indices_of = _MAX_PAIRS[dims]
    y, cache = forward(
        x, _each(kernel_size, dims), stride=_stride(stride, dims), padding=_each(padding, dims),
        dilation=_each(dilation, dims), ceil_mode=ceil_mode,
    )  # fmt: skip
    out = _record(op, _max_labels(cache), y, cache, input, backward, lift)
    return _with_indices(out, indices_of(cache) if want else None, lift)  # (MPI1)


def max_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling of (N, C, L) or (C, L) (MPN1, MPN2); backward (MPN3).

    With ``return_indices=True`` returns ``(y, indices)``: each maximum's position l (MPI1).
    """
    hyper = (kernel_size, stride, padding, dilation)
    return _max_pool("max_pool1d", 1, input, hyper, ceil_mode, return_indices)


def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling of (N, C, H, W) or (C, H, W) (MP1, MP2; with dilation MPN1, MPN2);
    backward routes dy to each window's arg-max (MP3, MPN3).

    With ``return_indices=True`` returns ``(y, indices)``: h·W + w of each maximum (MPI1).
    """
    hyper = (kernel_size, stride, padding, dilation)
    return _max_pool("max_pool2d", 2, input, hyper, ceil_mode, return_indices)


def max_pool3d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling of (N, C, D, H, W) or (C, D, H, W) (MPN1, MPN2); backward (MPN3).

    With ``return_indices=True`` returns ``(y, indices)``: (d·H + h)·W + w (MPI1).
    """
    hyper = (kernel_size, stride, padding, dilation)
    return _max_pool("max_pool3d", 3, input, hyper, ceil_mode, return_indices)


# -- average pooling ---------------------------------------------------------------------
def _avg_pool(
    op: str, dims: int, input: Any, hyper: tuple[Any, ...], flags: tuple[bool, bool], divisor: Any
) -> Tensor:
    kernel_size, stride, padding = hyper
    ceil_mode, count_include_pad = flags
    x, lift = _lift(input, dims)
    kwargs: dict[str, Any] = {
        "stride": _stride(stride, dims), "padding": _each(padding, dims),
        "ceil_mode": ceil_mode, "count_include_pad": count_include_pad,
    }  # fmt: skip
    if dims == 1:
        y, cache = pool1d.avg_pool1d_forward(x, _each(kernel_size, dims), **kwargs)
        return _record(op, "APN3", y, cache, input, pool_nd.avg_pool_nd_backward, lift)
    kwargs["divisor_override"] = divisor
    if dims == 2:
        y, cache2 = pool2d.avg_pool2d_forward(x, _each(kernel_size, dims), **kwargs)
        return _record(op, "AP3", y, cache2, input, pool2d.avg_pool2d_backward, lift)
    y, cache = pool3d.avg_pool3d_forward(x, _each(kernel_size, dims), **kwargs)
    return _record(op, "APN3", y, cache, input, pool_nd.avg_pool_nd_backward, lift)


def avg_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Average pooling of (N, C, L) or (C, L) (APN1, APN2); backward (APN3)."""
    hyper, flags = (kernel_size, stride, padding), (ceil_mode, count_include_pad)
    return _avg_pool("avg_pool1d", 1, input, hyper, flags, None)


def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Any = None,
) -> Tensor:
    """Average pooling of (N, C, H, W) or (C, H, W) (AP1, AP2); backward spreads dy/divisor
    over each window (AP3). ``divisor_override`` (a nonzero int) replaces every divisor."""
    hyper, flags = (kernel_size, stride, padding), (ceil_mode, count_include_pad)
    return _avg_pool("avg_pool2d", 2, input, hyper, flags, divisor_override)


def avg_pool3d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Any = None,
) -> Tensor:
    """Average pooling of (N, C, D, H, W) or (C, D, H, W) (APN1, APN2); backward (APN3)."""
    hyper, flags = (kernel_size, stride, padding), (ceil_mode, count_include_pad)
    return _avg_pool("avg_pool3d", 3, input, hyper, flags, divisor_override)


# -- power-average pooling ---------------------------------------------------------------
def _lp_pool(
    op: str, dims: int, input: Any, norm_type: Any, kernel_size: Any, stride: Any, ceil: bool
) -> Tensor:
    x, lift = _lift(input, dims)
    forward = lp_pool.lp_pool1d_forward if dims == 1 else lp_pool.lp_pool2d_forward
    y, cache = forward(
        x, norm_type, _each(kernel_size, dims), stride=_stride(stride, dims), ceil_mode=ceil
    )
    return _record(op, "LPP3, LPP4", y, cache, input, lp_pool.lp_pool_nd_backward, lift)


def lp_pool1d(
    input: Any, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> Tensor:
    """Power-average pooling (Σ x^p)^(1/p) of (N, C, L) or (C, L) (LPP1, LPP2); backward
    (LPP3), with no gradient through a window whose sum is 0 (LPP4)."""
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(
    input: Any, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> Tensor:
    """Power-average pooling (Σ x^p)^(1/p) of (N, C, H, W) or (C, H, W) (LPP1, LPP2);
    backward (LPP3), with no gradient through a window whose sum is 0 (LPP4)."""
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


# -- adaptive pooling --------------------------------------------------------------------
def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:
    """Average pooling of (N, C, L) or (C, L) to a fixed length (PL1 over AA1–AA3);
    backward (PL2 over AA4)."""
    x, lift = _lift(input, 1)
    _bounded("adaptive_avg_pool1d", x, _each(output_size, 1), 1)
    y, cache = pool1d.adaptive_avg_pool1d_forward(x, _each(output_size, 1))
    backward = pool1d.adaptive_avg_pool1d_backward
    return _record("adaptive_avg_pool1d", "PL2, AA4", y, cache, input, backward, lift)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Average pooling of (N, C, H, W) or (C, H, W) to a fixed size (AA1–AA3); backward
    (AA4). An entry None of output_size keeps that axis."""
    x, lift = _lift(input, 2)
    _bounded("adaptive_avg_pool2d", x, output_size, 2)
    y, cache = adaptive_pool2d.adaptive_avg_pool2d_forward(x, output_size)
    backward = adaptive_pool2d.adaptive_avg_pool2d_backward
    return _record("adaptive_avg_pool2d", "AA4", y, cache, input, backward, lift)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling of (N, C, H, W) or (C, H, W) to a fixed size (AMP1, AMP2); backward
    (AMP3). With ``return_indices=True`` returns ``(y, indices)``, h·W + w of each maximum."""
    want = _want("adaptive_max_pool2d", return_indices)
    x, lift = _lift(input, 2)
    _bounded("adaptive_max_pool2d", x, output_size, 2)
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, output_size)
    backward = adaptive_max_pool.adaptive_max_pool2d_backward
    out = _record("adaptive_max_pool2d", "AMP3", y, cache, input, backward, lift)
    return _with_indices(out, cache.indices if want else None, lift)


# -- unpooling ---------------------------------------------------------------------------
def max_unpool2d(
    input: Any,
    indices: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> Tensor:
    """Each value of (N, C, P, Q) or (C, P, Q) back at the cell its index names, zeros
    elsewhere (MU1, MU2); backward gathers dy at the written cells (MU3)."""
    x, lift = _lift(input, 2)
    idx = _array(indices)
    if lift and is_array(idx) and idx.ndim == 3:
        idx = idx[None]
    if lift and isinstance(output_size, (tuple, list)) and len(output_size) == 3:
        output_size = tuple(output_size)[1:]  # (C, H, W) of one sample
    y, cache = unpool.max_unpool2d_forward(
        x, idx, _each(kernel_size, 2), stride=_stride(stride, 2), padding=_each(padding, 2),
        output_size=output_size,
    )  # fmt: skip

    def backward(dy: Array, c: Any, needs: tuple[bool, ...]) -> Any:
        dx = unpool.max_unpool2d_backward(dy[None] if lift else dy, c)
        return (dx[0] if lift else dx), None

    return record("max_unpool2d", "MU3", y[0] if lift else y, cache, (input, indices), backward)
