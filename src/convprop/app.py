"""What the command-line subcommands do, apart from parsing their arguments.

``convprop.cli`` parses the arguments and calls the commands here (``train_command``,
``eval_command``, ``predict_command``, ``gradcheck_command``); the dependency points one
way, from the command line to this module, which never imports ``convprop.cli``. The
per-dataset defaults of ``convprop train`` and its run directory are decided here.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy

from convprop.app_checks import (
    check_eval_shape,
    check_run_directory,
    clear_run,
    image_warnings,
    out_of_memory,
    training_brightness,
)
from convprop.autograd import no_grad
from convprop.data.class_names import class_names

log = logging.getLogger("convprop")

# per-dataset defaults: a run with no options reaches good accuracy quickly
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 15, "batch_size": 32, "lr": 2e-3},
    "fashion-mnist": {"epochs": 10, "batch_size": 64, "lr": 1e-3},
}
FALLBACK_DEFAULTS: dict[str, Any] = {"epochs": 10, "batch_size": 64, "lr": 1e-3}


def out_dir_for(dataset: str, out: str | None) -> Path:
    """The run directory: ``--out`` when given, else ``runs/<dataset>`` (a folder's name)."""
    if out is not None:
        return Path(out)
    name = Path(dataset).resolve().name if Path(dataset).is_dir() else dataset
    return Path("runs") / name


def _model_info(command: str, model_file: str) -> dict[str, Any]:
    """What ``convprop train`` stored with the model: dataset, model, input_shape, num_classes.

    Empty for a model file saved without that metadata (e.g. by ``convprop.io.save_model``);
    each field's type and range is checked (``convprop.io.load_run_info``).
    """
    from convprop.io import load_run_info

    if not Path(model_file).is_file():
        raise FileNotFoundError(
            f"{command}: no such model file; expected a model.safetensors written by "
            f"convprop train, got {model_file!r}"
        )
    return load_run_info(model_file, command)


def train_command(args: argparse.Namespace) -> int:
    """``convprop train``; under mpiexec every rank runs it, data-parallel (docs/distributed.md)."""
    from convprop.distributed import launched

    if not launched():
        return _train(args, distributed=False, main=True)
    from convprop.distributed import DataParallel
    from convprop.train import TrainingDivergedError

    parallel = DataParallel((TrainingDivergedError,))  # an error on one rank ends the job
    if not parallel.is_main:
        log.setLevel(logging.WARNING)  # rank 0 reports
    try:
        with parallel.guard():
            return _train(args, distributed=True, main=parallel.is_main)
    except TrainingDivergedError:  # raised by every rank at the same step: rank 0 says it
        if parallel.is_main:
            raise
        return 1


def _train(args: argparse.Namespace, *, distributed: bool, main: bool) -> int:
    from convprop.data import DATASETS, load_dataset
    from convprop.errors import ParameterError
    from convprop.models import MODELS, build_model
    from convprop.train import TrainConfig, evaluate, fit

    defaults = DATASET_DEFAULTS.get(args.dataset, FALLBACK_DEFAULTS)
    if getattr(args, "tune", False):
        from convprop.functional.conv2d_select import enable_timing_cache

        log.info("measured algorithm choice on: %s", enable_timing_cache().path)
    # a directory is stored as an absolute path, so that `convprop eval` finds it from anywhere
    dataset = args.dataset if args.dataset in DATASETS else str(Path(args.dataset).resolve())
    config = TrainConfig(
        epochs=args.epochs if args.epochs is not None else defaults["epochs"],
        batch_size=args.batch_size if args.batch_size is not None else defaults["batch_size"],
        lr=args.lr if args.lr is not None else defaults["lr"],
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
        clip_grad_norm=getattr(args, "clip_grad_norm", None),
        warmup_epochs=getattr(args, "warmup_epochs", 0),
        augment=augment_names(getattr(args, "augment", None)),
        extra={"dataset": dataset, "model": args.model},
    )
    # bad options fail at once, before the data set is read
    config.validate()
    if args.model not in MODELS:
        raise ParameterError(
            f"train: unknown model; expected one of {sorted(MODELS)}, got {args.model!r}"
        )
    out = out_dir_for(args.dataset, args.out)
    overwrite = getattr(args, "overwrite", False)
    check_run_directory(out, resume=args.resume, overwrite=overwrite)
    with out_of_memory("train", f"loading the data set {args.dataset}"):
        train_set, test_set = load_dataset(args.dataset)
    C, H, W = train_set.sample_shape
    num_classes = max(train_set.num_classes, test_set.num_classes)
    brightness = round(float(train_set.images.mean()), 4) if len(train_set) else None
    config.extra.update(input_shape=[C, H, W], num_classes=num_classes)
    if brightness is not None:
        config.extra.update(mean_brightness=brightness)  # predict's inverted-image warning
    with out_of_memory("train", f"building the model {args.model} for images of {(C, H, W)}"):
        model = build_model(
            args.model, num_classes=num_classes, in_channels=C, image_size=min(H, W), rng=args.seed
        )
    if overwrite and main:
        for path in clear_run(out):
            log.info("removed %s (--overwrite)", path)
    if args.device != "cpu":
        model.to(args.device)
    log.info(
        "training %s on %s: %d train / %d test images of %s, %d classes -> %s",
        args.model,
        args.dataset,
        len(train_set),
        len(test_set),
        (C, H, W),
        num_classes,
        out,
    )
    with out_of_memory("train", f"training {args.model} with batches of {config.batch_size}"):
        history = fit(
            model,
            train_set,
            test_set,
            config,
            out_dir=out,
            resume=args.resume,
            distributed=distributed,
        )
    if not main:
        return 0  # rank 0 writes the plots and reports
    final = history[-1]
    log.info(
        "final: train loss %.4f, train accuracy %.4f, test loss %.4f, test accuracy %.4f",
        final["train_loss"],
        final["train_accuracy"],
        final["test_loss"],
        final["test_accuracy"],
    )
    if not args.no_plots:
        result = evaluate(model, test_set, device=args.device)
        names = class_names(dataset, num_classes)
        for path in write_plots(model, history, result, test_set, num_classes, out, names):
            log.info("wrote %s", path)
        report = write_run_report(args, model, history, result, test_set, names, out)
        log.info("wrote %s", report)
    log.info("wrote %s", out / "model.safetensors")
    return 0


def augment_names(spec: str | None) -> list[str]:
    """``--augment`` as TrainConfig.augment: None -> [], "crop,flip" -> ["crop", "flip"]."""
    return [] if spec is None else [name.strip() for name in spec.split(",")]


def write_run_report(
    args: argparse.Namespace,
    model: Any,
    history: list[dict[str, Any]],
    result: Any,
    test_set: Any,
    names: tuple[str, ...],
    out: Path,
) -> Path:
    """``out/report.html``: the curves, gradient norms, plots and misclassified images."""
    from convprop.report import write_report

    final = history[-1]
    summary = [
        ("model", args.model),
        ("data set", f"{args.dataset}: {len(test_set)} test images, {len(names)} classes"),
        ("epochs", str(final["epoch"])),
        ("final test accuracy", f"{result.accuracy:.4f}"),
        ("final test loss", f"{result.loss:.4f}"),
        ("final train loss", f"{final['train_loss']:.4f}"),
        ("run directory", str(out.resolve())),
    ]
    title = f"Training report: {args.model} on {args.dataset}"
    return write_report(
        out, history, result, test_set, names, title=title, summary=summary, model=model
    )


def write_plots(
    model: Any,
    history: list[dict[str, Any]],
    result: Any,
    test_set: Any,
    num_classes: int,
    out: Path,
    names: tuple[str, ...] | None = None,
) -> list[Path]:
    """Loss/accuracy curves, first-layer filters (one scale centred on 0), confusion matrix
    (with the class names), feature maps."""
    from convprop.backend import to_host
    from convprop.nn import Conv2d
    from convprop.plots import (
        confusion_matrix,
        plot_confusion,
        plot_feature_maps,
        plot_filters,
        plot_history,
    )

    paths = [Path(plot_history(history, out / "history.png"))]
    first_conv = next((m for m in model.modules() if isinstance(m, Conv2d)), None)
    if first_conv is not None:
        weight = to_host(first_conv.weight.data)
        paths.append(Path(plot_filters(weight, out / "filters.png", diverging=True)))
    matrix = confusion_matrix(result.labels, result.predictions, num_classes)
    paths.append(Path(plot_confusion(matrix, out / "confusion.png", class_names=names)))
    image, _ = test_set[0]
    paths.append(Path(plot_feature_maps(model, image, out / "feature_maps.png")))
    return paths


def eval_command(args: argparse.Namespace) -> int:
    from convprop.data import load_dataset
    from convprop.io import load_model
    from convprop.train import evaluate

    info = _model_info("eval", args.model_file)
    dataset = args.dataset or info.get("dataset")
    if dataset is None:
        raise ValueError(
            f"eval: the model file {args.model_file} does not name its dataset; pass --dataset"
        )
    with out_of_memory("eval", f"loading the data set {dataset}"):
        _, test_set = load_dataset(dataset)
    with out_of_memory("eval", f"building the model of {args.model_file}"):
        model = load_model(args.model_file)
    check_eval_shape(info, test_set.sample_shape, model, str(dataset), args.model_file)
    if args.device != "cpu":
        model.to(args.device)
    with out_of_memory("eval", f"evaluating {len(test_set)} images of {test_set.sample_shape}"):
        result = evaluate(model, test_set, device=args.device)
    print(
        f"dataset {dataset}: {len(test_set)} test images, loss {result.loss:.4f}, "
        f"accuracy {result.accuracy:.4f}"
    )
    return 0


def _load_image(path: str, shape: tuple[int, int, int]) -> tuple[numpy.ndarray, tuple[int, int]]:
    """Read an image file as (C, H, W) float32 in [0, 1], converted and resized to ``shape``;
    also return the file's own (height, width)."""
    from PIL import Image

    C, H, W = shape
    try:
        with Image.open(path) as image:
            size = (image.height, image.width)
            converted = image.convert("L" if C == 1 else "RGB").resize((W, H))
            array = numpy.asarray(converted, dtype=numpy.float32) / 255.0
    except (OSError, ValueError) as error:
        raise ValueError(f"predict: cannot read the image {path}: {error}") from None
    return (array[None] if C == 1 else array.transpose(2, 0, 1)), size


def predict_command(args: argparse.Namespace) -> int:
    from convprop.data.idx import read_idx
    from convprop.functional.loss import softmax
    from convprop.io import load_model

    info = _model_info("predict", args.model_file)
    shape = tuple(info.get("input_shape", (1, 28, 28)))
    with out_of_memory("predict", f"building the model of {args.model_file}"):
        model = load_model(args.model_file)
    model.eval()
    size: tuple[int, int] | None = None
    if args.idx is not None:
        images = read_idx(args.idx)
        if not 0 <= args.index < len(images):
            raise ValueError(
                f"predict: --index out of range; expected 0 <= index < {len(images)}, got "
                f"{args.index} ({args.idx} holds {images.shape})"
            )
        entry = images[args.index].astype(numpy.float32)
        scale = 255.0 if images.dtype == numpy.uint8 else 1.0
        x = (entry / scale).reshape(1, *shape) if entry.size == numpy.prod(shape) else None
        if x is None:
            raise ValueError(
                f"predict: the IDX entry has shape {entry.shape}; expected {shape[1:]} for "
                f"this model"
            )
        source = f"{args.idx}[{args.index}]"
    elif args.image is not None:
        image, size = _load_image(args.image, shape)
        x = image[None]
        source = args.image
    else:
        raise ValueError("predict: nothing to classify; expected an image file or --idx FILE")
    if getattr(args, "invert", False):
        x = 1.0 - x  # black on white -> white on black
    if size is not None:
        trained = training_brightness(info)
        for warning in image_warnings(size, shape, float(x.mean()), trained):
            log.warning("convprop: %s", warning)
    dtype = model.parameters()[0].data.dtype
    model.eval()
    with no_grad():
        probabilities = softmax(model(x.astype(dtype)).data)[0]
    best = int(numpy.argmax(probabilities))
    names = class_names(str(info.get("dataset", "")), len(probabilities))
    shown = [name if name != str(k) else "" for k, name in enumerate(names)]  # digits: no name
    headline = f"{best} {shown[best]}" if shown[best] else f"{best}"
    print(f"{source}: class {headline} (probability {probabilities[best]:.4f})")
    for label, probability in enumerate(probabilities):
        print(f"  {label:>3}  {probability:.4f}" + (f"  {shown[label]}" if shown[label] else ""))
    return 0


def gradcheck_command(args: argparse.Namespace) -> int:
    from convprop.errors import ParameterError
    from convprop.model_check import gradcheck_model
    from convprop.models import build_model

    for option, value in (("--batch-size", args.batch_size), ("--image-size", args.image_size)):
        if value < 1:
            raise ParameterError(
                f"gradcheck: {option} must be >= 1; expected a positive count, got {value}"
            )
    model = build_model(
        args.model,
        num_classes=10,
        in_channels=1,
        image_size=args.image_size,
        rng=args.seed,
        dtype="float64",
    )
    rows = gradcheck_model(
        model, (args.batch_size, 1, args.image_size, args.image_size), seed=args.seed
    )
    header = f"{'parameter':<22}{'shape':<20}{'analytic':>14}{'numeric':>14}{'rel. error':>12}  ok"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.name:<22}{row.shape!s:<20}{row.analytic:>14.6e}{row.numeric:>14.6e}"
            f"{row.relative_error:>12.2e}  {'yes' if row.ok else 'NO'}"
        )
    failed = [row.name for row in rows if not row.ok]
    print(f"{len(rows) - len(failed)} of {len(rows)} gradients agree with finite differences")
    return 1 if failed else 0


