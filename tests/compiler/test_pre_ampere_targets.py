"""GPU builds for targets older than sm_80 (Turing's sm_75): ember's FP16/BF16 and INT8 convs
and matmuls run only on tensor-core kernels (mma.sync, cp.async: sm_80 and newer), so a build
asking for them is refused before any pass runs, naming the target; a QDQ model built in FP32
runs its int8 Q/DQ convs and matmuls dequantized (fold-qdq{int8=false}): every kernel compiles
for sm_75 and the plan computes what onnxruntime and the sm_90 plan compute."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from ember.compiler import builder
from ember.compiler.builder import (
    BuilderConfig,
    BuilderFlag,
    HardwareCompatibilityLevel,
    build_model,
)
from ember.compiler.cli import main
from ember.errors import UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.ort_qdq import run_as_written
from tests.passes.test_fold_qdq import _cnn16, _quantized, _rel

ROOT = Path(__file__).resolve().parents[2]
BERT = str(ROOT / "tests" / "models" / "bert_tiny.onnx")
REFUSED = "needs sm_80 or newer in ember"


def _refused(monkeypatch, config: BuilderConfig, model: str = BERT) -> str:
    def no_pass(*args, **kwargs):
        raise AssertionError("a pass ran before the refusal")

    monkeypatch.setattr(builder, "run_passes", no_pass)
    monkeypatch.setattr(builder, "import_onnx", no_pass)
    with pytest.raises(UnsupportedError) as e:
        build_model(model, config)
    return str(e.value)


@pytest.mark.parametrize("flag", ["FP16", "BF16", "INT8"])
def test_half_and_int8_flags_for_sm_75_are_refused_before_any_pass(monkeypatch, flag):
    config = BuilderConfig(target_arch="sm_75", autotune=False)
    config.set_flag(BuilderFlag[flag])
    message = _refused(monkeypatch, config)
    assert message.startswith(f"target sm_75: {flag} (BuilderFlag.{flag}, --{flag.lower()}) "
                              f"{REFUSED}")
    assert "tensor-core kernels" in message and "build FP32 for sm_75" in message
    assert "\n" not in message


def test_per_layer_half_precision_for_sm_75_is_refused(monkeypatch):
    config = BuilderConfig(target_arch="sm_75", autotune=False)
    config.set_layer_precisions("/bert/encoder/layer.0/attention/self/query/MatMul:fp16")
    message = _refused(monkeypatch, config)
    assert message.startswith("target sm_75: per-layer FP16/BF16 precision for "
                              "'/bert/encoder/layer.0/attention/self/query/MatMul' needs sm_80")
    both = BuilderConfig(target_arch="sm_70", autotune=False, flags=BuilderFlag.FP16)
    both.set_layer_precisions("a:bf16,b:fp32,c:fp16")
    assert _refused(monkeypatch, both).startswith(
        "target sm_70: FP16 (BuilderFlag.FP16, --fp16) and per-layer FP16/BF16 precision for "
        "'a', 'c' need sm_80 or newer in ember")


def test_what_sm_80_and_ampere_plus_builds_take_is_not_refused():
    for config in (BuilderConfig(target_arch="sm_80", flags=BuilderFlag.FP16 | BuilderFlag.INT8),
                   BuilderConfig(target_arch="sm_75", flags=BuilderFlag.FP16,
                                 hardware_compatibility_level=HardwareCompatibilityLevel
                                 .AMPERE_PLUS),  # compiles for sm_80
                   BuilderConfig(target_arch="sm_75", flags=BuilderFlag.TF32),  # FP32 kernels
                   BuilderConfig(flags=BuilderFlag.FP16)):  # a CPU plan
        config.check()


def test_the_cli_prints_the_refusal_as_one_line(tmp_path, capsys):
    plan = tmp_path / "x.plan"
    assert main(["build", BERT, "--fp16", "--arch", "sm_75", "-o", str(plan)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ember build: error: target sm_75: FP16 (BuilderFlag.FP16, --fp16) "
                          f"{REFUSED}"), err
    assert err.count("\n") == 1 and "Traceback" not in err and "NVRTC" not in err
    assert not plan.exists()


def test_the_installed_command_refuses_int8_for_sm_75_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "build", BERT, "--int8",
                             "--arch", "sm_75", "-o", str(tmp_path / "x.plan")],
                            capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("ember build: error: target sm_75: INT8 "), result.stderr
    assert result.stderr.count("\n") == 1


def _plan_for(model: str | onnx.ModelProto, arch: str) -> tuple[dict, dict]:
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False))
    assert manifest["target"]["arch"] == arch
    return manifest, sections


def _compiled_for(manifest: dict, sections: dict, arch: str) -> None:
    """Every step a CUDA kernel, each NVRTC-compiled for `arch` (cubin and PTX), none with an
    mma instruction."""
    assert manifest["steps"] and all(s.get("device") != "cpu" and s.get("cuda")
                                     for s in manifest["steps"])
    assert {s["cuda"]["kernel"] for s in manifest["steps"]} <= \
        {k["name"] for k in manifest["kernels"]}
    for k in manifest["kernels"]:
        assert k["cubin_size"] > 0, k["name"]
        ptx = sections["ptx"][k["ptx_offset"]:k["ptx_offset"] + k["ptx_size"]]
        assert f".target {arch}".encode() in ptx, k["name"]
        assert b"mma." not in ptx and b"cp.async" not in ptx, k["name"]


def _execute(manifest: dict, sections: dict, feed: dict) -> dict:
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute(feed)


def test_a_qdq_bert_builds_fp32_for_sm_75_and_matches(tmp_path):
    qdq = str(tmp_path / "q.onnx")
    subprocess.run([sys.executable, str(ROOT / "tools" / "qdq_model.py"), BERT, qdq,
                    "--samples", "4"], check=True, capture_output=True, timeout=300)
    manifest, sections = _plan_for(qdq, "sm_75")
    _compiled_for(manifest, sections, "sm_75")
    matmuls = [s for s in manifest["steps"] if s["template"] == "matmul"]
    assert matmuls and all(s["params"]["in_dtypes"][:2] == ["float32", "float32"]
                           for s in matmuls)  # dequantized: no int8 matmul
    sm90 = _plan_for(qdq, "sm_90")
    assert any(s["params"]["in_dtypes"][:2] == ["int8", "int8"]
               for s in sm90[0]["steps"] if s["template"] == "matmul")  # (as before)
    rng = np.random.default_rng(3)
    feed = {"input_ids": rng.integers(0, 100, (2, 16)).astype(np.int64),
            "attention_mask": np.array([[1] * 16, [1] * 11 + [0] * 5], np.int64)}
    got = _execute(manifest, sections, feed)["y"]
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < 1e-2
    assert _rel(got, _execute(*sm90, feed)["y"]) < 1e-2


def test_a_qdq_cnn_builds_fp32_for_sm_75_and_matches(tmp_path):
    _, qdq, shapes = _quantized(tmp_path, _cnn16, symmetric=True)
    manifest, sections = _plan_for(onnx.load(qdq), "sm_75")
    _compiled_for(manifest, sections, "sm_75")
    linear = [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]
    assert [(s["template"], s["params"]["in_dtypes"][0]) for s in linear] == \
        [("conv", "float32"), ("conv", "float32"), ("matmul", "float32")]
    feed = {"x": np.random.default_rng(7).standard_normal(shapes["x"]).astype(np.float32)}
    got = _execute(manifest, sections, feed)["y"]
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < 1e-2
    assert _rel(got, _execute(*_plan_for(onnx.load(qdq), "sm_90"), feed)["y"]) < 1e-2


def test_an_e4m3_qdq_model_builds_fp32_for_sm_75_and_matches():
    from tests.passes.test_fold_qdq_fp8 import _fp8_net, _input, _reference

    model = _fp8_net()
    manifest, sections = _plan_for(model, "sm_75")
    _compiled_for(manifest, sections, "sm_75")
    assert all(s["params"]["in_dtypes"][:2] == ["float32", "float32"]
               for s in manifest["steps"] if s["template"] in ("conv", "matmul"))
    x = _input()
    assert _rel(_execute(manifest, sections, {"x": x})["y"], _reference(model, x)) < 1e-2
