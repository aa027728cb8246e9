"""One library, one network, in one process: the timed passes and the step's breakdown.

The runner (:mod:`convprop.bench_nets.runner`) starts this in a fresh interpreter per library
and round, so that neither library's worker threads (OpenBLAS's, OpenMP's, convprop's own)
spin beside the other's work: a user runs one library at a time. Each pass is warmed up
for about a second of its own calls (at least two), then timed sample by sample (a sample: one
call, or for a pass shorter than 20 ms as many calls as fill about 20 ms, their mean); the
process reports the median of its samples.

Passes
  train        zero_grad, forward, cross-entropy loss, backward, SGD step (momentum 0.9)
  infer_1      forward of one image, eval mode, no graph recorded
  infer_batch  forward of the training batch, eval mode, no graph recorded
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy

from convprop.bench_nets.nets import CASES, Case
from convprop.bench_nets.profile import CATEGORIES, layer_timer
from convprop.process import retain_freed_memory

PASSES = ("train", "infer_1", "infer_batch")
LEARNING_RATE, MOMENTUM = 0.01, 0.9


@dataclass(frozen=True)
class Settings:
    """How long each pass is timed in one process."""

    warm_seconds: float = 1.0
    repeats: int = 7
    max_seconds: float = 6.0  # fewer samples (at least 3) once a pass has run this long
    profile_steps: int = 3
    threads: int = 2
    sample_ms: float = 20.0  # a sample of a short pass is as many calls as fill this
    random_inputs: bool = False  # standard normal values even where the case's data set is


def time_calls(function: Callable[[], object], settings: Settings) -> list[float]:
    """Milliseconds per call of each timed sample, after ``settings.warm_seconds`` of untimed
    calls. A sample is one call, or for a pass shorter than ``settings.sample_ms`` as many
    calls in a row as fill about that long (their mean): one call of a tenth of a
    millisecond, alone, moved by a third between processes."""
    start, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - start < settings.warm_seconds:
        function()
        calls += 1
    per_call_ms = (time.perf_counter() - start) * 1e3 / calls
    count = max(1, int(settings.sample_ms / per_call_ms)) if per_call_ms > 0 else 1
    samples: list[float] = []
    begin = time.perf_counter()
    while len(samples) < settings.repeats and (
        len(samples) < 3 or time.perf_counter() - begin < settings.max_seconds
    ):
        tick = time.perf_counter()
        for _ in range(count):
            function()
        samples.append((time.perf_counter() - tick) * 1e3 / count)
    return samples


def make_batch(case: Case, batch: int, dtype: str = "float32", seed: int = 0) -> tuple[Any, Any]:
    """The fixed batch every step trains on: x (N, C, H, W) and labels (N,): ``batch``
    images of ``case.dataset`` drawn by ``seed`` with their labels where that data set is
    installed, else standard normal values and random labels (:func:`batch_inputs` says
    which)."""
    rng = numpy.random.default_rng(seed)
    images = _dataset_images(case)
    if images is not None:
        pixels, labels = images
        chosen = rng.choice(len(labels), size=batch, replace=batch > len(labels))
        return pixels[chosen].astype(dtype), labels[chosen]
    x = rng.standard_normal((batch, *case.sample_shape)).astype(dtype)
    return x, rng.integers(0, case.num_classes, batch)


def _dataset_images(case: Case) -> tuple[Any, Any] | None:
    """The training images and labels of ``case.dataset``, or None (no data set named, or not
    installed, or of another sample shape)."""
    if case.dataset is None:
        return None
    loaded = _training_set(case.dataset)
    if loaded is None or tuple(loaded.sample_shape) != case.sample_shape:
        return None
    return loaded.images, loaded.labels


@functools.lru_cache(maxsize=2)
def _training_set(name: str) -> Any:
    """The training set of the data set ``name``, loaded once per process; None where it is
    not installed."""
    from convprop.data import DataError, load_dataset

    try:
        return load_dataset(name)[0]
    except DataError:
        return None


def batch_inputs(case: Case) -> str:
    """What :func:`make_batch` feeds ``case``: "<data set> images" or "standard normal"."""
    return f"{case.dataset} images" if _dataset_images(case) is not None else "standard normal"


def convprop_passes(case: Case, batch: int, dtype: str = "float32") -> dict[str, Any]:
    """The model, its optimizer and the three passes as callables, for convprop."""
    from convprop.autograd import no_grad
    from convprop.nn import CrossEntropyLoss
    from convprop.optim import SGD

    model = case.build(rng=0, dtype=dtype)
    optimizer = SGD(model.parameters(), LEARNING_RATE, momentum=MOMENTUM)
    loss_fn = CrossEntropyLoss()
    x, labels = make_batch(case, batch, dtype)

    def forward_backward() -> None:
        loss_fn(model(x), labels).backward()

    def train() -> None:
        optimizer.zero_grad()
        forward_backward()
        optimizer.step()

    def infer(images: Any) -> Callable[[], object]:
        def forward() -> object:
            with no_grad():
                return model(images)

        return forward

    return {
        "model": model, "optimizer": optimizer, "forward_backward": forward_backward,
        "train": train, "infer_1": infer(x[:1]), "infer_batch": infer(x),
    }  # fmt: skip


def torch_passes(case: Case, batch: int, dtype: str = "float32") -> dict[str, Any]:
    """The same for PyTorch: the convprop model's twin, the same batch and update rule."""
    import torch

    from convprop.bench_nets.torch_nets import torch_batch, torch_twin

    model = torch_twin(case.build(rng=0, dtype=dtype))
    optimizer = torch.optim.SGD(model.parameters(), LEARNING_RATE, momentum=MOMENTUM)
    x, labels = torch_batch(*make_batch(case, batch, dtype))

    def train() -> None:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        optimizer.step()

    def infer(images: Any) -> Callable[[], object]:
        def forward() -> object:
            with torch.no_grad():
                return model(images)

        return forward

    return {
        "model": model, "optimizer": optimizer, "train": train, "infer_1": infer(x[:1]),
        "infer_batch": infer(x),
    }  # fmt: skip


