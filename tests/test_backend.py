"""The array-module helpers that are not covered through the ops."""

from __future__ import annotations

import numpy as np
import pytest

from convprop.backend import BackendError, get_xp, to_device, to_host


def test_get_xp_ignores_none_and_defaults_to_numpy() -> None:
    assert get_xp(None) is np
    assert get_xp(np.zeros(1), None) is np


def test_to_device_cpu_round_trip_and_unknown_device() -> None:
    a = np.arange(3.0)
    assert np.array_equal(to_host(to_device(a, "cpu")), a)
    with pytest.raises(ValueError, match="to_device: unknown device; expected 'cpu' or 'cuda'"):
        to_device(a, "tpu")


def test_backend_error_is_a_type_error() -> None:
    assert issubclass(BackendError, TypeError)
