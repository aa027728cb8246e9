"""The gradient Allreduce, fused: few large messages instead of one per parameter.

Notation  W ranks r = 0..W−1;  n_r samples in rank r's part of the global batch;
          g_r the gradient of rank r's mean loss over its n_r samples
  the global batch's mean gradient:   g = Σ_r n_r·g_r / Σ_r n_r                          (DP3)
  with equal parts (n_r = n):         g = (1/W)·Σ_r g_r
  one buffer: [n_r·g_r of every parameter, flattened | n_r | extras]; one in-place
  Allreduce (sum) per buffer, then the gradients are divided by the summed count          (DP4)

As Horovod's tensor fusion, consecutive gradients of one dtype are packed into one
contiguous buffer until it would exceed ``fusion_bytes`` (64 MiB by default, Horovod's
threshold); a gradient larger than that goes alone. The parameters are taken from the last
to the first, the order in which a backward pass finishes them. Buffers are allocated
once per plan and reused at every step.

Each MPI call has a latency of microseconds to tens of microseconds (more across machines),
and LeNet has 8 parameter arrays: fused, a step makes one call instead of eight.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy

from convprop.backend import Array, get_xp, to_host
from convprop.distributed.comm import Communicator, world
from convprop.errors import ParameterError
from convprop.nn import Module, Parameter

DEFAULT_FUSION_BYTES = 64 * 2**20
"""Horovod's default fusion threshold (HOROVOD_FUSION_THRESHOLD): 64 MiB."""


@dataclass
class Bucket:
    """Parameters whose gradients travel in one buffer.

    Attributes
    ----------
    params : list of Parameter
        In packing order.
    offsets : list of int
        Where each gradient starts in the buffer.
    size : int
        The gradients' elements; the buffer has ``size + 1 + extras`` (DP4).
    buffer : Array (size + 1 + extras,)
        Host or device array of the gradients' dtype, reused at every step.
    """

    params: list[Parameter]
    offsets: list[int]
    size: int
    buffer: Array


def plan_buckets(
    params: Sequence[Parameter], fusion_bytes: int = DEFAULT_FUSION_BYTES
) -> list[list[Parameter]]:
    """Group ``params`` (last first) into fusion buckets of one dtype and device.

    Parameters
    ----------
    params : sequence of Parameter
        Those that need a gradient.
    fusion_bytes : int
        The largest buffer, in bytes (>= 1); a larger gradient gets a bucket of its own.

    Returns
    -------
    list of list of Parameter

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> p = [Parameter(np.zeros(n, np.float32)) for n in (100, 200, 300)]
    >>> [[q.shape[0] for q in b] for b in plan_buckets(p, fusion_bytes=2000)]
    [[300, 200], [100]]
    """
    if isinstance(fusion_bytes, bool) or not isinstance(fusion_bytes, int) or fusion_bytes < 1:
        raise ParameterError(
            f"plan_buckets: fusion_bytes is the largest buffer; expected an int >= 1, "
            f"got {fusion_bytes!r}"
        )
    buckets: list[list[Parameter]] = []
    current: list[Parameter] = []
    used = 0
    for param in reversed(list(params)):
        grad = param.grad
        nbytes = int(grad.size) * grad.dtype.itemsize
        same_kind = bool(current) and (
            current[0].grad.dtype == grad.dtype and get_xp(current[0].grad) is get_xp(grad)
        )
        if current and (not same_kind or used + nbytes > fusion_bytes):
            buckets.append(current)
            current, used = [], 0
        current.append(param)
        used += nbytes
    if current:
        buckets.append(current)
    return buckets


