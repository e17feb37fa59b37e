"""A conv's / matmul's epilogue that ends in a cast to another float type (fuse-epilogues):
every template path (tensor-core mma.sync and wgmma loops, the FP32 register tile, the direct
conv) declares its output in the cast type and stores it converted; the 16-byte staged store
(which holds the kernel's own type) is not used then. NVRTC compiles each kernel here (no GPU
needed); on a GPU (`cuda` marker) the plans' results match the CPU executor's."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.nvrtc import compile_many
from ember.codegen.templates import emitter, gemm_mma, gemm_wgmma
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
POINTER = {"float32": "float* __restrict__ out0", "float16": "ember_half* __restrict__ out0",
           "bfloat16": "ember_bf16* __restrict__ out0"}


def _epilogue(own: str, stored: str) -> dict:
    """relu in the kernel's own type, then a cast to `stored`."""
    return {"ops": [{"fn": "relu", "args": [0], "dtype": own},
                    {"fn": "cast", "args": [1], "dtype": stored}],
            "result": 2, "in_shapes": [], "in_dtypes": [], "out_dtype": stored}


def _matmul(dtype: str, tactic: dict, m: int = 256, n: int = 192, k: int = 128) -> dict:
    return {"in_shapes": [[m, k], [n, k]], "out_shapes": [[m, n]], "in_dtypes": [dtype] * 2,
            "out_dtypes": [dtype], "transpose_b": True, "tactic": tactic}


def _conv(dtype: str, tactic: dict | None, cin: int = 32, cout: int = 64,
          layout: str = "NHWC") -> dict:
    x, w, y = (([2, 9, 9, cin], [cout, 3, 3, cin], [2, 9, 9, cout]) if layout == "NHWC"
               else ([2, cin, 9, 9], [cout, cin, 3, 3], [2, cout, 9, 9]))
    params = {"in_shapes": [x, w], "out_shapes": [y], "in_dtypes": [dtype] * 2,
              "out_dtypes": [dtype], "layout": layout, "strides": [1, 1], "pads": [1, 1, 1, 1],
              "dilations": [1, 1], "groups": 1}
    return {**params, "tactic": tactic} if tactic else params


