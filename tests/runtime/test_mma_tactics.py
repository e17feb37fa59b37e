"""The tensor-core (FP16/BF16, FP32 accumulation) matmul and conv tactics against numpy in
float64 on the same half-precision inputs: every tile of `gemm_mma.MMA_TILES` forced in turn,
partial tiles, transposes, batch broadcasting, split-K, vectorized (16-byte) and element-wise
operand copies, NHWC and NCHW convs. Building (NVRTC) runs everywhere; running needs a GPU."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.templates import gemm_mma, gemm_tiles, gemm_tma, gemm_wgmma, matmul
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.cpu_kernels.linear import conv as conv_reference
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
ONNX_TYPE = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}
NP_TYPE = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _half(rng: np.random.Generator, shape, dtype: str, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(NP_TYPE[dtype])


def _matmul_model(a_shape, b_shape, dtype: str, trans_b: bool, seed: int):
    """y = x @ w (w a weight, given [N, K] through Gemm transB when asked) or x @ x2."""
    rng = np.random.default_rng(seed)
    t = ONNX_TYPE[dtype]
    if trans_b:
        w = _half(rng, (b_shape[1], b_shape[0]), dtype)
        node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
        inits, ins = [numpy_helper.from_array(w, "w")], [
            helper.make_tensor_value_info("x", t, a_shape)]
    else:
        node = helper.make_node("MatMul", ["x", "x2"], ["y"])
        inits, ins = [], [helper.make_tensor_value_info("x", t, a_shape),
                          helper.make_tensor_value_info("x2", t, b_shape)]
    graph = helper.make_graph([node], "mm", ins, [helper.make_tensor_value_info("y", t, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), rng


def _conv_model(x_shape, w_shape, attrs, dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    t = ONNX_TYPE[dtype]
    w = _half(rng, w_shape, dtype, 1 / np.sqrt(np.prod(w_shape[1:])))
    b = _half(rng, w_shape[0], dtype)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", t, x_shape)],
                              [helper.make_tensor_value_info("y", t, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), rng, w, b


# (a shape, b shape, Gemm with transB)
MATMULS = {
    "square": ([256, 256], [256, 256], False),
    "bert_qkv_weight_nk": ([128, 768], [768, 768], True),
    "odd_sizes": ([37, 45], [45, 29], False),
    "batched_broadcast": ([3, 1, 33, 40], [4, 40, 24], False),
    "split_k": ([16, 4096], [4096, 64], False),
    "vector_matrix": ([1, 320], [320, 200], True),
}
# (x shape, w shape, attributes): NHWC with 16-byte chunks where C % 8 == 0, else NCHW
CONVS = {
    "3x3_nhwc": ([2, 64, 14, 14], [64, 64, 3, 3], {"pads": [1, 1, 1, 1]}),
    "1x1_stride2_nhwc": ([2, 32, 9, 9], [48, 32, 1, 1], {"strides": [2, 2]}),
    # 3 channels padded to 8 (pad-conv-channels), then NHWC like the others
    "7x7_c3_padded_nhwc": ([2, 3, 32, 32], [16, 3, 7, 7], {"strides": [2, 2],
                                                            "pads": [3, 3, 3, 3]}),
    "grouped_nchw": ([1, 32, 10, 10], [32, 8, 3, 3], {"group": 4, "pads": [1, 1, 1, 1]}),
    "deep_split_k_nhwc": ([1, 256, 7, 7], [64, 256, 3, 3], {"pads": [1, 1, 1, 1]}),
}
# the direct kernel (depthwise), checked on the GPU with the same reference: NHWC where
# C % 8 == 0 (as the tensor-core convs around it in MobileNetV2), else NCHW
DIRECT_CONVS = {
    "depthwise_nhwc": ([2, 32, 10, 10], [32, 1, 3, 3], {"group": 32, "pads": [1, 1, 1, 1]}),
    "depthwise_stride2_nchw": ([2, 12, 9, 9], [12, 1, 3, 3], {"group": 12, "strides": [2, 2],
                                                              "pads": [1, 1, 1, 1]}),
}


def _build(model, nhwc: bool = False) -> tuple[dict, dict]:
    """A plan for sm_90 (NHWC I/O allowed where asked: a lone conv then runs in NHWC without
    reformats around it, as inside a network)."""
    # assign-layouts' policy: these tests pin the layouts whose kernels they check (the cost
    # model finds some of these small convs not worth their reformats: test_choose_formats)
    config = BuilderConfig(target_arch="sm_90", autotune=False, format_choice="preferred")
    if nhwc:
        config.set_allowed_io_formats("NCHW", "NHWC")
    return build_model(model, config)


def _tensor_core_steps(manifest: dict) -> list[dict]:
    return [s for s in manifest["steps"] if s["template"] in ("matmul", "conv")]


def _relative_l2(out: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(np.linalg.norm(out.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(MATMULS))
def test_half_matmul_builds_a_tensor_core_kernel(case: str, dtype: str) -> None:
    a_shape, b_shape, trans_b = MATMULS[case]
    model, _ = _matmul_model(a_shape, b_shape, dtype, trans_b, seed=1)
    manifest, sections = _build(model)
    steps = _tensor_core_steps(manifest)
    assert len(steps) == 1 and steps[0].get("device") != "cpu", steps
    source = sections["cuda_source"].decode(errors="replace")
    assert "mma.sync.aligned.m16n8k16.row.col.f32" in source
    assert ("f16.f16" if dtype == "float16" else "bf16.bf16") in source


@pytest.mark.parametrize("case", list(CONVS))
def test_half_conv_builds_a_tensor_core_kernel(case: str) -> None:
    x_shape, w_shape, attrs = CONVS[case]
    model, *_ = _conv_model(x_shape, w_shape, attrs, "float16", seed=2)
    manifest, sections = _build(model, nhwc=True)
    (step,) = [s for s in manifest["steps"] if s["template"] == "conv"]
    assert step.get("device") != "cpu", step
    assert step["params"].get("layout", "NCHW") == ("NHWC" if "nhwc" in case else "NCHW")
    assert "ldmatrix" in sections["cuda_source"].decode(errors="replace")


def _epilogue_model(dtype: str, seed: int):
    """y = relu(conv(x) + b + x) over 64 channels, z = relu(Gemm(x2, w, bias)): epilogues
    (bias, residual, activation) fused into a tensor-core conv and matmul."""
    rng = np.random.default_rng(seed)
    t = ONNX_TYPE[dtype]
    inits = {"w": _half(rng, (64, 64, 3, 3), dtype, 1 / 24), "b": _half(rng, 64, dtype),
             "wm": _half(rng, (96, 128), dtype, 1 / 12), "bm": _half(rng, 96, dtype)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"]),
             helper.make_node("Gemm", ["x2", "wm", "bm"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["z"])]
    graph = helper.make_graph(
        nodes, "epi", [helper.make_tensor_value_info("x", t, [2, 64, 12, 12]),
                       helper.make_tensor_value_info("x2", t, [40, 128])],
        [helper.make_tensor_value_info("y", t, None), helper.make_tensor_value_info("z", t, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), rng, inits


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_epilogues_fuse_into_tensor_core_kernels(dtype: str) -> None:
    model, *_ = _epilogue_model(dtype, seed=6)
    manifest, sections = _build(model, nhwc=True)
    steps = _tensor_core_steps(manifest)
    assert len(steps) == 2 and all(s.get("device") != "cpu" for s in steps), steps
    assert all(s["params"].get("epilogue") for s in steps)
    assert len(manifest["steps"]) == 2  # nothing left outside the two kernels


def test_half_rows_leave_through_shared_memory_in_16_byte_stores() -> None:
    """gemm_epilogue: an NHWC conv over 64 channels and a matmul with N = 96 stage their outputs
    in shared memory and store 16 bytes at a time, the conv's residual read 16 bytes at a time;
    an odd N stores element by element. (The GPU tests above check both give the same
    numbers.)"""
    model, *_ = _epilogue_model("float16", seed=6)
    source = _build(model, nhwc=True)[1]["cuda_source"].decode(errors="replace")
    assert source.count("stage the outputs") == 2
    assert source.count("ember_store16(&out0[oi], h.v);") == 2  # st.global.v4 itself
    assert "__ldg((const uint4*)&in3[oi])" in source  # the conv's residual (in3: after bias)
    a_shape, b_shape, trans_b = MATMULS["odd_sizes"]
    model, _ = _matmul_model(a_shape, b_shape, "float16", trans_b, seed=1)
    source = _build(model)[1]["cuda_source"].decode(errors="replace")
    assert "mma.sync" in source and "stage the outputs" not in source


def test_half_inverted_residual_runs_nhwc_without_reformats() -> None:
    """MobileNetV2's block in FP16: 1x1 expand, 3x3 depthwise, 1x1 project. The depthwise conv
    prefers NHWC as the tensor-core convs do, so nothing is reformatted between them."""
    rng = np.random.default_rng(3)
    t = ONNX_TYPE["float16"]
    inits = {"w1": _half(rng, (48, 16, 1, 1), "float16", 0.25),
             "wd": _half(rng, (48, 1, 3, 3), "float16", 0.3),
             "w2": _half(rng, (16, 48, 1, 1), "float16", 0.15)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "wd"], ["d"], group=48, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["dr"]),
             helper.make_node("Conv", ["dr", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "block",
                              [helper.make_tensor_value_info("x", t, [2, 16, 8, 8])],
                              [helper.make_tensor_value_info("y", t, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    manifest, _ = _build(model, nhwc=True)
    convs = [s for s in manifest["steps"] if s["template"] == "conv"]
    assert [s["params"].get("layout") for s in convs] == ["NHWC"] * 3
    assert [s["template"] for s in manifest["steps"]] == ["conv"] * 3


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_depthwise_conv_runs_the_direct_kernel(dtype: str) -> None:
    """Too few output channels per group for a GEMM tile: the direct kernel, in float from
    half storage (MobileNetV2's depthwise convs)."""
    model, *_ = _conv_model([2, 32, 10, 10], [32, 1, 3, 3], {"group": 32, "pads": [1] * 4},
                            dtype, seed=8)
    manifest, sections = _build(model)
    (step,) = [s for s in manifest["steps"] if s["template"] == "conv"]
    assert step.get("device") != "cpu", step
    assert "tactic: direct" in sections["cuda_source"].decode(errors="replace")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_three_channel_conv_is_padded_and_exact_on_the_cpu_executor(dtype: str) -> None:
    """pad-conv-channels in a GPU build: the 3-channel conv reads 8 zero-padded channels (input
    and weight) in NHWC; the same plan on the CPU executor equals the unpadded conv."""
    x_shape, w_shape, attrs = CONVS["7x7_c3_padded_nhwc"]
    model, rng, w, b = _conv_model(x_shape, w_shape, attrs, dtype, seed=9)
    manifest, sections = _build(model, nhwc=True)
    (conv,) = [s for s in manifest["steps"] if s["template"] == "conv"]
    assert conv["params"]["layout"] == "NHWC" and conv["params"]["in_shapes"][1][-1] == 8
    assert "pad" in [s["template"] for s in manifest["steps"]]
    x = _half(rng, x_shape, dtype)
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    out = engine.create_execution_context().execute({"x": x.transpose(0, 2, 3, 1)})["y"]
    out = out.transpose(0, 3, 1, 2)
    (ref,) = conv_reference([x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)],
                            {"strides": [2, 2], "pads": [3, 3, 3, 3], "dilations": [1, 1],
                             "groups": 1})
    assert _relative_l2(out, ref) < TOLERANCE[dtype] / 4  # one rounding to the storage type


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_channel_pad_folds_into_the_nhwc_reformat_of_an_nchw_input(dtype: str) -> None:
    """An NCHW network input of 3 channels: fold-channel-pad makes pad-conv-channels' pad and
    assign-layouts' NCHW->NHWC transpose one reformat writing 8 channels a pixel (16 bytes),
    and space-to-depth-stem makes it write 2x2 blocks of pixels (12 channels padded to 16) for
    the 7x7 stride-2 conv, now a 4x4 stride-1 one; the plan on the CPU executor equals the
    unpadded conv, and on the GPU (below) too."""
    x_shape, w_shape, attrs = CONVS["7x7_c3_padded_nhwc"]
    model, rng, w, b = _conv_model(x_shape, w_shape, attrs, dtype, seed=10)
    # two more convs: running the three in NHWC pays for the two reformats
    w2 = _half(rng, (16, 16, 1, 1), dtype, 1 / 4)
    graph = model.graph
    graph.node[0].output[0] = "c"
    graph.node.extend([helper.make_node("Conv", ["c", "w2"], ["c2"]),
                       helper.make_node("Conv", ["c2", "w2"], ["y"])])
    graph.initializer.append(numpy_helper.from_array(w2, "w2"))
    manifest, sections = _build(model)
    assert [s["template"] for s in manifest["steps"]] == ["reformat", "conv", "conv", "conv",
                                                          "transpose"]
    reformat = manifest["steps"][0]["params"]
    assert (reformat["reformat"], reformat["channels"], reformat["padded_channels"],
            reformat["space_to_depth"]) == ("NCHW->NHWC", 3, 16, 2)
    conv = manifest["steps"][1]["params"]
    assert (conv["strides"], conv["pads"], conv["in_shapes"][1][1:]) == \
        ([1, 1], [0, 0, 0, 0], [4, 4, 16])
    source = sections["cuda_source"].decode(errors="replace")
    assert "padded to 16 with zeros and stored in 16-byte pieces" in source
    x = _half(rng, x_shape, dtype)
    (c,) = conv_reference([x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)],
                          {"strides": [2, 2], "pads": [3, 3, 3, 3], "dilations": [1, 1],
                           "groups": 1})
    for _ in range(2):  # stored as the half type in between
        c = c.astype(NP_TYPE[dtype]).astype(np.float64)
        (c,) = conv_reference([c, w2.astype(np.float64)],
                              {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1],
                               "groups": 1})
    ref = c
    plan = plan_bytes(manifest, sections)
    out = Runtime(device="cpu").deserialize_cuda_engine(plan).create_execution_context() \
        .execute({"x": x})["y"]
    assert _relative_l2(out, ref) < TOLERANCE[dtype] / 4
    if cuda_available():
        out = Runtime(device="cuda").deserialize_cuda_engine(plan).create_execution_context() \
            .execute({"x": x})["y"]
        assert _relative_l2(out, ref) < TOLERANCE[dtype]


