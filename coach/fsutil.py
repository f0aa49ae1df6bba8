"""Atomic file output: a target is either untouched or completely written."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from coach.errors import OutputError


def describe_os_error(path: Path | str, exc: OSError) -> OutputError:
    """An OutputError that says what went wrong with ``path`` in plain words."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOENT: "the folder does not exist",
        errno.EFBIG: "the file is larger than this system allows",
        errno.EISDIR: "it is a folder",
        errno.ENOTDIR: "a parent is not a folder",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputError(f"{path}: cannot write: {reason}")


@contextlib.contextmanager
def atomic_output(path: Path | str, *, force: bool = False, binary: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it into place only on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is left as it was. An existing ``path`` is kept unless ``force``.
    """
    target = Path(path)
    if target.exists() and not force:
        raise OutputError(f"{target}: already exists (use --force to overwrite)")
    if target.is_dir():
        raise OutputError(f"{target}: is a folder")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{target}: cannot write: the folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise describe_os_error(target, exc) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise describe_os_error(target, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path | str | None, text: str, *, force: bool = True) -> None:
    """Write text to ``path`` atomically, or to stdout when path is None or '-'."""
    import sys

    if path is None or str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_output(path, force=force, binary=False) as handle:
        handle.write(text)
