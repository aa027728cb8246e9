"""The compiled CPU kernels: when they run, on how many threads, and one dispatch point per op.

Some loops cost NumPy several passes over memory per kernel tap: the im2col copy and its
col2im scatter-add (I1, I5), depthwise convolution (F1, B2, B3 with C/G = 1) and max
pooling (MP1-MP3); others are chains of element-wise NumPy operations, each a pass of its
own: the bias (F1, B1), ReLU (A1-A3), an Adam step (ADAM2-ADAM7), Winograd's tile
transforms and the FFT's layout changes. The compiled kernels compute each of them in one
pass, from the same equations, over a range of independent planes (or elements), without
the GIL, on several threads.

Layout
------
``_compiled.py``
    The one module that imports the compiled code: :data:`kernels` (every compiled function
    by name) and :data:`AVAILABLE`.
``im2col.py``, ``direct.py``, ``depthwise.py``, ``winograd.py``, ``pool.py``, ``bias.py``,
``elementwise.py``, ``adam.py``, ``layout.py``, ``fft.py``, ``products.py``
    One module per kernel family: the Python side of each kernel (the output allocation,
    the thread count, the checks the kernel leaves to its caller), with the equations it
    computes.
this module
    The switch (:func:`enabled`, :func:`disabled`, :func:`serves`), the thread split
    (:func:`threads_for`, :func:`parallel`) and the dispatch (:func:`twin`,
    :func:`accelerated`).

The kernels are optional: where they were not built (no C compiler at install time)
:data:`AVAILABLE` is False and every op runs its NumPy code, which gives the same results.
They serve only aligned float32/float64 (complex64/complex128 for spectra) NumPy arrays;
CuPy arrays never reach them. :func:`disabled` turns them off for a block: the tests
compare both paths.

Dispatch
--------
Every op keeps its NumPy code as a named function, the readable reference with its
labelled equations, and names its compiled twin in a decorator::

    # convprop/_native/elementwise.py: the compiled path and the arrays it needs
    @twin(arrays="x")
    def relu_forward(x): ...

    # convprop/functional/activation.py: the op's one decision point
    @_native.accelerated(elementwise.relu_forward)
    def _relu(x):
        return get_xp(x).maximum(x, 0)  # (A2)

A call of the decorated function runs the twin where the kernels are enabled, every array
the twin names is one they serve (``arrays``: float32/float64; ``optional``: the same, or
None; ``spectra``: complex64/complex128) and the predicates accept the call: the twin's
``requires`` (what its kernel cannot do, e.g. a stride other than 1) and the op's
``when`` (where the compiled path is not always the faster one, a cost model); otherwise it
runs the reference. Twin and reference take the same parameters, under the same names
(checked when the decorator is applied), and give the same results: bit for bit where the
arithmetic is the same, to rounding where a sum runs in another order (each twin says
which). The decision costs a few attribute reads per call: no signature binding on a call
without keywords.

Where a compiled path is more than one kernel (Winograd's batched tiles, the FFT's layout
copies), the functional module writes it as a function of its own and marks it with
:func:`twin`; functional code calls the family modules' kernels only inside such twins.
:func:`runs_compiled` answers the one other question ops ask (which algorithm or layout a
cost model should count on), never which code to run; :func:`wide_blockings_run` the one
about the CPU (whether the direct sums' AVX-512 blocking runs, which changes their rate).
One kernel can tell whether it serves a call only by trying: ``products.add_products``
(NumPy's BLAS, where one is found) returns whether it did the work.

Threads: ``convprop.backend.num_threads`` (one policy for the library).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, ParamSpec, TypeVar, cast

import numpy

from convprop._native._compiled import AVAILABLE, kernels
from convprop.backend import num_threads

__all__ = [
    "AVAILABLE",
    "MIN_WORK_PER_THREAD",
    "Twin",
    "accelerated",
    "conv_geometry_tuple",
    "disabled",
    "enabled",
    "num_threads",
    "parallel",
    "runs_compiled",
    "serves",
    "serves_complex",
    "threads_for",
    "turned_off",
    "twin",
    "wide_blockings_run",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

_state = threading.local()

_REAL = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
_COMPLEX = (numpy.dtype(numpy.complex64), numpy.dtype(numpy.complex128))

MIN_WORK_PER_THREAD = 2**20
"""Below this much work per thread, one thread is faster than sharing the call.

