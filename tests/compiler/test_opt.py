"""`ember opt` and `ember.compiler.lower`: pipelines, IR printing between passes, dumps, errors."""

import io
import subprocess
import sys

import pytest

from ember.compiler.cli import main
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.opt import opt
from ember.compiler.pipeline import lower
from ember.errors import PipelineError
from tests.filecheck.models import conv_relu_add, reshape_chain


@pytest.fixture
def model_path(tmp_path):
    import onnx

    path = tmp_path / "block.onnx"
    onnx.save(conv_relu_add(), path)
    return path


def test_print_ir_after_all_shows_every_stage(model_path):
    out = io.StringIO()
    opt(model_path, pipeline="default", print_ir_after_all=True, out=out)
    text = out.getvalue()
    for name in ["convert-onnx-to-nn", "fold-constants", "canonicalize", "cse", "dce"]:
        assert f"// -----// IR Dump After {name} //----- //" in text
    assert text.index("IR Dump Before any pass") < text.index("After convert-onnx-to-nn")
    assert '"onnx.Conv"' in text and "nn.conv" in text


def test_print_before_after_stop_and_dump(model_path, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    opt(model_path, passes="convert-onnx-to-nn,fold-constants,dce",
        print_ir_before=["fold-constants"], print_ir_after=["convert-onnx-to-nn"],
        stop_after="fold-constants", dump_dir=tmp_path / "stages", time_passes=True,
        out=out, err=err)
    text = out.getvalue()
    assert "IR Dump After convert-onnx-to-nn" in text and "IR Dump Before fold-constants" in text
    assert "dce" not in err.getvalue() and "fold-constants" in err.getvalue()
    files = sorted(p.name for p in (tmp_path / "stages").iterdir())
    assert files == ["00-input.mlir", "01-convert-onnx-to-nn.mlir", "02-fold-constants.mlir",
                     "pipeline.txt", "weights.npz"]
    pipeline = (tmp_path / "stages" / "pipeline.txt").read_text()
    assert pipeline.startswith("convert-onnx-to-nn,fold-constants{") and "dce" not in pipeline


def test_output_file_and_mlir_input(model_path, tmp_path):
    first = tmp_path / "nn.mlir"
    opt(model_path, pipeline="legalize", output=first, out=io.StringIO())
    out = io.StringIO()
    opt(first, passes="canonicalize,cse", out=out)
    assert "nn.conv" in out.getvalue()


def test_lower_from_python():
    text = str(lower(import_onnx(reshape_chain(2)), "default"))
    assert '"onnx.' not in text
    assert "nn.reshape %0 : (tensor<2x8x4x4xf32>) -> tensor<2x128xf32>" in text


def test_unknown_pass_and_pipeline_are_clear(model_path):
    with pytest.raises(PipelineError, match="unknown pass.*no-such-pass.*available"):
        opt(model_path, passes="no-such-pass")
    with pytest.raises(PipelineError, match="unknown pipeline 'fast'"):
        opt(model_path, pipeline="fast")
    with pytest.raises(PipelineError, match="not in the pipeline"):
        opt(model_path, passes="convert-onnx-to-nn", stop_after="dce")


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["opt", str(tmp_path / "missing.onnx")]) == 1
    assert "ember opt: error: cannot import" in capsys.readouterr().err


def test_ember_opt_driver_runs_passes_on_mlir(tmp_path):
    src = tmp_path / "in.mlir"
    src.write_text("""builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %a = nn.unary "relu" %x : tensor<2xf32> -> tensor<2xf32>
    %b = nn.unary "relu" %x : tensor<2xf32> -> tensor<2xf32>
    %y = nn.binary "add" %a, %b : tensor<2xf32>, tensor<2xf32> -> tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}""")
    done = subprocess.run([sys.executable, "-m", "ember.compiler.ember_opt", str(src), "-p", "cse"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.count('nn.unary "relu"') == 1


def test_ember_opt_reports_ir_that_does_not_verify_without_traceback(tmp_path):
    """A launch with a param its template does not take: one error naming it, the op marked."""
    src = tmp_path / "bad.mlir"
    src.write_text("""builtin.module {
  func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
    %y = kernel.launch "transpose"(%x) {params = {foo = 1 : i64, in_shapes = [array<i64: 4>], \
in_dtypes = ["float32"], out_shapes = [array<i64: 4>], out_dtypes = ["float32"]}} \
: (tensor<4xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
}""")
    done = subprocess.run([sys.executable, "-m", "ember.compiler.ember_opt", str(src)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("ember-opt: error: ")
    assert "unknown param 'foo'" in done.stderr and "Traceback" not in done.stderr
