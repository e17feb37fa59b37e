"""fuse-shortcut-convs: a ResNet block's conv3 + downsample conv + add (+ relu) as one conv over
both inputs' channels, on the copy engine. What fuses and what does not, the plan step it makes
(params, weights, tensor maps, kernel compiling for sm_90a), the CPU executor's and the GPU's
results against numpy in float64, and REFIT builds keeping the pair apart."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.fuse_shortcut_convs import FuseShortcutConvs
from ember.codegen.nvrtc import compile_cuda
from ember.codegen.templates import conv, gemm_tma
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.errors import PassError, UnsupportedError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.runtime.test_mma_tactics import NP_TYPE, ONNX_TYPE, TOLERANCE

ONNX_TYPES = {**ONNX_TYPE, "float32": TensorProto.FLOAT}
NP_TYPES = {**NP_TYPE, "float32": np.float32}
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")

# (y: conv3's input NCHW, x: the block input NCHW, out channels, the downsample's stride)
BLOCKS = {
    "stride1": ([2, 64, 9, 9], [2, 64, 9, 9], 96, 1),
    "stride2": ([2, 128, 7, 7], [2, 64, 13, 13], 256, 2),
}


def _block(y_shape, x_shape, k: int, stride: int, dtype: str, seed: int, *,
           relu_before_add: bool = False, d_kernel: int = 1, downsample_first: bool = False,
           tail: str = "relu", biases: bool = True):
    """tail(conv(y, W3) + b3 + conv(x, Wd, stride) + bd), both inputs the network's; `tail`:
    "relu", "none" or "scale_relu" (relu of the sum times a per-channel constant: a second
    epilogue input beside the residual); `downsample_first`: Add(d, c3)."""
    rng = np.random.default_rng(seed)
    t, np_t = ONNX_TYPES[dtype], NP_TYPES[dtype]
    w3 = (rng.standard_normal((k, y_shape[1], 1, 1)) / np.sqrt(y_shape[1])).astype(np_t)
    wd = (rng.standard_normal((k, x_shape[1], d_kernel, d_kernel))
          / np.sqrt(x_shape[1] * d_kernel ** 2)).astype(np_t)
    b3, bd = (rng.standard_normal(k).astype(np_t) for _ in range(2))
    scale = (rng.uniform(0.5, 2.0, (1, k, 1, 1))).astype(np_t)
    pad = (d_kernel - 1) // 2
    nodes = [helper.make_node("Conv", ["y", "w3", *(["b3"] if biases else [])], ["c3"]),
             helper.make_node("Conv", ["x", "wd", *(["bd"] if biases else [])], ["d"],
                              strides=[stride, stride], pads=[pad] * 4)]
    added = "d"
    if relu_before_add:
        nodes.append(helper.make_node("Relu", ["d"], ["dr"]))
        added = "dr"
    nodes.append(helper.make_node("Add", [added, "c3"] if downsample_first else ["c3", added],
                                  ["s" if tail != "none" else "out"]))
    if tail == "scale_relu":
        nodes += [helper.make_node("Mul", ["s", "scale"], ["sm"]),
                  helper.make_node("Relu", ["sm"], ["out"])]
    elif tail == "relu":
        nodes.append(helper.make_node("Relu", ["s"], ["out"]))
    weights = {"w3": w3, "wd": wd, **({"b3": b3, "bd": bd} if biases else {}),
               **({"scale": scale} if tail == "scale_relu" else {})}
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("y", t, y_shape),
                         helper.make_tensor_value_info("x", t, x_shape)],
        [helper.make_tensor_value_info("out", t, None)],
        [numpy_helper.from_array(a, n) for n, a in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feed = {"y": rng.standard_normal(y_shape).astype(np_t),
            "x": rng.standard_normal(x_shape).astype(np_t)}
    return model, feed, {**weights, "tail": tail}


def _reference(feed: dict, weights: dict, stride: int) -> np.ndarray:
    """The block in float64, NCHW (1x1 convs)."""
    f = {n: a.astype(np.float64) for n, a in {**feed, **weights}.items() if n != "tail"}
    c3 = np.einsum("nchw,kc->nkhw", f["y"], f["w3"][:, :, 0, 0])
    d = np.einsum("nchw,kc->nkhw", f["x"][:, :, ::stride, ::stride], f["wd"][:, :, 0, 0])
    bias = f.get("b3", np.zeros(c3.shape[1])) + f.get("bd", np.zeros(c3.shape[1]))
    s = c3 + d + bias[:, None, None]
    tail = weights.get("tail", "relu")
    return s if tail == "none" else np.maximum(s * f["scale"] if tail == "scale_relu" else s, 0)


def _config(arch: str = "sm_90", flags: int = 0) -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=False, format_choice="preferred",
                           flags=flags)
    config.set_allowed_io_formats("NCHW", "NHWC")
    return config


def _convs(manifest: dict) -> list[dict]:
    return [s for s in manifest["steps"] if s["template"] == "conv"]


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _run(manifest: dict, sections: dict, feed: dict, device: str) -> np.ndarray:
    engine = Runtime(device=device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    formats = {i["name"]: i.get("format") for i in manifest["inputs"]}
    feed = {n: _nhwc(a) if formats[n] == "NHWC" else a for n, a in feed.items()}
    out = engine.create_execution_context().execute(feed)["out"]
    return out.transpose(0, 3, 1, 2) if manifest["outputs"][0].get("format") == "NHWC" else out


def _relative_l2(out: np.ndarray, ref: np.ndarray) -> float:
    out = out.astype(np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("case", list(BLOCKS))
def test_the_pair_becomes_one_conv_on_three_tensor_maps(case: str) -> None:
    y_shape, x_shape, k, stride = BLOCKS[case]
    model, _, _ = _block(y_shape, x_shape, k, stride, "float16", seed=1)
    manifest, sections = build_model(model, _config())
    (step,) = _convs(manifest)
    p = step["params"]
    c1, c2 = y_shape[1], x_shape[1]
    assert p["shortcut"] == {"strides": [stride, stride]}
    assert p["in_shapes"][1] == [k, 1, 1, c1 + c2] and p["in_shapes"][3][-1] == c2
    assert gemm_tma.is_tma(p["tactic"])
    assert [op["fn"] for op in p["epilogue"]["ops"]] == ["relu"]  # the add is gone
    maps = step["cuda"]["tmaps"]
    assert [m["operand"] for m in maps] == [0, 1, 3]
    assert bool(maps[2].get("im2col")) == (stride != 1)
    source = sections["cuda_source"].decode()
    assert "tmap_a2" in source and f"kt < {c1 // 64}" in source
    compiled = compile_cuda(source, name=step["cuda"]["kernel"], arch="sm_90a", cache=False,
                            options=["--ptxas-options=-v"])
    assert "cp.async.bulk.tensor" in compiled.ptx.decode()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(BLOCKS))
def test_the_cpu_executor_runs_the_fused_step_like_float64(case: str, dtype: str) -> None:
    y_shape, x_shape, k, stride = BLOCKS[case]
    model, feed, weights = _block(y_shape, x_shape, k, stride, dtype, seed=2)
    manifest, sections = build_model(model, _config())
    assert _convs(manifest)[0]["params"]["shortcut"]
    out = _run(manifest, sections, feed, "cpu")
    assert _relative_l2(out, _reference(feed, weights, stride)) < TOLERANCE[dtype]


VARIANTS = [
    {"downsample_first": True},  # Add(downsample, conv3): the epilogue lands on the strided one
    {"tail": "none"},  # nothing left of the epilogue but the value itself
    {"tail": "scale_relu"},  # a second epilogue input beside the residual
    {"biases": False},  # the fused bias is zeros
]


def _check_variant(variant: dict, device: str) -> None:
    y_shape, x_shape, k, stride = BLOCKS["stride2"]
    model, feed, weights = _block(y_shape, x_shape, k, stride, "float16", seed=7, **variant)
    manifest, sections = build_model(model, _config())
    (step,) = _convs(manifest)
    assert step["params"]["shortcut"] == {"strides": [2, 2]}
    assert step["params"]["in_shapes"][0][-1] == y_shape[1]  # conv3's input first
    out = _run(manifest, sections, feed, device)
    assert _relative_l2(out, _reference(feed, weights, stride)) < TOLERANCE["float16"]
    if device == "cpu":
        compile_cuda(sections["cuda_source"].decode(), name=step["cuda"]["kernel"],
                     arch="sm_90a", cache=False)


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_variants_of_the_block_fuse_and_match_float64(variant: dict) -> None:
    _check_variant(variant, "cpu")


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_variants_of_the_block_match_float64_on_the_gpu(variant: dict) -> None:
    _check_variant(variant, "cuda")


@pytest.mark.parametrize("why, kwargs", [
    ("sm_80: no copy engine", {"arch": "sm_80"}),
    ("a relu between the downsample and the add", {"relu_before_add": True}),
    ("a 3x3 conv added", {"d_kernel": 3}),
    ("channels not a multiple of 64", {"y_shape": [1, 32, 8, 8], "x_shape": [1, 64, 8, 8]}),
])
def test_what_does_not_fuse(why: str, kwargs: dict) -> None:
    arch = kwargs.pop("arch", "sm_90")
    y_shape, x_shape = kwargs.pop("y_shape", [1, 64, 8, 8]), kwargs.pop("x_shape", [1, 64, 8, 8])
    model, _, _ = _block(y_shape, x_shape, 64, 1, "float16", seed=3, **kwargs)
    manifest, _ = build_model(model, _config(arch))
    steps = _convs(manifest)
    assert len(steps) == 2 and not any("shortcut" in s["params"] for s in steps), why


def test_an_fp32_model_built_with_fp16_fuses_within_fp16s_rounding() -> None:
    """The usual path: FP32 weights and I/O, BuilderFlag.FP16 (assign-precision's casts and
    FP16 weight copies before the pair)."""
    y_shape, x_shape, k, stride = BLOCKS["stride2"]
    model, feed, weights = _block(y_shape, x_shape, k, stride, "float32", seed=6)
    manifest, sections = build_model(model, _config(flags=BuilderFlag.FP16))
    assert [s["params"].get("shortcut") for s in _convs(manifest)] == [{"strides": [2, 2]}]
    out = _run(manifest, sections, feed, "cpu")
    assert _relative_l2(out, _reference(feed, weights, stride)) < 1e-2


def test_fp32_and_refit_builds_keep_the_pair_apart() -> None:
    """Strict FP32 (no tensor-core conv), and REFIT (each weight refits on its own)."""
    for dtype, flags in (("float32", 0), ("float16", BuilderFlag.REFIT)):
        model, _, _ = _block([1, 64, 8, 8], [1, 64, 8, 8], 64, 1, dtype, seed=4)
        manifest, _ = build_model(model, _config(flags=flags))
        assert len(_convs(manifest)) == 2, dtype


def test_the_pass_needs_an_arch_and_the_template_a_tma_tactic() -> None:
    from xdsl.context import Context
    from xdsl.dialects.builtin import ModuleOp

    with pytest.raises(PassError, match="give arch"):
        FuseShortcutConvs().apply(Context(), ModuleOp([]))
    params = {"in_shapes": [[1, 8, 8, 64], [64, 1, 1, 128], [64], [1, 8, 8, 64]],
              "in_dtypes": ["float16"] * 4, "out_shapes": [[1, 8, 8, 64]],
              "out_dtypes": ["float16"], "layout": "NHWC", "strides": [1, 1],
              "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1,
              "shortcut": {"strides": [1, 1]}}
    assert conv.tactics(params, "sm_80") == []
    tactics = conv.tactics(params, "sm_90")
    assert tactics and all(gemm_tma.is_tma(t) for t in tactics)
    assert any(gemm_tma.tma_for(t).tile.resident == 2 for t in tactics)
    with pytest.raises(UnsupportedError, match="runs on a TMA tactic"):
        conv.emit("k", {**params, "tactic": {"wgmma": [128, 64, 4]}})


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(BLOCKS))
@pytest.mark.parametrize("tile", [gemm_tma.TmaTile(128, 128, 3), gemm_tma.TmaTile(256, 128, 4),
                                  gemm_tma.TmaTile(64, 64, 8)], ids=str)
def test_the_fused_conv_matches_float64_on_the_gpu(case: str, dtype: str,
                                                   tile: gemm_tma.TmaTile, monkeypatch) -> None:
    """Pixels not a multiple of BM, out channels not a multiple of BN (stride 1: 96), the
    second input through a plain map (stride 1) and a strided 1x1 im2col map (stride 2)."""
    monkeypatch.setattr(gemm_tma, "ranked", lambda *a, **k: [gemm_tma.TmaGemm(tile)])
    y_shape, x_shape, k, stride = BLOCKS[case]
    model, feed, weights = _block(y_shape, x_shape, k, stride, dtype, seed=5)
    manifest, sections = build_model(model, _config())
    (step,) = _convs(manifest)
    assert step["params"]["tactic"] == gemm_tma.TmaGemm(tile).tactic()
    out = _run(manifest, sections, feed, "cuda")
    assert _relative_l2(out, _reference(feed, weights, stride)) < TOLERANCE[dtype]


def test_the_cpu_kernel_refuses_a_malformed_shortcut_step() -> None:
    """A plan whose shortcut step's buffers disagree (the weight's channels are not both
    inputs', the second input's strided pixels not the first's) is a PlanError, not a numpy
    error."""
    from ember.errors import PlanError
    from ember.runtime.cpu_kernels.linear import conv as cpu_conv

    params = {"layout": "NHWC", "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1],
              "groups": 1, "shortcut": {"strides": [2, 2]}, "out_dtypes": ["float32"]}
    x, w, b = np.ones((1, 4, 4, 8), np.float32), np.ones((3, 1, 1, 16), np.float32), \
        np.zeros(3, np.float32)
    assert cpu_conv([x, w, b, np.ones((1, 7, 7, 8), np.float32)], params)[0].shape == (1, 4, 4, 3)
    for x2 in (np.ones((1, 8, 8, 4), np.float32), np.ones((1, 10, 10, 8), np.float32)):
        with pytest.raises(PlanError, match="over the same pixels"):
            cpu_conv([x, w, b, x2], params)
    with pytest.raises(PlanError, match="takes 4 inputs"):
        cpu_conv([x, w, b], params)