class GradientFusion:
    """Allreduce the gradients of a fixed list of parameters in fused buffers (DP3, DP4).

    Parameters
    ----------
    params : iterable of Parameter
        Those without ``requires_grad`` are left out (as PyTorch's DDP).
    fusion_bytes : int
        The largest buffer in bytes.
    comm : communicator, optional
        ``convprop.distributed.world()`` by default.

    Attributes
    ----------
    buckets : list of Bucket
    seconds : float
        Time spent in the Allreduce calls so far (the benchmark reads it).
    calls : int
        Allreduce calls so far.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        *,
        fusion_bytes: int = DEFAULT_FUSION_BYTES,
        comm: Communicator | None = None,
        extras: int = 2,
    ) -> None:
        self.comm = comm if comm is not None else world()
        trained = [p for p in params if p.requires_grad]
        if not trained:
            raise ParameterError(
                "GradientFusion: nothing to reduce; expected at least one Parameter with "
                "requires_grad, got none"
            )
        self.extras = extras
        self.buckets: list[Bucket] = []
        for group in plan_buckets(trained, fusion_bytes):
            offsets = numpy.cumsum([0] + [int(p.grad.size) for p in group]).tolist()
            xp = get_xp(group[0].grad)
            tail = 1 + extras if not self.buckets else 1  # the count travels in every buffer
            buffer = xp.empty(offsets[-1] + tail, dtype=group[0].grad.dtype)
            self.buckets.append(Bucket(group, offsets[:-1], offsets[-1], buffer))
        self.seconds = 0.0
        self.calls = 0

    def allreduce(self, count: int | None = None, extras: Sequence[float] = ()) -> list[float]:
        """Replace every gradient by its mean over the ranks' samples; sum ``extras``.

        Parameters
        ----------
        count : int, optional
            This rank's n_r: gradients are weighted by it (DP3). None: the ranks' gradients
            are averaged with equal weights (divided by the world size).
        extras : sequence of float
            Up to ``extras`` numbers summed over the ranks in the same message (the
            training loop sends n_r·loss_r and the number of correct labels).

        Returns
        -------
        list of float
            [Σ_r n_r (or W), the summed extras...].
        """
        if len(extras) > self.extras:
            raise ParameterError(
                f"GradientFusion.allreduce: too many extras; expected at most {self.extras}, "
                f"got {len(extras)}"
            )
        weight = 1.0 if count is None else float(count)
        if self.comm.size == 1:  # the mean over one rank is its own gradient, bit for bit
            return [weight, *(float(v) for v in extras)]
        summed: list[float] = []
        for index, bucket in enumerate(self.buckets):
            buffer = bucket.buffer
            for param, offset in zip(bucket.params, bucket.offsets, strict=True):
                buffer[offset : offset + param.grad.size] = param.grad.reshape(-1)  # (DP4)
            if count is not None:
                buffer[: bucket.size] *= weight  # n_r·g_r (DP3)
            buffer[bucket.size] = weight
            if index == 0:
                padded = [*extras, *([0.0] * (self.extras - len(extras)))]
                buffer[bucket.size + 1 :] = padded
            self._sum(buffer)
            total = buffer[bucket.size]  # Σ_r n_r, or W
            buffer[: bucket.size] /= total  # (DP3)
            for param, offset in zip(bucket.params, bucket.offsets, strict=True):
                param.grad[...] = buffer[offset : offset + param.grad.size].reshape(
                    param.grad.shape
                )
            if index == 0:
                summed = [float(v) for v in to_host(buffer[bucket.size :])]
        return summed[: 1 + len(extras)]

    def _sum(self, buffer: Array) -> None:
        """One in-place Allreduce; a device buffer goes through one host copy each way."""
        started = time.perf_counter()
        if isinstance(buffer, numpy.ndarray):
            self.comm.allreduce_sum(buffer)
        else:  # CuPy: an MPI built without CUDA support reads host memory only
            host = to_host(buffer)
            self.comm.allreduce_sum(host)
            buffer[...] = get_xp(buffer).asarray(host)
        self.seconds += time.perf_counter() - started
        self.calls += 1


def allreduce_gradients(
    model: Module | Iterable[Parameter],
    count: int | None = None,
    *,
    fusion_bytes: int = DEFAULT_FUSION_BYTES,
) -> float:
    """After ``loss.backward()``: every gradient becomes the mean over all ranks (DP3, DP4).

    Parameters
    ----------
    model : Module or iterable of Parameter
    count : int, optional
        The number of samples this rank's loss averaged (n_r); with it the result is the
        mean gradient of the whole global batch even when the ranks' parts differ in size.
        Without it the ranks' gradients are averaged with equal weights.
    fusion_bytes : int
        The largest fused buffer.

    Returns
    -------
    float
        Σ_r n_r (the global batch), or the world size when ``count`` is None.

    Notes
    -----
    This builds its buffers at each call; a training loop keeps a ``GradientFusion``.
    On one process the gradients are left untouched.
    """
    params = model.parameters() if isinstance(model, Module) else list(model)
    if world().size == 1:
        return float(1 if count is None else count)
    fusion = GradientFusion(params, fusion_bytes=fusion_bytes, extras=0)
    return fusion.allreduce(count)[0]