def test_every_tile_compiles_for_both_half_types() -> None:
    """Each tile, both operand orders (ldmatrix and ldmatrix.trans), split-K: NVRTC accepts
    every kernel the tactic space can emit."""
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import emitter

    sources = []
    for dtype in ("float16", "bfloat16"):
        for i, (tile, _) in enumerate(gemm_mma.MMA_TILES):
            for ta, splits in ((False, 1), (True, 2)):
                a = [512, 256] if ta else [256, 512]
                params = {"in_shapes": [a, [512, 256]], "out_shapes": [[256, 256]],
                          "in_dtypes": [dtype, dtype], "out_dtypes": [dtype],
                          "transpose_a": ta, "transpose_b": False,
                          "tactic": {"mma": tile.as_list(), "splits": splits}}
                spec = emitter("matmul")(f"k_{dtype}_{i}_{int(ta)}", params)
                assert spec.shared_bytes == tile.shared_bytes()
                sources.append((f"k_{dtype}_{i}_{int(ta)}", spec.source))
    assert len(compile_many(sources, arch="sm_90")) == len(sources)


def test_every_wgmma_tile_compiles_for_sm90a() -> None:
    """Hopper's tiles, both half types, a conv and a matmul: NVRTC targets sm_90a for them in
    an sm_90 build (the marked source) and refuses them for any other arch."""
    from ember.codegen.nvrtc import CompileError, compile_many
    from ember.codegen.templates import emitter

    sources = []
    for dtype in ("float16", "bfloat16"):
        for i, (tile, _) in enumerate(gemm_wgmma.WGMMA_TILES):
            params = {"in_shapes": [[300, 264], [200, 264]], "out_shapes": [[300, 200]],
                      "in_dtypes": [dtype, dtype], "out_dtypes": [dtype], "transpose_b": True,
                      "tactic": {"wgmma": tile.as_list()}}
            spec = emitter("matmul")(f"w_{dtype}_{i}", params)
            assert gemm_wgmma.ARCH_SPECIFIC in spec.source and spec.block[0] == tile.threads
            # K = 264 halves: 5 k-tiles of 64, so a 6-stage tile allocates 5 (gemm_tiles.buffers)
            assert spec.shared_bytes == tile.shared_bytes(5) <= gemm_mma.SHARED_OPT_IN
            sources.append((f"w_{dtype}_{i}", spec.source))
    conv = {"in_shapes": [[2, 9, 9, 32], [64, 3, 3, 32]], "out_shapes": [[2, 9, 9, 64]],
            "in_dtypes": ["float16"] * 2, "out_dtypes": ["float16"], "layout": "NHWC",
            "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1,
            "tactic": {"wgmma": [64, 64, 8]}}
    sources.append(("w_conv", emitter("conv")("w_conv", conv).source))
    assert {k.arch for k in compile_many(sources, arch="sm_90")} == {"sm_90a"}
    with pytest.raises(CompileError, match="sm_90a"):
        compile_many(sources[:1], arch="sm_80")


