"""What every layer shares is defined once, in the runtime (DESIGN §1): symbolic dims (their
parsing and their arithmetic), formats, arch names and the exception classes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ember.codegen.symbolic as codegen_symbolic
import ember.errors as errors
from ember.codegen.symbolic import Sym, symbol_bounds, typical, upper
from ember.dialects.nn.base import concrete_shape
from ember.dialects.nn.base import dim_product as nn_dim_product
from ember.dialects.nn.base import dim_quotient as nn_dim_quotient
from ember.runtime import symbolic
from ember.runtime.arch import arch_string, normalize_arch, parse_arch, ptx_arch
from ember.runtime.formats import FORMATS, NC4HW4, NHWC, physical_of
from ember.runtime.symbolic import (
    MAX,
    MIN,
    OPT,
    dim_bounds,
    dim_factors,
    dim_product,
    dim_quotient,
    dim_symbols,
    dim_value,
    is_monomial_over,
    monomial_dim,
    monomial_product,
    monomial_quotient,
    profile_values,
    size_form,
)

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


def test_dim_product_is_canonical():
    assert dim_product([768, "N"]) == "768*N"
    assert dim_product(["S", "2*N", 3]) == "6*N*S"  # constants multiplied, symbols sorted
    assert dim_product(["N*S", "B"]) == dim_product(["S", "B*N"]) == "B*N*S"
    assert dim_product(["N", "N"]) == "N*N"
    assert dim_product([4, 6]) == 24 and dim_product([]) == 1
    assert dim_product([0, "N"]) == 0  # no symbol is left in an empty tensor's size
    assert dim_product(["N", 1]) == "N"


def test_dim_quotient_is_exact_or_an_error():
    assert dim_quotient("768*N", 4) == "192*N"
    assert dim_quotient("N*S", "S") == "N"
    assert dim_quotient("6*N*S", "3*N") == "2*S"
    assert dim_quotient("768*N", "768*N") == 1
    assert dim_quotient("N*N", "N") == "N"
    assert dim_quotient(12, 4) == 3
    for total, part in (("768*N", 5), ("N", "S"), ("N", "N*N"), (0, "N"), (7, 2), (7, 0),
                        ("768*N", "1536*N")):
        with pytest.raises(errors.SymbolicError, match="is not a multiple of"):
            dim_quotient(total, part)


def test_monomials_with_atoms_of_any_kind():
    # codegen's Sym multiplies atoms that are not symbol names, ordered by its own key
    assert monomial_product((2, ("b",)), (3, ("a", "c"))) == (6, ("a", "b", "c"))
    assert monomial_product((2, (30,)), (1, (4,)), key=str) == (2, (30, 4))
    assert monomial_quotient((6, ("a", "a", "b")), (2, ("a",))) == (3, ("a", "b"))
    assert monomial_quotient((-6, ("a",)), (3, ())) == (-2, ("a",))
    assert monomial_quotient((6, ("a",)), (4, ())) is None
    assert monomial_quotient((6, ("a",)), (0, ())) is None
    assert monomial_quotient((6, ("a",)), (1, ("a", "a"))) is None
    assert monomial_dim((5, ("S", "B"))) == "5*B*S" and monomial_dim((1, ["N"])) == "N"
    assert monomial_dim((0, ["N"])) == 0 and monomial_dim((7, ())) == 7


def test_size_forms_are_equal_when_the_element_counts_are():
    assert size_form(["N", 768]) == size_form([384, "2*N"]) == (768, ["N"])
    assert size_form(["N", "S", 4]) == size_form([2, "S*N", 2]) == (4, ["N", "S"])
    assert size_form(["N", "S"]) != size_form(["N", "N"])
    assert size_form(["N", 3]) != size_form(["N", 4])
    assert size_form([0, "N"]) == size_form([0]) == (0, [])
    assert size_form([]) == (1, [])


def test_evaluation_and_bounds():
    assert dim_value("4*B*S", {"B": 2, "S": 3}) == 24
    assert dim_value(dim_product(["2*N", "S", 3]), {"N": 5, "S": 7}) == 210
    assert dim_value(dim_quotient("6*N*S", "3*S"), {"N": 5, "S": 7}) == 10
    assert dim_value(9, {}) == 9
    ranges = {"B": [1, 2, 4], "S": [16, 64, 128], "N": [1, 8, 32]}
    assert profile_values(ranges, OPT) == {"B": 2, "S": 64, "N": 8}
    assert profile_values(ranges, MIN)["S"] == 16 and profile_values(ranges, MAX)["S"] == 128
    assert dim_bounds("768*N", ranges) == (768, 24576)
    assert dim_bounds("2*B*S", ranges) == (32, 1024)
    assert dim_bounds(5, {}) == (5, 5)
    with pytest.raises(errors.SymbolicError, match=r"no profile range for symbol\(s\) \['M'\]"):
        dim_bounds("3*M*N", ranges)


def test_nn_dim_helpers_are_the_runtime_arithmetic_with_unknown_dims():
    assert nn_dim_product(["S", "2*N", 3]) == "6*N*S"
    assert nn_dim_product(["N", "?"]) == "?" and nn_dim_product(["?", 0]) == 0
    assert nn_dim_product([2, 1.5]) == "?"  # a float from a folded Mul is no dim
    assert nn_dim_quotient("6*N*S", "3*N") == "2*S"
    assert nn_dim_quotient("768*N", 5) == "?"  # not exact: unknown, not an error
    assert nn_dim_quotient("?", "?") == "?" and nn_dim_quotient("2*?", 2) == "?"
    assert concrete_shape(["N", "4*N*S", 3, "M"], {"N": 2, "S": 5}) == [2, 40, 3, -1]


def test_sym_arithmetic_is_the_runtime_arithmetic(monkeypatch):
    """codegen's Sym prints C and builds run-time atoms; its products, exact quotients and values
    are the runtime's (one implementation)."""
    calls = []

    def spy(name):
        real = getattr(symbolic, name)

        def wrapped(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(codegen_symbolic, name, wrapped)

    for name in ("monomial_product", "monomial_quotient", "expr_value", "profile_values"):
        spy(name)
    n, s = Sym("N"), Sym("S")
    assert (n * 768 * s).c() == "(sz_N*sz_S*768)" and "monomial_product" in calls
    calls.clear()
    assert (n * 768 * s) // (s * 3) == n * 256 and "monomial_quotient" in calls
    expr = n * 3 + s
    calls.clear()
    assert expr.value({"N": 5, "S": 7}) == 22 and calls == ["expr_value"]
    expr = n * s + 1
    with symbol_bounds({"N": (1, 8, 32), "S": (16, 64, 128)}):
        calls.clear()
        assert typical(expr) == 513 and upper(expr) == 4097
        assert calls == ["profile_values", "expr_value"] * 2


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


def _modules() -> list[tuple[str, str]]:
    """(path, source) of every module but the symbolic module itself."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(("tests/", ".", "build/")) and rel != "runtime/symbolic.py":
            out.append((rel, path.read_text(encoding="utf-8")))
    return out


def test_no_module_splits_symbolic_dims_outside_the_symbolic_module():
    """A monomial dim ("768*N") is parsed by ember.runtime.symbolic alone."""
    pattern = re.compile(r"""\.split\(\s*["']\*["']""")
    assert [rel for rel, text in _modules() if pattern.search(text)] == []


# codegen/symbolic.py joins on "*" to print C products ("sz_N*3") and its terms' keys, not dims
_PRINTS_C = "codegen/symbolic.py"


@pytest.mark.parametrize(("what", "pattern"), [
    ("forms a dim's text from its factors", r"""["']\*["']\s*\.join\("""),
    ("merges two factor lists (a monomial product)", r"sorted\(\s*[\w\[\]]+\s*\+\s*[\w\[\]]+"),
    ("cancels a divisor's factors (a monomial quotient)",
     r"(\w+) not in (\w+)\b[\s\S]{0,200}?\2\.remove\(\1\)"),
], ids=["dim-text", "product", "quotient"])
def test_no_module_does_dim_arithmetic_outside_the_symbolic_module(what, pattern):
    """Products, quotients, size forms, values and bounds of symbolic dims are formed by
    ember.runtime.symbolic alone; a module that does one itself shows here."""
    regex = re.compile(pattern)
    # the pattern finds the one implementation, so it looks for the right thing
    assert regex.search((ROOT / "runtime" / "symbolic.py").read_text(encoding="utf-8"))
    offenders = [rel for rel, text in _modules() if regex.search(text)
                 and not (rel == _PRINTS_C and "join" in pattern)]
    assert offenders == [], f"{offenders} {what}: use ember.runtime.symbolic"


_ARITHMETIC = ("dim_product", "dim_quotient", "monomial_product", "monomial_quotient",
               "monomial_dim", "size_form", "dim_value", "shape_value", "dim_bounds",
               "profile_values")


def test_arithmetic_names_elsewhere_delegate_to_the_symbolic_module():
    """A function elsewhere named like the symbolic module's arithmetic (nn's dim_product,
    which adds unknown dims) calls it, and does not do the sum again."""
    offenders = []
    for rel, text in _modules():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name in _ARITHMETIC:
                calls = {n.func.attr for n in ast.walk(node) if isinstance(n, ast.Call)
                         and isinstance(n.func, ast.Attribute)
                         and isinstance(n.func.value, ast.Name) and n.func.value.id == "symbolic"}
                if node.name not in calls:
                    offenders.append(f"{rel}:{node.name}")
    assert offenders == []


def test_shared_modules_import_the_standard_library_only():
    code = ("import sys\n"
            "import ember.runtime.arch, ember.runtime.formats, ember.runtime.symbolic\n"
            "heavy = [m for m in ('numpy', 'xdsl', 'onnx') if m in sys.modules]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
