"""Pictures of training: loss/accuracy curves, learned filters, confusion matrices, feature maps.

Every function draws on its own ``matplotlib.figure.Figure`` bound to an Agg canvas, never
through pyplot, so it needs no display and touches no global figure state. Each writes a PNG
atomically (a temporary file in the target directory, then ``os.replace``), creates missing
parent directories, and returns the path written. Arrays may be NumPy or CuPy; they are copied
to the host once, before drawing.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from convprop.autograd import no_grad
from convprop.backend import Array, get_xp, to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.nn import (
    Conv2d,
    ConvTranspose2d,
    LeakyReLU,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

PathLike = str | os.PathLike[str]

_HISTORY_SERIES = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
_CONV_TYPES = (Conv2d, ConvTranspose2d)
_ACTIVATION_TYPES = (ReLU, LeakyReLU, Sigmoid, Tanh)
_ANNOTATE_LIMIT = 30  # beyond 30 classes the per-cell counts are too small to read
NEUTRAL = "#9a9a9a"
"""The background between the tiles of a mosaic: a grey of no sign, no hue (it is no value)."""


# -- saving ------------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Figure:
    """A Figure bound to its own Agg canvas (never registered with pyplot)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Figure, path: PathLike) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically and return the path.

    A reader never sees a half-written file: the PNG goes to a uniquely named temporary file in
    the same directory (so ``os.replace`` is a rename on one file system), then replaces ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        figure.savefig(temporary, format="png")
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def _grid(count: int) -> tuple[int, int]:
    """(rows, columns) of the most nearly square grid holding ``count`` cells."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def _mosaic(images: numpy.ndarray, columns: int, fill: float) -> numpy.ndarray:
    """Tile ``images`` (n, h, w) or (n, h, w, 3) row-major into one picture, 1-pixel gaps.

    One picture in one Axes draws far faster than one Axes per image (a 64-filter grid of Axes
    takes seconds to lay out). Gaps hold ``fill`` (NaN shows as the colormap's "bad" colour).
    """
    n, h, w = images.shape[:3]
    rows = math.ceil(n / columns)
    tail = images.shape[3:]
    canvas = numpy.full((rows * (h + 1) + 1, columns * (w + 1) + 1, *tail), fill)
    for index in range(n):
        row, column = divmod(index, columns)
        top, left = 1 + row * (h + 1), 1 + column * (w + 1)
        canvas[top : top + h, left : left + w] = images[index]
    return canvas


def _hide_ticks(axes: Axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def _check_positive(op: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ParameterError(f"{op}: {name} must be a positive int; expected >= 1, got {value!r}")


def _normalise(image: numpy.ndarray) -> numpy.ndarray:
    """Scale ``image`` to [0, 1] by its own min and max; a constant image becomes 0.5."""
    low, high = float(image.min()), float(image.max())
    if high - low <= 0.0 or not math.isfinite(high - low):
        return numpy.full_like(image, 0.5)
    return (image - low) / (high - low)


# -- training history ----------------------------------------------------------------------------
def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of one metric, skipping epochs where it is missing or None."""
    epochs, values = [], []
    for record in history:
        value = record.get(key)
        if value is not None:
            epochs.append(float(record["epoch"]))
            values.append(float(to_host(value)))
    return epochs, values


def plot_history(history: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """Draw loss and accuracy against epoch (train and test) and write a PNG.

    Parameters
    ----------
    history : sequence of dict
        One record per epoch with the key "epoch" and any of "train_loss", "train_accuracy",
        "test_loss", "test_accuracy" (accuracy as a fraction in [0, 1]). A metric that is
        missing or None in a record is left out for that epoch; one never recorded gets no line.
    path : str or os.PathLike
        Where to write the PNG.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``history`` is empty or a record has no "epoch".
    """
    op = "plot_history"
    if len(history) == 0:
        raise ValueError(f"{op}: history is empty; expected at least one epoch record, got []")
    for index, record in enumerate(history):
        if "epoch" not in record:
            raise ValueError(
                f"{op}: record {index} has no 'epoch'; expected the keys 'epoch' and metrics "
                f"{list(_HISTORY_SERIES)}, got {sorted(record)}"
            )
    figure = _new_figure(10.0, 4.0)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, quantity in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        drawn = 0
        for split, style in (("train", "o-"), ("test", "s--")):
            epochs, values = _series(history, f"{split}_{quantity}")
            if values:
                axes.plot(epochs, values, style, markersize=3, label=split)
                drawn += 1
        axes.set_xlabel("epoch")
        axes.set_ylabel(quantity)
        axes.set_title(f"{quantity} per epoch")
        axes.grid(True, alpha=0.3)
        if drawn:
            axes.legend()
        else:
            axes.text(
                0.5,
                0.5,
                f"no {quantity} recorded",
                ha="center",
                va="center",
                transform=axes.transAxes,
            )
    figure.suptitle(f"Training history ({len(history)} epochs)")
    return _save_png(figure, path)


# -- learned filters -------------------------------------------------------------------------------
def _filter_images(
    weight: numpy.ndarray, diverging: bool, reduce: str
) -> tuple[numpy.ndarray, str]:
    """Images to draw, (K, R, S) or (K, R, S, 3), and a phrase saying how they were made."""
    C = weight.shape[1]
    if C == 3 and not diverging:
        images = numpy.stack([_normalise(w) for w in weight]).transpose(0, 2, 3, 1)  # (K, R, S, 3)
        return images, "RGB, each filter on its own min/max"
    if C == 1:
        images, how = weight[:, 0], "grayscale"
    elif reduce == "first":
        images, how = weight[:, 0], f"channel 0 of C={C}"
    else:
        images, how = weight.mean(axis=1), f"mean of the C={C} channels"
    if diverging:
        return images, f"{how}, one shared scale centred on 0"
    return numpy.stack([_normalise(w) for w in images]), f"{how}, each filter on its own min/max"


def plot_filters(
    weight: Array,
    path: PathLike,
    *,
    max_filters: int = 64,
    diverging: bool = False,
    reduce: Literal["mean", "first"] = "mean",
) -> Path:
    """Draw a first layer's learned filters as a grid of small images and write a PNG.

    Parameters
    ----------
    weight : array (K, C, R, S)
        The convolution weights (e.g. ``model[0].weight.data``).
    path : str or os.PathLike
        Where to write the PNG.
    max_filters : int
        Draw the first ``min(K, max_filters)`` filters.
    diverging : bool
        False (default): each filter is normalised to its own min/max (C=3 is drawn in colour).
        True: every filter is drawn as one channel on a single red-blue scale centred on 0 and
        shared by all filters, so signs and magnitudes can be compared across filters.
    reduce : "mean" or "first"
        How a filter with C other than 1 (or 3 in colour) becomes one image: the mean over its
        channels, or channel 0. The title says which was used.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ShapeError
        If ``weight`` is not 4-D.
    ParameterError
        If ``max_filters`` is not a positive int or ``reduce`` is unknown.
    """
    op = "plot_filters"
    weight = to_host(weight)
    if weight.ndim != 4:
        raise ShapeError(
            f"{op}: weight must be 4-D; expected (K, C, R, S), got weight.shape={weight.shape}"
        )
    _check_positive(op, "max_filters", max_filters)
    if reduce not in ("mean", "first"):
        raise ParameterError(f"{op}: unknown reduce; expected 'mean' or 'first', got {reduce!r}")
    K, C, R, S = weight.shape
    count = min(K, max_filters)
    shown = weight[:count].astype(numpy.float64)  # (count, C, R, S)
    images, how = _filter_images(shown, diverging, reduce)
    rows, columns = _grid(count)
    figure = _new_figure(max(5.0, 0.9 * columns + (1.5 if diverging else 0.5)), 0.9 * rows + 1.0)
    axes = figure.subplots()
    _hide_ticks(axes)
    if diverging:
        limit = float(numpy.abs(images).max())
        limit = limit if limit > 0.0 else 1.0
        mosaic = numpy.ma.masked_invalid(_mosaic(images, columns, numpy.nan))
        cmap = colormaps["RdBu_r"].with_extremes(bad=NEUTRAL)
        picture = axes.imshow(mosaic, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        figure.colorbar(picture, ax=axes, shrink=0.8, label="weight")
    elif images.ndim == 4:
        axes.imshow(_mosaic(images, columns, 1.0), interpolation="nearest")
    else:
        mosaic = numpy.ma.masked_invalid(_mosaic(images, columns, numpy.nan))
        cmap = colormaps["gray"].with_extremes(bad=NEUTRAL)
        axes.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_xlabel(f"filters 0 to {count - 1}, row by row, {columns} per row")
    figure.suptitle(f"Learned filters: {count} of K={K} (C={C}, R={R}, S={S})\n{how}", fontsize=9)
    return _save_png(figure, path)


# -- confusion matrix ------------------------------------------------------------------------------
def confusion_matrix(labels: Array, predictions: Array, num_classes: int) -> numpy.ndarray:
    """Count (true class, predicted class) pairs.

    Parameters
    ----------
    labels, predictions : integer array (N,)
        True and predicted classes, each in ``[0, num_classes)``.
    num_classes : int
        K.

    Returns
    -------
    numpy.ndarray (K, K), int64
        ``matrix[i, j]`` = the number of samples of true class i predicted as class j.

    Raises
    ------
    ShapeError
        If ``labels`` and ``predictions`` are not 1-D arrays of one length.
    DTypeError
        If either array is not of an integer dtype.
    ParameterError
        If ``num_classes`` is not a positive int.
    ValueError
        If a label or prediction lies outside ``[0, num_classes)``.

    Examples
    --------
    >>> import numpy as np
    >>> confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    op = "confusion_matrix"
    _check_positive(op, "num_classes", num_classes)
    labels, predictions = to_host(labels), to_host(predictions)
    if labels.ndim != 1 or labels.shape != predictions.shape:
        raise ShapeError(
            f"{op}: labels and predictions must be 1-D of one length N; expected (N,) and (N,), "
            f"got labels.shape={labels.shape}, predictions.shape={predictions.shape}"
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.dtype.kind not in "iu":
            raise DTypeError(
                f"{op}: {name} must hold integer classes; expected an integer dtype, "
                f"got {values.dtype} ({name}.shape={values.shape})"
            )
        outside = values[(values < 0) | (values >= num_classes)]
        if outside.size:
            shown = sorted({int(v) for v in numpy.unique(outside)[:10]})
            raise ValueError(
                f"{op}: {name} out of range; expected integers in [0, {num_classes}), got "
                f"{outside.size} outside it, e.g. {shown} ({name}.shape={values.shape})"
            )
    K = num_classes
    pairs = labels.astype(numpy.int64) * K + predictions.astype(numpy.int64)  # (N,) index i*K + j
    return numpy.bincount(pairs, minlength=K * K).astype(numpy.int64).reshape(K, K)


def plot_confusion(
    matrix: Array, path: PathLike, *, class_names: Sequence[str] | None = None
) -> Path:
    """Draw a confusion matrix as an annotated heat map and write a PNG.

    Parameters
    ----------
    matrix : array (K, K)
        Counts, rows = true class, columns = predicted class (as from ``confusion_matrix``).
        Non-negative; integer counts are printed as integers, other values to 2 digits.
    path : str or os.PathLike
        Where to write the PNG.
    class_names : sequence of K str, optional
        Tick labels; the class indices by default.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ShapeError
        If ``matrix`` is not square and 2-D.
    DTypeError
        If ``matrix`` is not of a numeric (integer or float) dtype.
    ValueError
        If an entry is negative or not finite.
    ParameterError
        If ``class_names`` does not have K entries.

    Notes
    -----
    The title reports accuracy = trace / total (for a matrix whose rows were normalised to sum
    to 1, this is the mean per-class recall). Cells are annotated when K <= 30.
    """
    op = "plot_confusion"
    matrix = to_host(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ShapeError(
            f"{op}: matrix must be square; expected (K, K) with K >= 1, got {matrix.shape}"
        )
    if matrix.dtype.kind not in "iuf":
        raise DTypeError(
            f"{op}: matrix must be numeric; expected an integer or float dtype, got "
            f"{matrix.dtype} (matrix.shape={matrix.shape})"
        )
    counts = matrix.astype(numpy.float64)
    if not numpy.all(numpy.isfinite(counts)) or numpy.any(counts < 0):
        raise ValueError(
            f"{op}: matrix entries must be finite and non-negative; expected counts >= 0, got "
            f"min {counts.min()} (matrix.shape={matrix.shape})"
        )
    K = matrix.shape[0]
    names = [str(k) for k in range(K)] if class_names is None else [str(n) for n in class_names]
    if len(names) != K:
        raise ParameterError(
            f"{op}: class_names must name every class; expected {K} names, got {len(names)} "
            f"(matrix.shape={matrix.shape})"
        )
    total = float(counts.sum())
    accuracy = f"{float(numpy.trace(counts)) / total:.2%}" if total > 0 else "n/a (no samples)"
    side = min(max(4.0, 0.35 * K + 2.5), 12.0)
    figure = _new_figure(side + 1.0, side)
    axes = figure.subplots()
    picture = axes.imshow(counts, cmap="Blues", vmin=0.0)
    figure.colorbar(picture, ax=axes, shrink=0.8, label="count")
    long_names = max(len(name) for name in names) > 3  # e.g. Fashion-MNIST's "T-shirt/top"
    axes.set_xticks(range(K), names, rotation=90 if K > 10 or long_names else 0)
    axes.set_yticks(range(K), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix (K={K}, N={total:g}), accuracy {accuracy}")
    if K <= _ANNOTATE_LIMIT:
        integral = bool(numpy.all(counts == numpy.round(counts)))
        threshold = counts.max() / 2.0
        size = 9 if K <= 10 else 6
        for (i, j), value in numpy.ndenumerate(counts):
            text = f"{int(value)}" if integral else f"{value:.2f}"
            colour = "white" if value > threshold else "black"
            axes.text(j, i, text, ha="center", va="center", color=colour, fontsize=size)
    return _save_png(figure, path)


# -- feature maps ----------------------------------------------------------------------------------
def _capture_feature_maps(model: Sequential, x: Array) -> list[tuple[str, numpy.ndarray]]:
    """Run ``x`` (1, C, H, W) child by child; keep each conv output and the activation after it.

    Nothing is recorded (``no_grad``), so no layer keeps a cache.
    """
    captured: list[tuple[str, numpy.ndarray]] = []
    after_conv = False
    for index, child in enumerate(model):
        with no_grad():
            x = child(x).data
        name = f"{index}: {type(child).__name__}"
        if x.ndim != 4:
            after_conv = False
        elif isinstance(child, _CONV_TYPES):
            captured.append((name, to_host(x[0])))  # (K, P, Q)
            after_conv = True
        elif after_conv and isinstance(child, _ACTIVATION_TYPES):
            captured.append((name, to_host(x[0])))  # (K, P, Q)
            after_conv = False
    return captured


def _input_image(image: numpy.ndarray) -> tuple[numpy.ndarray, str | None, str]:
    """(picture, colormap, description) for the input (C, H, W)."""
    C = image.shape[0]
    if C == 3:
        return _normalise(image).transpose(1, 2, 0), None, "RGB"  # (H, W, 3)
    if C == 1:
        return image[0], "gray", "grayscale"
    return image.mean(axis=0), "gray", f"mean of C={C} channels"


def plot_feature_maps(model: Module, image: Array, path: PathLike, *, max_maps: int = 16) -> Path:
    """Draw what a network's conv layers compute on one image and write a PNG.

    The image runs through ``model`` in eval mode as a batch of one, child by child. The output
    of every Conv2d / ConvTranspose2d child, and of the first activation child after it
    (ReLU, LeakyReLU, Sigmoid, Tanh), is captured; the figure has one row for the input and one
    row per captured output, showing up to ``max_maps`` channels. All channels of a layer share
    one colour scale, with a colour bar: 0 to the maximum where the layer's output is
    non-negative (after a ReLU), else symmetric about 0. So a dead channel (0 everywhere) looks
    dead, the colour of 0, and is marked "dead"; it is not stretched to fill the scale.

    Parameters
    ----------
    model : Sequential
        The network; its top-level children are run one at a time (a nested container counts as
        one child).
    image : array (C, H, W)
        One input image; converted to the dtype and array module of the first conv's weight.
    path : str or os.PathLike
        Where to write the PNG.
    max_maps : int
        The most channels drawn per layer.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``model`` is not a Sequential.
    ShapeError
        If ``image`` is not 3-D.
    ParameterError
        If ``max_maps`` is not a positive int.
    ValueError
        If the model has no conv layer at its top level.

    Notes
    -----
    Every module's ``training`` flag is restored afterwards, and nothing is recorded, so a call
    between a forward and its backward leaves the pending backward intact.
    """
    op = "plot_feature_maps"
    if not isinstance(model, Sequential):
        raise TypeError(
            f"{op}: model must be a Sequential; expected Sequential, got {type(model).__name__}"
        )
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) != 3:
        raise ShapeError(f"{op}: image must be one image; expected (C, H, W), got shape={shape}")
    _check_positive(op, "max_maps", max_maps)
    if not any(isinstance(child, _CONV_TYPES) for child in model):
        raise ValueError(
            f"{op}: model has no conv layer to show; expected a Conv2d or ConvTranspose2d child, "
            f"got {[type(child).__name__ for child in model]}"
        )
    weight = next(child for child in model if isinstance(child, _CONV_TYPES)).weight.data
    x = get_xp(weight).asarray(image, dtype=weight.dtype)[None]  # (1, C, H, W)
    modules = list(model.modules())
    saved = [(module, module.training) for module in modules]
    try:
        model.eval()
        captured = _capture_feature_maps(model, x)
    finally:
        for module, training in saved:
            module.training = training
    return _draw_feature_maps(to_host(image), captured, path, max_maps)


def layer_scale(maps: numpy.ndarray) -> tuple[str, float, float, str]:
    """(colormap, vmin, vmax, description) shared by all channels of one layer: 0 to the
    maximum for non-negative maps (after a ReLU), else symmetric about 0. Either way a channel
    that is 0 everywhere takes the colour of 0, the same in every channel."""
    finite = maps[numpy.isfinite(maps)]
    largest = float(numpy.abs(finite).max()) if finite.size else 0.0
    largest = largest if largest > 0.0 else 1.0
    if finite.size == 0 or float(finite.min()) >= 0.0:
        return "viridis", 0.0, largest, "0 to max"
    return "RdBu_r", -largest, largest, "symmetric about 0"


def dead_channels(maps: numpy.ndarray) -> list[int]:
    """The channels k of ``maps`` (K, P, Q) that are 0 everywhere."""
    return [k for k, plane in enumerate(maps) if not numpy.any(plane)]


def _draw_feature_maps(
    image: numpy.ndarray,
    captured: list[tuple[str, numpy.ndarray]],
    path: PathLike,
    max_maps: int,
) -> Path:
    """One row for the input, then one row per captured output (K, P, Q): its first channels,
    all on the layer's one scale (with a colour bar); a channel that is 0 everywhere says so."""
    columns = min(max_maps, max(maps.shape[0] for _, maps in captured))
    figure = _new_figure(max(6.0, 0.8 * columns + 2.5), 1.4 * (1 + len(captured)) + 0.5)
    rows = figure.subplots(1 + len(captured), 1, squeeze=False)[:, 0]
    for axes in rows:
        _hide_ticks(axes)
    picture, colormap, how = _input_image(image.astype(numpy.float64))
    rows[0].imshow(picture, cmap=colormap, interpolation="nearest")
    rows[0].set_ylabel(f"input\n{tuple(image.shape)}", fontsize=7)
    rows[0].set_title(f"input image ({how})", fontsize=8)
    for axes, (name, maps) in zip(rows[1:], captured, strict=True):
        shown = maps[:max_maps].astype(numpy.float64)  # (min(K, max_maps), P, Q)
        cmap_name, low, high, scale = layer_scale(shown)
        mosaic = numpy.ma.masked_invalid(_mosaic(shown, len(shown), numpy.nan))
        cmap = colormaps[cmap_name].with_extremes(bad=NEUTRAL)
        image_artist = axes.imshow(mosaic, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        figure.colorbar(image_artist, ax=axes, shrink=0.9, pad=0.01, aspect=8)
        dead = dead_channels(shown)
        height, width = shown.shape[1:]
        for k in dead:  # the tile's centre in mosaic coordinates (1-pixel gaps)
            colour = "white" if cmap_name == "viridis" else "black"
            axes.text(1 + k * (width + 1) + (width - 1) / 2, 1 + (height - 1) / 2, "dead",
                      ha="center", va="center", fontsize=6, color=colour)  # fmt: skip
        axes.set_ylabel(f"{name}\n{tuple(maps.shape)}", fontsize=7)
        note = f"; {len(dead)} dead (0 everywhere)" if dead else ""
        axes.set_title(
            f"channels 0 to {len(shown) - 1} of {maps.shape[0]}, one scale ({scale}){note}",
            fontsize=7,
        )
    figure.suptitle(
        f"Feature maps (up to {max_maps} channels per layer, one colour scale per layer)",
        fontsize=9,
    )
    return _save_png(figure, path)
