"""Batch normalisation with the statistics of the whole global batch (SyncBatchNorm).

Notation  rank r holds x_r (N_r,C,H,W); per channel it has n_r = N_r·H·W values;
          m = Σ_r n_r;  sums run over a channel's values on the rank named
Forward in training mode (then BN3–BN6 of convprop.functional.normalization, with m):
  μ_r = (1/n_r) Σ x_r;  M2_r = Σ (x_r − μ_r)²     -- each rank's moments, one Allgather  (SBN1)
  μ = Σ_r n_r·μ_r / m                                                                    (SBN2)
  σ² = (1/m) Σ_r (M2_r + n_r·(μ_r − μ)²)          -- the pooled biased variance         (SBN3)
Backward  (rank r's dy is the gradient of its own mean loss L_r; the objective is
           L = Σ_r w_r·L_r, and convprop.distributed's gradient mean (DP3) weighs by w_r)
  w_r = n_r / m                                                                          (SBN4)
  dx̂ = dy·γ;  A = Σ_r w_r Σ dx̂_r;  B = Σ_r w_r Σ dx̂_r·x̂_r   -- one Allgather          (SBN5)
  dx_r = invstd·(dx̂_r − (A + x̂_r·B) / n_r)       -- (1/w_r)·∂L/∂x_r                    (SBN6)
  dγ = Σ dy·x̂ and dβ = Σ dy over this rank's values (BN9, BN8): the local gradients of
  L_r, which DP3 then averages with the weights w_r                                      (SBN7)

On one rank w = 1 and SBN6 is BN11. With equal parts SBN6 is PyTorch's SyncBatchNorm
backward. The moments are gathered and combined in rank order on every rank, so every
rank computes the same bits. In inference mode it is BatchNorm (BN7), with no message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.autograd import Tensor
from convprop.autograd.tensor import record
from convprop.backend import Array, get_xp, to_host
from convprop.distributed.comm import Communicator, world
from convprop.errors import ShapeError
from convprop.nn import BatchNorm2d, Module, register
from convprop.nn import functional as F

AXES = (0, 2, 3)
"""The axes n, h, w of the values of one channel."""


def local_moments(x: Array) -> Array:
    """(3, C): n_r, μ_r and M2_r of each channel of x (N, C, H, W) (SBN1)."""
    N, C, H, W = x.shape
    mean = x.mean(axis=AXES)  # (SBN1) -> (C,)
    centred = x - mean.reshape(1, C, 1, 1)
    m2 = (centred * centred).sum(axis=AXES)  # (SBN1) -> (C,)
    count = get_xp(x).full(C, N * H * W, dtype=x.dtype)
    return get_xp(x).stack([count, mean, m2])


def combine_moments(gathered: Array) -> tuple[int, Array, Array]:
    """(m, μ (C,), σ² (C,)) from every rank's moments (W, 3, C), in rank order (SBN2, SBN3)."""
    counts, means, m2s = gathered[:, 0], gathered[:, 1], gathered[:, 2]  # (W, C) each
    m = counts[:, 0].sum()
    mean = (counts * means).sum(axis=0) / m  # (SBN2) -> (C,)
    deviation = means - mean  # (W, C)
    var = (m2s + counts * deviation * deviation).sum(axis=0) / m  # (SBN3) -> (C,)
    return round(float(m)), mean, var


def local_gradient_sums(dy: Array, x: Array, mean: Array, invstd: Array, gamma: Array) -> Array:
    """(2, C): Σ dx̂ and Σ dx̂·x̂ over this rank's values of each channel (SBN5, unweighted)."""
    C = x.shape[1]
    xhat = (x - mean.reshape(1, C, 1, 1)) * invstd.reshape(1, C, 1, 1)  # (BN3)
    dxhat = dy * gamma.reshape(1, C, 1, 1)  # (BN10)
    return get_xp(x).stack([dxhat.sum(axis=AXES), (dxhat * xhat).sum(axis=AXES)])


def input_gradient(
    dy: Array, x: Array, mean: Array, invstd: Array, gamma: Array, sums: Array
) -> Array:
    """dx (N, C, H, W) of this rank from the weighted global sums (2, C): A and B (SBN6)."""
    N, C, H, W = x.shape
    n = N * H * W
    invstd4 = invstd.reshape(1, C, 1, 1)
    xhat = (x - mean.reshape(1, C, 1, 1)) * invstd4  # (BN3)
    dxhat = dy * gamma.reshape(1, C, 1, 1)  # (BN10)
    A, B = sums[0].reshape(1, C, 1, 1), sums[1].reshape(1, C, 1, 1)
    return invstd4 * (dxhat - (A + xhat * B) / n)  # (SBN6)