Work is counted in elements streamed through memory, weighted by the arithmetic a kernel
does per element (see each caller). A worker that finished a call less than 0.1 ms ago
joins the next within microseconds; one that slept takes a wake-up of 0.05-0.2 ms on the
machines measured, and a pure copy gains little from a second core whose memory bandwidth
it shares: the element-wise passes over a layer's activations stay on one thread, and
only the larger or arithmetic-heavy kernels are split."""


# ------------------------------------------------------------------------------ the switch


def enabled() -> bool:
    """True when the kernels are built and not turned off by :func:`disabled`."""
    return AVAILABLE and not getattr(_state, "off", False)


@contextmanager
def disabled() -> Iterator[None]:
    """Run a block with the NumPy code only (in this thread); BLAS sums included."""
    before = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = before


def turned_off() -> bool:
    """True inside :func:`disabled` (whether or not the kernels were built)."""
    return bool(getattr(_state, "off", False))


def _real(a: Any) -> bool:
    """An aligned float32/float64 NumPy array (a misaligned view takes the NumPy code)."""
    return type(a) is numpy.ndarray and a.dtype in _REAL and a.flags.aligned


def _spectrum(a: Any) -> bool:
    """An aligned complex64/complex128 NumPy array."""
    return type(a) is numpy.ndarray and a.dtype in _COMPLEX and a.flags.aligned


def serves(*arrays: Any) -> bool:
    """True when the kernels are enabled and every array is a float32/float64 NumPy array."""
    return enabled() and all(_real(a) for a in arrays)


def serves_complex(*arrays: Any) -> bool:
    """True when the kernels are enabled and every array is a complex64/complex128 NumPy
    array (the FFT's spectra)."""
    return enabled() and all(_spectrum(a) for a in arrays)


def runs_compiled(*arrays: Any) -> bool:
    """Whether the compiled kernels run for arrays like these (with none: for NumPy arrays).

    For the cost models and the timing cache, whose estimates and measurements differ
    between the compiled and the NumPy code: which algorithm to choose, which layout, up
    to which length a transform is a matrix product. Which code an op runs is decided by
    its dispatch point (:func:`accelerated`), never by this.
    """
    return serves(*arrays)


def wide_blockings_run() -> bool:
    """Whether the compiled kernels run their AVX-512 register blockings on this CPU (the
    direct sums' "wide" blocking, src/direct.h): False where the kernels are not built or the
    CPU lacks x86-64-v4. For the cost models, as :func:`runs_compiled`: the kernels choose
    their blocking themselves."""
    return AVAILABLE and bool(kernels.wide_blockings_run())


# ------------------------------------------------------------------------------ threads


def threads_for(planes: int, work: int) -> int:
    """Threads worth waking for ``planes`` independent pieces of ``work`` in all: at least
    one, at most :func:`num_threads` and ``planes``. A call too small for two threads does
    not read the thread policy (the environment: about a microsecond, 61 times in the forward
    of one image through ResNet-20)."""
    worth = min(planes, work // MIN_WORK_PER_THREAD)
    return 1 if worth <= 1 else max(1, min(num_threads(), worth))


def parallel(kernel: Callable[..., Any], planes: int, work: int, *args: Any) -> Any:
    """Call ``kernel(*args, 0, planes, threads)``: the kernel runs the planes ``[0, planes)``
    on ``threads`` threads, which claim chunks of them in turn.

    ``work`` (see :data:`MIN_WORK_PER_THREAD`) decides how many threads are worth waking,
    never more than :func:`num_threads` or ``planes``. Returns the kernel's result.
    """
    return kernel(*args, 0, planes, threads_for(planes, work))


def conv_geometry_tuple(geom: Any) -> tuple[int, ...]:
    """The 15 integers the convolution kernels read from a ``convprop._shapes.ConvGeometry``."""
    return (
        geom.N, geom.C, geom.H, geom.W, geom.K, geom.R, geom.S, geom.P, geom.Q,
        geom.stride_h, geom.stride_w, geom.dil_h, geom.dil_w, geom.pad_top, geom.pad_left,
    )  # fmt: skip


# ----------------------------------------------------------------------------- dispatch


def _names(spec: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in spec.split(",") if name.strip())


def _parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    """The names of a function's positional parameters, in order."""
    code = function.__code__
    return code.co_varnames[: code.co_argcount]


def _signature(function: Callable[..., Any]) -> str:
    """The parameters with their defaults, as written: ``(x, geom, wide=False)``."""
    names = _parameters(function)
    defaults = function.__defaults__ or ()
    first = len(names) - len(defaults)
    shown = [*names[:first], *(f"{n}={d!r}" for n, d in zip(names[first:], defaults, strict=True))]
    return f"({', '.join(shown)})"


class Twin(Generic[P, R]):
    """The compiled path of an op and what it needs of a call; made by :func:`twin`.

    Calling a Twin runs the compiled path unconditionally (the tests do, to compare it with
    the reference); :func:`accelerated` calls it only where :meth:`serves_call` says so.
    """

    def __init__(
        self,
        run: Callable[P, R],
        arrays: str = "",
        optional: str = "",
        spectra: str = "",
        requires: Callable[P, bool] | None = None,
    ) -> None:
        self.run = run
        self.requires = requires
        self.__wrapped__ = run
        self.__doc__ = run.__doc__
        self.__name__ = run.__name__
        names = _parameters(run)
        checks: list[tuple[int, Callable[[Any], bool]]] = []
        for spec, check in ((arrays, _real), (optional, _real_or_none), (spectra, _spectrum)):
            for name in _names(spec):
                if name not in names:
                    raise TypeError(f"twin: {run.__name__} has no parameter {name!r}")
                checks.append((names.index(name), check))
        self._checks = tuple(checks)
        defaults = run.__defaults__ or ()
        first = len(names) - len(defaults)
        self._defaults = dict(zip(names[first:], defaults, strict=True))
        self._default_at = dict(enumerate(defaults, start=first))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(*args, **kwargs)

    def _positional(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The call's arguments in parameter order, keywords and defaults filled in."""
        names = _parameters(self.run)
        filled = [kwargs.get(name, self._defaults.get(name)) for name in names[len(args) :]]
        return (*args, *filled)

    def serves_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether the kernels are enabled, serve the named arrays and ``requires`` accepts."""
        if not AVAILABLE or getattr(_state, "off", False):  # enabled(), asked by every call
            return False
        full = self._positional(args, kwargs) if kwargs else args
        count = len(full)
        for position, check in self._checks:
            value = full[position] if position < count else self._default_at.get(position)
            if not check(value):
                return False
        return self.requires is None or self.requires(*args, **kwargs)


def _real_or_none(a: Any) -> bool:
    return a is None or _real(a)


def twin(
    arrays: str = "",
    *,
    optional: str = "",
    spectra: str = "",
    requires: Callable[..., bool] | None = None,
) -> Callable[[Callable[P, R]], Twin[P, R]]:
    """Mark a function as the compiled path of an op (see the module's Dispatch section).

    Parameters
    ----------
    arrays : str
        Comma-separated names of the parameters that must be float32/float64 NumPy arrays.
    optional : str
        Parameters that must be such arrays or None (a bias).
    spectra : str
        Parameters that must be complex64/complex128 NumPy arrays.
    requires : callable or None
        Called with the call's arguments: False where the kernel cannot compute the call
        although its arrays are served (a stride, an empty array, a layout).
    """

    def mark(run: Callable[P, R]) -> Twin[P, R]:
        return Twin(run, arrays, optional, spectra, requires)

    return mark


def accelerated(
    compiled: Twin[..., Any], when: Callable[..., bool] | None = None
) -> Callable[[F], F]:
    """Make the decorated NumPy reference the op's one dispatch point: each call runs
    ``compiled`` where it serves the call and ``when`` (the op's cost model, if any) accepts
    it, else the reference. See the module's Dispatch section.

    Raises
    ------
    TypeError
        When the reference and the twin do not take the same parameters (names, order and
        defaults).
    """

    def decorate(reference: F) -> F:
        if _signature(reference) != _signature(compiled.run):
            raise TypeError(
                f"accelerated: {reference.__qualname__} and its twin {compiled.__name__} must "
                f"take the same parameters; expected {_signature(reference)}, got "
                f"{_signature(compiled.run)}"
            )
        run, serves_call = compiled.run, compiled.serves_call
        if when is None:

            def op(*args: Any, **kwargs: Any) -> Any:
                if serves_call(args, kwargs):
                    return run(*args, **kwargs)
                return reference(*args, **kwargs)

        else:
            cost_model = when

            def op(*args: Any, **kwargs: Any) -> Any:
                if serves_call(args, kwargs) and cost_model(*args, **kwargs):
                    return run(*args, **kwargs)
                return reference(*args, **kwargs)

        return cast(F, functools.wraps(reference)(op))

    return decorate