def test_tf32_takes_wgmma_only_when_allowed() -> None:
    """FP32 GEMMs marked tf32 (assign-precision) get Hopper's TF32 tactics in an sm_90 build;
    unmarked ones keep the FP32 register tiles, and a forced wgmma tactic is refused."""
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import conv, emitter, matmul

    mm = {"in_shapes": [[256, 128], [96, 128]], "out_shapes": [[256, 96]],
          "in_dtypes": ["float32"] * 2, "out_dtypes": ["float32"], "transpose_b": True}
    assert not any("wgmma" in t for t in matmul.tactics(mm, "sm_90"))
    tactics = matmul.tactics({**mm, "tf32": True}, "sm_90")
    assert "wgmma" in tactics[0] and "tile" in tactics[-1]  # the FP32 tile stays a candidate
    assert not any("wgmma" in t for t in matmul.tactics({**mm, "tf32": True}, "sm_80"))
    with pytest.raises(ValueError, match="TF32"):
        emitter("matmul")("k", {**mm, "tactic": tactics[0]})
    cv = {"in_shapes": [[2, 9, 9, 12], [16, 3, 3, 12], [16]], "out_shapes": [[2, 9, 9, 16]],
          "in_dtypes": ["float32"] * 3, "out_dtypes": ["float32"], "layout": "NHWC",
          "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1,
          "tf32": True}
    (best, *_) = conv.tactics(cv, "sm_90")
    sources = [("tf32_mm", emitter("matmul")("tf32_mm", {**mm, "tf32": True,
                                                          "tactic": tactics[0]}).source),
               ("tf32_cv", emitter("conv")("tf32_cv", {**cv, "tactic": best}).source)]
    assert all("m64n" in s and ".tf32.tf32" in s for _, s in sources)
    assert {k.arch for k in compile_many(sources, arch="sm_90")} == {"sm_90a"}


