"""Build progress, reported from where the long work happens (the pass pipeline, the autotuner,
NVRTC compilation, packing) to whoever listens: TensorRT's IProgressMonitor protocol
(`phase_start(name, parent, num_steps)`, `step_complete(name, step) -> bool`,
`phase_finish(name)`), held in a context variable that the builder sets for one build
(`listening`). Without a listener, reporting costs nothing. A listener's `step_complete`
returning False cancels the build: `BuildCancelled` is raised where the step completed, and
every phase still open is finished on the way out, innermost first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ember.errors import BuildCancelled

# the listener (an IProgressMonitor-shaped object) and the names of the phases open, outermost
# first: a new phase's parent is the innermost open one
_LISTENER: ContextVar[Any | None] = ContextVar("ember_progress_listener", default=None)
_OPEN: ContextVar[tuple[str, ...]] = ContextVar("ember_progress_open", default=())


@contextmanager
def listening(listener: Any | None) -> Iterator[None]:
    """Report the phases begun inside the block to `listener` (None: to nobody)."""
    token = _LISTENER.set(listener)
    opened = _OPEN.set(())
    try:
        yield
    finally:
        _OPEN.reset(opened)
        _LISTENER.reset(token)


class Phase:
    """One phase being reported: `step()` after each unit of work."""

    def __init__(self, name: str, num_steps: int, listener: Any | None) -> None:
        self.name, self.num_steps, self._listener = name, num_steps, listener
        self.done = 0

    def step(self) -> None:
        """One more step done; raises BuildCancelled when the listener says stop."""
        self.done += 1
        if self._listener is not None and self._listener.step_complete(self.name,
                                                                       self.done) is False:
            raise BuildCancelled(f"the build was cancelled: the progress monitor's "
                                 f"step_complete('{self.name}', {self.done}) returned False")


@contextmanager
def phase(name: str, num_steps: int) -> Iterator[Phase]:
    """A phase of `num_steps` steps, nested in the innermost phase open (its parent)."""
    listener = _LISTENER.get()
    if listener is None:
        yield Phase(name, num_steps, None)
        return
    stack = _OPEN.get()
    listener.phase_start(name, stack[-1] if stack else None, int(num_steps))
    token = _OPEN.set((*stack, name))
    try:
        yield Phase(name, num_steps, listener)
    finally:
        _OPEN.reset(token)
        listener.phase_finish(name)