@dataclass(frozen=True, slots=True)
class SyncBatchNormCache:
    """What sync_batch_norm_backward needs.

    Fields
    ------
    x : Array (N, C, H, W)
        The input (a reference).
    mean, invstd : Array (C,)
        The global μ (SBN2) and 1/√(σ² + eps) (SBN3, BN3).
    gamma : Array (C,)
    share : float
        w_r = n_r / m (SBN4).
    comm : communicator
    new_running_mean, new_running_var : Array (C,)
        BN5 and BN6 with the global m.
    """

    x: Array
    mean: Array
    invstd: Array
    gamma: Array
    share: float
    comm: Any
    new_running_mean: Array
    new_running_var: Array


def sync_batch_norm_forward(
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    *,
    comm: Communicator,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, SyncBatchNormCache]:
    """Training-mode forward with the global batch's statistics (SBN1–SBN3, BN3–BN6).

    Parameters
    ----------
    x : Array (N, C, H, W)
        This rank's part of the batch.
    gamma, beta, running_mean, running_var : Array (C,)
    comm : communicator
        Every rank of ``comm`` must call this with the same C, in the same order.

    Returns
    -------
    y : Array (N, C, H, W)
    cache : SyncBatchNormCache
    """
    if x.ndim != 4:
        raise ShapeError(
            f"sync_batch_norm: x must be (N, C, H, W); expected 4 dimensions, got {x.ndim} "
            f"(x.shape={tuple(x.shape)})"
        )
    xp = get_xp(x)
    C = x.shape[1]
    moments = local_moments(x)  # (SBN1) -> (3, C)
    gathered = xp.asarray(comm.allgather(to_host(moments)))  # (W, 3, C)
    m, mean, var = combine_moments(gathered)  # (SBN2), (SBN3)
    if m <= 1:
        raise ShapeError(
            f"sync_batch_norm: training mode needs more than 1 value per channel over all "
            f"ranks; expected m > 1, got m={m} (x.shape={tuple(x.shape)})"
        )
    invstd = 1 / xp.sqrt(var + eps)  # (BN3) -> (C,)
    xhat = (x - mean.reshape(1, C, 1, 1)) * invstd.reshape(1, C, 1, 1)  # (BN3)
    y = gamma.reshape(1, C, 1, 1) * xhat + beta.reshape(1, C, 1, 1)  # (BN4)
    cache = SyncBatchNormCache(
        x=x,
        mean=mean,
        invstd=invstd,
        gamma=gamma,
        share=float(moments[0, 0]) / m,  # (SBN4)
        comm=comm,
        new_running_mean=(1 - momentum) * running_mean + momentum * mean,  # (BN5)
        new_running_var=(1 - momentum) * running_var + momentum * var * (m / (m - 1)),  # (BN6)
    )
    return y, cache


def sync_batch_norm_backward(dy: Array, cache: SyncBatchNormCache) -> tuple[Array, Array, Array]:
    """(dx, dγ, dβ) of this rank (SBN5–SBN7); one Allgather of 2·C numbers.

    Every rank of the forward's communicator must call this, in the same order.
    """
    x, C = cache.x, cache.x.shape[1]
    xp = get_xp(x)
    sums = local_gradient_sums(dy, x, cache.mean, cache.invstd, cache.gamma)  # (2, C)
    weighted = to_host(sums) * cache.share  # w_r·Σ (SBN5)
    total = xp.asarray(cache.comm.allgather(weighted).sum(axis=0))  # A, B in rank order (SBN5)
    dx = input_gradient(dy, x, cache.mean, cache.invstd, cache.gamma, total)  # (SBN6)
    xhat = (x - cache.mean.reshape(1, C, 1, 1)) * cache.invstd.reshape(1, C, 1, 1)  # (BN3)
    dgamma = (dy * xhat).sum(axis=AXES)  # (SBN7), (BN9) -> (C,)
    dbeta = dy.sum(axis=AXES)  # (SBN7), (BN8) -> (C,)
    return dx, dgamma, dbeta


