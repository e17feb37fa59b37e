"""What every layer shares is defined once, in the runtime (DESIGN §1): symbolic dims, formats,
arch names and the exception classes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ember.errors as errors
from ember.runtime.arch import arch_string, normalize_arch, parse_arch, ptx_arch
from ember.runtime.formats import FORMATS, NC4HW4, NHWC, physical_of
from ember.runtime.symbolic import dim_factors, dim_symbols, dim_value, is_monomial_over

ROOT = Path(__file__).resolve().parents[2]


def test_dim_factors_parses_monomials():
    assert dim_factors(12) == (12, [])
    assert dim_factors("768*N") == (768, ["N"])
    assert dim_factors("N*S") == (1, ["N", "S"])
    assert dim_factors("2*N*3") == (6, ["N"])
    assert dim_symbols("4*B*S") == ["B", "S"]
    assert dim_value("4*B*S", {"B": 2, "S": 3}) == 24
    # only ASCII digits are constants: "²" is a (bad) symbol name, never int("²")
    assert dim_factors("²*N") == (1, ["²", "N"])


def test_is_monomial_over():
    assert is_monomial_over(5, {})
    assert is_monomial_over("3*N", {"N": 1})
    assert not is_monomial_over("3*M", {"N": 1})
    assert not is_monomial_over("N**2", {"N": 1})  # an empty factor is not a symbol


def test_arch_names():
    assert parse_arch("sm_90a") == (9, 0)
    assert normalize_arch("9.0") == "sm_90"
    assert normalize_arch("sm_90a") == "sm_90a"
    assert ptx_arch(90) == "compute_90"
    assert arch_string(12, 0) == "sm_120"
    for bad in ("hopper", "", None, "sm_9x0"):
        with pytest.raises(ValueError, match="not a CUDA arch"):
            parse_arch(bad)


def test_formats():
    assert FORMATS == ("NCHW", "NHWC", "NC4HW4")
    assert physical_of((2, 6, 3, 5), NHWC) == (2, 3, 5, 6)
    assert physical_of((2, 6, 3, 5), NC4HW4) == (2, 2, 3, 5, 4)


@pytest.mark.parametrize("name", ["InputError", "StepError", "SymbolicError", "CompileError"])
def test_error_classes_live_in_ember_errors(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.EmberError)
    assert cls.__module__ == "ember.errors"


def test_no_module_splits_symbolic_dims_outside_the_symbolic_module():
    """A monomial dim ("768*N") is parsed by ember.runtime.symbolic alone."""
    pattern = re.compile(r"""\.split\(\s*["']\*["']""")
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("tests/", ".", "build/")) or rel == "runtime/symbolic.py":
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            offenders.append(rel)
    assert offenders == []


def test_shared_modules_import_the_standard_library_only():
    code = ("import sys\n"
            "import ember.runtime.arch, ember.runtime.formats, ember.runtime.symbolic\n"
            "heavy = [m for m in ('numpy', 'xdsl', 'onnx') if m in sys.modules]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
