"""The tensor-core attention kernel (codegen/templates/attention_mma.py): `attention.emit` picks it
for float16 / bfloat16 Q, K, V with head_dim % 16 == 0 up to 128 and 16-byte aligned row chunks,
and keeps the CUDA-core kernel otherwise; every variant compiles with NVRTC for sm_80 and sm_90
without spilling, and a few run on warps emulated on the CPU (tests/codegen/simt_emulator.py)
against numpy in float64: no GPU needed. On a GPU (`cuda` marker) each variant, launched on its
own, matches numpy in float64 on the same half inputs, beats the CUDA-core kernel on BERT-base's
shape, and a fused FP16 model runs it end to end."""

from __future__ import annotations

import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.emit_cuda import emit_step
from ember.codegen.nvrtc import compile_cuda
from ember.codegen.templates import KernelSpec, attention_mma
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.errors import UnsupportedError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator
from tests.onnx_cases import attention_nodes

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
NP_TYPE = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
TOLERANCE = {"float16": 2e-3, "bfloat16": 8e-3}  # relative L2 against float64
MMA = "mma.sync.aligned.m16n8k16.row.col.f32"


def _params(dtype: str, b: int, sq: int, sk: int, heads: int, dim: int, *, packed: bool = False,
            mask: tuple[list[int], str] | None = None, scale: float | None = None,
            widths: tuple[int, int, int] | None = None, offsets: tuple[int, int, int] = (0, 0, 0),
            **extra) -> dict:
    """Attention step params: separate Q [b, sq, h·d], K, V [b, sk, h·d] (or `widths` wide with
    heads at `offsets`), or (`packed`) one [b, s, 3·h·d] QKV tensor read three times."""
    hd = heads * dim
    if packed:
        assert sq == sk
        widths, offsets = (3 * hd,) * 3, (0, hd, 2 * hd)
    wq, wk, wv = widths or (hd, hd, hd)
    shapes = [[b, sq, wq], [b, sk, wk], [b, sk, wv]]
    dtypes = [dtype] * 3
    if mask is not None:
        shapes.append(list(mask[0]))
        dtypes.append(mask[1])
    return {"in_shapes": shapes, "in_dtypes": dtypes, "out_shapes": [[b, sq, hd]],
            "out_dtypes": [dtype], "num_heads": heads, "head_dim": dim,
            "scale": float(1 / np.sqrt(dim)) if scale is None else scale,
            "q_offset": offsets[0], "k_offset": offsets[1], "v_offset": offsets[2], **extra}


def _variants(dtype: str) -> dict[str, dict]:
    p = _params
    return {
        "d64_s128": p(dtype, 2, 128, 128, 3, 64),
        "d32_s128": p(dtype, 2, 128, 128, 4, 32),
        "d128_s128": p(dtype, 2, 128, 128, 2, 128),
        "d16_s64": p(dtype, 1, 64, 64, 2, 16),
        "d48_ragged": p(dtype, 2, 77, 77, 2, 48),  # dim / 8 does not divide 128 threads
        "d64_ragged_77": p(dtype, 2, 77, 77, 3, 64),
        "sq_ne_sk": p(dtype, 2, 50, 130, 2, 64),
        "one_query": p(dtype, 3, 1, 200, 2, 64),
        "packed_qkv": p(dtype, 2, 96, 96, 2, 64, packed=True),
        "wide_rows_offsets": p(dtype, 2, 40, 70, 2, 32, widths=(72, 80, 136),
                               offsets=(8, 16, 72)),
        "peaky_scale": p(dtype, 2, 100, 100, 2, 64, scale=0.6),
        "additive_mask_b11k": p(dtype, 2, 77, 77, 2, 64, mask=([2, 1, 1, 77], dtype)),
        "additive_f32_mask_1hqk": p(dtype, 2, 70, 90, 2, 32, mask=([1, 2, 70, 90], "float32")),
        "bool_mask_fully_masked_row": p(dtype, 2, 70, 70, 2, 64, mask=([2, 1, 70, 70], "bool")),
        "bool_mask_finite_value": p(dtype, 2, 64, 64, 2, 32, mask=([2, 2, 64, 64], "bool"),
                                    masked_value=-1e4),
        # float's min, not -inf: a fully masked row averages V uniformly (no overflow to -inf)
        "bool_mask_float_min": p(dtype, 2, 70, 70, 2, 64, mask=([2, 1, 70, 70], "bool"),
                                 masked_value=float(np.finfo(np.float32).min)),
        "additive_f32_min_mask": p(dtype, 2, 70, 70, 2, 32, mask=([2, 1, 1, 70], "float32")),
        "bert_base": p(dtype, 8, 128, 128, 12, 64, packed=True, mask=([8, 1, 1, 128], dtype)),
    }