def convprop_breakdown(passes: dict[str, Any], steps: int) -> dict[str, float]:
    """Median milliseconds per layer type over ``steps`` training steps (and their total)."""
    optimizer = passes["optimizer"]
    per_step: list[dict[str, float]] = []
    with layer_timer() as times:
        for _ in range(steps):
            times.reset()
            start = time.perf_counter()
            optimizer.zero_grad()
            step_start = time.perf_counter()
            passes["forward_backward"]()
            middle = time.perf_counter()
            optimizer.step()
            end = time.perf_counter()
            ms = {kind: seconds * 1e3 for kind, seconds in times.seconds.items()}
            ms["optimizer"] = (step_start - start + end - middle) * 1e3
            ms["total"] = (end - start) * 1e3
            ms["overhead"] = ms["total"] - sum(ms[kind] for kind in CATEGORIES[:-1])
            per_step.append(ms)
    return {kind: statistics.median(step[kind] for step in per_step) for kind in per_step[0]}


def torch_breakdown(passes: dict[str, Any], steps: int) -> dict[str, float]:
    """Median milliseconds per layer type over ``steps`` profiled PyTorch steps."""
    from convprop.bench_nets.profile import torch_layer_times

    per_step = [torch_layer_times(passes["train"]) for _ in range(steps)]
    return {kind: statistics.median(step[kind] for step in per_step) for kind in per_step[0]}


def run_worker(library: str, case_name: str, batch: int, settings: Settings) -> dict[str, Any]:
    """Time the three passes (and profile the training step) of one network in this process.

    Returns
    -------
    dict
        ``library``, ``case``, ``batch``, ``settings``, ``ms`` (pass -> median of the calls),
        ``samples`` (pass -> every timed call) and ``breakdown`` (layer type -> ms, median
        over the profiled steps, with ``total``; empty when ``profile_steps`` is 0).
    """
    case = CASES[case_name]
    if settings.random_inputs:
        case = replace(case, dataset=None)
    retain_freed_memory()  # the allocator setting convprop's command line uses, for both
    if library == "torch":
        import torch

        torch.set_num_threads(settings.threads)
        passes = torch_passes(case, batch)
    else:
        passes = convprop_passes(case, batch)
    samples = {}
    for name in PASSES:
        passes["model"].train(name == "train")  # BatchNorm and dropout as in training or eval
        samples[name] = time_calls(passes[name], settings)
    breakdown: dict[str, float] = {}
    if settings.profile_steps > 0:
        passes["model"].train()
        profile = torch_breakdown if library == "torch" else convprop_breakdown
        breakdown = profile(passes, settings.profile_steps)
    return {
        "library": library, "case": case_name, "batch": batch, "settings": asdict(settings),
        "inputs": batch_inputs(case),
        "ms": {name: statistics.median(values) for name, values in samples.items()},
        "samples": samples, "breakdown": breakdown,
    }  # fmt: skip
