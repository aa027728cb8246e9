"""Every validation branch of conv2d_forward / conv2d_backward, with its full message.

Messages follow "<op>: <what is wrong>; expected <...>, got <...> (<full shapes>)"; each
test matches the message literally (re.escape), shapes included.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from convprop.backend import cupy_available
from convprop.errors import BackendError, DTypeError, ParameterError, ShapeError
from convprop.functional import conv2d, conv2d_backward, conv2d_forward

X = np.zeros((2, 4, 6, 5))  # N=2, C=4, H=6, W=5
W = np.zeros((6, 4, 3, 3))  # K=6, C=4, R=3, S=3
SHAPES = "x.shape=(2, 4, 6, 5), w.shape=(6, 4, 3, 3)"


def _refused(error: type[Exception], message: str, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(error, match=re.escape(message)):
        conv2d_forward(*args, **kwargs)


@pytest.mark.parametrize(
    ("x", "w", "message"),
    [
        (X[0], W, "conv2d: x must be 4-D (N, C, H, W); expected 4 dimensions, got 3 "
                  "(x.shape=(4, 6, 5), w.shape=(6, 4, 3, 3))"),
        (X[None], W, "conv2d: x must be 4-D (N, C, H, W); expected 4 dimensions, got 5"),
        (X, W[0], "conv2d: w must be 4-D (K, C/groups, R, S); expected 4 dimensions, got 3 "
                  "(x.shape=(2, 4, 6, 5), w.shape=(4, 3, 3))"),
    ],
    ids=["x-rank-3", "x-rank-5", "w-rank-3"],
)  # fmt: skip
def test_wrong_rank_is_refused(x: np.ndarray, w: np.ndarray, message: str) -> None:
    _refused(ShapeError, message, x, w)


def test_empty_plane_is_refused() -> None:  # an empty batch is accepted (test_conv_opinfo)
    _refused(
        ShapeError,
        "conv2d: C, H, W and every dimension of w must be >= 1 (only N may be 0); expected "
        "non-empty planes and filters (x.shape=(2, 4, 0, 5), w.shape=(6, 4, 3, 3))",
        X[:, :, :0], W,
    )  # fmt: skip


def test_channel_mismatch_is_refused() -> None:
    _refused(
        ShapeError,
        "conv2d: x has C=4 channels but w expects C/groups=3 with groups=1, i.e. C=3; "
        "expected w.shape[1] == 4, got 3 (x.shape=(2, 4, 6, 5), w.shape=(6, 3, 3, 3))",
        X, W[:, :3],
    )  # fmt: skip


def test_channel_mismatch_with_groups_is_refused() -> None:
    _refused(
        ShapeError,
        "conv2d: x has C=4 channels but w expects C/groups=4 with groups=2, i.e. C=8; "
        "expected w.shape[1] == 2, got 4",
        X, W, groups=2,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("w", "groups", "message"),
    [
        (np.zeros((6, 1, 3, 3)), 3, "conv2d: groups=3 must divide both C=4 and K=6; expected "
         "C % groups == 0 and K % groups == 0, got C % groups = 1, K % groups = 0 "
         "(x.shape=(2, 4, 6, 5), w.shape=(6, 1, 3, 3))"),
        (np.zeros((5, 2, 3, 3)), 2, "conv2d: groups=2 must divide both C=4 and K=5; expected "
         "C % groups == 0 and K % groups == 0, got C % groups = 0, K % groups = 1"),
    ],
    ids=["C", "K"],
)  # fmt: skip
def test_groups_not_dividing_C_or_K_is_refused(w: np.ndarray, groups: int, message: str) -> None:
    _refused(ParameterError, message, X, w, groups=groups)


@pytest.mark.parametrize("groups", [0, -2, 1.0, True, "2"])
def test_groups_must_be_a_positive_int(groups: Any) -> None:
    _refused(
        ParameterError,
        f"conv2d: groups must be a positive int; expected >= 1, got {groups!r}",
        X, W, groups=groups,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value", [0, -1, (1, 0), (-2, 1)])
def test_non_positive_stride_or_dilation_is_refused(name: str, value: Any) -> None:
    _refused(
        ParameterError,
        f"conv2d: {name} must be >= 1; expected values >= 1, got {value!r}",
        X, W, **{name: value},
    )  # fmt: skip


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value", [1.5, (1, 2, 3), "1", None, np.array([1, 2]), [np.ones(2), 1]])
def test_stride_or_dilation_of_wrong_type_is_refused(name: str, value: Any) -> None:
    _refused(
        ParameterError,
        f"conv2d: {name} must be an int or a pair of ints; expected e.g. 1 or (1, 2), "
        f"got {value!r}",
        X, W, **{name: value},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("padding", "message"),
    [
        (-1, "conv2d: padding must be >= 0; expected values >= 0, got -1"),
        ((0, -1), "conv2d: padding must be >= 0; expected values >= 0, got (0, -1)"),
        (((0, -1), (0, 0)), "conv2d: padding (top, bottom) must be >= 0; expected values >= 0, "
                            "got (0, -1)"),
        (((0, 0), (-1, 0)), "conv2d: padding (left, right) must be >= 0; expected values >= 0, "
                            "got (-1, 0)"),
    ],
    ids=["int", "pair", "top-bottom", "left-right"],
)  # fmt: skip
def test_negative_padding_is_refused(padding: Any, message: str) -> None:
    _refused(ParameterError, message, X, W, padding=padding)


@pytest.mark.parametrize("padding", ["full", "SAME", ""])
def test_unknown_padding_string_is_refused(padding: str) -> None:
    _refused(
        ParameterError,
        f"conv2d: unknown padding string; expected 'same' or 'valid', got {padding!r}",
        X, W, padding=padding,
    )  # fmt: skip


@pytest.mark.parametrize("padding", [1.5, None, (1, 2, 3)])
def test_padding_of_wrong_type_is_refused(padding: Any) -> None:
    _refused(
        ParameterError,
        f"conv2d: padding must be an int or a pair of ints; expected e.g. 1 or (1, 2), "
        f"got {padding!r}",
        X, W, padding=padding,
    )  # fmt: skip


def test_output_height_below_one_is_refused() -> None:
    _refused(
        ShapeError,
        "conv2d: padded input height 4 is smaller than the dilated kernel height 5; expected an "
        "output size >= 1, got 0 (H=2, pad_top+pad_bottom=2, R=3, dil_h=2; "
        "x.shape=(1, 1, 2, 9), w.shape=(1, 1, 3, 3))",
        np.zeros((1, 1, 2, 9)), np.zeros((1, 1, 3, 3)), padding=1, dilation=(2, 1),
    )  # fmt: skip


def test_output_width_below_one_is_refused() -> None:
    _refused(
        ShapeError,
        "conv2d: padded input width 5 is smaller than the dilated kernel width 7; expected an "
        "output size >= 1, got -1 (W=5, pad_left+pad_right=0, S=4, dil_w=2; "
        "x.shape=(1, 1, 9, 5), w.shape=(1, 1, 1, 4))",
        np.zeros((1, 1, 9, 5)), np.zeros((1, 1, 1, 4)), stride=3, dilation=2,
    )  # fmt: skip


def test_numpy_integers_and_lists_are_taken_as_ints_and_pairs() -> None:
    """NumPy integer scalars and lists work like ints and tuples (lists are not hashable:
    their geometry is validated afresh on each call)."""
    y, _ = conv2d_forward(X, W, stride=np.int64(2), padding=[1, np.int32(1)], dilation=[1, 1])
    assert y.shape == (2, 6, 3, 3)
    y, _ = conv2d_forward(X, W, stride=[np.int64(2), 1], padding=np.array(1))
    assert y.shape == (2, 6, 3, 5)


@pytest.mark.parametrize(
    ("name", "value"),
    [("stride", 1.0), ("stride", True), ("stride", (1, 1.0)), ("dilation", (True, 1)),
     ("groups", True), ("padding", 1.0), ("padding", (1, 1.0))],
)  # fmt: skip
def test_a_remembered_geometry_lets_no_look_alike_through(name: str, value: Any) -> None:
    """Valid calls' geometries are remembered; 1.0 and True equal 1 as dictionary keys, yet are
    refused after the same call with 1 succeeded."""
    conv2d_forward(X, W, **{name: 1 if name != "padding" else (1, 1)})
    conv2d_forward(X, W, **{name: 1 if name != "padding" else (1, 1)})
    with pytest.raises(ParameterError, match=f"conv2d: {name}"):
        conv2d_forward(X, W, **{name: value})


def test_a_big_endian_float_array_is_accepted() -> None:
    """The dtype check compares dtype objects first, then names: '>f8' is float64."""
    y, _ = conv2d_forward(X.astype(">f8"), W.astype(">f8"))
    assert y.shape == (2, 6, 4, 3)


@pytest.mark.parametrize(
    ("x", "w", "message"),
    [
        (X.astype(np.int64), W.astype(np.int64),
         "conv2d: x has dtype int64; expected float32 or float64, got int64 "
         "(x.shape=(2, 4, 6, 5))"),
        (X, W.astype(np.int32), "conv2d: w has dtype int32; expected float32 or float64, got "
                                "int32 (w.shape=(6, 4, 3, 3))"),
        (X.astype(np.float16), W.astype(np.float16), "conv2d: x has dtype float16; expected "
                                                     "float32 or float64, got float16"),
        (X.astype(np.complex128), W, "conv2d: x has dtype complex128; expected float32 or "
                                     "float64"),
    ],
    ids=["int64", "int32-w", "float16", "complex"],
)  # fmt: skip
def test_unsupported_dtype_is_refused(x: np.ndarray, w: np.ndarray, message: str) -> None:
    _refused(DTypeError, message, x, w)


def test_mismatched_dtypes_are_refused() -> None:
    _refused(
        DTypeError,
        "conv2d: arrays must share one dtype; expected all float32 or all float64, got "
        "x: float32, w: float64",
        X.astype(np.float32), W,
    )  # fmt: skip
    _refused(
        DTypeError,
        "conv2d: arrays must share one dtype; expected all float32 or all float64, got "
        "x: float64, w: float64, b: float32",
        X, W, np.zeros(6, dtype=np.float32),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((X.tolist(), W), "conv2d: x must be a numpy or cupy array; expected an ndarray, got list"),
        ((X, 1.0), "conv2d: w must be a numpy or cupy array; expected an ndarray, got float"),
        ((X, W, [0.0] * 6), "conv2d: b must be a numpy or cupy array; expected an ndarray, "
                            "got list"),
    ],
    ids=["x", "w", "b"],
)  # fmt: skip
def test_non_array_input_is_refused(args: tuple[Any, ...], message: str) -> None:
    _refused(DTypeError, message, *args)


@pytest.mark.parametrize("b", [np.zeros(5), np.zeros((6, 1)), np.zeros(())])
def test_bias_of_wrong_shape_is_refused(b: np.ndarray) -> None:
    _refused(
        ShapeError,
        f"conv2d: b must have shape (K,) = (6,); expected (6,), got {b.shape} "
        f"({SHAPES}, b.shape={b.shape})",
        X, W, b,
    )  # fmt: skip


@pytest.mark.parametrize("algorithm", ["gemm", "Direct", "", None, 1])
def test_unknown_algorithm_is_refused(algorithm: Any) -> None:
    _refused(
        ParameterError,
        "conv2d: unknown algorithm; expected one of ['auto', 'direct', 'im2col', 'fft', "
        f"'winograd', 'winograd4', 'depthwise'], got {algorithm!r}",
        X, W, algorithm=algorithm,
    )  # fmt: skip


def test_winograd4_declines_with_the_case_described() -> None:
    with pytest.raises(NotImplementedError) as caught:
        conv2d(X, W, stride=2, padding=1, algorithm="winograd4")
    assert str(caught.value) == (
        "conv2d: algorithm 'winograd4' cannot compute this case: F(4x4, 3x3) needs stride 1, "
        "got stride=(2, 2) (x.shape=(2, 4, 6, 5), "
        "w.shape=(6, 4, 3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), "
        "groups=1)"
    )
    with pytest.raises(NotImplementedError) as caught:
        conv2d(X, W[:, :, :2], algorithm="winograd4")
    assert "F(4x4, 3x3) needs a 3x3 kernel, got R x S = 2 x 3" in str(caught.value)


def test_winograd_declines_with_the_case_described() -> None:
    with pytest.raises(NotImplementedError) as caught:
        conv2d(X, W, stride=2, padding=1, algorithm="winograd")
    assert str(caught.value) == (
        "conv2d: algorithm 'winograd' cannot compute this case: F(2x2, 3x3) needs stride 1, "
        "got stride=(2, 2) (x.shape=(2, 4, 6, 5), "
        "w.shape=(6, 4, 3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), "
        "groups=1)"
    )


# --- backward -------------------------------------------------------------------------


@pytest.fixture
def cache() -> Any:
    _, cache = conv2d_forward(X, W, np.zeros(6))  # y (2, 6, 4, 3)
    return cache


@pytest.mark.parametrize("shape", [(2, 6, 4, 4), (1, 6, 4, 3), (2, 6, 12), (2, 5, 4, 3)])
def test_dy_of_the_wrong_shape_is_refused(cache: Any, shape: tuple[int, ...]) -> None:
    message = (
        f"conv2d_backward: dy.shape={shape} does not match the forward output; expected "
        f"(2, 6, 4, 3), got {shape}"
    )
    with pytest.raises(ShapeError, match=re.escape(message)):
        conv2d_backward(np.zeros(shape), cache)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_dy_of_the_wrong_dtype_is_refused(cache: Any, dtype: str) -> None:
    message = (
        f"conv2d_backward: dy has dtype {dtype}; expected the forward dtype float64, got "
        f"{dtype} (dy.shape=(2, 6, 4, 3))"
    )
    with pytest.raises(DTypeError, match=re.escape(message)):
        conv2d_backward(np.zeros((2, 6, 4, 3), dtype=dtype), cache)


def test_dy_that_is_not_an_array_is_refused(cache: Any) -> None:
    message = "conv2d_backward: dy must be a numpy or cupy array; expected an ndarray, got list"
    with pytest.raises(DTypeError, match=re.escape(message)):
        conv2d_backward(np.zeros((2, 6, 4, 3)).tolist(), cache)


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="CuPy with a visible NVIDIA GPU is not available")
def test_mixed_numpy_and_cupy_are_refused() -> None:  # pragma: no cover - needs a GPU
    import cupy

    with pytest.raises(BackendError, match=re.escape("get_xp: arrays from different array")):
        conv2d(cupy.asarray(X), W)
