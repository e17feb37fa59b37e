"""GPU architecture names, parsed in one place for every layer ("sm_90", "sm_90a", "9.0", 90).

The compiler (NVRTC targets), the plan loader (target checks) and the CUDA executor (the device's
name) all read arch strings through here. Imports: the standard library only.
"""

from __future__ import annotations

import re

# "sm_90", "sm_90a", "compute_90", "sm90", "90", "9.0"; the suffix is "a" (arch-specific) or
# "f" (family-specific)
_ARCH_RE = re.compile(r"^(?:sm_|compute_|sm|compute)?(\d+)(?:\.(\d+))?([af]?)$")


def parse_arch(arch: str | int | tuple[int, int]) -> tuple[int, int]:
    """Compute capability of an arch given as "sm_90", "sm_90a", "compute_90", "90", "9.0",
    90 or (9, 0); returns (major, minor), e.g. (9, 0). "sm_120" is (12, 0). A ValueError
    names what is not an arch (callers turn it into their own error)."""
    if isinstance(arch, tuple):
        major, minor = arch
        return int(major), int(minor)
    if isinstance(arch, int) and not isinstance(arch, bool):
        return arch // 10, arch % 10
    m = _ARCH_RE.match(arch.strip().lower()) if isinstance(arch, str) else None
    if not m:
        raise ValueError(f"not a CUDA arch: {arch!r} (expected e.g. 'sm_90' or '9.0')")
    digits, dotted, _ = m.groups()
    if dotted is not None:
        return int(digits), int(dotted)
    if len(digits) < 2:
        raise ValueError(f"not a CUDA arch: {arch!r} (expected e.g. 'sm_90' or '9.0')")
    return int(digits[:-1]), int(digits[-1])


def arch_suffix(arch: str | int | tuple[int, int]) -> str:
    """"a" for "sm_90a", "f" for "sm_100f", "" otherwise."""
    m = _ARCH_RE.match(arch.strip().lower()) if isinstance(arch, str) else None
    return m.group(3) if m else ""


def arch_string(major: int, minor: int, suffix: str = "") -> str:
    """(9, 0) -> "sm_90"; suffix "a" gives the arch-specific target "sm_90a"."""
    return f"sm_{int(major)}{int(minor)}{suffix}"


def normalize_arch(arch: str | int | tuple[int, int]) -> str:
    """Any spelling of an arch as "sm_XY" (its suffix kept: "sm_90a")."""
    return arch_string(*parse_arch(arch), arch_suffix(arch))


def ptx_arch(arch: str | int | tuple[int, int]) -> str:
    """The virtual arch for PTX of a real one: "sm_90" -> "compute_90", "sm_90a" ->
    "compute_90a"."""
    return "compute_" + normalize_arch(arch)[3:]