def test_wgmma_needs_k_major_operands_and_an_sm90_target() -> None:
    from ember.codegen.templates import matmul

    nk = {"in_shapes": [[1024, 768], [3072, 768]], "out_shapes": [[1024, 3072]],
          "in_dtypes": ["float16"] * 2, "out_dtypes": ["float16"], "transpose_b": True}
    kn = {**nk, "in_shapes": [[1024, 768], [768, 3072]], "transpose_b": False}
    assert any("wgmma" in t for t in matmul.tactics(nk, "sm_90"))
    assert not any("wgmma" in t for t in matmul.tactics(nk, "sm_80"))
    assert not any("wgmma" in t for t in matmul.tactics(nk))
    assert not any("wgmma" in t for t in matmul.tactics(kn, "sm_90"))  # B n-contiguous
    with pytest.raises(ValueError, match="K-major"):
        matmul.emit("k", {**kn, "tactic": {"wgmma": [128, 128, 6]}})


def test_named_tactic_outside_the_space_is_refused() -> None:
    params = {"in_shapes": [[64, 64], [64, 64]], "out_shapes": [[64, 64]],
              "in_dtypes": ["float16"] * 2, "out_dtypes": ["float16"],
              "tactic": {"mma": [48, 64, 32, 1, 2, 3], "splits": 1}}
    with pytest.raises(ValueError, match="not one of the tensor-core tiles"):
        gemm_mma.mma_for(params, 64, 64, 64, 1)


