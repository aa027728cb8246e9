"""convprop.distributed on one process: the sampler (DP1, DP2), the fused gradient mean
(DP3, DP4) and SyncBatchNorm's equations (SBN1-SBN7), with W ranks simulated by W threads
that talk through an in-process communicator. The same code under mpiexec is tested in
test_distributed_mpi.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from convprop import distributed
from convprop.data import DataLoader, from_arrays
from convprop.distributed.comm import SingleProcess, broadcast_json, launched
from convprop.distributed.fusion import GradientFusion, plan_buckets
from convprop.distributed.sampler import DistributedSampler, ShardedLoader
from convprop.distributed.sync_batchnorm import (
    SyncBatchNorm,
    combine_moments,
    convert_sync_batchnorm,
    local_moments,
    revert_sync_batchnorm,
    sync_batch_norm_backward,
    sync_batch_norm_forward,
)
from convprop.errors import ParameterError
from convprop.functional.normalization import batch_norm2d_backward, batch_norm2d_forward
from convprop.io import architecture
from convprop.nn import BatchNorm2d, Conv2d, Parameter, ReLU, Sequential


class ThreadComm:
    """Rank ``rank`` of ``size`` threads: collective calls meet at a barrier and reduce in
    rank order, as MPI's do across processes."""

    def __init__(self, rank: int, shared: dict[str, Any]) -> None:
        self.rank, self.size, self.name = rank, shared["size"], "threads"
        self._shared = shared

    def _exchange(self, value: np.ndarray) -> list[np.ndarray]:
        slots, barrier = self._shared["slots"], self._shared["barrier"]
        slots[self.rank] = np.array(value)
        barrier.wait()
        values = [np.array(v) for v in slots]
        barrier.wait()  # nobody overwrites a slot before all have read
        return values

    def allreduce_sum(self, buffer: np.ndarray) -> None:
        values = self._exchange(buffer)
        total = values[0].copy()
        for value in values[1:]:
            total += value
        buffer[...] = total

    def allgather(self, values: np.ndarray) -> np.ndarray:
        return np.stack(self._exchange(values))

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        buffer[...] = self._exchange(buffer)[root]

    def barrier(self) -> None:
        self._shared["barrier"].wait()


def run_ranks(size: int, work: Callable[[ThreadComm], Any]) -> list[Any]:
    """Run ``work(comm)`` on ``size`` threads, one per rank; return the results by rank."""
    shared = {"size": size, "slots": [None] * size, "barrier": threading.Barrier(size)}
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def target(rank: int) -> None:
        try:
            results[rank] = work(ThreadComm(rank, shared))
        except BaseException as error:  # pragma: no cover - shown by the assert below
            errors.append(error)
            shared["barrier"].abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


# -- the process world ---------------------------------------------------------------------
def test_not_launched_is_one_process_of_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not launched()
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    distributed.barrier()
    assert isinstance(distributed.world(), SingleProcess)
    assert broadcast_json({"a": [1, 2]}) == {"a": [1, 2]}


@pytest.mark.parametrize(
    "name", ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_STEP_NUM_TASKS"]
)
def test_a_launcher_is_recognised_by_its_environment(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "2")
    assert launched()


def test_a_slurm_step_of_one_task_or_a_batch_script_is_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    monkeypatch.setenv("SLURM_NTASKS", "32")  # an sbatch script's environment
    assert not launched()


def test_srun_without_an_mpi_plugin_is_refused_not_run_as_separate_models() -> None:
    import subprocess
    import sys

    pytest.importorskip("mpi4py")
    code = "from convprop import distributed; distributed.init()"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env["SLURM_STEP_NUM_TASKS"] = "4"  # what srun sets; MPI, not launched by it, sees 1
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "the launcher started 4 processes but MPI sees each alone" in done.stderr