VARIANTS = sorted(_variants("float16"))


def _emit(params: dict) -> tuple[str, KernelSpec]:
    return emit_step({"name": "attention", "template": "attention", "params": params})


# -- which kernel, and that it compiles (no GPU) --------------------------------------------------

@pytest.mark.parametrize("dtype", sorted(NP_TYPE))
@pytest.mark.parametrize("dim", [16, 32, 48, 64, 128])
def test_tensor_core_kernel_chosen(dtype: str, dim: int) -> None:
    params = _params(dtype, 2, 77, 77, 2, dim, packed=True)
    assert attention_mma.accepts(params)
    _, spec = _emit(params)
    ptx = "f16" if dtype == "float16" else "bf16"
    assert f"{MMA}.{ptx}.{ptx}.f32" in spec.source
    assert "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in spec.source
    assert "cp.async.cg.shared.global" in spec.source
    assert "// tactic: tensor cores (mma.sync m16n8k16, FP32 accumulation), FlashAttention-2" \
        in spec.source
    # one block per (batch, head, 64 queries); Q + 2 K + 2 V tiles of 64 padded rows
    assert spec.grid == (2 * 2 * 2, 1, 1) and spec.block == (128, 1, 1)
    assert spec.shared_bytes == 5 * 64 * (dim + 8) * 2


