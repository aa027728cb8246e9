"""Atomic writes: a file is replaced whole or not at all, and killed writers leave no litter.

``atomic_write`` writes to a temporary file in the target's directory, flushes it to disk
and renames it over the target; ``remove_stale_temporaries`` removes the temporary files of
writers that were killed mid-write. Nothing here knows about models: every file convprop
writes (model files, checkpoints, plots, reports, the explain page) goes through it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable

__all__ = ["PathLike", "atomic_write", "remove_stale_temporaries"]

PathLike = str | os.PathLike[str]


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write_fn: Callable[[str], None]) -> None:
    """Create or replace the file ``path`` with what ``write_fn`` writes, all or nothing.

    ``write_fn(temporary_path)`` writes the whole file to a new temporary file in the same
    directory (named ``.<stem>.<pid>-<random>.tmp<suffix>``, so writers that infer a format
    from the extension still work); it is then flushed to disk and renamed over ``path``. If
    ``write_fn`` or anything after it fails, the temporary file is removed and the error
    propagates: ``path`` keeps its previous content (or stays absent). A process killed
    mid-write cannot remove its temporary file; the next ``atomic_write`` of the same target
    does (``remove_stale_temporaries``), as does ``check_writable`` for a whole directory.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write_fn : callable
        Called once with the temporary path (a str).

    Examples
    --------
    >>> import os, tempfile
    >>> def write_hello(temporary: str) -> None:
    ...     with open(temporary, "w") as handle:
    ...         _ = handle.write("hello")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = os.path.join(folder, "note.txt")
    ...     atomic_write(target, write_hello)
    ...     with open(target) as handle:
    ...         print(handle.read(), os.listdir(folder))
    hello ['note.txt']
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    remove_stale_temporaries(directory, name)
    stem, suffix = os.path.splitext(name)
    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    temporary = os.path.join(directory, f".{stem}.{token}.tmp{suffix}")
    # O_EXCL: never reuse an existing file; mode 0o666 lets the umask decide, as open() does.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write_fn(temporary)
        # some writers (safetensors) recreate the file owner-only: restore the umask's mode
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


_TEMPORARY = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>[0-9]+)-[0-9a-f]{12}\.tmp(?P<suffix>.*)$")
"""The names ``atomic_write`` gives its temporary files: ``.<stem>.<pid>-<12 hex>.tmp<suffix>``."""


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    except OSError:  # pragma: no cover - platforms without signal 0
        return True
    return True


def remove_stale_temporaries(directory: PathLike, target: str | None = None) -> list[str]:
    """Remove the temporary files that killed ``atomic_write`` calls left in ``directory``.

    Only names of ``atomic_write``'s own pattern ``.<stem>.<pid>-<12 hex>.tmp<suffix>``
    are considered (of ``target``'s stem and suffix when given), and of those only the ones
    whose writer ``pid`` is no longer running: a write in progress, and every other file,
    is left alone.

    Parameters
    ----------
    directory : str or os.PathLike
        The folder to clean; a missing or unreadable folder is skipped.
    target : str, optional
        A file name in ``directory``: remove only its temporaries.

    Returns
    -------
    list of str
        The paths removed.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> dead = os.path.join(folder, ".model.999999999-0123456789ab.tmp.safetensors")
    >>> open(dead, "wb").close()
    >>> [os.path.basename(p) for p in remove_stale_temporaries(folder)], os.listdir(folder)
    (['.model.999999999-0123456789ab.tmp.safetensors'], [])
    """
    folder = os.fspath(directory)
    wanted = None if target is None else os.path.splitext(target)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _TEMPORARY.match(name)
        if match is None or (wanted is not None and wanted != match.group("stem", "suffix")):
            continue
        if _alive(int(match.group("pid"))):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed.append(path)
    return removed


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); platforms that cannot open folders skip it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(descriptor)
