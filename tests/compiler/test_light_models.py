"""ONNX's packaged light_* CNNs: import, default pipeline with every shape static, and outputs equal
to the stored ones (nn reference interpreter, rtol 1e-3 / atol 1e-4)."""

import numpy as np
import pytest

from ember.compiler.cli import main
from ember.compiler.interpret import interpret
from ember.compiler.models import LIGHT_MODELS, light_model_case, light_model_path
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import lower
from ember.dialects.nn.base import NNOp
from ember.dialects.tensor_types import static_shape


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model(name):
    path, inputs, expected = light_model_case(name)
    module = lower(import_onnx(path), "default")
    for op in module.walk():
        if isinstance(op, NNOp):
            assert all(static_shape(r) is not None for r in op.results), op.name
    got = next(iter(interpret(module, inputs).values()))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_opt_prints_every_stage_of_resnet50(capsys):
    assert main(["opt", str(light_model_path("resnet50")), "--pipeline", "default",
                 "--print-ir-after-all"]) == 0
    out = capsys.readouterr().out
    for name in ["convert-onnx-to-nn", "fold-constants", "canonicalize", "cse", "dce"]:
        assert f"IR Dump After {name} " in out
    final = out.rsplit("IR Dump After ", 1)[1]  # the last stage
    assert '"onnx.' not in final and final.count("nn.conv") == 53


def test_demo_runs(capsys):
    assert main(["demo", "--model", "squeezenet"]) == 0
    assert "OK" in capsys.readouterr().out