MMA = {"mma": gemm_mma.MMA_TILES[0][0].as_list(), "splits": 1}
MMA_SPLIT = {"mma": gemm_mma.MMA_TILES[0][0].as_list(), "splits": 2}
WGMMA = {"wgmma": gemm_wgmma.WGMMA_TILES[0][0].as_list()}
# name -> (template, params without the epilogue, the type the epilogue stores)
KERNELS = {
    "matmul_mma_fp16_to_fp32": ("matmul", _matmul("float16", MMA), "float32"),
    "matmul_mma_split_k_bf16_to_fp32": ("matmul", _matmul("bfloat16", MMA_SPLIT), "float32"),
    "matmul_wgmma_fp16_to_fp32": ("matmul", _matmul("float16", WGMMA), "float32"),
    "matmul_fp32_tile_to_fp16": ("matmul", _matmul("float32", {"tile": [16, 16, 16, 1, 1],
                                                               "splits": 2}), "float16"),
    "conv_mma_nhwc_fp16_to_fp32": ("conv", _conv("float16", MMA), "float32"),
    "conv_wgmma_nhwc_fp16_to_fp32": ("conv", _conv("float16", WGMMA), "float32"),
    "conv_fp32_tile_to_bf16": ("conv", _conv("float32", None, layout="NCHW"), "bfloat16"),
    "conv_direct_fp16_to_fp32": ("conv", _conv("float16", None, cout=4, layout="NCHW"),
                                 "float32"),
    "conv_direct_fp32_to_fp16": ("conv", _conv("float32", None, cout=4, layout="NCHW"),
                                 "float16"),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_every_path_declares_and_stores_the_cast_type(name: str) -> None:
    template, params, stored = KERNELS[name]
    own = params["out_dtypes"][0]
    spec = emitter(template)(name, {**params, "epilogue": _epilogue(own, stored)})
    assert POINTER[stored] in spec.source and POINTER[own] not in spec.source
    assert f"stored as {stored}" in spec.source
    assert "pack8" not in spec.source  # the staged store holds the kernel's own type
    store = {"float32": "out0[{}] = (float)acc;", "float16": "out0[{}] = ember_to_half(acc);",
             "bfloat16": "out0[{}] = ember_to_bf16(acc);"}[stored]
    assert store.format("oi") in spec.source or store.format("i") in spec.source
    # the same kernel without the cast stores its own type
    plain = emitter(template)(name, {**params, "epilogue": {
        **_epilogue(own, own), "ops": _epilogue(own, own)["ops"][:1], "result": 1,
        "out_dtype": None}})
    assert POINTER[own] in plain.source and "stored as" not in plain.source


def test_every_path_compiles() -> None:
    sources = []
    for name, (template, params, stored) in KERNELS.items():
        own = params["out_dtypes"][0]
        sources.append((name, emitter(template)(
            name, {**params, "epilogue": _epilogue(own, stored)}).source))
    assert len(compile_many(sources, arch="sm_90")) == len(sources)


# -- on the GPU ------------------------------------------------------------------------------------

def _half_model(dtype: str, seed: int = 0):
    """An NHWC-friendly FP16/BF16 conv (64 -> 64) + relu and a Gemm (weights [N, K]) + bias, both
    results cast to float32 (graph outputs kept FP32): each cast fuses into its kernel."""
    rng = np.random.default_rng(seed)
    t = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}[dtype]
    np_t = np.float16 if dtype == "float16" else "bfloat16"
    import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)

    def w(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np_t)

    inits = {"w": w(64, 64, 3, 3, scale=1 / 24), "wm": w(192, 256, scale=1 / 16),
             "bm": w(192, scale=1.0)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT),
             helper.make_node("Gemm", ["a", "wm", "bm"], ["g"], transB=1),
             helper.make_node("Cast", ["g"], ["z"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(
        nodes, "casts", [helper.make_tensor_value_info("x", t, [2, 64, 12, 12]),
                         helper.make_tensor_value_info("a", t, [256, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": (rng.standard_normal((2, 12, 12, 64))).astype(np_t),  # NHWC I/O
             "a": (rng.standard_normal((256, 256))).astype(np_t)}
    return model, feeds


def _build_half(dtype: str, wgmma: bool, monkeypatch) -> tuple[dict, dict]:
    if wgmma:  # the cost model's choice between the families, tilted
        monkeypatch.setattr(gemm_wgmma, "SPEEDUP_OVER_MMA", 100.0)
    else:
        monkeypatch.setattr(gemm_wgmma, "targets", lambda arch: False)
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.set_allowed_io_formats("NCHW", "NHWC")
    model, _ = _half_model(dtype)
    return build_model(model, config)


@pytest.mark.parametrize("wgmma", [False, True], ids=["mma", "wgmma"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_plans_fuse_the_output_casts(dtype: str, wgmma: bool, monkeypatch) -> None:
    """Two kernels, each storing float32 through the tactic family asked for (built here)."""
    manifest, _ = _build_half(dtype, wgmma, monkeypatch)
    steps = [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]
    assert len(manifest["steps"]) == len(steps) == 2, [s["template"] for s in manifest["steps"]]
    for step in steps:
        assert step["params"]["epilogue"]["out_dtype"] == "float32"
        assert ("wgmma" in step["params"]["tactic"]) == wgmma, step["params"]["tactic"]


def _relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _both(manifest: dict, sections: dict, feeds: dict) -> tuple[dict, dict]:
    plan = plan_bytes(manifest, sections)
    gpu = Runtime(device="cuda").deserialize_cuda_engine(plan)
    assert gpu.device == "cuda"
    cpu = Runtime(device="cpu").deserialize_cuda_engine(plan)
    return gpu(feeds), cpu(feeds)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("wgmma", [False, True], ids=["mma", "wgmma"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_plans_with_fused_casts_match_the_cpu_executor(dtype: str, wgmma: bool,
                                                            monkeypatch) -> None:
    manifest, sections = _build_half(dtype, wgmma, monkeypatch)
    _, feeds = _half_model(dtype)
    got, want = _both(manifest, sections, feeds)
    for name in ("y", "z"):
        assert got[name].dtype == np.float32
        # FP32 accumulation on the GPU vs float64 on the CPU, one rounding to the half type
        assert _relative_l2(got[name], want[name]) < (2e-3 if dtype == "float16" else 8e-3)


def _pinned_model():
    """conv (FP16) -> relu -> conv2 (pinned FP32) -> relu -> conv3 (FP16) -> flatten -> fc
    (pinned FP32), 16 channels: every cast between the precisions fuses into a kernel."""
    rng = np.random.default_rng(5)
    inits = {"w1": rng.standard_normal((16, 16, 3, 3)) / 12,
             "w2": rng.standard_normal((16, 16, 3, 3)) / 12,
             "w3": rng.standard_normal((8, 16, 3, 3)) / 12, "wf": rng.standard_normal((512, 10))}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1] * 4),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3"], ["c3"], name="conv3", pads=[1] * 4),
             helper.make_node("Flatten", ["c3"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "wf"], ["y"], name="fc")]
    graph = helper.make_graph(
        nodes, "pinned", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _pinned_config() -> BuilderConfig:
    config = BuilderConfig(target_arch="sm_90", autotune=False,
                           flags=BuilderFlag.FP16 | BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_precisions("conv2:fp32,fc:fp32")
    return config


def test_pinned_fp32_layers_between_fp16_convs_build_without_cast_kernels() -> None:
    manifest, _ = build_model(_pinned_model(), _pinned_config())
    kernels = [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]
    stored = [(s["params"]["out_dtypes"][0], (s["params"].get("epilogue") or {}).get(
        "out_dtype")) for s in kernels]
    assert stored == [("float16", "float32"), ("float32", "float16"), ("float16", "float32"),
                      ("float32", None)]
    assert all(s.get("device") != "cpu" for s in manifest["steps"])
    # only the network input's cast is a kernel of its own (no conv/matmul before it)
    others = [s for s in manifest["steps"] if s not in kernels]
    assert [s["origin"] for s in others] == [["cast(input:x)"]]


@pytest.mark.cuda
@needs_gpu
def test_pinned_fp32_layers_on_the_gpu_match_the_cpu_executor() -> None:
    manifest, sections = build_model(_pinned_model(), _pinned_config())
    x = np.random.default_rng(6).standard_normal((2, 16, 8, 8)).astype(np.float32)
    got, want = _both(manifest, sections, {"x": x})
    assert got["y"].dtype == np.float32
    assert _relative_l2(got["y"], want["y"]) < 2e-3
