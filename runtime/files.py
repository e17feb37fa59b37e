"""Writing a file so that a failure leaves it as it was: into a uniquely named temporary file
beside it, then renamed over it (the CLI's outputs, dumps, .npz files)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ember.errors import EmberError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write; renamed to `path` when the block ends without
    an error, removed otherwise. An OSError becomes an EmberError naming `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    except OSError as e:
        raise EmberError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """`data` (text as UTF-8) written to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
