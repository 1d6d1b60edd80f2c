"""Files other processes may be reading or writing at the same time: cached model exports.

Two helpers that every cache of derived model files uses (the embedder's ONNX
export, the page models' rewritten graphs): an exclusive lock on the folder so
two processes do not build the same file at once, and an atomic replace so a
reader never sees half a file, even when the writer is killed midway.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with locked(folder):
...     replace_atomically(lambda tmp: tmp.write_text("done"), folder / "out.txt")
>>> (folder / "out.txt").read_text()
'done'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["locked", "replace_atomically", "file_sha256", "sha256_of"]


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory`` (created if missing) so two processes do not build at once."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace alone keeps the file whole
        yield
        return
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def replace_atomically(write: Callable[[Path], object], dest: Path) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``dest`` in one step."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache must stay readable
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    """:func:`file_sha256`, computed once per process and version (size, mtime) of the file: model
    files of tens of MB are hashed to key their caches each time a process opens them."""
    st = path.stat()
    return _cached_sha256(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)
