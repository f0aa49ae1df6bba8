"""Atomic file output: a target is either untouched or completely written.

Every file Coach writes (audio, cue scripts, imported routines) goes through
``atomic_path``: a temporary file beside the target, synced, then renamed into
place; on any error or interruption it is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from coach.errors import OutputError


def output_error(path: Path | str, exc: BaseException) -> OutputError:
    """An OutputError that says in plain words why ``path`` cannot be written."""
    code = getattr(exc, "errno", None)
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EFBIG: "the file is larger than this system allows (ulimit -f)",
        errno.ENOENT: "the folder does not exist",
        errno.EISDIR: "it is a folder",
        errno.ENOTDIR: "a parent is not a folder",
    }.get(code or 0) or getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"{path}: cannot write: {reason}")


def check_target(path: Path, force: bool) -> None:
    """Refuse early an output that exists (without ``force``) or whose folder is missing.

    A device or a pipe (``/dev/null``, a FIFO) is written straight through, never replaced.
    """
    if _is_device(path):
        return
    if path.exists() and not force:
        raise OutputError(f"{path}: already exists", hint="use --force to overwrite it")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: cannot write: no such folder {path.parent}")


def _is_device(path: Path) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a folder (a device or a pipe)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it becomes ``path``, else it is removed.

    The temporary file is synced to disk before the rename, so after a crash the
    target is either the old file (or absent) or the complete new one.
    """
    target = Path(path)
    if _is_device(target):
        # /dev/null, a named pipe, a terminal: nothing to replace (renaming over one would
        # replace the device itself), so the output goes straight to it.
        yield target
        return
    check_target(target, force)
    remove_stale_temporaries(target)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise output_error(target, exc) from None
    temp = Path(temp_name)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.fchmod(fd, 0o666 & ~_umask())
    except (OSError, AttributeError):
        pass
    # Held until the end: a temporary file nobody holds a lock on was left by a killed export.
    _lock(fd)
    try:
        yield temp
        try:
            with open(temp, "rb+") as f:
                os.fsync(f.fileno())
            if target.exists() and not force:  # it appeared while we were rendering
                raise OutputError(f"{target}: already exists", hint="use --force to overwrite it")
            os.replace(temp, target)
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise output_error(target, exc) from None
        _fsync_folder(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    finally:
        os.close(fd)


def _lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False if another process holds one."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no stale-file detection
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the ``.NAME.XXXX.part`` files a killed export of ``target`` left beside it.

    An export holds a lock on its temporary file while it writes; the kernel drops
    the lock when the process dies (even by SIGKILL), so an unlocked one is stale.
    One being written by another export right now is left alone.
    """
    removed = []
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        try:
            fd = os.open(stale, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd):
                stale.unlink()
                removed.append(stale)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible everywhere (Windows), hence best effort.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def wrap_write_errors(path: Path | str):
    """Context manager turning OSErrors of the underlying file into OutputError naming ``path``."""
    return _WrapErrors(path)


class _WrapErrors:
    def __init__(self, path: Path | str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise output_error(self.path, exc) from None
        return False


@contextlib.contextmanager
def atomic_output(path: Path | str, *, force: bool = False, binary: bool = True) -> Iterator[IO]:
    """``atomic_path`` as an open file: write to the handle, the target appears on success."""
    with atomic_path(path, force=force) as temp, wrap_write_errors(path):
        with open(temp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle


def write_text(path: Path | str | None, text: str, *, force: bool = True) -> None:
    """Write text to ``path`` atomically, or to stdout when path is None or '-'."""
    if path is None or str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_output(path, force=force, binary=False) as handle:
        handle.write(text)
