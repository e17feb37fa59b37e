"""fuse-attention-kernels and the `attention_chain` kernel: a QDQ self-attention block (what
onnxruntime's quantize_static makes of a BERT layer's attention: Q/DQ around every matmul, the
scale, the mask add and the softmax) built for a GPU runs its attention as one kernel instead of
seven; the CPU executor's results are bit for bit those of the build without the pass (the
fused step runs the replaced kernels in order), and the CUDA kernel, on emulated warps and on a
GPU, gives what the CPU's stages give."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.codegen import fuse_attention_kernels
from ember.codegen.emit_cuda import emit_step
from ember.codegen.templates import attention_chain
from ember.compiler import builder
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.compiler.inspect_plan import PlanReport
from ember.errors import UnsupportedError
from ember.runtime import cpu_kernels
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator
from tests.passes.test_fold_qdq import _init, _quantized

CASES = {"s64_d64": (2, 64, 2, 64), "s128_d32": (2, 128, 4, 32), "s80_d16": (1, 80, 2, 16)}


def _attention(batch: int, seq: int, heads: int, dim: int):
    """One self-attention block as PyTorch exports BERT's: Q/K/V projections, head reshapes
    and transposes (K's to [B, H, D, S]), Q Kᵀ / sqrt(D) + mask, softmax, P V, the heads
    merged back, the output projection."""
    width = heads * dim
    rng = np.random.default_rng(11)
    mask = np.zeros((batch, 1, 1, seq), np.float32)
    mask[:, :, :, seq - seq // 4:] = -3.0  # the last quarter of the keys pushed down
    consts = [numpy_helper.from_array(mask, "mask"),
              numpy_helper.from_array(np.array(np.sqrt(dim), np.float32), "root"),
              numpy_helper.from_array(np.array([batch, seq, heads, dim], np.int64), "split"),
              numpy_helper.from_array(np.array([batch, seq, width], np.int64), "merge")]
    nodes = []
    for x in "qkv":
        nodes += [h.make_node("MatMul", ["x", f"w{x}"], [f"{x}m"]),
                  h.make_node("Add", [f"{x}m", f"b{x}"], [f"{x}a"]),
                  h.make_node("Reshape", [f"{x}a", "split"], [f"{x}r"])]
    nodes += [h.make_node("Transpose", ["qr"], ["qt"], perm=[0, 2, 1, 3]),
              h.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]),
              h.make_node("Transpose", ["vr"], ["vt"], perm=[0, 2, 1, 3]),
              h.make_node("MatMul", ["qt", "kt"], ["s"]), h.make_node("Div", ["s", "root"], ["d"]),
              h.make_node("Add", ["d", "mask"], ["a"]), h.make_node("Softmax", ["a"], ["p"],
                                                                      axis=-1),
              h.make_node("MatMul", ["p", "vt"], ["o"]),
              h.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              h.make_node("Reshape", ["ot", "merge"], ["om"]),
              h.make_node("MatMul", ["om", "wo"], ["y"])]
    weights = [_init(rng, f"w{x}", width, width) for x in "qkvo"]
    weights += [_init(rng, f"b{x}", width) for x in "qkv"]
    graph = h.make_graph(nodes, "attention", [h.make_tensor_value_info("x", T.FLOAT,
                                                                       [batch, seq, width])],
                         [h.make_tensor_value_info("y", T.FLOAT, [batch, seq, width])],
                         [*weights, *consts])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    return lambda: (model, {"x": (batch, seq, width)})


def _config(arch: str = "sm_90", autotune: bool = False) -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=autotune)
    config.set_flag(BuilderFlag.INT8)
    config.set_flag(BuilderFlag.FP16)
    return config


def _templates(manifest: dict) -> list[str]:
    return [s["template"] for s in manifest["steps"]]


def _engine(manifest, sections, device="cpu"):
    return Runtime(device).deserialize_cuda_engine(plan_bytes(manifest, sections))


def _feed(shapes: dict) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(5).standard_normal(shapes["x"]).astype(np.float32)}


def _run(manifest, sections, feed, device="cpu") -> np.ndarray:
    return _engine(manifest, sections, device).create_execution_context().execute(feed)["y"]


def _launch(spec, name: str, inputs: list[np.ndarray], out_shape: list[int],
            out_dtype: np.dtype) -> np.ndarray:
    """One kernel on the GPU (the inputs, then the result, which starts as 0xff bytes)."""
    from ember.codegen.nvrtc import compile_cuda
    from ember.runtime import cuda

    device = cuda.default_device()
    compiled = compile_cuda(spec.source, name=name, arch=device.arch)
    function = cuda.Module.load(compiled.cubin, compiled.ptx, name=name).function(name)
    if spec.shared_bytes > 48 * 1024:
        function.set_max_dynamic_shared(spec.shared_bytes)
    got = np.full(out_shape, 0xFF, np.uint8).view(out_dtype) if np.dtype(out_dtype).itemsize \
        == 1 else np.full(out_shape, np.nan, out_dtype)
    buffers = [cuda.DeviceBuffer(a.nbytes) for a in (*inputs, got)]
    for buffer, a in zip(buffers, (*inputs, got), strict=True):
        buffer.upload(np.ascontiguousarray(a))
    cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, None,
                cuda.pack_args([("ptr", b.ptr) for b in buffers]))
    device.synchronize()
    return buffers[-1].download(got)


def _stage_io(manifest, sections, feed, monkeypatch) -> tuple[dict, list, np.ndarray]:
    """The fused step, and its inputs and result on a CPU run (copies)."""
    seen = []
    kernel = cpu_kernels.KERNELS["attention_chain"]

    def spy(args, params):
        out = kernel(args, params)
        seen.append(([np.array(a) for a in args], np.array(out[0])))
        return out

    monkeypatch.setitem(cpu_kernels.KERNELS, "attention_chain", spy)
    _run(manifest, sections, feed)
    (step,) = [s for s in manifest["steps"] if s["template"] == "attention_chain"]
    (args, out), = seen
    return step, args, out


@pytest.mark.parametrize("case", CASES)
def test_a_qdq_attention_runs_as_one_kernel_with_the_same_cpu_results(tmp_path, monkeypatch,
                                                                      case):
    _, qdq, shapes = _quantized(tmp_path, _attention(*CASES[case]), symmetric=True)
    feed = _feed(shapes)
    manifest, sections = build_model(onnx.load(qdq), _config())
    templates = _templates(manifest)
    assert templates.count("attention_chain") == 1 and "softmax" not in templates
    (step,) = [s for s in manifest["steps"] if s["template"] == "attention_chain"]
    stages = step["params"]["stages"]
    assert [(s["name"], s["template"]) for s in stages] == [
        ("q", "elementwise"), ("k", "elementwise"), ("v", "elementwise"),
        ("scores", "matmul"), ("softmax", "softmax"), ("pv", "matmul"), ("out", "transpose")]
    assert step["params"]["out_dtypes"] == ["int8"]  # P V's quantize, stored transposed
    assert b"attention_chain" in sections["cuda_source"]  # NVRTC compiled it for sm_90
    got = _run(manifest, sections, feed)
    monkeypatch.setattr(fuse_attention_kernels, "_match", lambda op: None)  # the pass off
    plain, plain_sections = build_model(onnx.load(qdq), _config())
    assert "attention_chain" not in _templates(plain) and "softmax" in _templates(plain)
    np.testing.assert_array_equal(got, _run(plain, plain_sections, feed))


@pytest.mark.parametrize("batch, seq, heads, dim", [(1, 144, 2, 32), (2, 40, 2, 32)],
                         ids=["keys_past_128", "keys_not_a_multiple_of_16"])
def test_chains_the_kernel_cannot_hold_stay_apart(tmp_path, batch, seq, heads, dim):
    _, qdq, _ = _quantized(tmp_path, _attention(batch, seq, heads, dim), symmetric=True)
    manifest, _ = build_model(onnx.load(qdq), _config())
    assert "attention_chain" not in _templates(manifest) and "softmax" in _templates(manifest)


def test_cpu_builds_keep_the_kernels(tmp_path):
    _, qdq, _ = _quantized(tmp_path, _attention(*CASES["s64_d64"]), symmetric=True)
    cpu = BuilderConfig()
    cpu.set_flag(BuilderFlag.INT8)
    manifest, _ = build_model(onnx.load(qdq), cpu)
    assert "attention_chain" not in _templates(manifest)
    # mma.sync m16n8k16 (FP16) is sm_80's: older targets build FP32 only
    assert [builder.tensor_core_target(a) for a in ("sm_75", "sm_80", "sm_90")] == \
        [False, True, True]


@pytest.mark.parametrize("case", CASES)
def test_the_kernel_on_emulated_warps_gives_the_cpu_stages_results(tmp_path, monkeypatch, case):
    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    _, qdq, shapes = _quantized(tmp_path, _attention(*CASES[case]), symmetric=True)
    manifest, sections = build_model(onnx.load(qdq), _config())
    step, args, want = _stage_io(manifest, sections, _feed(shapes), monkeypatch)
    for tactic in _tactics(step):
        name, spec = emit_step(dict(step, params={**step["params"], "tactic": tactic}))
        got = simt_emulator.run(spec, name, args, list(want.shape), want.dtype, tmp_path)
        # the softmax (and, keys split, P V) sums in another order than the CPU stages: a
        # quantized output may move by one step where a value sits at a rounding boundary
        diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, tactic


def _tactics(step: dict) -> list[dict]:
    """The kernel's forms for this step: whole rows a warp, and keys split over two warps
    where Sk is a multiple of 32 (S 64 and 128 here, not 80); each with Q/K/V loaded into
    registers or staged in shared memory by cp.async."""
    tactics = attention_chain.tactics(step["params"])
    seq_k = step["params"]["stages"][1]["params"]["out_shapes"][0][2]
    splits = [1, 2] if seq_k % 32 == 0 else [1]
    assert tactics == [{"key_split": k} for k in splits] + \
        [{"key_split": k, "staged": 1} for k in splits]
    return tactics


def test_select_tactics_gives_the_whole_row_form_and_lists_the_others(tmp_path):
    _, qdq, _ = _quantized(tmp_path, _attention(*CASES["s64_d64"]), symmetric=True)
    manifest, sections = build_model(onnx.load(qdq), _config())
    (step,) = [s for s in manifest["steps"] if s["template"] == "attention_chain"]
    assert step["params"]["tactic"] == {"key_split": 1}  # the cost model's (no GPU timing)
    explained = PlanReport(plan_bytes(manifest, sections)).explain_text(step["name"])
    assert "fuse-attention-kernels ran the kernels of a Q/DQ attention chain" in explained
    assert "beat: key_split=1,staged=1" in explained
    assert step["cuda"]["block"][0] == 128
    split = emit_step(dict(step, params={**step["params"], "tactic": {"key_split": 2}}))[1]
    assert split.block == (256, 1, 1) and split.grid == (step["cuda"]["grid"][0], 1, 1)
    staged = emit_step(dict(step, params={**step["params"],
                                          "tactic": {"key_split": 1, "staged": 1}}))[1]
    # the 8-bit Q (64 rows), K and V (64 rows each) of D 64 after the halves' tiles
    assert staged.shared_bytes == step["cuda"]["shared"] + (64 + 2 * 64) * 64
    assert staged.source.count("cp_async16(&(raw8 + ") == 3
    for bad in ({"key_split": 3}, {"key_split": 1, "tile": [64, 64]},
                {"key_split": 1, "staged": 2}):
        with pytest.raises(UnsupportedError, match="attention_chain: tactic"):
            emit_step(dict(step, params={**step["params"], "tactic": bad}))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("case", CASES)
def test_the_kernel_on_the_gpu_gives_the_cpu_stages_results(tmp_path, monkeypatch, case):
    from ember.compiler.builder import detect_arch

    _, qdq, shapes = _quantized(tmp_path, _attention(*CASES[case]), symmetric=True)
    feed = _feed(shapes)
    manifest, sections = build_model(onnx.load(qdq), _config(detect_arch(), True))
    assert "attention_chain" in _templates(manifest)
    got = _run(manifest, sections, feed, "cuda")
    want = _run(manifest, sections, feed, "cpu")
    rel = np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want)
    assert rel < 2e-2
    # the fused kernel alone, on the CPU run's inputs
    step, args, out = _stage_io(manifest, sections, feed, monkeypatch)
    for tactic in _tactics(step):
        name, spec = emit_step(dict(step, params={**step["params"], "tactic": tactic}))
        got_step = _launch(spec, name, args, list(out.shape), out.dtype)
        diff = np.abs(got_step.astype(np.int32) - out.astype(np.int32))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, tactic
