"""The pass registry (`ember.passes.REGISTRY`): each name is its class's, and `ember-opt`
imports only the passes it runs (neither onnx nor its dialect for IR below it)."""

from __future__ import annotations

import subprocess
import sys

from xdsl.passes import ModulePass

from ember.passes import REGISTRY, available_passes


def test_each_name_is_its_class_name() -> None:
    for name, factory in available_passes().items():
        cls = factory()
        assert issubclass(cls, ModulePass) and cls.name == name, (name, cls)
    assert set(available_passes()) == set(REGISTRY)


def test_ember_opt_on_kernel_ir_imports_no_onnx(tmp_path) -> None:
    ir = tmp_path / "k.mlir"
    ir.write_text('builtin.module {\n  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n'
                  '    func.return %x : tensor<4xf32>\n  }\n}\n')
    probe = ("import sys\nfrom ember.compiler.ember_opt import main\n"
             f"sys.argv = ['ember-opt', {str(ir)!r}, '-p', 'dce']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m == 'onnx' or m == 'ml_dtypes' "
             "or m.startswith('ember.passes.')), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert "func.func @main" in done.stdout, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