def _run(manifest: dict, sections: dict, feed: dict) -> np.ndarray:
    engine = Runtime().deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute(feed)["y"]


def _matmul_reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.matmul(x.astype(np.float64), w.astype(np.float64))


# tolerance: FP32 accumulation over K of products of exact half inputs, one rounding to the
# storage type at the end (2^-11 relative for float16, 2^-8 for bfloat16)
TOLERANCE = {"float16": 2e-3, "bfloat16": 8e-3}


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(MATMULS))
def test_half_matmul_matches_float64(case: str, dtype: str) -> None:
    a_shape, b_shape, trans_b = MATMULS[case]
    model, rng = _matmul_model(a_shape, b_shape, dtype, trans_b, seed=3)
    x = _half(rng, a_shape, dtype)
    feed = {"x": x}
    if trans_b:
        w = numpy_helper.to_array(model.graph.initializer[0]).T
    else:
        w = feed["x2"] = _half(rng, b_shape, dtype)
    out = _run(*_build(model), feed)
    assert out.dtype == NP_TYPE[dtype]
    assert _relative_l2(out, _matmul_reference(x, w)) < TOLERANCE[dtype]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("tile", [t for t, _ in gemm_mma.MMA_TILES], ids=str)
def test_every_tile_matches_float64(tile: gemm_mma.MmaTile, monkeypatch) -> None:
    """Each tile forced in turn, on a GEMM with partial tiles in M, N and K, A transposed
    (ldmatrix.trans) and B [N, K] (ldmatrix): every fragment and store index is exercised."""
    monkeypatch.setattr(gemm_mma, "MMA_TILES", ((tile, 1.0),))
    rng = np.random.default_rng(4)
    m, n, k = 300, 264, 200
    x, w = _half(rng, (k, m), "float16"), _half(rng, (n, k), "float16")
    t = TensorProto.FLOAT16
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transA=1, transB=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", t, [k, m])],
                              [helper.make_tensor_value_info("y", t, None)],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = _run(*_build(model), {"x": x})
    assert _relative_l2(out, _matmul_reference(x.T, w.T)) < TOLERANCE["float16"]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("tile", [t for t, _ in gemm_wgmma.WGMMA_TILES], ids=str)
def test_every_wgmma_tile_matches_float64(tile: gemm_wgmma.WgmmaTile, dtype: str,
                                          monkeypatch) -> None:
    """Each Hopper tile forced in turn (select-tactics' choice in an sm_90 build) on partial
    tiles in M, N and K, and on a K that spans several pipeline stages."""
    monkeypatch.setattr(gemm_wgmma, "WGMMA_TILES", ((tile, 1.0),))
    monkeypatch.setattr(gemm_wgmma, "SPEEDUP_OVER_MMA", 1e9)
    monkeypatch.setattr(gemm_tma, "TMA_TILES", ())  # the cp.async loop (test_tma_tactics: TMA)
    for seed, (m, n, k) in enumerate([(300, 264, 200), (130, 70, 1000)]):
        model, rng = _matmul_model([m, k], [k, n], dtype, trans_b=True, seed=10 + seed)
        x = _half(rng, (m, k), dtype)
        manifest, sections = _build(model)
        (step,) = _tensor_core_steps(manifest)
        assert step["params"]["tactic"] == {"wgmma": tile.as_list()}
        w = numpy_helper.to_array(model.graph.initializer[0]).T
        out = _run(manifest, sections, {"x": x})
        assert _relative_l2(out, _matmul_reference(x, w)) < TOLERANCE[dtype]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("tile", [t for t, _ in gemm_wgmma.WGMMA_TILES], ids=str)
