"""conv2d_forward's remembered calls (functional/conv2d_prepared.py): a call seen before skips
its checks and choices, and gives what the full path gives; what the checks must see every
time (a bool or float hyperparameter, a wrong shape, other arrays) is never taken from the
table."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from convprop import _native
from convprop._shapes import typed_key
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional import conv2d_cost_model as cost
from convprop.functional import conv2d_forward, conv2d_prepared
from convprop.functional._prepared import PreparedCalls, arrays_signature

CALLS = conv2d_prepared.CALLS


@pytest.fixture(autouse=True)
def _empty_table() -> Iterator[None]:
    CALLS.forget()
    yield
    CALLS.forget()


def _layer(dtype: str = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 9)).astype(dtype)
    w = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    return x, w, rng.standard_normal(6).astype(dtype)


def test_a_repeated_call_is_remembered_once_and_gives_the_same_result() -> None:
    x, w, b = _layer()
    y_first, first = conv2d_forward(x, w, b, stride=2, padding=1)
    assert len(CALLS) == 1
    y_again, again = conv2d_forward(x, w, b, stride=2, padding=1)
    assert len(CALLS) == 1
    np.testing.assert_array_equal(y_again, y_first)
    assert (again.geom, again.algorithms) == (first.geom, first.algorithms)
    conv2d_forward(x[:1], w, b, stride=2, padding=1)  # another batch: another signature
    assert len(CALLS) == 2


@pytest.mark.parametrize("stride", [True, 1.0, (1, True)])
def test_hyperparameters_not_plain_ints_are_checked_every_time(stride: object) -> None:
    """1 == 1.0 == True: after a call with stride=1 is remembered, stride=True or 1.0 is still
    refused by the full checks, every time, and never kept."""
    x, w, _ = _layer()
    conv2d_forward(x, w, stride=1)
    assert len(CALLS) == 1
    for _ in range(2):
        with pytest.raises(ParameterError, match="stride"):
            conv2d_forward(x, w, stride=stride)
    assert len(CALLS) == 1


def test_a_list_stride_is_its_own_signature() -> None:
    """[2, 2] (PyTorch accepts lists) is kept apart from (2, 2), with the same geometry."""
    x, w, _ = _layer()
    y_tuple, by_tuple = conv2d_forward(x, w, stride=(2, 2))
    y_list, by_list = conv2d_forward(x, w, stride=[2, 2])
    assert len(CALLS) == 2 and by_list.geom == by_tuple.geom
    np.testing.assert_array_equal(y_list, y_tuple)


def test_a_refused_call_is_not_remembered_and_other_arrays_are_checked() -> None:
    x, w, _ = _layer()
    conv2d_forward(x, w)
    with pytest.raises(ShapeError, match="channels"):
        conv2d_forward(x[:, :3], w)
    with pytest.raises(DTypeError, match="dtype"):
        conv2d_forward(x.astype(np.float64), w)
    with pytest.raises(DTypeError, match="ndarray"):
        conv2d_forward(x.tolist(), w)
    with pytest.raises(ParameterError, match="padding"):
        conv2d_forward(x, w, padding=(1, 2, 3))
    assert len(CALLS) == 1


def test_the_choice_follows_the_kernels_and_the_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turning the kernels off, or a changed rate of the cost model, is a new signature: the
    choice made then is the full path's (the table emptied gives the same)."""
    x = np.ones((2, 4, 24, 24), dtype=np.float32)
    w = np.ones((4, 4, 9, 9), dtype=np.float32)
    first = conv2d_forward(x, w, padding=4)[1].algorithms
    with _native.disabled():
        numpy_only = conv2d_forward(x, w, padding=4)[1].algorithms
        CALLS.forget()
        assert conv2d_forward(x, w, padding=4)[1].algorithms == numpy_only
    monkeypatch.setattr(cost, "FFT_FLOPS_PER_S", 1e18)  # an FFT for free
    monkeypatch.setattr(cost, "FFT_COMPILED_SHARE", 0.0)
    monkeypatch.setattr(cost, "CALL_SECONDS", 0.0)
    assert conv2d_forward(x, w, padding=4)[1].algorithms[0] == "fft"
    monkeypatch.undo()
    assert conv2d_forward(x, w, padding=4)[1].algorithms == first


def test_a_named_algorithm_that_cannot_compute_the_case_is_refused_every_time() -> None:
    x, w, _ = _layer()
    for _ in range(2):
        with pytest.raises(NotImplementedError, match="winograd"):
            conv2d_forward(x, w, stride=2, algorithm="winograd")
    assert len(CALLS) == 0


def test_signatures() -> None:
    a = np.zeros((2, 3), dtype=np.float32)
    assert arrays_signature(a, None) == ((np.ndarray, (2, 3), np.dtype(np.float32)), None)
    assert arrays_signature(a, [1.0]) is None
    assert [typed_key(v) for v in (1, 1.0, True)] == [1, (float, 1.0), (bool, True)]
    table: PreparedCalls[int] = PreparedCalls(kept=2)
    table.keep(None, 1)
    table.keep(("a",), 1)
    table.keep(("b",), 2)
    assert (table.recall(("a",)), table.recall(None), len(table)) == (1, None, 2)
    table.keep(("c",), 3)  # past `kept`: starts afresh
    assert (len(table), table.recall(("a",)), table.recall(("c",))) == (1, None, 3)
