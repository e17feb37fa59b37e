"""The engine inspector (TensorRT's IEngineInspector): per-layer text and JSON, the table that
`ember build --verbose` and `ember inspect` print, and formats read from what the manifest says."""

from __future__ import annotations

import copy
import json

import onnx
import pytest

import ember
from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.cli import main
from ember.errors import EmberError
from ember.runtime.engine import Runtime
from ember.runtime.inspector import EngineInspector, LayerInformationFormat, tensor_format
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import small_cnn

# small_cnn: conv+relu, max pool, global average pool, flatten (a view), gemm, softmax
STEPS = 5


@pytest.fixture(scope="module")
def cpu_plan():
    return build_model(small_cnn())


@pytest.fixture(scope="module")
def cuda_plan():
    """Kernels compiled with NVRTC for sm_90 (no GPU needed); loaded on the CPU executor."""
    return build_model(small_cnn(), BuilderConfig(target_arch="sm_90"))


def _engine(plan):
    return Runtime("cpu").deserialize_cuda_engine(plan_bytes(*plan))


def test_engine_has_an_inspector(cpu_plan):
    engine = _engine(cpu_plan)
    assert engine.num_layers == STEPS
    inspector = engine.create_engine_inspector()
    assert isinstance(inspector, ember.EngineInspector) and inspector.num_layers == STEPS
    assert engine.inspector.get_engine_information() == inspector.get_engine_information()


def test_layer_information_text(cpu_plan):
    inspector = _engine(cpu_plan).inspector
    row = inspector.get_layer_information(0, LayerInformationFormat.ONELINE)
    assert "\n" not in row
    name, template, fmt_in, shape, fmt_out, prec, on, *origin = row.split()
    assert (name, template, fmt_in, shape, fmt_out, prec, on) == (
        "conv_0", "conv", "NCHW", "2x4x8x8", "NCHW", "fp32", "cpu")
    assert row.endswith("conv, relu")  # relu fused into the conv, last column
    assert inspector.get_layer_information(0, "text") == row
    assert inspector.get_layer_information(0, "ONELINE") == row
    assert inspector.get_layer_information(0, LayerInformationFormat.TEXT) == row


def test_layer_information_structured(cpu_plan):
    info = _engine(cpu_plan).inspector.layer(0)
    assert info["name"] == "conv_0" and info["template"] == "conv"
    assert info["origin"] == ["conv", "relu"]
    assert (info["format_in"], info["format_out"]) == ("NCHW", "NCHW")
    assert info["precision"] == "fp32" and info["device"] == "cpu"
    assert info["inputs"][0]["shape"] == [2, 3, 8, 8] and info["inputs"][0]["kind"] == "input"
    assert info["inputs"][1]["kind"] == "weight" and info["inputs"][1]["format"] == "plain"
    assert info["outputs"][0]["shape"] == [2, 4, 8, 8]
    assert "cuda" not in info
    softmax = _engine(cpu_plan).inspector.layer(STEPS - 1)
    assert softmax["format_out"] == "plain" and softmax["origin"] == ["softmax"]


def test_layer_information_json_has_tensorrts_keys(cpu_plan):
    inspector = _engine(cpu_plan).inspector
    info = json.loads(inspector.get_layer_information(0, LayerInformationFormat.JSON))
    assert (info["Name"], info["LayerType"], info["ParameterType"]) == ("conv_0", "conv", "conv")
    assert info["Metadata"] == "[ONNX Layer: conv] [ONNX Layer: relu]"
    assert info["Inputs"][0] == {"Name": "x", "Location": "Host", "Dimensions": [2, 3, 8, 8],
                                 "Format/Datatype": "Row major linear FP32"}
    assert info["Inputs"][1]["Name"] == "weight#1"
    assert info["Inputs"][1]["Format/Datatype"] == "plain FP32"
    assert info["Outputs"][0]["Dimensions"] == [2, 4, 8, 8]
    assert (info["Precision"], info["Device"], info["TacticName"]) == ("fp32", "cpu",
                                                                      "conv-numpy")
    assert "Launch" not in info


def test_engine_information_text_ends_with_kernel_count(cpu_plan):
    table = _engine(cpu_plan).inspector.get_engine_information("text")
    lines = table.splitlines()
    assert lines[-1] == f"kernels: {STEPS}" and "reformats: 0" in lines
    assert lines[0].split()[:2] == ["kernel", "template"]
    assert len([line for line in lines if line.startswith("  ") and "_" in line]) == STEPS


def test_engine_information_json(cpu_plan):
    doc = json.loads(_engine(cpu_plan).inspector.get_engine_information("json"))
    assert doc["Kernels"] == STEPS == len(doc["Layers"]) and doc["Reformats"] == 0
    assert [layer["Name"] for layer in doc["Layers"]][0] == "conv_0"
    assert doc["Bindings"] == ["x", "y"]