def test_every_wgmma_tile_in_tf32_matches_float64(tile: gemm_wgmma.WgmmaTile,
                                                  monkeypatch) -> None:
    """FP32 allowed TF32 (BuilderFlag.TF32): each Hopper tile in turn, with the bias and relu
    staged through shared memory as float32 (16-byte chunks of four)."""
    monkeypatch.setattr(gemm_wgmma, "WGMMA_TILES", ((tile, 1.0),))
    rng = np.random.default_rng(20)
    m, n, k = 300, 264, 200
    x, w = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    bias = rng.standard_normal(n)
    t = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
         helper.make_node("Relu", ["g"], ["y"])], "tf32",
        [helper.make_tensor_value_info("x", t, [m, k])],
        [helper.make_tensor_value_info("y", t, None)],
        [numpy_helper.from_array(w.astype(np.float32), "w"),
         numpy_helper.from_array(bias.astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.set_flag(BuilderFlag.TF32)
    manifest, sections = build_model(model, config)
    (step,) = _tensor_core_steps(manifest)
    assert step["params"]["tactic"] == {"wgmma": tile.as_list()}
    assert "stage the outputs" in sections["cuda_source"].decode(errors="replace")
    out = _run(manifest, sections, {"x": x.astype(np.float32)})
    ref = np.maximum(x.astype(np.float32).astype(np.float64) @ w.T + bias, 0)
    assert _relative_l2(out, ref) < 4e-3  # operands rounded to TF32 (10-bit mantissa)


@pytest.mark.cuda
@needs_gpu
def test_autotune_times_every_candidate_including_big_shared_memory(tmp_path,
                                                                     monkeypatch) -> None:
    """wgmma and the big mma.sync tiles take more than 48 KB of dynamic shared memory: the
    autotuner opts each in as the executor does, so every candidate is timed and none fails
    (before, each failed to launch and the small tiles won by default)."""
    from ember.compiler.builder import detect_arch

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    from ember.compiler.inspect_plan import PlanReport

    model, rng = _matmul_model([1024, 768], [768, 3072], "float16", trans_b=True, seed=12)
    # the candidates: the cost model's choice and those it beat (cp.async wgmma tiles and their
    # TMA-fed twins, gemm_tma), as a build without timing lists them
    ranked = PlanReport(plan_bytes(*build_model(model, BuilderConfig(
        target_arch=detect_arch(), autotune=False)))).explain(0)["tactic"]
    assert any("tma" in t for t in [ranked["chosen"], *ranked["beat"]]), ranked
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch(),
                                                          autotune=True))
    stats = manifest["autotune"]
    assert stats["steps"] == 1 and stats["failed"] == 0, stats
    assert stats["timed"] == 1 + len(ranked["beat"]), (stats, ranked)
    x = _half(rng, (1024, 768), "float16")
    w = numpy_helper.to_array(model.graph.initializer[0]).T
    assert _relative_l2(_run(manifest, sections, {"x": x}), _matmul_reference(x, w)) < 2e-3


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_epilogues_match_float64(dtype: str) -> None:
    model, rng, w = _epilogue_model(dtype, seed=7)
    x, x2 = _half(rng, (2, 64, 12, 12), dtype), _half(rng, (40, 128), dtype)
    manifest, sections = _build(model, nhwc=True)
    nhwc = manifest["inputs"][0]["format"] == "NHWC"
    engine = Runtime().deserialize_cuda_engine(plan_bytes(manifest, sections))
    out = engine.create_execution_context().execute(
        {"x": x.transpose(0, 2, 3, 1) if nhwc else x, "x2": x2})
    y = out["y"].transpose(0, 3, 1, 2) if nhwc else out["y"]
    f = {k: v.astype(np.float64) for k, v in w.items()}
    (c,) = conv_reference([x.astype(np.float64), f["w"], f["b"]],
                          {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1],
                           "groups": 1})
    assert _relative_l2(y, np.maximum(c + x.astype(np.float64), 0)) < TOLERANCE[dtype]
    z = np.maximum(x2.astype(np.float64) @ f["wm"].T + f["bm"], 0)
    assert _relative_l2(out["z"], z) < TOLERANCE[dtype]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", [*CONVS, *DIRECT_CONVS])
def test_half_conv_matches_float64(case: str, dtype: str) -> None:
    x_shape, w_shape, attrs = {**CONVS, **DIRECT_CONVS}[case]
    model, rng, w, b = _conv_model(x_shape, w_shape, attrs, dtype, seed=5)
    x = _half(rng, x_shape, dtype)
    manifest, sections = _build(model, nhwc=True)
    nhwc = manifest["inputs"][0]["format"] == "NHWC"
    assert nhwc == ("nhwc" in case)
    out = _run(manifest, sections, {"x": x.transpose(0, 2, 3, 1) if nhwc else x})
    if nhwc:
        out = out.transpose(0, 3, 1, 2)
    nd = len(x_shape) - 2
    (ref,) = conv_reference([x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)],
                            {"strides": attrs.get("strides", [1] * nd),
                             "pads": attrs.get("pads", [0] * 2 * nd), "dilations": [1] * nd,
                             "groups": attrs.get("group", 1)})
    assert out.shape == ref.shape
    assert _relative_l2(out, ref) < TOLERANCE[dtype]


