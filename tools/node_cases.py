"""Run ONNX's node test cases whose name matches a pattern through import -> convert-onnx-to-nn ->
the nn interpreter, and compare with the stored outputs.

    python tools/node_cases.py 'test_conv*' 'test_gemm*'
"""

from __future__ import annotations

import fnmatch
import sys
import warnings

import numpy as np
from onnx import numpy_helper


def _array(x):
    return numpy_helper.to_array(x) if hasattr(x, "data_type") else np.asarray(x)


def run(patterns: list[str]) -> int:
    warnings.filterwarnings("ignore")
    from onnx.backend.test.case.node import collect_testcases

    from ember.compiler.interpret import interpret
    from ember.compiler.onnx_importer import graph_io_names, import_onnx
    from ember.dialects import ember_context
    from ember.passes.convert_onnx_to_nn import ConvertOnnxToNN

    def legalize(model):
        module = import_onnx(model)
        ConvertOnnxToNN().apply(ember_context(), module)
        module.verify()
        return module

    failures = 0
    for case in collect_testcases(None):
        if not any(fnmatch.fnmatch(case.name, p) for p in patterns):
            continue
        try:
            module = legalize(case.model)
            in_names, out_names = graph_io_names(module)
            for inputs, outputs in case.data_sets:
                got = interpret(module, dict(zip(in_names, map(_array, inputs), strict=False)))
                for name, want in zip(out_names, map(_array, outputs), strict=True):
                    have = got[name]
                    assert have.dtype == want.dtype, f"{name}: dtype {have.dtype} != {want.dtype}"
                    assert have.shape == want.shape, f"{name}: shape {have.shape} != {want.shape}"
                    np.testing.assert_allclose(have, want, rtol=1e-3, atol=1e-5)
            print(f"PASS {case.name}")
        except Exception as e:  # report and go on: this is a sweep
            failures += 1
            print(f"FAIL {case.name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
