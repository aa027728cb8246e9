"""The ``convprop`` command line: train | eval | predict | gradcheck | explain | bench.

Every subcommand has ``--help``. Errors print one clear line on stderr and exit non-zero.
This module parses the arguments and reports errors; the commands' work is done in
``convprop.app`` (and ``convprop.explain``), which never import this module back.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

log = logging.getLogger("convprop")


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a CNN and write checkpoints, the model and plots",
        description="Train a CNN (default: LeNet-style net on the embedded "
        "digits), with a progress bar, checkpoints and plots. Started by mpiexec -n N, "
        "the N processes train data-parallel; rank 0 writes the files.",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="digits (embedded, default), fashion-mnist, or a directory: of IDX files, or of "
        "one sub-folder of PNG/JPEG images per class (or train/ and test/ folders of them)",
    )
    p.add_argument("--model", default="lenet", help="lenet (default), lenet5 or resnet-mini")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="mini-batch size; under mpiexec -n N the global batch, split across the N ranks "
        "(each takes every N-th sample of it, so the run trains as one process with this size)",
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw"])
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="none", choices=["none", "step", "cosine"])
    p.add_argument(
        "--warmup-epochs",
        type=int,
        default=0,
        metavar="K",
        help="raise the learning rate linearly over the first K epochs (lr*(t+1)/(K+1) in "
        "epoch t), then follow --schedule over the remaining epochs (default 0: none)",
    )
    p.add_argument(
        "--clip-grad-norm",
        type=float,
        default=None,
        metavar="X",
        help="rescale the gradients to a total 2-norm of at most X before each step",
    )
    p.add_argument(
        "--augment",
        nargs="?",
        const="crop,flip",
        default=None,
        metavar="LIST",
        help="augment the training batches, seeded: random crop with padding and horizontal "
        "flip (default crop,flip; --augment crop for digits, which flipping would change)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling, dropout")
    p.add_argument("--out", default=None, help="output directory (default runs/DATASET)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in OUT (its checkpoint and model); without it or --resume, an "
        "OUT that holds a run is refused",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--no-plots", action="store_true", help="do not write the PNG plots and report.html"
    )
    p.add_argument(
        "--tune",
        action="store_true",
        help="time every conv algorithm once per layer shape and keep the fastest "
        "(cached under ~/.cache/convprop)",
    )
    p.set_defaults(run=cmd_train)


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a saved model on a dataset's test split")
    p.add_argument("model_file", help="a model.safetensors written by convprop train")
    p.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(run=cmd_eval)


def _add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify an image file or an IDX entry",
        description="Classify one image with a trained model. The image must look like the "
        "training images: for digits and fashion-mnist, white (bright) strokes on a black "
        "background, one grey channel; a colour image is converted to the model's channels "
        "and resized to its input size (digits 8x8, fashion-mnist 28x28: input_shape in the "
        "model file). A warning says when the image looks inverted, is much smaller than "
        "that size or is squashed to it; --invert turns black on white into white on black.",
    )
    p.add_argument("model_file", help="a model.safetensors written by convprop train")
    p.add_argument(
        "image",
        nargs="?",
        help="an image file (PNG/JPEG), white on black, converted and resized to the model input",
    )
    p.add_argument("--idx", help="an IDX images file (raw or .gz) instead of an image file")
    p.add_argument("--index", type=int, default=0, help="which entry of --idx (default 0)")
    p.add_argument(
        "--invert",
        action="store_true",
        help="invert the image (x -> 1 - x) first: for dark strokes on a light background",
    )
    p.set_defaults(run=cmd_predict)


def _add_gradcheck(sub: Any) -> None:
    p = sub.add_parser("gradcheck", help="finite-difference check of every layer of a model")
    p.add_argument("--model", default="lenet", help="lenet (default), lenet5 or resnet-mini")
    p.add_argument("--image-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_gradcheck)


def _add_explain(sub: Any) -> None:
    from convprop.explain import TOPICS

    p = sub.add_parser(
        "explain",
        help="the derivations' worked examples, computed live, and an interactive page",
        description="Print a topic's worked examples (numbers computed now by convprop, "
        "checked by hand), and/or write the interactive page of the backward pass.",
    )
    p.add_argument(
        "topic",
        nargs="?",
        choices=list(TOPICS),
        help="; ".join(f"{name}: {text}" for name, (_, text) in TOPICS.items()),
    )
    p.add_argument(
        "--html",
        metavar="PAGE.html",
        help="write one self-contained page (no server, no network) where you choose input, "
        "kernel, stride, padding, dilation and channels and see every gradient",
    )
    p.set_defaults(run=cmd_explain)


def _add_bench(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="time conv2d against PyTorch on the benchmark suite",
        description="Time conv2d forward, input gradient, weight gradient and "
        "forward+backward, convprop vs PyTorch (CPU), each library alone in processes of its "
        "own, alternating.",
    )
    p.add_argument("--shape", action="append", help="one suite shape (repeatable); default all")
    p.add_argument(
        "--algorithm",
        default="auto",
        help="auto (default), direct, im2col, fft, winograd, winograd4, depthwise",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="timed samples per pass in each process (median)"
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="processes per library, alternating (median)"
    )
    p.add_argument(
        "--threads", type=int, default=2, help="threads of each library (kernels, BLAS, PyTorch)"
    )
    p.add_argument(
        "--warm-ms",
        type=float,
        default=None,
        help="untimed calls for this long before each sample (default 20; 0: one call, "
        "then one timed call)",
    )
    p.add_argument("--suite", default=None, help="a suite JSON file (default benchmarks/)")
    p.add_argument("--no-torch", action="store_true", help="time convprop alone")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument(
        "--nets",
        action="store_true",
        help="whole networks instead of conv layers: a training step and inference of every "
        "shipped model and a ResNet-20, each library in its own process (see "
        "benchmarks/bench_nets.py --help for its own options)",
    )
    p.set_defaults(run=cmd_bench)


class _Parser(argparse.ArgumentParser):
    """argparse with the program's one-line errors: ``convprop: <subcommand>: <message>``."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split()[1:]  # "convprop predict" -> ["predict"]
        where = f"convprop: {command[-1]}: " if command else "convprop: "
        see = f"{self.prog} --help"
        self.exit(2, f"{where}{message} (see {see})\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convprop",
        description="Convolutional networks with every gradient written by hand.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_eval, _add_predict, _add_gradcheck, _add_explain, _add_bench):
        add(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from convprop.app import train_command

    return train_command(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from convprop.app import eval_command

    return eval_command(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from convprop.app import predict_command

    return predict_command(args)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from convprop.app import gradcheck_command

    return gradcheck_command(args)


def cmd_explain(args: argparse.Namespace) -> int:
    from convprop.explain import explain_command

    return explain_command(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from convprop.app import bench_command

    return bench_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``convprop`` console script; returns the exit status.

    Every error is one line on stderr, ``convprop: <op>: <what is wrong>...``, where <op> is
    the function or subcommand that refused (argparse's usage errors included, exit status 2).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from convprop.process import configure_process

    # a console run of a long command starts again once, with OpenBLAS's short idle spin
    configure_process(restart=argv is None and args.command in ("train", "eval", "bench"))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"convprop: {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of the output has gone (`convprop explain conv | head`): stop quietly
        _silence_stdout()
        return 1
    except MemoryError as error:
        if args.verbose:
            raise
        print(error_line(args.command, _memory_message(error)), file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError, RuntimeError, KeyError, NotImplementedError) as error:
        if args.verbose:
            raise
        print(error_line(args.command, _message(error)), file=sys.stderr)
        return 1


_OP_PREFIX = re.compile(r"[A-Za-z_][\w.\[\]]*: ")
"""The start of a message that names its op already: ``predict: ...``, ``load_idx: ...``."""


def error_line(command: str, message: str) -> str:
    """``convprop: <op>: <message>``: the message's own op, or else the subcommand."""
    if _OP_PREFIX.match(message):
        return f"convprop: {message}"
    return f"convprop: {command}: {message}"


def _message(error: BaseException) -> str:
    """The first line of an exception's message, without OSError's ``[Errno N]`` prefix."""
    if isinstance(error, OSError) and error.strerror and error.filename is None:
        text = str(error.strerror)  # OSError(errno, "op: ...") reads "[Errno N] op: ..."
    elif isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])  # not repr()'s quotes
    else:
        text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


def _memory_message(error: MemoryError) -> str:
    """A MemoryError as one line: NumPy's names the array (shape, dtype, GiB); else the type."""
    detail = _message(error)
    if detail == type(error).__name__:
        detail = "an allocation failed (the operating system refused the memory)"
    if _OP_PREFIX.match(detail):
        return detail
    return f"out of memory; expected sizes that fit in this machine's memory, got: {detail}"


def _silence_stdout() -> None:
    """Send stdout to /dev/null, so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (captured output)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