def test_importing_convprop_does_not_import_mpi() -> None:
    import subprocess
    import sys

    code = (
        "import convprop, convprop.distributed, convprop.train, sys; print('mpi4py' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the sampler (DP1, DP2) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("N", "G", "W"), [(10, 4, 2), (37, 8, 3), (20, 5, 2), (9, 9, 3), (33, 8, 3), (7, 3, 3)]
)
def test_DP2_parts_of_each_global_batch_are_disjoint_and_cover_it(N: int, G: int, W: int) -> None:
    samplers = [DistributedSampler(N, G, rank=r, world_size=W, seed=5) for r in range(W)]
    for epoch in (0, 1, 4):
        batches = samplers[0].global_batches(epoch)
        assert sorted(np.concatenate(batches).tolist()) == list(range(N))  # every sample once
        parts = [s.batches(epoch) for s in samplers]
        assert len({len(p) for p in parts}) == 1 == len({len(s) for s in samplers})
        assert len(samplers[0]) == len(batches)
        for t, batch in enumerate(batches):
            pieces = [p[t] for p in parts]
            assert all(len(piece) >= 1 for piece in pieces)  # every rank takes part
            assert sorted(np.concatenate(pieces).tolist()) == sorted(batch.tolist())
            sizes = [len(piece) for piece in pieces]
            assert max(sizes) - min(sizes) <= 1


def test_DP1_global_batches_are_the_data_loaders_and_the_tail_joins_the_last() -> None:
    ds = from_arrays(np.zeros((37, 1, 2, 2), np.float32), np.arange(37) % 3)
    loader = DataLoader(ds, 8, shuffle=True, seed=3)
    expected = [y for _, y in loader.iter_epoch(2)]  # sizes 8, 8, 8, 8, 5
    sampler = DistributedSampler(37, 8, rank=0, world_size=2, seed=3)
    got = [ds.labels[b] for b in sampler.global_batches(2)]
    assert [len(b) for b in got] == [8, 8, 8, 8, 5]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    # with 6 ranks the 5-sample tail would leave a rank without a sample: it joins batch 4
    wide = DistributedSampler(37, 8, rank=0, world_size=6, seed=3)
    assert [len(b) for b in wide.global_batches(2)] == [8, 8, 8, 13]
    assert len(wide) == 4


def test_DP2_rank_shard_is_pytorchs_when_the_world_divides_the_batch() -> None:
    sampler = DistributedSampler(40, 8, rank=1, world_size=4, seed=0)
    order = sampler.epoch_order(3)
    np.testing.assert_array_equal(np.concatenate(sampler.batches(3)), order[1::4])


def test_the_order_depends_on_seed_epoch_and_world_size_only() -> None:
    def parts(seed: int, epoch: int) -> list[list[int]]:
        s = DistributedSampler(30, 6, rank=2, world_size=3, seed=seed)
        return [b.tolist() for b in s.batches(epoch)]

    assert parts(4, 1) == parts(4, 1)
    assert parts(4, 1) != parts(5, 1) and parts(4, 1) != parts(4, 2)


def test_sharded_loader_yields_this_ranks_samples() -> None:
    images = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
    ds = from_arrays(images, np.arange(12))
    loader = ShardedLoader(ds, 4, rank=1, world_size=2, shuffle=False)
    got = [(x.ravel().tolist(), y.tolist()) for x, y in loader.iter_epoch(0)]
    assert got == [([1, 3], [1, 3]), ([5, 7], [5, 7]), ([9, 11], [9, 11])]
    assert len(loader) == 3


