"""The processes of a data-parallel run: who am I, how many are we, and how to talk.

convprop talks MPI through mpi4py (``pip install convprop[mpi]``, which brings Open MPI and
its ``mpiexec``). MPI is imported only when the process was started by a launcher
(``mpiexec``, ``mpirun``, ``srun``): otherwise the run is one process of world size 1 and
nothing of MPI is loaded, so the same script runs both ways and ``import convprop`` never
needs MPI.

A launched process that raises ends the whole job: ``init`` installs an exception hook that
prints the rank and the error, then calls ``MPI_Abort`` (the other ranks would otherwise wait
forever in their next collective call).

Examples
--------
>>> from convprop import distributed
>>> distributed.init().size, distributed.rank(), distributed.is_main()   # not launched
(1, 0, True)
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from types import TracebackType
from typing import Any, NoReturn

import numpy

from convprop.backend import Array
from convprop.errors import ParameterError

LAUNCHER_SIZE_VARIABLES = (
    "OMPI_COMM_WORLD_SIZE",  # Open MPI's mpiexec / mpirun
    "PMIX_SIZE",  # PMIx launchers
    "PMI_SIZE",  # MPICH's Hydra, srun --mpi=pmi2
)
"""Environment variables through which a launcher tells a process the world size."""

LAUNCHER_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")
"""Environment variables through which a launcher tells a process its rank."""


def launched() -> bool:
    """Whether a launcher (mpiexec, mpirun, srun) started this process.

    Read from the environment alone: nothing is imported. A Slurm step of several tasks
    counts as launched even without an MPI plugin, so that ``init`` can refuse to let each
    task train alone.
    """
    names = (*LAUNCHER_SIZE_VARIABLES, *LAUNCHER_RANK_VARIABLES)
    slurm_tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "")
    return any(name in os.environ for name in names) or (
        slurm_tasks.isdigit() and int(slurm_tasks) > 1
    )


class SingleProcess:
    """The communicator of a run that was not launched: rank 0 of 1; every call is local."""

    rank = 0
    size = 1
    name = "one process"

    def allreduce_sum(self, buffer: Array) -> None:
        """In place: the sum over one rank is the buffer itself."""

    def allgather(self, values: numpy.ndarray) -> numpy.ndarray:
        """(1, *values.shape): this rank's values."""
        return numpy.array(values)[None]

    def broadcast(self, buffer: numpy.ndarray, root: int = 0) -> None:
        """In place: the root is this rank."""

    def barrier(self) -> None:
        """Nothing to wait for."""

    def abort(self, code: int = 1) -> NoReturn:
        raise SystemExit(code)


class MPICommunicator:
    """MPI_COMM_WORLD through mpi4py; buffers are NumPy arrays on the host.

    Attributes
    ----------
    rank, size : int
        This process's rank and the number of processes.
    """

    def __init__(self, comm: Any, mpi: Any) -> None:
        self._comm = comm
        self._mpi = mpi
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        self.name = mpi.Get_library_version().splitlines()[0].strip()

    def allreduce_sum(self, buffer: numpy.ndarray) -> None:
        """Sum ``buffer`` over all ranks, in place (one MPI_Allreduce)."""
        self._comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def allgather(self, values: numpy.ndarray) -> numpy.ndarray:
        """(size, *values.shape): every rank's values, in rank order (one MPI_Allgather)."""
        values = numpy.ascontiguousarray(values)
        gathered = numpy.empty((self.size, *values.shape), dtype=values.dtype)
        self._comm.Allgather(values, gathered)
        return gathered

    def broadcast(self, buffer: numpy.ndarray, root: int = 0) -> None:
        """Overwrite ``buffer`` on every rank with the root's (one MPI_Bcast)."""
        self._comm.Bcast(buffer, root=root)

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int = 1) -> NoReturn:
        """End every process of the job (MPI_Abort); never returns."""
        self._comm.Abort(code)
        raise SystemExit(code)  # pragma: no cover - MPI_Abort does not return


Communicator = SingleProcess | MPICommunicator

_world: Communicator | None = None


def _size_from_environment() -> int:
    for name in (*LAUNCHER_SIZE_VARIABLES, "SLURM_STEP_NUM_TASKS"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def _open_mpi() -> MPICommunicator:
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ParameterError(
            "distributed.init: this process was started by an MPI launcher but mpi4py cannot "
            f"be imported; expected convprop[mpi] installed (pip install 'convprop[mpi]'), "
            f"got {error}"
        ) from None
    world = MPICommunicator(MPI.COMM_WORLD, MPI)
    expected = _size_from_environment()
    if world.size == 1 and expected > 1:
        raise ParameterError(
            f"distributed.init: the launcher started {expected} processes but MPI sees each "
            "alone; expected one MPI world (under Slurm use srun --mpi=pmix, or mpiexec), "
            "got world size 1"
        )
    return world


def init() -> Communicator:
    """Join the run's processes (once; later calls return the same communicator).

    Returns
    -------
    SingleProcess or MPICommunicator
        World size 1 when the process was not launched by mpiexec/srun.

    Raises
    ------
    ParameterError
        When launched but mpi4py is missing, or when the launcher's processes do not
        form one MPI world.
    """
    global _world
    if _world is None:
        _world = _open_mpi() if launched() else SingleProcess()
        if _world.size > 1:
            sys.excepthook = _abort_on_uncaught
    return _world


def world() -> Communicator:
    """The communicator (``init`` is called if it was not)."""
    return _world if _world is not None else init()


def rank() -> int:
    """This process's rank, 0 to world_size() − 1."""
    return world().rank


def world_size() -> int:
    """The number of processes of the run (1 when not launched)."""
    return world().size


def is_main() -> bool:
    """Whether this is rank 0, the one that writes files and shows progress."""
    return world().rank == 0


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    world().barrier()


def describe_error(error: BaseException) -> str:
    """One line naming the rank and the error: ``rank 1 of 2: RuntimeError: ...``."""
    where = f"rank {rank()} of {world_size()}"
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{where}: {type(error).__name__}: {message}" if message else f"{where}: {error!r}"


def abort(error: BaseException | str, code: int = 1) -> NoReturn:
    """Print why on stderr, then end every process of the job (MPI_Abort).

    On one process this raises SystemExit(code) after printing.
    """
    line = error if isinstance(error, str) else describe_error(error)
    print(f"convprop: {line}; ending all ranks", file=sys.stderr, flush=True)
    world().abort(code)


def _abort_on_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """sys.excepthook of a launched process: show the traceback, then end the job."""
    traceback.print_exception(kind, error, trace, file=sys.stderr)
    abort(error)


def broadcast_json(value: Any, root: int = 0) -> Any:
    """The root's JSON-serialisable ``value`` on every rank (its text, in two broadcasts)."""
    comm = world()
    if comm.size == 1:
        return value
    text = json.dumps(value).encode() if comm.rank == root else b""
    length = numpy.array([len(text)], dtype=numpy.int64)
    comm.broadcast(length, root)
    data = numpy.frombuffer(text, dtype=numpy.uint8).copy() if comm.rank == root else None
    if data is None:
        data = numpy.empty(int(length[0]), dtype=numpy.uint8)
    comm.broadcast(data, root)
    return json.loads(data.tobytes().decode())
