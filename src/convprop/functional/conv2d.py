"""2-D convolution (cross-correlation): the public forward/backward pair and its dispatch.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  b (K,)  y (N,K,P,Q)  G groups; g(k) = k // (K/G)
  P = (H + pad_top + pad_bottom - dil_h*(R-1) - 1) // stride_h + 1                   (S1)
Forward
  y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s]
               * x_pad[n, g(k)*C/G + c, p*stride_h + r*dil_h, q*stride_w + s*dil_w]   (F1)
Backward  (dy has the shape of y)
  db[k] = sum_{n,p,q} dy[n,k,p,q]                                                     (B1)
  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x_pad[n, g(k)*C/G + c, p*stride_h + r*dil_h,
                                                 q*stride_w + s*dil_w]                (B2)
  dx = full convolution of the stride-dilated dy with rot180(w), cropped to x          (B3)

This module validates once, then dispatches each pass (forward, input gradient, weight
gradient) to an algorithm of ``ALGORITHMS``. The bias terms (F1, B1) are shared by all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from convprop import _native
from convprop._native import bias
from convprop._shapes import ConvGeometry, conv_geometry
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError
from convprop.functional import (
    conv2d_crop,
    conv2d_depthwise,
    conv2d_direct,
    conv2d_fft,
    conv2d_ieee,
    conv2d_im2col,
    conv2d_prepared,
    conv2d_select,
    conv2d_winograd,
    conv2d_winograd4,
)
from convprop.functional._checks import check_upstream, require_array
from convprop.functional._conv_common import empty_batch_gradients


class ConvAlgorithm(Protocol):
    """What every conv2d algorithm module provides (all without bias).

    ``forward`` returns ``(y, saved)``: ``saved`` is work of the forward pass that the same
    algorithm's weight gradient can reuse (im2col's columns, FFT's input spectrum), or
    None. ``backward`` computes both gradients at once so that an algorithm can share work
    between them (FFT transforms dy once); ``backward_data`` / ``backward_weight`` serve
    when ``auto`` gives the two passes to different algorithms.
    """

    NAME: str

    def decline(self, geom: ConvGeometry) -> str | None: ...

    def forward(self, x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]: ...

    def backward_data(self, dy: Array, w: Array, geom: ConvGeometry) -> Array: ...

    def backward_weight(self, dy: Array, x: Array, geom: ConvGeometry, saved: Any) -> Array: ...

    def backward(
        self, dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
    ) -> tuple[Array | None, Array]: ...


ALGORITHMS: dict[str, ConvAlgorithm] = {
    module.NAME: module
    for module in (
        conv2d_direct,
        conv2d_im2col,
        conv2d_fft,
        conv2d_winograd,
        conv2d_winograd4,
        conv2d_depthwise,
    )
}
"""Registered conv2d algorithms by name; ``"auto"`` chooses among them per pass."""

PASSES = ("forward", "data", "weight")


@dataclass(frozen=True, slots=True)
class Conv2dCache:
    """What conv2d_backward needs.

    Fields
    ------
    x : Array (N, C, H, W)
        The forward input (a reference, not a copy: N·C·H·W elements already alive).
    w : Array (K, C/G, R, S)
        The weights (a reference).
    has_bias : bool
        Whether a bias was given (db is None otherwise).
    geom : ConvGeometry
        The normalised shapes and hyperparameters.
    algorithms : tuple[str, str, str]
        The algorithm used or to be used for the forward, input-gradient and
        weight-gradient passes.
    saved : object or None
        Forward work the weight-gradient algorithm reuses (kept only when the forward and
        weight passes use the same algorithm): im2col's columns (N·C·R·S·P·Q elements,
        kept only below the workspace budget), FFT's input and kernel spectra (about
        (N + K)·C/G·Hp·Wp/2 complex numbers) or Winograd's input tiles.
    auto : bool
        Whether ``auto`` chose the algorithms: the backward then checks dy for non-finite
        values where a pass would not keep IEEE semantics (conv2d_ieee).
    crop : (conv2d_crop.Crop, tuple of Conv2dCache) or None
        For geometry far beyond the input (CR1-CR3): the reduced problem and the caches of
        its pieces (none when every window reads padding only).
    """

    x: Array
    w: Array
    has_bias: bool
    geom: ConvGeometry
    algorithms: tuple[str, str, str]
    saved: Any = None
    auto: bool = False
    crop: Any = None


_AUTO_CHOICES: dict[tuple[Any, ...], tuple[str, str, str]] = {}
_AUTO_CHOICES_KEPT = 512


def resolve_algorithms(
    op: str,
    algorithm: str,
    geom: ConvGeometry,
    w: Array,
    *,
    inputs: tuple[Array, ...] = (),
    data_pass_later: bool = False,
) -> tuple[str, str, str]:
    """Return the algorithm name for each pass, checking that an explicit choice applies.

    ``auto`` keeps IEEE semantics: where its choice includes a pass that does not
    (conv2d_ieee), the ``inputs`` (the arrays the passes will read) are checked with one
    ``isfinite`` pass each, and a non-finite value makes it take the IEEE algorithms; with
    ``data_pass_later`` (conv2d's forward) a choice whose only such pass is the input
    gradient is checked by the backward instead.

    Raises
    ------
    ParameterError
        For an unknown algorithm name.
    NotImplementedError
        When the named algorithm cannot compute this case, with its reason.
    """
    choice = _choice(op, algorithm, geom, w)
    if algorithm != "auto":
        return choice
    return _ieee_if_non_finite(choice, geom, w, inputs, data_pass_later)


def _choice(op: str, algorithm: str, geom: ConvGeometry, w: Array) -> tuple[str, str, str]:
    """:func:`resolve_algorithms` before the IEEE check of the values: a function of the
    geometry, w's kind and dtype and the cost model's rates alone."""
    if not isinstance(algorithm, str) or (algorithm != "auto" and algorithm not in ALGORITHMS):
        raise ParameterError(
            f"{op}: unknown algorithm; expected one of {['auto', *ALGORITHMS]}, got {algorithm!r}"
        )
    if algorithm == "auto":
        return _auto_choice(geom, w)
    return _named_choice(op, algorithm, geom)


def _named_choice(op: str, algorithm: str, geom: ConvGeometry) -> tuple[str, str, str]:
    """A named algorithm for every pass, where it can compute the case."""
    reason = ALGORITHMS[algorithm].decline(geom)
    if reason is not None:
        raise NotImplementedError(
            f"{op}: algorithm {algorithm!r} cannot compute this case: {reason} ({geom.describe()})"
        )
    return (algorithm, algorithm, algorithm)


def _auto_choice(geom: ConvGeometry, w: Array) -> tuple[str, str, str]:
    """``auto``'s choice of the three passes by the cost model (or the timing cache), before
    the IEEE check of the values."""
    xp = get_xp(w)
    # the compiled kernels change the timings: measured choices are kept apart
    compiled = _native.runs_compiled(w)
    # the cost model's choice is a function of these alone: remembered (measured
    # choices come from the timing cache's own table)
    key = (geom, w.dtype, xp.__name__, compiled, conv2d_select.calibration())
    known = _AUTO_CHOICES.get(key) if not conv2d_select.timing_cache_enabled() else None
    if known is not None:
        return known
    candidates = [
        name
        for name, algo in ALGORITHMS.items()
        if algo.decline(geom) is None and conv2d_select.may_choose(name)
    ]

    def measure(name: str, pass_name: str) -> Callable[[], object]:
        """One run of a pass on zeros (used only when the timing cache is enabled)."""
        algo = ALGORITHMS[name]
        x = xp.zeros(geom.x_shape, dtype=w.dtype)
        dy = xp.zeros(geom.y_shape, dtype=w.dtype)
        if pass_name == "forward":
            return lambda: algo.forward(x, w, geom)
        if pass_name == "data":
            return lambda: algo.backward_data(dy, w, geom)
        return lambda: algo.backward_weight(dy, x, geom, None)

    backend = xp.__name__ + ("+kernels" if compiled else "")
    dtype = w.dtype.name
    forward, data, weight = (
        conv2d_select.choose(
            geom, pass_name, dtype, candidates, measure=measure, backend=backend,
            compiled=compiled,
        )
        for pass_name in PASSES
    )  # fmt: skip
    weight = conv2d_select.weight_after_forward(
        geom, dtype, forward, weight, candidates, compiled=compiled
    )
    if not conv2d_select.timing_cache_enabled():
        if len(_AUTO_CHOICES) >= _AUTO_CHOICES_KEPT:
            _AUTO_CHOICES.clear()
        _AUTO_CHOICES[key] = (forward, data, weight)
    return (forward, data, weight)


def _ieee_if_non_finite(
    choice: tuple[str, str, str], geom: ConvGeometry, w: Array, inputs: tuple[Array, ...],
    data_pass_later: bool = False,
) -> tuple[str, str, str]:  # fmt: skip
    """``auto``'s ``choice``, or the IEEE algorithms' where a pass of it does not keep IEEE
    semantics and an input holds a NaN or ±∞ (one isfinite pass per input, only then).

    Where every pass's algorithm computes the sums (direct, im2col, depthwise), only the
    input gradient (B3) over a padded dy can differ, and only for a non-finite w. Where that
    pass runs later (``data_pass_later``: conv2d's forward), the backward checks the w it
    reads, and a forward alone, as in inference, needs no check (4.5 µs a call for lenet2's
    51 200 weights); conv_transpose2d's forward is (B3) itself."""
    if not inputs or conv2d_ieee.keeps_ieee(choice):
        return choice
    if all(name in conv2d_ieee.IEEE_ALGORITHMS for name in choice):
        if data_pass_later:
            return choice
        inputs = (w,)  # only (B3) over a padded dy differs, and only for a non-finite w
    if conv2d_ieee.all_finite(*inputs):
        return choice
    candidates = [name for name, algo in ALGORITHMS.items() if algo.decline(geom) is None]
    return conv2d_ieee.ieee_algorithms(geom, w.dtype.name, candidates, _native.runs_compiled(w))


def conv2d_forward(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> tuple[Array, Conv2dCache]:
    """Convolution forward pass, equation (F1).

    Parameters
    ----------
    x : Array (N, C, H, W)
        Input, float32 or float64.
    w : Array (K, C/groups, R, S)
        Filters; same dtype as x.
    b : Array (K,) or None
        Bias.
    stride, dilation : int or (int, int)
        Positive.
    padding : int, (pad_h, pad_w), ((top, bottom), (left, right)), "valid" or "same"
        Zero-padding; "same" is TensorFlow's rule (output ceil(H/stride), odd pixel at the
        bottom/right).
    groups : int
        Divides C and K; ``groups == C == K`` is a depthwise convolution.
    algorithm : {"auto", "direct", "im2col", "fft", "winograd", "winograd4", "depthwise"}
        "auto" picks one per pass by a cost model and never declines ("winograd4" only
        after ``conv2d_select.allow_lossy()``).

    Returns
    -------
    y : Array (N, K, P, Q)
        Same dtype as x; P, Q from (S1).
    cache : Conv2dCache
        For conv2d_backward.

    Raises
    ------
    ShapeError, ParameterError, DTypeError, BackendError
        Bad shapes, hyperparameters, dtypes or mixed devices; the message names what came.
    NotImplementedError
        When a named algorithm cannot do the case (never for "auto").

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2))
    >>> y, cache = conv2d_forward(x, w, stride=2)
    >>> y[0, 0]
    array([[10., 18.],
           [42., 50.]])
    >>> dx, dw, db = conv2d_backward(np.ones_like(y), cache)
    >>> dx[0, 0, 0], db is None
    (array([1., 1., 1., 1.]), True)
    """
    op = "conv2d"
    key = conv2d_prepared.signature(x, w, b, stride, padding, dilation, groups, algorithm)
    known = conv2d_prepared.CALLS.recall(key)
    if known is None:  # the checks and choices of a call not seen before
        geom = _checked_geometry(op, x, w, b, stride, padding, dilation, groups)
        if geom.N == 0:
            return _empty_batch_forward(op, algorithm, x, w, b, geom)
        reduced = conv2d_crop.crop(geom)
        if reduced is not None:  # (CR1)-(CR3): only the taps and the part of x_pad windows read
            return _cropped_forward(x, w, b, geom, reduced, algorithm)
        choice = _choice(op, algorithm, geom, w)  # refuses an unknown or unfit name
        conv2d_prepared.CALLS.keep(key, (geom, choice))
    else:
        geom, choice = known
    algorithms = choice
    if algorithm == "auto":  # a NaN or ±inf in x or w: passes that keep IEEE semantics
        algorithms = _ieee_if_non_finite(choice, geom, w, (x, w), data_pass_later=True)
    xp = get_xp(x, w, b)
    forward_algo = ALGORITHMS[algorithms[0]]
    fused = b is not None and getattr(forward_algo, "FUSES_BIAS", False)
    if fused:  # the algorithm adds the bias as it writes y
        y, saved = forward_algo.forward(x, w, geom, b)  # type: ignore[call-arg]  # (F1)
    else:
        y, saved = forward_algo.forward(x, w, geom)  # (F1) -> (N, K, P, Q)
    y = xp.ascontiguousarray(y, dtype=x.dtype)
    if b is not None and not fused:
        _add_bias(y, b)  # (F1) the bias term
    if algorithms[2] != algorithms[0]:
        saved = None  # another algorithm computes dw: nothing to reuse
    cache = Conv2dCache(x, w, b is not None, geom, algorithms, saved, auto=algorithm == "auto")
    return y, cache


def _checked_geometry(
    op: str, x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: Any
) -> ConvGeometry:
    """The checks of a forward call (arrays, one device, dtypes, shapes and hyperparameters)
    and its geometry (S1)."""
    require_array(op, "x", x)
    require_array(op, "w", w)
    if b is not None:
        require_array(op, "b", b)
    get_xp(x, w, b)  # refuses arrays of two devices
    check_float_dtype(op, x=x, w=w, b=b)
    b_shape = None if b is None else b.shape
    return conv_geometry(op, x.shape, w.shape, b_shape, stride=stride, padding=padding,
                         dilation=dilation, groups=groups)  # fmt: skip


def _empty_batch_forward(
    op: str, algorithm: str, x: Array, w: Array, b: Array | None, geom: ConvGeometry
) -> tuple[Array, Conv2dCache]:
    """conv2d_forward over an empty batch (N = 0, as PyTorch allows): y is (0, K, P, Q).

    The algorithms are resolved (an explicit one checked) as for one image; none runs, as
    their kernels assume N >= 1.
    """
    algorithms = resolve_algorithms(op, algorithm, replace(geom, N=1), w)
    y = get_xp(x, w).zeros(geom.y_shape, dtype=x.dtype)  # (F1): no images, no terms
    return y, Conv2dCache(x, w, b is not None, geom, algorithms)


def _cropped_forward(
    x: Array, w: Array, b: Array | None, geom: ConvGeometry, reduced: conv2d_crop.Crop,
    algorithm: str,
) -> tuple[Array, Conv2dCache]:  # fmt: skip
    """(F1) as the pieces of the reduced problem (CR3) inside a y of zeros: the outputs and
    taps outside them read padded zeros only.

    A named algorithm must accept the full problem; a piece it cannot compute (Winograd's
    3x3 cut to fewer taps) runs ``direct``, the sums themselves.
    """
    if algorithm != "auto":
        resolve_algorithms("conv2d", algorithm, geom, w)  # refuses what it cannot do
    xp = get_xp(x, w)
    y = xp.zeros(geom.y_shape, dtype=x.dtype)
    pieces = reduced.pieces
    inner = []
    for rows, cols in pieces:
        y_sub, cache = _piece_forward(x, w, geom, rows, cols, algorithm)
        outputs = (slice(None), slice(None), slice(rows.p_lo, rows.p_hi + 1),
                   slice(cols.p_lo, cols.p_hi + 1))  # fmt: skip
        if len(pieces) == 1:
            y[outputs] = y_sub  # (CR2)
        else:
            y[outputs] += y_sub  # (CR3) the pieces' taps add up
        inner.append(cache)
    if b is not None:
        y += b.reshape(1, geom.K, 1, 1)  # (F1) the bias term
    algorithms = inner[0].algorithms if inner else ("direct", "direct", "direct")
    cache = Conv2dCache(x, w, b is not None, geom, algorithms, crop=(reduced, tuple(inner)))
    return y, cache


def _piece_forward(
    x: Array, w: Array, geom: ConvGeometry, rows: conv2d_crop.AxisCrop,
    cols: conv2d_crop.AxisCrop, algorithm: str,
) -> tuple[Array, Conv2dCache]:  # fmt: skip
    """(CR2): one piece, its x rows and columns padded by what its windows read, with its
    taps of w."""
    xp = get_xp(x, w)
    w_sub = xp.ascontiguousarray(w[:, :, rows.r_lo : rows.r_hi + 1, cols.r_lo : cols.r_hi + 1])
    hyper: dict[str, Any] = dict(
        stride=(rows.stride(geom.stride_h), cols.stride(geom.stride_w)),
        padding=((rows.pad_lo, rows.pad_hi), (cols.pad_lo, cols.pad_hi)),
        dilation=(rows.dilation(geom.dil_h), cols.dilation(geom.dil_w)), groups=geom.groups,
    )  # fmt: skip
    if algorithm != "auto":
        x_shape = (geom.N, geom.C, rows.x_hi - rows.x_lo, cols.x_hi - cols.x_lo)
        piece = conv_geometry("conv2d", x_shape, w_sub.shape, None, **hyper)
        if ALGORITHMS[algorithm].decline(piece) is not None:
            algorithm = "direct"
    x_sub = x[:, :, rows.x_lo : rows.x_hi, cols.x_lo : cols.x_hi]
    return conv2d_forward(x_sub, w_sub, algorithm=algorithm, **hyper)


def _cropped_backward(
    dy: Array, cache: Conv2dCache, need_dx: bool
) -> tuple[Array | None, Array, Array | None]:
    """(B1)-(B3) through the pieces of the reduced problem (CR3): dy outside them meets only
    padded zeros."""
    reduced, inner = cache.crop
    xp = get_xp(dy, cache.x)
    dtype = cache.x.dtype
    db = xp.ascontiguousarray(dy.sum(axis=(0, 2, 3)), dtype=dtype) if cache.has_bias else None
    dx = xp.zeros(cache.x.shape, dtype=dtype) if need_dx else None
    dw = xp.zeros(cache.w.shape, dtype=dtype)  # (B2) a tap that reads only zeros: 0
    pieces = reduced.pieces
    for (rows, cols), piece in zip(pieces, inner, strict=True):
        outputs = (slice(None), slice(None), slice(rows.p_lo, rows.p_hi + 1),
                   slice(cols.p_lo, cols.p_hi + 1))  # fmt: skip
        dy_sub = xp.ascontiguousarray(dy[outputs])
        dx_sub, dw_sub, _ = conv2d_backward(dy_sub, piece, need_dx=need_dx)  # (B2), (B3)
        dw[:, :, rows.r_lo : rows.r_hi + 1, cols.r_lo : cols.r_hi + 1] = dw_sub  # (CR3)
        if dx is not None:
            cells = (slice(None), slice(None), slice(rows.x_lo, rows.x_hi),
                     slice(cols.x_lo, cols.x_hi))  # fmt: skip
            if len(pieces) == 1:
                dx[cells] = dx_sub  # (CR2)
            else:
                dx[cells] += dx_sub  # (CR3) the pieces' reads of x add up
    return dx, dw, db


def conv2d_backward(
    dy: Array, cache: Conv2dCache, *, need_dx: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """Convolution backward pass: equations (B3), (B2), (B1).

    Parameters
    ----------
    dy : Array (N, K, P, Q)
        Gradient of the loss with respect to y.
    cache : Conv2dCache
        From conv2d_forward.
    need_dx : bool
        False skips the input gradient (the first layer of a network needs none).

    Returns
    -------
    dx : Array (N, C, H, W) or None
        (B3); None when ``need_dx`` is False.
    dw : Array (K, C/G, R, S)
        (B2).
    db : Array (K,) or None
        (B1); None when the forward had no bias.
    """
    geom = cache.geom
    check_upstream("conv2d_backward", dy, geom.y_shape, cache.x.dtype)
    xp = get_xp(dy, cache.x)
    if geom.N == 0:  # (B1)-(B3) over an empty batch
        return empty_batch_gradients(xp, cache.x, cache.w, geom.K if cache.has_bias else None,
                                     need_dx)  # fmt: skip
    if cache.crop is not None:
        return _cropped_backward(dy, cache, need_dx)
    algorithms, saved = cache.algorithms, cache.saved
    if cache.auto:  # a non-finite dy takes the IEEE algorithms (conv2d_ieee)
        ieee = _ieee_if_non_finite(algorithms, geom, cache.w, (dy,))
        if ieee != algorithms:
            algorithms, saved = ieee, None
    _, data_algorithm, weight_algorithm = algorithms
    db = _bias_gradient(dy) if cache.has_bias else None  # (B1)
    weight_algo = ALGORITHMS[weight_algorithm]
    if data_algorithm == weight_algorithm or not need_dx:
        dx, dw = weight_algo.backward(dy, cache.x, cache.w, geom, saved, need_dx)  # (B3, B2)
    else:
        dw = weight_algo.backward_weight(dy, cache.x, geom, saved)  # (B2)
        dx = ALGORITHMS[data_algorithm].backward_data(dy, cache.w, geom)  # (B3)
    dtype = cache.x.dtype
    return (
        None if dx is None else xp.ascontiguousarray(dx, dtype=dtype),
        xp.ascontiguousarray(dw, dtype=dtype),
        None if db is None else xp.ascontiguousarray(db, dtype=dtype),
    )


@_native.accelerated(bias.add_bias)
def _add_bias(y: Array, b: Array) -> None:
    """(F1)'s bias term, in place: y (N, K, P, Q) += b (K,) broadcast over n, p, q."""
    y += b.reshape(1, -1, 1, 1)  # (F1) the bias term


@_native.accelerated(bias.bias_grad)
def _bias_gradient(dy: Array) -> Array:
    """(B1): db (K,) from dy (N, K, P, Q); compiled, one pass on all cores, where served."""
    return dy.sum(axis=(0, 2, 3))  # (B1) -> (K,)


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> Array:
    """Convolution forward alone; see :func:`conv2d_forward` for the arguments."""
    y, _ = conv2d_forward(
        x,
        w,
        b,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        algorithm=algorithm,
    )
    return y