def test_AUG3_augmented_parts_are_the_parts_of_the_augmented_global_batch() -> None:
    def jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x + rng.standard_normal(x.shape).astype(x.dtype)  # draws depend on the batch

    rng = np.random.default_rng(8)
    ds = from_arrays(rng.random((24, 1, 3, 3)).astype(np.float32), np.arange(24) % 4)
    whole = [x for x, _ in DataLoader(ds, 8, shuffle=True, seed=2, transform=jitter).iter_epoch(1)]
    parts = [
        [
            x
            for x, _ in ShardedLoader(
                ds, 8, rank=r, world_size=3, seed=2, transform=jitter
            ).iter_epoch(1)
        ]
        for r in range(3)
    ]
    for t, batch in enumerate(whole):
        for r in range(3):
            np.testing.assert_array_equal(parts[r][t], batch[r::3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_samples": 10, "batch_size": 2, "rank": 0, "world_size": 3}, "batch_size"),
        ({"num_samples": 2, "batch_size": 4, "rank": 0, "world_size": 3}, "number of samples"),
        ({"num_samples": 10, "batch_size": 4, "rank": 2, "world_size": 2}, "rank must be below"),
        ({"num_samples": 10, "batch_size": 0, "rank": 0, "world_size": 1}, "batch_size"),
    ],
)
def test_sampler_refuses_what_would_leave_a_rank_without_samples(
    kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        DistributedSampler(**kwargs)  # type: ignore[arg-type]


# -- the fused gradient mean (DP3, DP4) ----------------------------------------------------
def test_plan_buckets_fuses_up_to_the_threshold_last_parameter_first() -> None:
    p = [Parameter(np.zeros(n, np.float32)) for n in (10, 20, 30, 40)]
    sizes = [[q.shape[0] for q in b] for b in plan_buckets(p, fusion_bytes=200)]
    assert sizes == [[40], [30, 20], [10]]
    assert [[q.shape[0] for q in b] for b in plan_buckets(p)] == [[40, 30, 20, 10]]
    mixed = [Parameter(np.zeros(3, np.float32)), Parameter(np.zeros(3, np.float64))]
    assert len(plan_buckets(mixed)) == 2  # one dtype per buffer
    with pytest.raises(ParameterError, match="fusion_bytes"):
        plan_buckets(p, fusion_bytes=0)


@pytest.mark.parametrize("fusion_bytes", [64 * 2**20, 100])
def test_DP3_fused_allreduce_gives_every_rank_the_global_mean_gradient(
    fusion_bytes: int,
) -> None:
    shapes = [(4, 3), (3,), (2, 2, 5), (7,)]
    counts = [3, 3, 2]  # a batch of 8 over 3 ranks
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(s) for s in shapes] for _ in counts]

    def rank_work(comm: ThreadComm) -> tuple[list[np.ndarray], list[float], int]:
        params = [Parameter(np.zeros(s)) for s in shapes]
        for param, grad in zip(params, grads[comm.rank], strict=True):
            param.grad[...] = grad
        fusion = GradientFusion(params, fusion_bytes=fusion_bytes, comm=comm)  # type: ignore[arg-type]
        stats = fusion.allreduce(counts[comm.rank], (10.0 * (comm.rank + 1), 1.0))
        return [p.grad.copy() for p in params], stats, fusion.calls

    results = run_ranks(3, rank_work)
    total = sum(counts)
    for i in range(len(shapes)):
        expected = sum(n * g[i] for n, g in zip(counts, grads, strict=True)) / total
        for got, _, _ in results:
            np.testing.assert_allclose(got[i], expected, rtol=1e-13, atol=1e-15)
            np.testing.assert_array_equal(got[i], results[0][0][i])  # the same bits everywhere
    assert all(stats == [8.0, 60.0, 3.0] for _, stats, _ in results)
    assert results[0][2] == (1 if fusion_bytes > 1000 else len(shapes))  # messages per step


def test_DP3_without_counts_the_mean_divides_by_the_world_size() -> None:
    def rank_work(comm: ThreadComm) -> np.ndarray:
        param = Parameter(np.zeros(3))
        param.grad[...] = comm.rank + 1.0
        GradientFusion([param], comm=comm).allreduce()  # type: ignore[arg-type]
        return param.grad

    for grad in run_ranks(2, rank_work):
        np.testing.assert_array_equal(grad, [1.5, 1.5, 1.5])