def bench_command(args: argparse.Namespace) -> int:
    """``convprop bench``: the options checked, the suite timed, the table (or JSON) printed."""
    from convprop.bench import format_table, run, to_json

    if args.nets:
        from convprop.bench_nets.runner import main as bench_nets

        return bench_nets(["--threads", str(args.threads), *(["--json"] if args.json else [])])
    if args.repeats < 1:
        raise ValueError(
            f"bench: --repeats must be >= 1; expected a positive count, got {args.repeats}"
        )
    if args.rounds < 1:
        raise ValueError(
            f"bench: --rounds must be >= 1; expected a positive count, got {args.rounds}"
        )
    if args.threads < 1:
        raise ValueError(
            f"bench: --threads must be >= 1; expected a positive count, got {args.threads}"
        )
    if args.warm_ms is not None and not 0 <= args.warm_ms <= 10_000:
        raise ValueError(
            f"bench: --warm-ms must be within [0, 10000]; expected milliseconds, got {args.warm_ms}"
        )
    results, info = run(
        args.shape,
        algorithm=args.algorithm,
        repeats=args.repeats,
        rounds=args.rounds,
        threads=args.threads,
        with_torch=not args.no_torch,
        suite=args.suite,
        memory=not args.no_memory,
        warm=None if args.warm_ms is None else args.warm_ms / 1e3,
        progress=True,
    )
    print(to_json(results, info) if args.json else format_table(results, info))
    return 0
