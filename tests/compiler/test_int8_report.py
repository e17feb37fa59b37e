"""`ember build --int8 --report` (compiler/int8_report.py): each output's and each quantized
layer's error against FP32, from calibration and from a Q/DQ model; pinning the layer it names
first lowers the error; and its parts: the float model a Q/DQ model stands for, the quantizer's
renamed outputs, the layers upstream of each."""

from __future__ import annotations

import io
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.commands import build
from ember.compiler.int8_report import (
    quantized_layers,
    rel_l2,
    upstream_layers,
    without_qdq,
)
from ember.compiler.ort_compat import for_onnxruntime
from ember.errors import EmberError
from tests.api.test_int8_calibration import _cnn, _init


def _deep() -> onnx.ModelProto:
    """Four named 3x3 convs with relus; conv2's bias puts one channel of its output near 60
    where the others are near 1, and conv3 does not read that channel: the per-tensor int8
    scale of conv3's input is coarse for all it reads, so conv3 is the layer the report
    should point at."""
    rng = np.random.default_rng(3)
    nodes, inits, x = [], [], "x"
    for i in range(4):
        nodes += [h.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1],
                              name=f"conv{i}"),
                  h.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        bias = _init(rng, f"b{i}", 16)
        if i == 2:
            bias = numpy_helper.from_array(
                np.concatenate([[60.0], np.zeros(15)]).astype(np.float32), f"b{i}")
        weight = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
        if i == 3:
            weight[:, 0] = 0
        inits += [numpy_helper.from_array(weight, f"w{i}"), bias]
        x = f"r{i}"
    nodes[-1].output[0] = "y"
    graph = h.make_graph(nodes, "deep", [h.make_tensor_value_info("x", T.FLOAT, [2, 16, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 16, 8, 8])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _calibration(tmp_path, model) -> str:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.random.default_rng(1).standard_normal([4 * shape[0], *shape[1:]])
             .astype(np.float32))
    return str(path)


def _report(tmp_path, model, **options) -> str:
    onnx.save(model, tmp_path / "m.onnx")
    out = io.StringIO()
    build(tmp_path / "m.onnx", tmp_path / "m.plan", out=out, int8=True, report=True, **options)
    text = out.getvalue()
    return text[text.index("INT8 report"):]


def _rows(text: str) -> list[tuple[str, float, float]]:
    return [(m[1], float(m[2]), float(m[3])) for m in
            re.finditer(r"^  (\S+) +rel-L2 (\S+)  added (\S+)$", text, re.M)]


def test_a_calibrated_build_reports_its_outputs_and_layers(tmp_path):
    model = _cnn()
    text = _report(tmp_path, model, calib_data=_calibration(tmp_path, model))
    (line,) = [x for x in text.splitlines() if x.startswith("  output y:")]
    assert "reference: onnxruntime on the FP32 model" in text
    rows = _rows(text)
    assert {r[0] for r in rows} == {"conv1", "conv2", "fc"}
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    assert all(0 < r[1] < 0.2 for r in rows)
    assert "--layer-precisions NODE:fp32" in text
    # the output's figure: the INT8 plan (the one written) against onnxruntime in FP32
    from ember.runtime.engine import Runtime

    x = np.load(tmp_path / "calib.npz")["x"][:2]
    got = Runtime("cpu").deserialize_cuda_engine((tmp_path / "m.plan").read_bytes()) \
        .create_execution_context().execute({"x": x})["y"]
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert float(line.split("rel-L2 ")[1].split(",")[0]) == pytest.approx(rel_l2(got, want),
                                                                         rel=1e-2)


def test_the_layer_it_names_first_is_the_one_to_pin(tmp_path):
    """conv3 reads conv2's wide-range output: the report ranks it first by added error, and
    keeping it out of INT8 (--layer-precisions conv3:fp32) lowers the output's error more than
    keeping another out."""
    model = _deep()
    calib = _calibration(tmp_path, model)
    rows = _rows(_report(tmp_path, model, calib_data=calib))
    assert rows[0][0] == "conv3", rows

    def output_error(pin: str) -> float:
        text = _report(tmp_path, model, calib_data=calib, layer_precisions=f"{pin}:fp32")
        return float(re.search(r"output y: rel-L2 (\S+),", text)[1])

    assert output_error("conv3") < min(output_error(n) for n in ("conv0", "conv1", "conv2"))


def test_a_qdq_model_reports_against_itself_without_qdq(tmp_path):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = _cnn()
    onnx.save(model, tmp_path / "fp32.onnx")
    batches = iter([{"x": np.random.default_rng(i).standard_normal((2, 3, 16, 16))
                     .astype(np.float32)} for i in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    quantize_static(str(tmp_path / "fp32.onnx"), str(tmp_path / "qdq.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    qdq = onnx.load(tmp_path / "qdq.onnx")
    text = _report(tmp_path, qdq)
    assert {r[0] for r in _rows(text)} == {"conv1", "conv2", "fc"}
    assert "remove a layer's to keep it float" in text
    # the float model it stands for: no Q/DQ node, the output's name kept, and its outputs
    # close to the FP32 model's (the weights carry their int8 rounding)
    plain = without_qdq(qdq)
    assert not [n for n in plain.graph.node if "Quantize" in n.op_type]
    x = np.random.default_rng(9).standard_normal((2, 3, 16, 16)).astype(np.float32)

    def run(m):
        return ort.InferenceSession(for_onnxruntime(m).SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    assert rel_l2(run(plain), run(model)) < 2e-2


def test_upstream_layers_reach_through_other_nodes():
    model = _deep()
    layers = [n for n in model.graph.node if n.op_type == "Conv"]
    up = upstream_layers(model, layers)
    assert up == {"c0": set(), "c1": {"c0"}, "c2": {"c1"}, "c3": {"c2"}}


def test_report_needs_int8_and_names_what_it_cannot_do(tmp_path):
    onnx.save(_cnn(), tmp_path / "m.onnx")
    with pytest.raises(EmberError, match="--report reports an INT8 build"):
        build(tmp_path / "m.onnx", tmp_path / "m.plan", out=io.StringIO(), report=True)
    assert not (tmp_path / "m.plan").exists()
    assert quantized_layers(_cnn()) == []  # no dequantized input: nothing quantized
