"""What the commands check before they work: the run directory, the data set's image shape
against the model, a predicted image against what the model was trained on, and memory.

Each check either passes, returns warnings (one line each), or raises the library's error
with a one-line message ``<op>: <what is wrong>; expected ..., got ...``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RUN_FILES = ("checkpoint.safetensors", "model.safetensors")
"""The files that make a directory a run: a later run would overwrite or resume them."""

TRAINING_BRIGHTNESS = {"digits": 0.305, "fashion-mnist": 0.286}
"""Mean pixel value in [0, 1] of the built-in training sets (both white on black), for model
files written before ``convprop train`` stored ``mean_brightness``."""

SMALLEST_SCALE = 0.5
"""An image side below this fraction of the model's is enlarged from too few pixels."""

LARGEST_ASPECT_CHANGE = 1.5
"""Resizing that changes the aspect ratio by more than this factor squashes the image."""


@contextmanager
def out_of_memory(op: str, what: str) -> Iterator[None]:
    """Turn a MemoryError inside the block into one naming ``what`` was being allocated for."""
    try:
        yield
    except MemoryError as error:
        detail = str(error).splitlines()[0] if str(error).strip() else "no detail given"
        raise MemoryError(
            f"{op}: out of memory while {what}; expected sizes that fit in this machine's "
            f"memory, got: {detail}"
        ) from None


def check_run_directory(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a run that would silently replace another, or that cannot be written.

    Nothing is created: the nearest existing folder on the way to ``out`` must be a writable
    directory (``fit`` then writes a probe file into ``out`` itself before the first step).

    Raises
    ------
    ParameterError
        For ``resume`` and ``overwrite`` together.
    FileExistsError
        When ``out`` holds a run (a checkpoint or a model file) and neither ``resume`` nor
        ``overwrite`` is set.
    NotADirectoryError, PermissionError
        When ``out``, or the folder it would be created in, is a file or not writable.
    """
    from convprop.errors import ParameterError

    if resume and overwrite:
        raise ParameterError(
            "train: --resume and --overwrite contradict each other; expected one of them, "
            "got both (--resume continues the run in OUT, --overwrite replaces it)"
        )
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not (resume or overwrite):
        raise FileExistsError(
            f"train: {out} holds a run already ({', '.join(found)}); expected a new or empty "
            "directory, got an existing run: pass --resume to continue it, --overwrite to "
            "replace it, or --out DIR to start another"
        )
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"train: cannot write the run into {out}; expected a directory, got {existing}, "
            "which is a file"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"train: cannot write the run into {out}; expected a writable directory, got "
            f"{existing}, which is not writable"
        )


def clear_run(out: Path) -> list[Path]:
    """Remove the run files of ``out`` (``--overwrite``), so that no later ``--resume`` can
    continue the replaced run; returns the paths removed."""
    removed = []
    for name in RUN_FILES:
        if (out / name).is_file():
            (out / name).unlink()
            removed.append(out / name)
    return removed


def first_layer_input(model: Any) -> tuple[str, int] | None:
    """("channels", C) for a first Conv2d, ("features", C*H*W) for a first Linear, else None."""
    from convprop.nn import Conv2d, Linear

    for module in model.modules():
        if isinstance(module, Conv2d):
            return "channels", int(module.in_channels)
        if isinstance(module, Linear):
            return "features", int(module.in_features)
    return None


def check_eval_shape(
    info: dict[str, Any], sample_shape: tuple[int, ...], model: Any, dataset: str, model_file: str
) -> None:
    """Refuse a data set whose images the model was not built for, before evaluating it.

    ``info["input_shape"]`` (stored by ``convprop train``) is compared with the images'
    (C, H, W); for a model file without it, the first layer's channels or features are.

    Raises
    ------
    ShapeError
        Naming both shapes, the model file and the data set.
    """
    from convprop.errors import ShapeError

    got = tuple(int(n) for n in sample_shape)
    stored = info.get("input_shape")
    if isinstance(stored, (list, tuple)) and all(isinstance(n, int) for n in stored):
        expected: tuple[int, ...] = tuple(stored)
        trained = info.get("dataset")
        where = f"the images it was trained on{f' ({trained})' if trained else ''}"
    else:
        first = first_layer_input(model)
        if first is None:
            return
        kind, size = first
        actual = got[0] if kind == "channels" else math.prod(got)
        expected, got, where = (size,), (actual,), f"its first layer's input {kind}"
    if expected != got:
        raise ShapeError(
            f"eval: the data set's images do not fit the model; expected {expected} as "
            f"{where} in {model_file}, got {got} from the data set {dataset} (pass --dataset "
            "with images of the model's shape)"
        )


def training_brightness(info: dict[str, Any]) -> float | None:
    """Mean pixel value of the model's training images, when the model file tells it."""
    stored = info.get("mean_brightness")
    if isinstance(stored, (int, float)) and not isinstance(stored, bool):
        return float(stored)
    return TRAINING_BRIGHTNESS.get(str(info.get("dataset", "")))


def image_warnings(
    size: tuple[int, int], shape: tuple[int, ...], brightness: float, trained: float | None
) -> list[str]:
    """What looks wrong about an image for this model: inverted, too small, squashed.

    Parameters
    ----------
    size : (height, width) of the image file
    shape : (C, H, W) the model takes
    brightness : mean pixel value in [0, 1] of the image as the model sees it
    trained : mean pixel value of the training images, or None when unknown
    """
    height, width = size
    H, W = shape[-2], shape[-1]
    found = []
    if trained is not None and (brightness - 0.5) * (trained - 0.5) < 0:
        tone, usual = ("light", "dark") if brightness > 0.5 else ("dark", "light")
        found.append(
            f"predict: warning: the image looks inverted; its mean brightness is "
            f"{brightness:.2f} ({tone} background), the training images' {trained:.2f} "
            f"({usual} background, e.g. white on black); pass --invert if the class is wrong"
        )
    if height < SMALLEST_SCALE * H or width < SMALLEST_SCALE * W:
        found.append(
            f"predict: warning: the image is {height}x{width}, enlarged to the model's "
            f"{H}x{W}; it holds too few pixels for a reliable answer"
        )
    aspect = (width / height) / (W / H)
    if not 1 / LARGEST_ASPECT_CHANGE <= aspect <= LARGEST_ASPECT_CHANGE:
        found.append(
            f"predict: warning: the image is {height}x{width}, squashed to the model's "
            f"{H}x{W} (aspect ratio changed {max(aspect, 1 / aspect):.1f}x); crop it to the "
            "model's proportions for a reliable answer"
        )
    return found
