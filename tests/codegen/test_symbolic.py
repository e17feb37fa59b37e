"""`Sym`, the symbolic size templates compute with: canonical arithmetic, C text, the runtime's
JSON expressions, and the questions it refuses."""

from __future__ import annotations

import itertools

import pytest

from ember.codegen.symbolic import Sym, SymbolicError, cdiv, smin, symbol_bounds, upper
from ember.runtime.symbolic import expr_value

N, M = Sym("N"), Sym("M")


def test_arithmetic_is_canonical_and_provable():
    assert Sym.parse("768*N") == N * 768 == 768 * N
    assert N * 3 * 224 * 224 // 4 == N * 37632
    assert (N * 768) % 4 == 0 and (N * 768) // N == 768
    assert (N + 1) - N == 1 and N - N == 0
    assert N != 1 and (N == 1) is False  # provable equality only
    # exact quotients cancel (the runtime's monomial_quotient); others stay run-time divisions
    assert (N * M * 6) // (M * 3) == N * 2 and (N * M * 6) % (M * 3) == 0
    assert (N * 6 + M * 9) // 3 == N * 2 + M * 3
    assert str((N * 6) // 4) == "(((sz_N*6) / 4))"
    assert str((N * M) // (M * 2)) == "(((sz_M*sz_N) / (sz_M*2)))"


@pytest.mark.parametrize(("expr", "python"), [
    (N + 1, lambda n, m: n + 1),
    (2 * N + 1, lambda n, m: 2 * n + 1),
    (N * M + N, lambda n, m: n * m + n),
    (cdiv(N * 5 + 3, 4), lambda n, m: -(-(5 * n + 3) // 4)),
    (smin(cdiv(N * 100, 256), 65536), lambda n, m: min(-(-(100 * n) // 256), 65536)),
    ((N * 5 + 3) // 2, lambda n, m: (5 * n + 3) // 2),
    ((N * 7) % 3, lambda n, m: 7 * n % 3),
    (-(-(N * 3) // 8), lambda n, m: -(-3 * n // 8)),
    ((N * M * 6) // (M * 3), lambda n, m: 2 * n),
    ((N * M * 6) // (M * 4), lambda n, m: 6 * n * m // (4 * m)),
])
def test_value_json_and_c_agree_with_python_for_every_binding(expr, python):
    for n, m in itertools.product((1, 2, 7, 300), (1, 5)):
        values = {"N": n, "M": m}
        assert expr.value(values) == python(n, m)
        assert expr_value(expr.to_json(), values) == python(n, m)
        c = expr.c().replace("sz_N", str(n)).replace("sz_M", str(m)).replace("(long long)", "")
        c = c.replace("/", "//")  # operands are never negative
        assert eval(c) == python(n, m), (expr.c(), values)  # noqa: S307 - test-only text


def test_c_text():
    assert (N + 1).c() == "(sz_N + 1)"
    assert (N * 3).c() == "(sz_N*3)" and N.c() == "sz_N"
    with symbol_bounds({"N": (1, 2, 100000), "M": (1, 2, 100000)}):
        assert upper(N * M) == 10**10
        assert (N + N * M).c() == "((long long)sz_N + (long long)sz_M*sz_N)"


def test_questions_only_a_number_answers_are_refused():
    for question in (lambda: N < 4, lambda: max(N, 1), lambda: int(N), lambda: range(N),
                     lambda: bool(N), lambda: (N - 5) // 2, lambda: (N - 5) % 3):
        with pytest.raises(SymbolicError):
            question()
