"""Programmatic dependent launch (sm_90+): every template kernel starts by waiting for the grids
before it (`griddepcontrol.wait`) and then letting the next one's blocks start; the packer marks
such kernels `pdl` in sm_90 plans, and the runtime launches those with programmatic stream
serialization, so a launch overlaps the tail of the kernel before it. The GPU tests run a plan
of dependent kernels with and without it (EMBER_PDL=0) and in a CUDA graph, against numpy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.plan_kernels import compile_cuda_kernels
from ember.codegen.templates import GRID_DEPENDENCY, GRID_WAIT, KernelSpec
from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import CudaError, PlanError
from ember.runtime.cuda import cuda_available
from ember.runtime.manifest_schema import Kernel

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
F = TensorProto.FLOAT
RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((64, 96)).astype(np.float32) * 0.1
W2 = RNG.standard_normal((96, 32)).astype(np.float32) * 0.1


def _chain() -> onnx.ModelProto:
    """Kernels that each read what the one before wrote: MatMul + Relu, Softmax, MatMul, Add of
    the first MatMul's input (an arena buffer reused after its last reader)."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Softmax", ["r"], ["s"], axis=-1),
             helper.make_node("MatMul", ["s", "w2"], ["m"]),
             helper.make_node("ReduceSum", ["x"], ["t"], axes=None, keepdims=1),
             helper.make_node("Add", ["m", "t"], ["y"])]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", F, [256, 64])],
                              [helper.make_tensor_value_info("y", F, [256, 32])],
                              [numpy_helper.from_array(W1, "w1"),
                               numpy_helper.from_array(W2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _expected(x: np.ndarray) -> np.ndarray:
    r = np.maximum(x.astype(np.float64) @ W1, 0)
    s = np.exp(r - r.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    return s @ W2 + x.astype(np.float64).sum(-1, keepdims=True)


def _plan(arch: str):
    return build_model(_chain(), BuilderConfig(target_arch=arch))


def test_sm90_kernels_wait_for_the_grid_before_them_and_are_marked_pdl():
    manifest, sections = _plan("sm_90")
    source = bytes(sections["cuda_source"]).decode()
    assert manifest["kernels"]
    for k in manifest["kernels"]:
        text = source[k["source_offset"]:k["source_offset"] + k["source_size"]]
        body = text.split("__global__", 1)[1].split(") {\n", 1)[1]
        assert body.startswith(GRID_DEPENDENCY + "\n"), text
        assert k.get("pdl") is True, k


def test_older_targets_and_kernels_without_the_wait_are_not_marked():
    manifest, _ = _plan("sm_80")
    assert manifest["kernels"] and not any("pdl" in k for k in manifest["kernels"])
    plain = ('extern "C" __global__ void copy_k(const float* __restrict__ in0, '
             "float* __restrict__ out0) {\n    out0[threadIdx.x] = in0[threadIdx.x];\n}\n")
    assert GRID_WAIT not in plain
    spec = KernelSpec(plain, (1, 1, 1), (32, 1, 1))
    compiled = compile_cuda_kernels([[("copy", "copy_k", spec)]], "sm_90")
    assert len(compiled.kernels) == 1 and "pdl" not in compiled.kernels[0]


def test_manifest_kernel_pdl_is_true_or_absent():
    record = {"name": "k", "cubin_offset": 0, "cubin_size": 8, "ptx_offset": 0, "ptx_size": 0,
              "source_offset": 0, "source_size": 4}
    assert Kernel.from_json(record, "kernel #0").pdl is False
    marked = Kernel.from_json({**record, "pdl": True}, "kernel #0")
    assert marked.pdl and marked.to_json() == {**record, "pdl": True}
    assert "pdl" not in Kernel.from_json(record, "kernel #0").to_json()
    for bad in (False, 1, "yes"):
        with pytest.raises(PlanError, match="pdl must be true"):
            Kernel.from_json({**record, "pdl": bad}, "kernel #0")


def test_dependent_launch_configuration():
    from ember.runtime import cuda

    config = cuda._dependent_config((3, 2, 1), (128, 1, 1), 4096, 0)
    assert (config.gridDimX, config.gridDimY, config.gridDimZ) == (3, 2, 1)
    assert (config.blockDimX, config.sharedMemBytes, config.numAttrs) == (128, 4096, 1)
    attribute = config.attrs[0]
    assert int(attribute.id) == int(cuda.cu.CUlaunchAttributeID
                                    .CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
    assert attribute.value.programmaticStreamSerializationAllowed == 1


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("graph", [False, True])
def test_dependent_kernels_run_in_order(graph, monkeypatch):
    from ember.compiler.builder import detect_arch
    from ember.runtime.arch import parse_arch
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    arch = detect_arch()
    plan = plan_bytes(*_plan(arch))
    x = RNG.standard_normal((256, 64)).astype(np.float32)
    results = {}
    for pdl in ("1", "0"):
        monkeypatch.setenv("EMBER_PDL", pdl)
        engine = Runtime(device="cuda").deserialize_cuda_engine(plan)
        ctx = engine.create_execution_context(cuda_graph=graph)
        launches = [ln for ln in ctx._executor.launches if hasattr(ln, "dependent")]
        marked = parse_arch(arch) >= (9, 0) and pdl == "1"
        assert launches and all(ln.dependent == marked for ln in launches)
        runs = [ctx.execute({"x": x})["y"] for _ in range(3)]
        for got in runs:
            np.testing.assert_array_equal(got, runs[0])
        results[pdl] = runs[0]
    np.testing.assert_array_equal(results["1"], results["0"])
    np.testing.assert_allclose(results["1"], _expected(x), rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.cuda
def test_a_bad_pdl_switch_is_refused(monkeypatch):
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    monkeypatch.setenv("EMBER_PDL", "yes")
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(*_plan("sm_80")))
    with pytest.raises(CudaError, match="EMBER_PDL must be 0 or 1"):
        engine.create_execution_context().execute({"x": np.zeros((256, 64), np.float32)})