FALLBACKS = {
    "float32": _params("float32", 2, 16, 16, 2, 32),
    "head_dim_8": _params("float16", 2, 16, 16, 2, 8),
    "head_dim_24": _params("float16", 2, 16, 16, 2, 24),
    # Q's heads at column 4: 8-byte aligned chunks only
    "offset_not_16_bytes": _params("float16", 2, 16, 16, 2, 16, widths=(40, 32, 32),
                                   offsets=(4, 0, 0)),
    "width_not_16_bytes": _params("bfloat16", 2, 16, 16, 1, 32, widths=(36, 32, 32)),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_cuda_core_kernel_otherwise(case: str) -> None:
    params = FALLBACKS[case]
    assert not attention_mma.accepts(params)
    _, spec = _emit(params)
    assert "mma.sync" not in spec.source and "Qs[16]" in spec.source  # the CUDA-core tiles
    assert spec.shared_bytes == 0


def test_head_dim_over_128_still_refused() -> None:
    params = _params("float16", 1, 8, 8, 1, 144)
    assert not attention_mma.accepts(params)
    with pytest.raises(UnsupportedError, match="head_dim 144 > 128"):
        _emit(params)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("dtype", sorted(NP_TYPE))
@pytest.mark.parametrize("case", VARIANTS)
def test_variant_compiles_without_spills(case: str, dtype: str, arch: str) -> None:
    params = _variants(dtype)[case]
    name, spec = _emit(params)
    assert MMA in spec.source
    compiled = compile_cuda(spec.source, name=name, arch=arch, options=["--ptxas-options=-v"],
                            cache=False)
    assert compiled.cubin.startswith(b"\x7fELF")
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", compiled.log)
    assert spills and spills.groups() == ("0", "0"), compiled.log


def test_symbolic_batch_and_sequence_compile() -> None:
    """A plan with dynamic batch and sequence: bounds and tile counts over the size arguments."""
    params = _params("float16", "B", "S", "S", 2, 64, packed=True, mask=(["B", 1, "S", "S"],
                                                                         "float16"))
    name, spec = emit_step({"name": "attention", "template": "attention", "params": params},
                           {"B": (1, 2, 8), "S": (1, 64, 512)})
    assert MMA in spec.source and spec.size_args == ("B", "S")
    assert "key < sz_S" in spec.source and "min(q0 + warp * 16 + g, sz_S - 1)" in spec.source
    assert compile_cuda(spec.source, name=name, arch="sm_90").cubin


def test_only_a_partial_key_tile_checks_the_bound() -> None:
    _, spec = _emit(_variants("float16")["d64_s128"])
    assert "key < " not in spec.source
    _, spec = _emit(_variants("float16")["d64_ragged_77"])
    assert "if ((kt + 1) * 64 <= 77) {" in spec.source and "key < 77" in spec.source


# -- on emulated warps (CPU, g++) ----------------------------------------------------------------

needs_gxx = pytest.mark.skipif(
    not simt_emulator.available(),
    reason="g++ not found: these tests run the kernels' CUDA C on emulated warps compiled with g++ "
           "(install g++ to run them without a GPU)")
EMULATED = [("bool_mask_fully_masked_row", "float16"), ("d48_ragged", "float16"),
            ("bool_mask_float_min", "float16"), ("additive_f32_min_mask", "float16"),
            ("sq_ne_sk", "float16"), ("additive_f32_mask_1hqk", "bfloat16"),
            ("d128_s128", "bfloat16")]


@needs_gxx
def test_emulator_reproduces_the_gpu_verified_gemm(tmp_path) -> None:
    """The emulated ldmatrix (both forms) and mma layouts give gemm_mma's FP16 GEMM (checked on
    the H200 by tests/runtime/test_mma_tactics.py) for a k-major and a row-major B."""
    from tests.runtime.test_mma_tactics import _matmul_model

    for trans_b in (False, True):
        model, rng = _matmul_model([70, 96], [96, 40], "float16", trans_b, seed=1)
        manifest, _ = build_model(model, BuilderConfig(target_arch="sm_80", autotune=False))
        (step,) = [s for s in manifest["steps"] if s["template"] == "matmul"]
        name, spec = emit_step(step)
        assert MMA in spec.source
        x = rng.standard_normal((70, 96)).astype(np.float16)
        if trans_b:
            w = numpy_helper.to_array(model.graph.initializer[0])
            inputs, want = [x, w], x.astype(np.float64) @ w.astype(np.float64).T
        else:
            x2 = rng.standard_normal((96, 40)).astype(np.float16)
            inputs, want = [x, x2], x.astype(np.float64) @ x2.astype(np.float64)
        got = simt_emulator.run(spec, name, inputs, [70, 40], np.dtype(np.float16), tmp_path)
        assert _relative_l2(got, want) <= TOLERANCE["float16"], trans_b


@needs_gxx
@pytest.mark.parametrize("case,dtype", EMULATED)
def test_variant_on_emulated_warps_matches_float64(case: str, dtype: str, tmp_path) -> None:
    params = _variants(dtype)[case]
    name, spec = _emit(params)
    inputs = _inputs(params, case)
    got = simt_emulator.run(spec, name, inputs, params["out_shapes"][0], NP_TYPE[dtype],
                            tmp_path)
    _check(case, dtype, got, _reference(inputs, params))


def _check(case: str, dtype: str, got: np.ndarray, want: np.ndarray) -> None:
    assert np.isfinite(got.astype(np.float32)).all(), f"{case}: non-finite outputs"
    err = _relative_l2(got, want)
    assert err <= TOLERANCE[dtype], f"{case} {dtype}: relative L2 {err:.2e}"
    if case == "bool_mask_fully_masked_row":  # query 3 sees no key: zeros, as numpy's guard
        assert not got[:, 3].astype(np.float32).any()
        assert np.abs(want[:, 3]).max() == 0


# -- on the GPU ----------------------------------------------------------------------------------

# additive masks filled with float's min instead of -10000 / -inf (the last batch entirely)
ADDITIVE_FILL = {"additive_f32_min_mask": float(np.finfo(np.float32).min)}


def _inputs(params: dict, case: str, seed: int = 0) -> list[np.ndarray]:
    """Normal Q, K, V; masks: additive with -10000 on a key tail of batch 0 (and -inf at key
    1 of the last batch, or `ADDITIVE_FILL` for both and the whole last batch), bool with a
    key tail of batch 0 off and (fully masked) query row 3 off everywhere."""
    rng = np.random.default_rng(seed)
    np_h = NP_TYPE[params["out_dtypes"][0]]
    xs = [rng.standard_normal(s).astype(np_h) for s in params["in_shapes"][:3]]
    if len(params["in_shapes"]) > 3:
        shape, kind = params["in_shapes"][3], params["in_dtypes"][3]
        sk = shape[-1]
        if kind == "bool":
            mask = rng.random(shape) > 0.2
            mask[0, ..., sk - 9:] = False
            if shape[2] > 3:
                mask[..., 3, :] = False
        else:
            mask = (rng.standard_normal(shape) * 0.5).astype(np.float32)
            fill = ADDITIVE_FILL.get(case)
            mask[0, ..., sk - 11:] = -10000.0 if fill is None else fill
            if fill is None:
                mask[-1, ..., 1] = -np.inf
            else:
                mask[-1] = fill
            mask = mask.astype(np_h if kind in NP_TYPE else kind)
        xs.append(mask)
    return xs


def _reference(inputs: list[np.ndarray], params: dict) -> np.ndarray:
    """float64 on the half inputs; a row whose every score is -inf gives zeros."""
    heads, dim = int(params["num_heads"]), int(params["head_dim"])

    def split(x, offset):
        b, s, _ = x.shape
        x = x.astype(np.float64)[:, :, offset:offset + heads * dim]
        return x.reshape(b, s, heads, dim).transpose(0, 2, 1, 3)

    q, k, v = (split(x, int(params[f"{n}_offset"])) for x, n in zip(inputs, "qkv", strict=False))
    scores = q @ k.swapaxes(-1, -2) * float(params["scale"])
    if len(inputs) > 3:
        mask = inputs[3]
        if mask.dtype == np.bool_:
            scores = np.where(mask, scores, float(params.get("masked_value", -np.inf)))
        else:
            scores = scores + mask.astype(np.float64)
    top = scores.max(-1, keepdims=True)
    top = np.where(top == -np.inf, 0.0, top)
    e = np.exp(scores - top)
    total = e.sum(-1, keepdims=True)
    out = np.where(total > 0, (e @ v) / np.where(total > 0, total, 1.0), 0.0)
    b, sq = inputs[0].shape[:2]
    return out.transpose(0, 2, 1, 3).reshape(b, sq, heads * dim)


def _launch(spec: KernelSpec, name: str, inputs: list[np.ndarray], out_shape: list[int],
            out_dtype: np.dtype, repeats: int = 0) -> tuple[np.ndarray, float]:
    """Run one kernel (the inputs, then the result) on the GPU, opting in to more than 48 KiB
    of dynamic shared memory as the executor does: its result, and with `repeats` the mean
    time of that many more launches (ms)."""
    from ember.runtime import cuda

    device = cuda.default_device()
    compiled = compile_cuda(spec.source, name=name, arch=device.arch)
    function = cuda.Module.load(compiled.cubin, compiled.ptx, name=name).function(name)
    if spec.shared_bytes > 48 * 1024:
        function.set_max_dynamic_shared(spec.shared_bytes)
    got = np.full(out_shape, np.nan, out_dtype)
    buffers = [cuda.DeviceBuffer(a.nbytes) for a in (*inputs, got)]
    for buffer, a in zip(buffers, (*inputs, got), strict=True):
        buffer.upload(np.ascontiguousarray(a))
    args = cuda.pack_args([("ptr", b.ptr) for b in buffers])
    cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, None, args)
    device.synchronize()
    got = buffers[-1].download(got)
    ms = 0.0
    if repeats:
        start, end = cuda.Event(), cuda.Event()
        start.record()
        for _ in range(repeats):
            cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, None, args)
        end.record()
        ms = start.elapsed_ms(end) / repeats
    return got, ms