def test_one_process_leaves_the_gradients_bit_for_bit() -> None:
    param = Parameter(np.zeros(5))
    param.grad[...] = np.random.default_rng(1).standard_normal(5) / 3
    before = param.grad.copy()
    assert GradientFusion([param], comm=SingleProcess()).allreduce(7, (2.5,)) == [7.0, 2.5]
    assert distributed.allreduce_gradients([param], count=7) == 7.0
    np.testing.assert_array_equal(param.grad, before)
    frozen = Parameter(np.zeros(2), requires_grad=False)
    with pytest.raises(ParameterError, match="nothing to reduce"):
        GradientFusion([frozen], comm=SingleProcess())


# -- SyncBatchNorm (SBN1-SBN7) -------------------------------------------------------------
SIZES = (3, 1, 4)  # the ranks' images: unequal parts of a batch of 8


def _batch(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sum(SIZES), 3, 2, 3)) * 2 + 0.5
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    running_mean, running_var = rng.standard_normal(3), rng.random(3) + 0.5
    dY = rng.standard_normal(x.shape)  # the gradient of the global objective, never all ones
    return x, gamma, beta, running_mean, running_var, dY


def _split(a: np.ndarray) -> list[np.ndarray]:
    return np.split(a, np.cumsum(SIZES)[:-1])


def _sync_pass(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    rm: np.ndarray,
    rv: np.ndarray,
    dY: np.ndarray,
) -> list[tuple[np.ndarray, ...]]:
    """Every rank's (y, w_r, dx, dγ, dβ, running mean, running var) from its part."""
    m = x.shape[0]

    def rank_work(comm: ThreadComm) -> tuple[np.ndarray, ...]:
        x_r, dY_r = _split(x)[comm.rank], _split(dY)[comm.rank]
        y, cache = sync_batch_norm_forward(x_r, gamma, beta, rm, rv, comm=comm)  # type: ignore[arg-type]
        share = len(x_r) / m  # w_r (SBN4)
        # rank r's upstream is the gradient of its own mean loss: dL/dy_r = w_r·dy_r
        dx, dgamma, dbeta = sync_batch_norm_backward(dY_r / share, cache)
        return y, share, dx, dgamma, dbeta, cache.new_running_mean, cache.new_running_var

    return run_ranks(len(SIZES), rank_work)


def test_SBN1_SBN3_moments_combine_to_the_whole_batchs() -> None:
    x = _batch()[0]
    gathered = np.stack([local_moments(part) for part in _split(x)])
    m, mean, var = combine_moments(gathered)
    assert m == x.shape[0] * 6
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-13)


def test_SBN_forward_and_backward_equal_batchnorm_on_the_whole_batch() -> None:
    x, gamma, beta, rm, rv, dY = _batch()
    y_full, cache = batch_norm2d_forward(x, gamma, beta, rm, rv, training=True)
    dx_full, dgamma_full, dbeta_full = batch_norm2d_backward(dY, cache)
    ranks = _sync_pass(x, gamma, beta, rm, rv, dY)
    np.testing.assert_allclose(
        np.concatenate([r[0] for r in ranks]), y_full, rtol=1e-12, atol=1e-13
    )
    # DP3 weighs rank r's gradients by w_r: Σ w_r·(rank r's gradient) = the whole batch's
    dx = np.concatenate([share * dx for _, share, dx, *_ in ranks])  # (SBN6)
    np.testing.assert_allclose(dx, dx_full, rtol=1e-11, atol=1e-13)
    dgamma = sum(share * dg for _, share, _, dg, *_ in ranks)  # (SBN7)
    dbeta = sum(share * db for _, share, _, _, db, *_ in ranks)
    np.testing.assert_allclose(dgamma, dgamma_full, rtol=1e-12)
    np.testing.assert_allclose(dbeta, dbeta_full, rtol=1e-12)
    for rank in ranks:  # BN5, BN6 with the global count, the same bits on every rank
        np.testing.assert_allclose(rank[5], cache.new_running_mean, rtol=1e-13)
        np.testing.assert_allclose(rank[6], cache.new_running_var, rtol=1e-13)
        np.testing.assert_array_equal(rank[6], ranks[0][6])


