"""The plan file's checksum (format 2): the SHA-256 of the SHA-256 digests of the consecutive
CHUNK-byte pieces of every byte before the trailer (the last piece may be shorter). The pieces
hash independently, so a loader hashes them on threads while the file is still being read
(hashlib releases the GIL): one SHA-256 over ResNet-50's 99 MiB takes ~58 ms on one core, most
of the 100 ms a plan may take to load. Format 1's checksum was the SHA-256 of the whole.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor

CHUNK = 1 << 22  # 4 MiB: small enough to overlap the read, large enough to cost nothing per piece
MAX_THREADS = 8


def _sha256(piece: memoryview) -> bytes:
    return hashlib.sha256(piece).digest()


def _combine(digests: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(digests)).digest()


class ChunkedSha256:
    """The checksum of a stream written piece by piece, on the calling thread (the writer's)."""

    def __init__(self) -> None:
        self._digests: list[bytes] = []
        self._current = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view.nbytes:
            take = min(CHUNK - self._filled, view.nbytes)
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == CHUNK:
                self._digests.append(self._current.digest())
                self._current, self._filled = hashlib.sha256(), 0

    def digest(self) -> bytes:
        tail = [self._current.digest()] if self._filled else []
        return _combine(self._digests + tail)


class ParallelChecksum:
    """The checksum of `view[:end]`, hashed on a thread pool as its pieces become readable:
    call `ready(n)` once the first n bytes hold their final contents, then `digest()`.
    `close()` (or the with-block) waits for the threads and lets go of the view."""

    def __init__(self, view: memoryview, end: int) -> None:
        self._view = view
        self.end = end
        self._futures: list[Future[bytes]] = []
        self._next = 0  # offset of the first piece not yet submitted
        threads = min(MAX_THREADS, os.cpu_count() or 1, -(-end // CHUNK))
        self._pool = ThreadPoolExecutor(threads, "ember-plan-checksum") if threads > 1 else None

    def ready(self, upto: int) -> None:
        upto = min(upto, self.end)
        while self._next < self.end and (self._next + CHUNK <= upto or upto == self.end):
            piece = self._view[self._next : min(self._next + CHUNK, self.end)]
            if self._pool is None:
                future: Future[bytes] = Future()
                future.set_result(_sha256(piece))
            else:
                future = self._pool.submit(_sha256, piece)
            self._futures.append(future)
            self._next += piece.nbytes

    def digest(self) -> bytes:
        self.ready(self.end)
        return _combine([f.result() for f in self._futures])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()

    def __enter__(self) -> ParallelChecksum:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plan_checksum(data: bytes | bytearray | memoryview) -> bytes:
    """The format-2 checksum of `data` (every byte of a plan before its trailer)."""
    view = memoryview(data).cast("B")
    with ParallelChecksum(view, view.nbytes) as checksum:
        return checksum.digest()
