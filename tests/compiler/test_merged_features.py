"""Where this session's features meet (found by review after the merges): REFIT with INT8 is
refused by name, a weight-stripped plan inspects, a plugin model is not sent to onnxruntime for
calibration, and a dumped stage with a scalar weight replays."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.compiler.calibrate import DataCalibrator
from ember.compiler.cli import main
from ember.errors import EmberError, UnsupportedError
from ember.runtime.plan import write_plan
from tests.compiler.test_plugins import custom_model, plugin  # noqa: F401 - the fixture

RNG = np.random.default_rng(0)


def _conv_model(scalar_mul: bool = False) -> onnx.ModelProto:
    w = numpy_helper.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    inits = [w]
    if scalar_mul:
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes[-1] = helper.make_node("Mul", ["c", "half"], ["y"], name="mul")
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_refit_with_int8_is_refused_by_name():
    config = BuilderConfig(flags=BuilderFlag.INT8 | BuilderFlag.REFIT)
    config.int8_calibrator = DataCalibrator(
        [{"x": RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)}])
    with pytest.raises(UnsupportedError, match="REFIT / STRIP_PLAN with INT8"):
        build_model(_conv_model(), config)


def test_a_weight_stripped_plan_inspects(tmp_path, capsys):
    manifest, sections = build_model(_conv_model(),
                                     BuilderConfig(flags=BuilderFlag.STRIP_PLAN))
    path = tmp_path / "stripped.plan"
    write_plan(path, manifest, sections)
    assert main(["inspect", str(path)]) == 0
    assert "conv" in capsys.readouterr().out


def test_calibrating_a_plugin_model_is_refused_naming_the_op(plugin):  # noqa: F811
    config = BuilderConfig(flags=BuilderFlag.INT8)
    config.int8_calibrator = DataCalibrator(
        [{"x": RNG.standard_normal((4, 16)).astype(np.float32)}])
    with pytest.raises(EmberError, match="my.domain::ScaledSoftplus"):
        build_model(custom_model(), config)


def test_a_dumped_stage_with_a_scalar_weight_replays(tmp_path):
    import subprocess
    import sys

    dump = tmp_path / "dd"
    build_model(_conv_model(scalar_mul=True), BuilderConfig(), dump_dir=dump)
    pipeline = (dump / "pipeline.txt").read_text().strip()
    first = sorted(dump.glob("00-*.mlir"))[0]
    done = subprocess.run([sys.executable, "-m", "ember.compiler.ember_opt", str(first), "-p",
                           pipeline], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "kernel." in done.stdout
