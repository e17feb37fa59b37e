"""Programmatic dependent launch: an sm_90+ plan's kernels wait for the kernel before them
(`griddepcontrol.wait`, `templates.PDL_SYNC` first in every body, or in a TMA kernel after
its barriers are made, nothing before it touching global memory), their launch records say
"pdl", and the CUDA executor launches them with programmatic stream serialization (each may
start before the one ahead has finished); the results are those of launches one after
another. Plans for older GPUs carry no "pdl" and their kernels no such instruction."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.codegen.nvrtc import compile_cuda
from ember.codegen.templates import PDL_SYNC, PDL_WAIT, gemm_tma, matmul, source
from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.logger import ILogger
from ember.runtime.plan import plan_bytes

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
F = TensorProto.FLOAT


def _chain(layers: int = 8, width: int = 96, rows: int = 64) -> onnx.ModelProto:
    """MatMul + Add + Relu, Softmax every other layer: a chain of dependent kernels whose
    buffers the arena reuses (a kernel that ran early would read stale or half-written data)."""
    rng = np.random.default_rng(3)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        b = rng.standard_normal(width).astype(np.float32) * 0.1
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"])]
        x = f"r{i}"
        if i % 2:
            nodes.append(helper.make_node("Softmax", [x], [f"s{i}"], axis=-1))
            x = f"s{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", F,
                                                                             [rows, width])],
                              [helper.make_tensor_value_info("y", F, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _kernels(manifest: dict, sections: dict) -> dict[str, str]:
    text = sections["cuda_source"]
    return {k["name"]: text[k["source_offset"]:][:k["source_size"]].decode()
            for k in manifest["kernels"]}


def test_sm90_launches_are_programmatic_and_their_kernels_wait():
    manifest, sections = build_model(_chain().SerializeToString(),
                                     BuilderConfig(target_arch="sm_90"))
    sources = _kernels(manifest, sections)
    launches = [s["cuda"] for s in manifest["steps"] if "cuda" in s]
    assert len(launches) >= 8
    assert all(launch.get("pdl") is True for launch in launches)
    for launch in launches:
        kernel = sources[launch["kernel"]].split("__global__", 1)[1]
        body = kernel.split(") {\n", 1)[1]
        assert body.startswith(f"    {PDL_SYNC}\n"), launch["kernel"]  # before any load
    ptx = sections["ptx"].decode(errors="replace")
    assert ptx.count(PDL_WAIT) == ptx.count(".entry") == len(manifest["kernels"])
    assert ptx.count("griddepcontrol.launch_dependents;") == len(manifest["kernels"])


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_a_tma_kernel_makes_its_barriers_before_it_waits(dtype):
    """The barriers' init and the tensor maps' prefetch come before the wait (under
    programmatic launch they overlap the kernel ahead); no global load, store or copy does."""
    params = {"in_shapes": [[256, 512], [192, 512]], "in_dtypes": [dtype] * 2,
              "out_shapes": [[256, 192]], "out_dtypes": ["int32" if dtype == "int8" else dtype],
              "transpose_b": True,
              "tactic": gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 64, 8)).tactic()}
    spec = matmul.emit("k", params)
    body = spec.source.split(") {\n", 1)[1].split("\n")
    assert [line.strip() for line in body].count(PDL_SYNC) == 1
    ptx = compile_cuda(spec.source, name="k", arch="sm_90a", cache=False).ptx.decode()
    entry = ptx[ptx.index(".entry"):]
    before, after = entry.split(PDL_WAIT, 1)
    assert "mbarrier.init" in before and before.count("prefetch.tensormap") == 2
    assert not re.search(r"\b(ld\.global|st\.global|cp\.async|atom\.|red\.)", before)
    assert "cp.async.bulk.tensor" in after and "griddepcontrol.launch_dependents" in after


def test_a_body_waits_once():
    body = [f"    {PDL_SYNC}", "    int x = 0;", f"    {PDL_SYNC}"]
    with pytest.raises(ValueError, match="once, not 2 times"):
        source("t", [], 'extern "C" __global__ void k()', body)


def test_older_targets_launch_one_after_another():
    manifest, sections = build_model(_chain(2).SerializeToString(),
                                     BuilderConfig(target_arch="sm_80"))
    assert not any("pdl" in s.get("cuda", {}) for s in manifest["steps"])
    assert PDL_WAIT not in sections["ptx"].decode(errors="replace")  # the #if drops it


class _Recorder(ILogger):
    def __init__(self) -> None:
        ILogger.__init__(self)
        self.messages: list[str] = []

    def log(self, severity, msg) -> None:
        self.messages.append(msg)


def test_asking_for_pdl_where_nothing_can_use_it_says_so():
    # an sm_90 plan on the CPU executor: its kernels' "pdl" does not apply there
    plan = plan_bytes(*build_model(_chain(2).SerializeToString(),
                                   BuilderConfig(target_arch="sm_90")))
    logger = _Recorder()
    engine = Runtime(logger, device="cpu").deserialize_cuda_engine(plan)
    assert engine.pdl_launches >= 2
    engine.create_execution_context()
    assert not any("pdl" in m for m in logger.messages)
    engine.create_execution_context(pdl=True)
    assert any(m.startswith("pdl=True: nothing launches programmatically (the CPU executor)")
               for m in logger.messages)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("graph", [False, True])
def test_programmatic_launches_give_the_results_of_serial_ones(graph):
    from ember.runtime.cuda import Device

    major, minor = Device(0).compute_capability
    model = _chain(12, 128, 256)
    manifest, sections = build_model(model.SerializeToString(),  # strict FP32 (no TF32)
                                     BuilderConfig(target_arch=f"sm_{major}{minor}"))
    assert all(s["cuda"].get("pdl", False) == (major >= 9)
               for s in manifest["steps"] if "cuda" in s)
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    x = np.random.default_rng(5).standard_normal((256, 128)).astype(np.float32)
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    got = {}
    for pdl in (None, True, False):  # None, the default: wherever the plan allows
        ctx = engine.create_execution_context(cuda_graph=graph, pdl=pdl)
        assert ctx._executor.pdl is (pdl is not False)
        runs = [ctx.execute({"x": x})["y"] for _ in range(3)]
        assert all(np.array_equal(runs[0], r) for r in runs[1:])
        got[pdl] = runs[0]
    np.testing.assert_array_equal(got[True], got[False])
    np.testing.assert_array_equal(got[None], got[False])
    np.testing.assert_allclose(got[True], want, rtol=1e-4, atol=1e-5)
