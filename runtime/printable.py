"""Names from models and plans made safe to print: a node name holding an ANSI escape (or any
other control character, or a bidirectional override) is printed as `\\x1b`, never sent to the
terminal. The CLI writes its output through `EscapingWriter`; messages go through `printable`."""

from __future__ import annotations

import re
from typing import Any, TextIO

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidi embeddings/overrides
# and isolates (which reorder what a terminal shows)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character written as an escape (tab and newline kept)."""
    return _UNSAFE.sub(_escape, text)


class EscapingWriter:
    """A text stream that writes `printable(text)` to the stream it wraps."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(printable(text))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)
