"""Crash-safe file writing: every output is written to a temporary file beside its target
and renamed over it, so a reader (or a resumed run) sees the old file or the new one,
never half of one. Folders (bundles) are written whole into a temporary folder and moved
into place by :func:`replace_dir`."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Any:
    """Open a temporary file next to ``path``; on success fsync and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[IO[Any]], None],
                 mode: str = "wb") -> None:
    """Call ``writer(file)`` on a temporary file, then move it into place."""
    with atomic_open(path, mode) as f:
        writer(f)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def staged_dir(out: str | os.PathLike) -> Any:
    """Build a folder for ``out`` and put it in place whole::

        with staged_dir(out) as tmp:
            (tmp / "a.txt").write_text(...)

    ``tmp`` is a fresh folder beside ``out`` (same file system); when the block ends
    normally it gets the permissions a new folder would (the umask) and replaces ``out``
    through :func:`replace_dir`; when it raises, ``tmp`` is deleted and ``out`` is left as
    it was. Callers check for an existing ``out`` (``--force``) first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; a bundle is for others too
        replace_dir(tmp, out)  # the old folder or the new one, whole, at every moment
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the finished folder ``src`` to ``dst``, replacing a folder there, so that
    ``dst`` is at every moment the old folder or the new one: never neither, never a mix.

    ``src`` is flushed to disk first. On Linux the two folders are swapped in one step
    (``renameat2`` with ``RENAME_EXCHANGE``) and the old one is then deleted under
    ``src``'s name. Where the swap is not available, the old folder is renamed aside to
    ``.<name>.old`` before the new one moves in; a crash between those two renames leaves
    it there, whole.
    """
    src, dst = Path(src), Path(dst)
    _fsync_tree(src)
    if not dst.exists():
        os.replace(src, dst)
    elif _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)
    else:
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dst.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or the file system cannot."""
    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # e.g. a file system without RENAME_EXCHANGE
    raise OSError(code, os.strerror(code), str(b))


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder below ``folder`` to disk (a rename is only as durable
    as what it renames)."""
    for root, _, names in os.walk(folder):
        for name in names:
            with open(Path(root) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames into it); skipped where folders cannot be opened
    or flushed."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
