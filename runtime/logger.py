"""TensorRT's logger: `ILogger` (subclass it and define `log(severity, msg)`), `Logger` (prints
messages at or above its `min_severity` to stderr) and their `Severity`. The builder, the ONNX
parser and the runtime report what they do through the logger they were given (`emit`).
Imports: the standard library only.
"""

from __future__ import annotations

import sys
from typing import Any

from ember.errors import EmberError
from ember.runtime.printable import printable
from ember.runtime.trt_types import Numbered


class Severity(Numbered):
    """TensorRT's ILogger.Severity, numbered as TensorRT numbers it (lower is more severe)."""

    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4

    def __lt__(self, other: Severity) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.value < other.value

    def __le__(self, other: Severity) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.value <= other.value


_LETTER = {Severity.INTERNAL_ERROR: "F", Severity.ERROR: "E", Severity.WARNING: "W",
           Severity.INFO: "I", Severity.VERBOSE: "V"}


class ILogger:
    """The logger interface: a subclass defines `log(severity, msg)` and receives every message
    (filtering is its own business, as in TensorRT)."""

    Severity = Severity
    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE

    def __init__(self) -> None:
        pass

    def log(self, severity: Severity, msg: str) -> None:
        raise EmberError(f"{type(self).__name__} must define log(severity, msg) (an ILogger "
                         "subclass receives the builder's and the runtime's messages there)")

    def __enter__(self) -> ILogger:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Logger(ILogger):
    """Prints each message at or above `min_severity` (WARNING unless given) to stderr as
    `[ember] [W] message`."""

    def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    @property
    def min_severity(self) -> Severity:
        return self._min_severity

    @min_severity.setter
    def min_severity(self, value: Severity) -> None:
        if not isinstance(value, Severity):
            raise EmberError(f"Logger min_severity must be a Logger.Severity, not {value!r}")
        self._min_severity = value

    def log(self, severity: Severity, msg: str) -> None:
        if severity <= self._min_severity:
            print(f"[ember] [{_LETTER[severity]}] {printable(msg)}", file=sys.stderr)


def check_logger(logger: Any, where: str) -> ILogger:
    """The logger a builder / parser / runtime was given (a default WARNING Logger for None);
    anything without a callable `log` is an error naming `where`."""
    if logger is None:
        return Logger()
    if not callable(getattr(logger, "log", None)):
        raise EmberError(f"{where}: the logger must be an ILogger (an object with "
                         f"log(severity, msg)), not {type(logger).__name__}")
    return logger


def emit(logger: ILogger, severity: Severity, msg: str) -> None:
    """Send one message to a logger."""
    logger.log(severity, msg)


__all__ = ["ILogger", "Logger", "Severity", "check_logger", "emit"]