def _relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    got = got.astype(np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", sorted(NP_TYPE))
@pytest.mark.parametrize("case", VARIANTS)
def test_variant_on_gpu_matches_float64(case: str, dtype: str) -> None:
    params = _variants(dtype)[case]
    name, spec = _emit(params)
    assert MMA in spec.source
    inputs = _inputs(params, case)
    got, _ = _launch(spec, name, inputs, params["out_shapes"][0], NP_TYPE[dtype])
    _check(case, dtype, got, _reference(inputs, params))


@needs_gpu
@pytest.mark.cuda
def test_bert_base_faster_than_the_cuda_core_kernel(monkeypatch) -> None:
    """BERT-base (batch 8, 12 heads, 128 tokens, head_dim 64, FP16, key mask): the tensor-core
    kernel against the CUDA-core one it replaces (63 µs on the H200 before), both correct."""
    params = _variants("float16")["bert_base"]
    inputs = _inputs(params, "bert_base")
    want = _reference(inputs, params)
    name, spec = _emit(params)
    got, mma_ms = _launch(spec, name, inputs, params["out_shapes"][0], NP_TYPE["float16"], 200)
    monkeypatch.setattr(attention_mma, "accepts", lambda params: False)
    name, core = _emit(params)
    assert MMA not in core.source
    got_core, core_ms = _launch(core, name, inputs, params["out_shapes"][0],
                                NP_TYPE["float16"], 200)
    print(f"BERT-base attention: tensor cores {mma_ms * 1e3:.1f} us, "
          f"CUDA cores {core_ms * 1e3:.1f} us")
    assert _relative_l2(got, want) <= TOLERANCE["float16"]
    assert _relative_l2(got_core, want) <= TOLERANCE["float16"]
    assert mma_ms * 2 < core_ms, (mma_ms, core_ms)


# -- through the compiler: fuse-attention's step picks the kernel ---------------------------------

def _bert_attention_model(b: int, s: int, heads: int, dim: int):
    """Q, K, V [b, s, heads·dim] split into heads, scores / sqrt(dim) + mask [b, 1, 1, s],
    softmax, P V, heads merged (float16: fuse-attention reads the scale constant)."""
    n = attention_nodes()
    mask = np.zeros((b, 1, 1, s), np.float16)
    mask[0, ..., s - 5:] = -10000.0
    f16 = TensorProto.FLOAT16
    inits = [("heads", np.array([b, s, heads, dim])), ("merged", np.array([b, s, heads * dim])),
             ("sqrt_d", np.array(np.sqrt(dim), np.float16)), ("mask", mask)]
    graph = helper.make_graph(
        n, "attention", [helper.make_tensor_value_info(x, f16, [b, s, heads * dim])
                         for x in "qkv"],
        [helper.make_tensor_value_info("y", f16, None)],
        [numpy_helper.from_array(a, name) for name, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    params = _params("float16", b, s, s, heads, dim, scale=1 / float(np.float16(np.sqrt(dim))))
    return model, mask, params


def _build_fused(b: int = 2, s: int = 40, heads: int = 2, dim: int = 32):
    model, mask, params = _bert_attention_model(b, s, heads, dim)
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    return model, mask, params, manifest, sections


def test_fused_fp16_model_uses_the_tensor_core_kernel() -> None:
    *_, manifest, sections = _build_fused()
    (step,) = [s for s in manifest["steps"] if s["template"] == "attention"]
    assert step.get("device") != "cpu", step
    (kernel,) = [k for k in manifest["kernels"] if k["name"] == step["cuda"]["kernel"]]
    text = sections["cuda_source"][kernel["source_offset"]:kernel["source_offset"]
                                   + kernel["source_size"]].decode()
    assert f"{MMA}.f16.f16.f32" in text


@needs_gpu
@pytest.mark.cuda
def test_fused_fp16_model_on_gpu_matches_float64() -> None:
    model, mask, params, manifest, sections = _build_fused()
    rng = np.random.default_rng(3)
    feeds = {x: rng.standard_normal((2, 40, 64)).astype(np.float16) for x in "qkv"}
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feeds)["y"]
    want = _reference([feeds["q"], feeds["k"], feeds["v"], mask], params)
    err = _relative_l2(got, want)
    assert err <= TOLERANCE["float16"], f"relative L2 {err:.2e}"


BERT_TINY = Path(__file__).parents[1] / "models" / "bert_tiny.onnx"


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("flag,tolerance", [(BuilderFlag.FP16, 3e-3), (BuilderFlag.BF16, 2e-2)])
def test_bert_tiny_in_half_precision_on_gpu_matches_onnxruntime(flag, tolerance) -> None:
    """bert_tiny (2 layers, 4 heads of 16, packed QKV, padded batch row) built for FP16 / BF16:
    its attention steps run the tensor-core kernel and the network stays as close to
    onnxruntime's FP32 as the CPU executor's run of the same plan (7e-4 / 5.5e-3 rel-L2)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(BERT_TINY))
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False,
                                                          flags=flag))
    assert "FlashAttention-2" in sections["cuda_source"].decode(errors="replace")
    rng = np.random.default_rng(0)
    mask = np.ones((2, 16), np.int64)
    mask[0, 11:] = 0
    feeds = {"input_ids": rng.integers(0, 100, (2, 16)).astype(np.int64), "attention_mask": mask}
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feeds)["y"]
    (want,) = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, feeds)
    err = _relative_l2(got, want.astype(np.float64))
    assert err <= tolerance, f"relative L2 {err:.2e}"
