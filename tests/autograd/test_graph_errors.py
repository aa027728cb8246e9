"""Error branches of the graph's Tensor, Module and Tensor-level ops, each with its message."""

from __future__ import annotations

import numpy as np
import pytest

import convprop
import convprop.nn.functional as F
from convprop import nn
from convprop.errors import ParameterError, ShapeError


def test_assigning_a_parameter_before_module_init_names_the_fix() -> None:
    class Early(nn.Module):
        def __init__(self) -> None:
            self.weight = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"Early: cannot assign 'weight' before Module"):
        Early()


def test_a_sub_module_slot_takes_only_a_module_or_none() -> None:
    net = nn.Sequential(nn.ReLU())
    holder = nn.Module()
    holder.body = net
    with pytest.raises(TypeError, match=r"body is a sub-module; expected a Module or None"):
        holder.body = np.zeros(2)
    holder.body = None
    assert "body" not in holder._modules and holder.body is None


def test_summary_refuses_an_input_shape_that_is_not_sizes() -> None:
    with pytest.raises(ShapeError, match=r"summary: input_shape must be a tuple of sizes"):
        nn.Linear(2, 2).summary(28)  # type: ignore[arg-type]


def test_a_recorded_tensor_cannot_stop_needing_its_gradient() -> None:
    y = convprop.tensor(np.ones(2), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"cannot stop needing its gradient.*\.detach\(\)"):
        y.requires_grad_(False)


def test_len_of_a_0d_tensor_is_refused() -> None:
    with pytest.raises(TypeError, match=r"len\(\) of a 0-d tensor"):
        len(convprop.tensor(np.float64(1.0)))


@pytest.mark.parametrize("op", [F.relu, F.leaky_relu, F.dropout])
def test_in_place_ops_are_refused(op: object) -> None:
    with pytest.raises(ParameterError, match=r"in-place ops would overwrite"):
        op(np.ones(2), inplace=True)  # type: ignore[operator]


def test_batch_norm_inference_needs_the_running_statistics() -> None:
    with pytest.raises(ParameterError, match=r"batch_norm: inference normalises with the running"):
        F.batch_norm(np.ones((2, 3)), None, None, training=False)


@pytest.mark.parametrize(
    ("op", "x", "w", "message"),
    [
        (
            F.conv1d,
            np.ones((1, 2, 5)),
            np.ones((3, 2, 1, 2)),
            r"conv1d: weight must be \(K, C/groups, S\)",
        ),
        (
            F.conv_transpose1d,
            np.ones((1, 2, 5)),
            np.ones((2, 3)),
            r"conv_transpose1d: weight must be \(C_in",
        ),
        (
            F.conv1d,
            np.ones((1, 1, 2, 5)),
            np.ones((3, 1, 2)),
            r"conv1d: input must be \(N, C, \*spatial\) or unbatched .* 1 spatial",
        ),
        (
            F.conv3d,
            np.ones((2, 5)),
            np.ones((3, 1, 2, 2, 2)),
            r"conv3d: input must be .* 3 spatial axes; expected 5 or 4 dimensions, got 2",
        ),
    ],
)
def test_conv_wrappers_name_the_rank_they_expected(
    op: object, x: np.ndarray, w: np.ndarray, message: str
) -> None:
    with pytest.raises(ShapeError, match=message):
        op(x, w)  # type: ignore[operator]