def test_split_k_wgmma_is_a_timed_candidate_not_the_cost_models_choice() -> None:
    """A GEMM whose whole wgmma tiles leave most multiprocessors idle (BERT's FFN2, 1024 x 768
    x 3072: 128 blocks only on the small 64x96 tile) gets the best tile with K in slices as a
    last candidate for the autotuner; the cost model's own choice (the first) stays whole-K.
    INT8 matmuls get theirs too (int32 partials, summed whole before the drain); E4M3's none."""
    fp16 = gemm_mma.candidates(1024, 768, 3072, 1, wgmma=True, tma=True)
    assert fp16[-1] == {"wgmma": [128, 192, 4], "splits": 4}, fp16
    assert not any("splits" in t for t in fp16[:-1] if "wgmma" in t)
    # one wave of whole tiles already (FFN1: 16 x 8 tiles of 128x192): no split candidate
    assert not any("splits" in t for t in gemm_mma.candidates(1024, 3072, 768, 1, wgmma=True)
                   if "wgmma" in t)
    assert not any("splits" in t for t in gemm_mma.candidates(1024, 768, 3072, 1, wgmma=True,
                                                              split_k=False) if "wgmma" in t)
    int8 = matmul.tactics({"in_shapes": [[1024, 3072], [768, 3072]], "transpose_b": True,
                           "in_dtypes": ["int8", "int8"], "out_shapes": [[1024, 768]],
                           "out_dtypes": ["int32"]}, "sm_90")
    assert "splits" in int8[-1] and not any("splits" in t for t in int8[:-1]), int8
    gemm = gemm_wgmma.wgmma_for({"wgmma": [128, 192, 4], "splits": 4})
    assert gemm.grid(1024, 768, 1) == (4, 8, 4)
    assert gemm.workspace_bytes(1024, 768, 1) == (32 * 4, 32 * 4 * 128 * 192 * 4)
    with pytest.raises(ValueError, match="E4M3 wgmma kernels split no K"):
        gemm_wgmma.mainloop(gemm, 1024, 768, 3072, None, None, gemm_mma.E4M3, "0", "0",
                            lambda *a: [])
    # one spelling per tactic (a whole-K one names no splits), no empty slices, no TMA split
    with pytest.raises(ValueError, match="names no 'splits'"):
        gemm_wgmma.wgmma_for({"wgmma": [128, 192, 4], "splits": 1})
    with pytest.raises(ValueError, match="does not fit K"):  # 16 k-tiles: 12 slices of 2
        gemm_wgmma.mainloop(gemm_wgmma.wgmma_for({"wgmma": [128, 192, 4], "splits": 12}),
                            1024, 768, 1024, None, None, "float16", "0", "0", lambda *a: [])
    with pytest.raises(ValueError, match="splits no K"):
        gemm_tma.TmaGemm(gemm_tma.TMA_TILES[0][0], 2)


def test_split_k_slice_counts_shared_by_register_mma_and_wgmma_tiles() -> None:
    """One enumeration of split-K slice counts (`gemm_tiles.slice_counts`): the slices actually
    used once K's steps are cut into SPLITS slices, each count once; `split_choices` (register
    and mma.sync tiles, in BK steps) and `gemm_wgmma.split_candidate` (64-element k-tiles, at
    least SPLIT_MIN_K_TILES a slice) both take theirs from it."""
    slice_counts = gemm_tiles.slice_counts
    assert slice_counts(30) == [1, 2, 3, 4, 6, 8, 10]  # 12 slices of 3 use 10; 16: too few
    assert slice_counts(130) == [1, 2, 3, 4, 6, 8, 12, 15]
    assert slice_counts(30, split_k=False) == [1]
    assert slice_counts(3) == [1] and slice_counts(4) == [1, 2] and slice_counts(0) == [1]
    tile = gemm_mma.MMA_TILES[0][0]
    assert gemm_tiles.split_choices(gemm_mma.MmaGemm, tile, 30 * tile.bk + 1) == [
        gemm_mma.MmaGemm(tile, s) for s in slice_counts(31)]
    # 225 k-tiles on one 64x64 block: 16 slices of 15 use 15 (the cheapest: 15 + 15 k-tiles)
    _, gemm = gemm_wgmma.split_candidate(64, 64, 225 * 64, 1)
    assert gemm == gemm_wgmma.WgmmaGemm(gemm_wgmma.WgmmaTile(64, 64, 8), 15), gemm
    # every slice keeps SPLIT_MIN_K_TILES k-tiles: 64 stop at 8 slices, 14 split in none
    assert gemm_wgmma.split_candidate(64, 64, 64 * 64, 1)[1].splits == 8
    assert gemm_wgmma.split_candidate(64, 64, 15 * 64, 1)[1].splits == 2
    assert gemm_wgmma.split_candidate(64, 64, 14 * 64, 1) is None