@register(name="SyncBatchNorm")
class SyncBatchNorm(BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, over all ranks.

    Same arguments, parameters, buffers and state_dict keys as BatchNorm2d; in inference
    mode (and on one process) it computes exactly what BatchNorm2d does. Inputs (N, C),
    (N, C, L) and (N, C, H, W). Every rank must call it in the same order (the forward and
    the backward of a training step each make one collective call).
    """

    def forward(self, x: Any, *, relu: bool = False) -> Tensor:
        """The synchronised normalisation; with ``relu``, a ReLU after it (as two ops: the
        global statistics' backward has no fused form)."""
        y = self._synchronized(x)
        return F.relu(y) if relu else y

    def _synchronized(self, x: Any) -> Tensor:
        comm = world()
        if not self.training or comm.size == 1:
            return _forward_as_batchnorm(self, x)
        array = x.data if isinstance(x, Tensor) else x
        if getattr(array, "ndim", 0) not in (2, 3, 4):
            raise ShapeError(
                f"SyncBatchNorm: x must be (N, C), (N, C, L) or (N, C, H, W); expected 2 to 4 "
                f"dimensions, got {getattr(array, 'ndim', None)} "
                f"(x.shape={tuple(getattr(array, 'shape', ()))})"
            )
        x4 = array.reshape((*array.shape[:2], -1, 1)) if array.ndim != 4 else array
        xp = get_xp(x4)
        C = x4.shape[1]
        weight, bias = self.weight, self.bias
        gamma = weight.data if weight is not None else xp.ones(C, dtype=x4.dtype)
        beta = bias.data if bias is not None else xp.zeros(C, dtype=x4.dtype)
        y4, cache = sync_batch_norm_forward(
            x4,
            gamma,
            beta,
            self._buffers["running_mean"].astype(x4.dtype, copy=False),
            self._buffers["running_var"].astype(x4.dtype, copy=False),
            comm=comm,
            momentum=self.momentum,
            eps=self.eps,
        )
        shape, y4_shape = tuple(array.shape), tuple(y4.shape)  # shapes only: y is not kept

        def backward(dy: Array, cache: SyncBatchNormCache, needs: tuple[bool, ...]) -> Any:
            dx, dgamma, dbeta = sync_batch_norm_backward(dy.reshape(y4_shape), cache)
            return dx.reshape(shape), dgamma, dbeta

        y = record(
            "sync_batch_norm", "SBN5–SBN7", y4.reshape(shape), cache, (x, weight, bias), backward
        )
        self._buffers["running_mean"] = cache.new_running_mean
        self._buffers["running_var"] = cache.new_running_var
        tracked = self._buffers["num_batches_tracked"]
        self._buffers["num_batches_tracked"] = get_xp(tracked).asarray(tracked + 1)
        return y


def _forward_as_batchnorm(module: SyncBatchNorm, x: Any) -> Tensor:
    """BatchNorm2d's forward, for one process and for inference (2 to 4 dimensions)."""
    y, new_mean, new_var = F.batch_norm_with_statistics(
        x,
        module._buffers["running_mean"],
        module._buffers["running_var"],
        module.weight,
        module.bias,
        training=module.training,
        momentum=module.momentum,
        eps=module.eps,
    )
    if module.training:
        module._buffers["running_mean"] = new_mean
        module._buffers["running_var"] = new_var
        tracked = module._buffers["num_batches_tracked"]
        module._buffers["num_batches_tracked"] = get_xp(tracked).asarray(tracked + 1)
    return y


def convert_sync_batchnorm(model: Module) -> Module:
    """Replace every BatchNorm2d in ``model`` by a SyncBatchNorm sharing its parameters and
    buffers (in place; returns ``model``, or the new layer when ``model`` is one)."""
    return _swap(model, BatchNorm2d, SyncBatchNorm)


def revert_sync_batchnorm(model: Module) -> Module:
    """Replace every SyncBatchNorm by a BatchNorm2d sharing its state (e.g. before saving a
    model for inference, which then loads without convprop.distributed)."""
    return _swap(model, SyncBatchNorm, BatchNorm2d)


def _swap(model: Module, source: type[BatchNorm2d], target: type[BatchNorm2d]) -> Module:
    if type(model) is source:
        layer = target(model.num_features, model.eps, model.momentum, model.affine)
        layer.weight, layer.bias = model.weight, model.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            layer._buffers[name] = model._buffers[name]
        layer.train(model.training)
        return layer
    for name, child in list(model._modules.items()):
        swapped = _swap(child, source, target)
        if swapped is not child:
            setattr(model, name, swapped)
    return model


__all__ = [
    "SyncBatchNorm",
    "combine_moments",
    "convert_sync_batchnorm",
    "input_gradient",
    "local_gradient_sums",
    "local_moments",
    "revert_sync_batchnorm",
    "sync_batch_norm_backward",
    "sync_batch_norm_forward",
]