def test_cuda_plan_shows_kernel_and_launch(cuda_plan):
    inspector = _engine(cuda_plan).inspector
    info = inspector.layer(0)
    assert info["device"] == "cuda"
    assert info["cuda"]["kernel"].startswith("conv_") and len(info["cuda"]["grid"]) == 3
    trt_info = json.loads(inspector.get_layer_information(0, "json"))
    assert trt_info["Launch"] == info["cuda"] and trt_info["Inputs"][0]["Location"] == "Device"
    assert trt_info["TacticName"]
    row = inspector.get_layer_information(0)
    grid, block = info["cuda"]["grid"][0], info["cuda"]["block"][0]
    assert f"{info['cuda']['kernel']} <<<{grid}, {block}>>>" in row and " gpu " in row
    table = inspector.get_engine_information()
    assert "cuda kernel" in table.splitlines()[0] and table.endswith(f"kernels: {STEPS}\n")


def test_host_fallback_in_a_gpu_plan(cuda_plan):
    manifest = copy.deepcopy(cuda_plan[0])
    step = manifest["steps"][2]
    del step["cuda"]
    step["device"], step["fallback"] = "cpu", "no CUDA template for reduce (a test)"
    info = EngineInspector(manifest).layer(2)
    assert info["device"] == "cpu" and "a test" in info["fallback"] and "cuda" not in info
    row = EngineInspector(manifest).get_layer_information(2)
    assert row.split()[6] == "host" and row.split()[7] == "-"


def test_formats_come_from_the_manifest(cpu_plan):
    """A layout pass or a new template names formats in the buffers or the step params."""
    manifest = copy.deepcopy(cpu_plan[0])
    conv, pool = manifest["steps"][0], manifest["steps"][1]
    manifest["buffers"][conv["outputs"][0]]["format"] = "NCHW(c4)"
    pool["params"]["layout"] = "NHWC"
    table = EngineInspector(manifest).get_engine_information()
    conv_row = next(line for line in table.splitlines() if line.strip().startswith("conv_0"))
    pool_row = next(line for line in table.splitlines() if line.strip().startswith("pool_1"))
    assert conv_row.split()[4] == "NCHW(c4)"
    assert pool_row.split()[2] == "NCHW(c4)"  # the buffer's own format wins over the params
    assert pool_row.split()[4] == "NHWC"       # no buffer format: the kernel's layout
    assert EngineInspector(manifest).layer(1)["layout"] == "NHWC"
    assert tensor_format({"shape": [1, 2, 3, 4]}) == "NCHW"
    assert tensor_format({"shape": [1, 2, 3, 4], "layout": "NHWC"}) == "NHWC"
    assert tensor_format({"shape": [2, 5]}, {"layout": "NHWC"}) == "plain"
    assert tensor_format({"shape": [2, 5], "format": "row_major"}) == "row_major"
    assert tensor_format(None) == "-"


def test_reformat_steps_are_counted(cpu_plan):
    manifest = copy.deepcopy(cpu_plan[0])
    manifest["steps"][1]["params"]["reformat"] = "NCHW->NHWC"
    inspector = EngineInspector(manifest)
    assert inspector.get_layer_information(1).split()[1] == "reformat"
    assert inspector.layer(1)["reformat"] == "NCHW->NHWC"
    assert "reformats: 1" in inspector.get_engine_information().splitlines()
    assert json.loads(inspector.get_engine_information("json"))["Reformats"] == 1
    assert json.loads(inspector.get_layer_information(1, "json"))["LayerType"] == "Reformat"


def test_bad_format_and_index(cpu_plan):
    inspector = _engine(cpu_plan).inspector
    with pytest.raises(EmberError, match="unknown layer information format"):
        inspector.get_engine_information("xml")
    with pytest.raises(EmberError, match="out of range"):
        inspector.get_layer_information(STEPS)
    with pytest.raises(EmberError, match="out of range"):
        inspector.get_layer_information(-1)


def test_cli_inspect_prints_the_build_table(tmp_path, capsys):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    plan = tmp_path / "cnn.plan"
    assert main(["build", str(tmp_path / "cnn.onnx"), "-o", str(plan), "--verbose"]) == 0
    built = capsys.readouterr().out
    assert main(["inspect", str(plan)]) == 0
    inspected = capsys.readouterr().out
    table = inspected[inspected.index("  kernel "):]  # after the plan's header lines
    assert table.endswith(f"kernels: {STEPS}\n") and table in built  # the same table
    assert main(["inspect", str(plan), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["Kernels"] == STEPS
    assert main(["inspect", str(plan), "--format", "json", "--layer", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["Name"] == "pool_1"
    assert main(["inspect", str(tmp_path / "cnn.onnx"), "--layer", "0"]) == 0
    assert capsys.readouterr().out.split()[0] == "conv_0"
    assert main(["inspect", str(plan), "--layer", "99"]) == 1
    assert "out of range" in capsys.readouterr().err
    (tmp_path / "bad.plan").write_bytes(b"not a plan")
    assert main(["inspect", str(tmp_path / "bad.plan")]) == 1
    assert "error" in capsys.readouterr().err