def test_split_k_wgmma_compiles_for_sm90a() -> None:
    """Matmul and conv kernels with K in slices (uneven ones too: 16 k-tiles in 3) compile."""
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import emitter

    mm = {"in_shapes": [[300, 1000], [264, 1000], [264]], "out_shapes": [[300, 264]],
          "in_dtypes": ["float16"] * 3, "out_dtypes": ["float16"], "transpose_b": True,
          "tactic": {"wgmma": [128, 128, 6], "splits": 3}}
    spec = emitter("matmul")("w_split", mm)
    assert spec.grid[2] == 3 and spec.workspace_bytes == 3 * 3 * 3 * 128 * 128 * 4
    assert "const int kt0 = (int)(blockIdx.z % 3) * 6;" in spec.source
    conv = {"in_shapes": [[2, 7, 7, 256], [64, 3, 3, 256]], "out_shapes": [[2, 7, 7, 64]],
            "in_dtypes": ["float16"] * 2, "out_dtypes": ["float16"], "layout": "NHWC",
            "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1,
            "tactic": {"wgmma": [128, 64, 4], "splits": 4}}
    cv = emitter("conv")("w_split_conv", conv)
    assert cv.grid[2] == 4 and cv.counter_bytes == 4
    assert {k.arch for k in compile_many([("w_split", spec.source),
                                          ("w_split_conv", cv.source)], arch="sm_90")} \
        == {"sm_90a"}


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("tactic", [{"wgmma": [128, 128, 6], "splits": 2},
                                    {"wgmma": [128, 192, 4], "splits": 3},
                                    {"wgmma": [64, 96, 8], "splits": 4}], ids=str)
def test_split_k_wgmma_matches_float64(tactic: dict, dtype: str, monkeypatch) -> None:
    """A wgmma tactic with K in slices (forced as select-tactics' choice), with a bias and
    relu staged through shared memory after the last block summed the slices, on two inputs in
    a row (each kernel leaves its arrival counters zeroed for the next run); K = 1000 cuts into
    uneven slices with a partial last k-tile."""
    monkeypatch.setattr(gemm_wgmma, "merged_candidates", lambda *a, **k: [tactic])
    rng = np.random.default_rng(31)
    m, n, k = 300, 264, 1000
    t = ONNX_TYPE[dtype]
    x, w, b = _half(rng, (m, k), dtype), _half(rng, (n, k), dtype), _half(rng, n, dtype)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
         helper.make_node("Relu", ["g"], ["y"])], "split",
        [helper.make_tensor_value_info("x", t, [m, k])],
        [helper.make_tensor_value_info("y", t, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = _tensor_core_steps(manifest)
    assert step["params"]["tactic"] == tactic
    engine = Runtime().deserialize_cuda_engine(plan_bytes(manifest, sections))
    ctx = engine.create_execution_context()
    for xi in (x, _half(rng, (m, k), dtype)):  # a second input: stale counters would keep y
        ref = np.maximum(_matmul_reference(xi, w.T) + b.astype(np.float64), 0)
        assert _relative_l2(ctx.execute({"x": xi})["y"], ref) < TOLERANCE[dtype]


def test_wgmma_convs_walk_k_a_block_of_channels_at_a_time() -> None:
    """A 3x3 conv over 256 channels (4 k-tiles a tap) walks all 9 taps of a block of 64
    channels before the next block; one k-tile a tap (64 channels) or one tap keeps K's order;
    TF32 counts 32-float k-tiles. The GPU test below runs such a conv in 4 slices."""
    from ember.codegen.templates import conv

    assert gemm_wgmma.tap_order(9 * 256, 9, "float16") == (9, 4)
    assert gemm_wgmma.tap_order(9 * 64, 9, "float16") is None
    assert gemm_wgmma.tap_order(256, 1, "float16") is None
    assert gemm_wgmma.tap_order(9 * 64, 9, "float32") == (9, 2)
    params = {"in_shapes": [[2, 7, 7, 256], [64, 3, 3, 256], [64]], "in_dtypes": ["float16"] * 3,
              "out_shapes": [[2, 7, 7, 64]], "out_dtypes": ["float16"], "layout": "NHWC",
              "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1,
              "tactic": {"wgmma": [128, 64, 4]}}
    source = conv.emit("k", params).source
    assert "const int k0 = ((((kt + 2)) % 9) * 4 + ((kt + 2)) / 9) * 64;" in source


@pytest.mark.cuda
@needs_gpu
def test_split_k_wgmma_conv_matches_float64(monkeypatch) -> None:
    """A 3x3 NHWC conv over 256 channels (K = 2304) in 4 slices, as layer4 of ResNet-50."""
    tactic = {"wgmma": [128, 64, 4], "splits": 4}
    monkeypatch.setattr(gemm_wgmma, "merged_candidates", lambda *a, **k: [tactic])
    x_shape, w_shape, attrs = [2, 256, 7, 7], [64, 256, 3, 3], {"pads": [1, 1, 1, 1]}
    model, rng, w, b = _conv_model(x_shape, w_shape, attrs, "float16", seed=32)
    x = _half(rng, x_shape, "float16")
    manifest, sections = _build(model, nhwc=True)
    (step,) = _tensor_core_steps(manifest)
    assert step["params"]["tactic"] == tactic
    nhwc = manifest["inputs"][0]["format"] == "NHWC"
    engine = Runtime().deserialize_cuda_engine(plan_bytes(manifest, sections))
    out = engine.create_execution_context().execute(
        {"x": x.transpose(0, 2, 3, 1) if nhwc else x})["y"]
    out = out.transpose(0, 3, 1, 2) if nhwc else out
    (ref,) = conv_reference([x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)],
                            {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1],
                             "groups": 1})
    assert out.shape == ref.shape and _relative_l2(out, ref) < TOLERANCE["float16"]
