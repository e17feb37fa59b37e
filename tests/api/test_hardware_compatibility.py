"""TensorRT's hardware compatibility: `config.hardware_compatibility_level = AMPERE_PLUS` (ember
build --hardware-compatibility ampere+) builds sm_80 code (no Hopper wgmma) whose plan is marked
"ampere+" and loads on any GPU from sm_80 up, JIT-compiling its PTX on another arch and saying
so once; the levels it cannot be are errors naming them."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

import ember
from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import EmberError, PlanError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.manifest_schema import Target
from ember.runtime.plan import check_target, plan_bytes, read_plan
from tests.onnx_cases import small_cnn

AMPERE_PLUS = ember.HardwareCompatibilityLevel.AMPERE_PLUS


def _ampere(arch: str = "sm_90") -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=False)
    config.hardware_compatibility_level = AMPERE_PLUS
    return config


def test_an_ampere_plus_plan_is_sm80_code_that_any_newer_gpu_loads():
    manifest, sections = build_model(small_cnn(), _ampere())
    target = manifest["target"]
    assert (target["arch"], target["compatibility"]) == ("sm_80", "ampere+")
    assert b"wgmma" not in sections["cuda_source"] and b"sm_90a" not in sections["cuda_source"]
    # the same kernels as a plain sm_80 build
    plain, plain_sections = build_model(small_cnn(), BuilderConfig(target_arch="sm_80",
                                                                   autotune=False))
    assert [k["name"] for k in manifest["kernels"]] == [k["name"] for k in plain["kernels"]]
    assert check_target(target, "sm_80") is False  # its CUBIN
    assert check_target(target, "sm_90") is True and check_target(target, "sm_120") is True
    with pytest.raises(PlanError, match="ampere\\+ \\(sm_80 and newer\\), this GPU is sm_75"):
        check_target(target, "sm_75")
    with pytest.raises(PlanError, match="this GPU is sm_90; rebuild"):
        check_target(plain["target"], "sm_90")  # a plain sm_80 plan is refused there
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    want = Runtime("cpu").deserialize_cuda_engine(plan_bytes(plain, plain_sections)) \
        .create_execution_context().execute({"x": x})["y"]
    np.testing.assert_array_equal(got, want)


def test_what_cannot_be_is_refused_by_name():
    with pytest.raises(EmberError, match="give target_arch"):
        config = BuilderConfig()
        config.hardware_compatibility_level = AMPERE_PLUS
        build_model(small_cnn(), config)
    config = _ampere()
    config.autotune = True
    with pytest.raises(EmberError, match="AMPERE_PLUS with autotune=True"):
        build_model(small_cnn(), config)
    with pytest.raises(EmberError, match="takes a HardwareCompatibilityLevel"):
        BuilderConfig().hardware_compatibility_level = "ampere+"
    with pytest.raises(PlanError, match="'compatibility' must be 'ampere\\+'"):
        Target.from_json({"device": "cuda", "arch": "sm_80", "compatibility": "turing+"})
    # SAME_COMPUTE_CAPABILITY: ember's plans are for their arch's compute capability already
    same = BuilderConfig(target_arch="sm_90", autotune=False)
    same.hardware_compatibility_level = ember.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    manifest, _ = build_model(small_cnn(), same)
    assert manifest["target"]["arch"] == "sm_90" and "compatibility" not in manifest["target"]


def test_ember_build_hardware_compatibility(tmp_path):
    from ember.compiler.commands import build

    onnx.save(small_cnn(), tmp_path / "m.onnx")
    out = io.StringIO()
    build(tmp_path / "m.onnx", tmp_path / "m.plan", arch="sm_90", autotune=False, out=out,
          hardware_compatibility="ampere+")
    assert "CUDA sm_80 (ampere+)" in out.getvalue()
    assert read_plan(tmp_path / "m.plan").manifest["target"]["compatibility"] == "ampere+"
    with pytest.raises(EmberError, match="one of none, ampere\\+, sameComputeCapability"):
        build(tmp_path / "m.onnx", tmp_path / "n.plan", arch="sm_90",
              hardware_compatibility="turing+")


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_an_ampere_plus_plan_runs_on_this_gpu_and_says_it_jits_once():
    from ember.runtime.cuda import default_device

    class Recorder(ember.ILogger):
        def __init__(self):
            ember.ILogger.__init__(self)
            self.messages = []

        def log(self, severity, msg):
            self.messages.append(msg)

    plan = plan_bytes(*build_model(small_cnn(), _ampere()))
    logger = Recorder()
    engine = ember.Runtime(logger).deserialize_cuda_engine(plan)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for _ in range(2):
        context = engine.create_execution_context()
        got = context.execute({"x": x})["y"]
    want = Runtime("cpu").deserialize_cuda_engine(plan).create_execution_context() \
        .execute({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    said = [m for m in logger.messages if "JIT-compiled" in m]
    assert len(said) == (0 if default_device().arch == "sm_80" else 1), logger.messages


def test_a_rejit_says_what_the_plan_was_built_for():
    from ember.runtime.cuda_executor import rejit_message

    plain = rejit_message({"device": "cuda", "arch": "sm_80"}, "sm_90")
    assert plain.startswith("the plan is built for sm_80 only, loaded with allow_rejit: its PTX "
                            "is JIT-compiled for this sm_90 GPU")
    ampere = rejit_message({"device": "cuda", "arch": "sm_80", "compatibility": "ampere+"},
                           "sm_120")
    assert ampere.startswith("the plan is ampere+ (sm_80 code): its PTX is JIT-compiled for "
                             "this sm_120 GPU")


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_an_sm80_plan_runs_on_a_newer_gpu_through_jit_and_says_so():
    """A plain sm_80 plan (no hardware compatibility) is refused on a newer GPU, and with
    allow_rejit JIT-compiles its PTX, says so once through the logger, and matches the CPU."""
    from ember.runtime.cuda import default_device

    if default_device().arch == "sm_80":
        pytest.skip("needs a GPU newer than sm_80")

    class Recorder(ember.ILogger):
        def __init__(self):
            ember.ILogger.__init__(self)
            self.messages = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

    plan = plan_bytes(*build_model(small_cnn(), BuilderConfig(target_arch="sm_80",
                                                              autotune=False)))
    with pytest.raises(PlanError, match="plan built for sm_80, this GPU is sm_"):
        Runtime(device="cuda").deserialize_cuda_engine(plan).create_execution_context()
    logger = Recorder()
    engine = ember.Runtime(logger, device="cuda", allow_rejit=True).deserialize_cuda_engine(plan)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for _ in range(2):
        got = engine.create_execution_context().execute({"x": x})["y"]
    want = Runtime("cpu").deserialize_cuda_engine(plan).create_execution_context() \
        .execute({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    said = [(s, m) for s, m in logger.messages if "JIT-compiled" in m]
    assert len(said) == 1, logger.messages
    assert said[0][0] == ember.ILogger.Severity.WARNING
    assert "built for sm_80 only, loaded with allow_rejit" in said[0][1]
    assert f"for this {default_device().arch} GPU" in said[0][1]