def test_SBN_gradients_match_pytorch_on_the_whole_batch() -> None:
    x, gamma, beta, rm, rv, dY = _batch(1)
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    rmt, rvt = torch.tensor(rm), torch.tensor(rv)
    yt = torch.nn.functional.batch_norm(xt, rmt, rvt, gt, bt, training=True)
    yt.backward(torch.tensor(dY))
    ranks = _sync_pass(x, gamma, beta, rm, rv, dY)
    np.testing.assert_allclose(
        np.concatenate([r[0] for r in ranks]), yt.detach().numpy(), atol=1e-12
    )
    dx = np.concatenate([share * dx for _, share, dx, *_ in ranks])
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sum(r[1] * r[3] for r in ranks), gt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ranks[0][6], rvt.numpy(), rtol=1e-12)


def test_SBN6_input_gradient_by_finite_differences() -> None:
    x, gamma, beta, rm, rv, dY = _batch(2)

    def objective(xv: np.ndarray) -> float:
        return float(
            sum(
                (r[0] * d).sum()
                for r, d in zip(_sync_pass(xv, gamma, beta, rm, rv, dY), _split(dY), strict=True)
            )
        )

    ranks = _sync_pass(x, gamma, beta, rm, rv, dY)
    dx = np.concatenate([share * dx for _, share, dx, *_ in ranks])
    eps = 1e-6
    for index in [(0, 0, 0, 0), (3, 1, 1, 2), (4, 2, 0, 1), (7, 0, 1, 1)]:  # every rank's part
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric = (objective(plus) - objective(minus)) / (2 * eps)
        assert abs(numeric - dx[index]) <= 1e-6 * max(1.0, abs(numeric)), (
            index,
            numeric,
            dx[index],
        )


def test_sync_batchnorm_on_one_process_is_batchnorm() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 3, 3))
    plain = BatchNorm2d(2, dtype="float64")
    plain.weight.data[...] = rng.standard_normal(2)
    synced = convert_sync_batchnorm(Sequential(plain))[0]
    assert type(synced) is SyncBatchNorm and synced.weight is plain.weight
    y = synced(x)
    expected = BatchNorm2d(2, dtype="float64")
    expected.weight.data[...] = plain.weight.data
    np.testing.assert_array_equal(y.data, expected(x).data)
    np.testing.assert_array_equal(synced.running_var, expected.running_var)
    assert architecture(Sequential(synced))["children"][0]["type"] == "SyncBatchNorm"
    back = revert_sync_batchnorm(Sequential(synced, ReLU()))
    assert type(back[0]) is BatchNorm2d and back[0].running_var is synced.running_var


def test_sync_batchnorm_in_sequential_before_relu_is_batchnorm_then_relu() -> None:
    """SyncBatchNorm has a forward of its own, so Sequential does not fuse it with the ReLU
    after it; asked for the ReLU directly, it applies it after the normalisation."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 2, 3, 3))
    synced = convert_sync_batchnorm(Sequential(BatchNorm2d(2, dtype="float64"), ReLU()))
    expected = Sequential(BatchNorm2d(2, dtype="float64"), ReLU())
    np.testing.assert_array_equal(synced(x).data, expected(x).data)
    direct = SyncBatchNorm(2, dtype="float64")(x, relu=True)
    np.testing.assert_array_equal(
        direct.data, np.maximum(BatchNorm2d(2, dtype="float64")(x).data, 0)
    )


def test_convert_reaches_nested_layers_and_keeps_others() -> None:
    net = Sequential(Conv2d(1, 2, 3, rng=0), Sequential(BatchNorm2d(2), ReLU()))
    convert_sync_batchnorm(net)
    assert type(net[1][0]) is SyncBatchNorm and type(net[0]) is Conv2d
    assert list(net.state_dict()) == [
        "0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.0.running_mean",
        "1.0.running_var", "1.0.num_batches_tracked",
    ]  # fmt: skip
