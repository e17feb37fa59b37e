"""The TMA-fed wgmma GEMM (`gemm_tma`): which operands the copy engine can read, the tensor maps
a kernel records (kernel IR, manifest) and the runtime encodes, and on the GPU every TMA tile
against numpy in float64 through a build and the executor, including I/O bound to the caller's
memory (the maps re-encoded over the new address)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from ember.codegen.nvrtc import compile_cuda
from ember.codegen.templates import gemm_tma, gemm_wgmma, matmul
from ember.errors import PlanError
from ember.runtime.cuda import cuda_available
from ember.runtime.manifest_schema import CudaLaunch
from ember.runtime.tensor_maps import TensorMap
from tests.runtime.test_mma_tactics import (
    TOLERANCE,
    _build,
    _half,
    _matmul_model,
    _matmul_reference,
    _relative_l2,
    _run,
    _tensor_core_steps,
)

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")


def _params(a_shape, b_shape, dtype: str = "float16", out: str | None = None) -> dict:
    m, n = a_shape[-2], b_shape[-2]
    batch = list(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    return {"in_shapes": [a_shape, b_shape], "in_dtypes": [dtype] * 2,
            "out_shapes": [[*batch, m, n]], "out_dtypes": [out or dtype], "transpose_b": True}


def test_the_cost_model_prefers_tma_where_k_spans_several_tiles() -> None:
    """BERT's FFN1 (K = 768: 12 k-tiles): a TMA tile first, the cp.async tile of the same shape
    still timed; a K of one k-tile (64 channels) keeps the cp.async loop first, each of its
    wgmma tiles with its TMA twin; no TMA off sm_90."""
    params = _params([1024, 768], [3072, 768])
    tactics = matmul.tactics(params, "sm_90")
    assert tactics[0] == {"wgmma": [128, 192, 5], "copy": "tma"}
    assert {"wgmma": [128, 192, 4]} in tactics
    shallow = matmul.tactics(_params([4096, 64], [256, 64]), "sm_90")
    assert "wgmma" in shallow[0] and not gemm_tma.is_tma(shallow[0])
    for t in shallow:
        if "wgmma" in t and not gemm_tma.is_tma(t) and t["wgmma"][0] <= 128:
            assert any(gemm_tma.is_tma(u) and u["wgmma"][:2] == t["wgmma"][:2]
                       for u in shallow), t
    assert not any(gemm_tma.is_tma(t) for t in matmul.tactics(params, "sm_80"))
    assert not any(gemm_tma.is_tma(t) for t in matmul.tactics(params))


@pytest.mark.parametrize("tile", [t for t, _ in gemm_tma.TMA_TILES] + list(gemm_tma.PAIRED_TILES),
                         ids=str)
def test_every_tma_tile_emits_its_maps_and_compiles_for_sm90a(tile: gemm_tma.TmaTile) -> None:
    params = {**_params([4, 300, 200], [264, 200]),
              "tactic": gemm_tma.TmaGemm(tile).tactic()}
    spec = matmul.emit("k", params)
    a, b = spec.tensor_maps
    # A's four matrices back to back: 1200 rows of 200 halves; B one matrix for all four
    assert a == TensorMap(0, "u16", (200, 1200), 400, (64, tile.bm))
    assert b == TensorMap(1, "u16", (200, 264), 400, (64, tile.bn))
    assert spec.block == (tile.threads, 1, 1) and spec.grid == (-(-264 // tile.bn),
                                                                -(-300 // tile.bm), 4)
    assert "cp.async.bulk.tensor.2d" in spec.source and "__grid_constant__" in spec.source
    assert gemm_wgmma.ARCH_SPECIFIC in spec.source
    kernel = compile_cuda(spec.source, name="k", arch="sm_90a", cache=False,
                          options=["--ptxas-options=-v"])
    assert "cp.async.bulk.tensor" in kernel.ptx.decode()
    assert "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" in kernel.log


def test_one_warpgroup_tiles_bring_their_two_k_tile_twins_where_k_is_deep() -> None:
    """BERT's FFN2 (K = 3072: 48 k-tiles): each one-warpgroup TMA candidate's twin holding two
    k-tiles a stage (half the stages), timed after the rest; none for a K of a few k-tiles or
    a tile of two warpgroups; the tactic round-trips and a bad one is refused."""
    tactics = matmul.tactics(_params([1024, 3072], [768, 3072]), "sm_90")
    paired = [t for t in tactics if "stage_tiles" in t]
    assert {"wgmma": [64, 96, 4], "copy": "tma", "stage_tiles": 2} in paired
    assert all(gemm_tma.tma_for(t).tile.groups == 1 and gemm_tma.tma_for(t).tactic() == t
               and {"wgmma": [64, t["wgmma"][1], t["wgmma"][2] * 2], "copy": "tma"} in tactics
               for t in paired)
    first = tactics.index(paired[0])
    assert all("stage_tiles" in t or "splits" in t for t in tactics[first:])
    assert gemm_tma.paired([{"wgmma": [64, 96, 8], "copy": "tma"}], 7 * 64) == []
    assert gemm_tma.paired([{"wgmma": [128, 64, 8], "copy": "tma"}], 48 * 64) == []
    tile = gemm_tma.TmaTile(64, 96, 4, 2)
    assert tile.stage_bytes() == 2 * gemm_tma.TmaTile(64, 96, 8).stage_bytes()
    assert tile.shared_bytes(3) == 2 * tile.stage_bytes() + 1024  # 3 k-tiles fill 2 stages
    for bad in ({"wgmma": [64, 96, 4], "copy": "tma", "stage_tiles": 3},
                {"wgmma": [128, 64, 4], "copy": "tma", "stage_tiles": 2},
                {"wgmma": [64, 96, 3], "copy": "tma", "stage_tiles": 2}):
        with pytest.raises(ValueError):
            gemm_tma.tma_for(bad)


def test_int8_tma_reads_pairs_and_stages_int8_results() -> None:
    params = {**_params([256, 512], [192, 512], "int8", "int32"),
              "tactic": gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 64, 8)).tactic()}
    spec = matmul.emit("k", params)
    assert spec.tensor_maps[0] == TensorMap(0, "u16", (256, 256), 512, (64, 128))
    assert "m64n64k32.s32.s8.s8" in spec.source
    compile_cuda(spec.source, name="k", arch="sm_90a")


@pytest.mark.parametrize("a_shape, b_shape, why", [
    ([64, 128], [96, 128], None),
    ([2, 3, 64, 128], [96, 128], None),          # A's batch back to back, B for all
    ([2, 3, 64, 128], [2, 3, 96, 128], None),    # both batched
    ([2, 1, 64, 128], [3, 96, 128], "a batch dim broadcast in A but not in all"),
    ([64, 100], [96, 100], "rows of 200 bytes: not a multiple of 16"),
])
def test_which_operands_the_copy_engine_reads(a_shape, b_shape, why) -> None:
    fed = matmul._tma_operands(_params(a_shape, b_shape))
    assert (fed is None) == (why is not None), why


def test_a_transposed_or_n_major_operand_is_not_tma() -> None:
    params = _params([64, 128], [96, 128])
    assert matmul._tma_operands({**params, "transpose_a": True,
                                 "in_shapes": [[128, 64], [96, 128]]}) is None
    assert matmul._tma_operands({**params, "transpose_b": False,
                                 "in_shapes": [[64, 128], [128, 96]]}) is None
    with pytest.raises(ValueError, match="tactic tma needs"):
        matmul.emit("k", {**params, "transpose_b": False, "in_shapes": [[64, 128], [128, 96]],
                          "tactic": {"wgmma": [128, 64, 8], "copy": "tma"}})
    with pytest.raises(ValueError, match="not one of the TMA tiles"):
        matmul.emit("k", {**params, "tactic": {"wgmma": [128, 64, 3], "copy": "tma"}})
    with pytest.raises(ValueError, match="keys a cp.async wgmma tactic does not take"):
        matmul.emit("k", {**params, "tactic": {"wgmma": [128, 64, 4], "copy": "bulk"}})


@pytest.mark.parametrize("change, message", [
    ({"box": [32, 128]}, "128-byte row wide"),
    ({"row_bytes": 100}, "multiple of 16 bytes"),
    ({"dtype": "f16"}, "element type"),
    ({"dims": [0, 4]}, "1 to 2\\^32"),
])
def test_a_bad_tensor_map_is_a_plan_error(change, message) -> None:
    good = TensorMap(0, "u16", (200, 300), 400, (64, 128)).to_json()
    launch = {"kernel": "k", "grid": [1, 1, 1], "block": [288, 1, 1], "shared": 0,
              "tmaps": [good]}
    assert CudaLaunch.from_json(launch, "step", {}).tmaps[0].to_json() == good
    with pytest.raises(PlanError, match=message):
        CudaLaunch.from_json({**launch, "tmaps": [{**good, **change}]}, "step", {})


def test_kernel_ir_prints_and_parses_the_tensor_maps(monkeypatch) -> None:
    """emit-cuda's `kernel.cuda` op of a TMA matmul shows its maps; they parse back; a bad
    one fails to verify."""
    from xdsl.context import Context
    from xdsl.parser import Parser
    from xdsl.utils.exceptions import VerifyException

    from ember.codegen.emit_cuda import EmitCuda, spec_of
    from ember.dialects import ember_context
    from ember.dialects.attributes import attribute_value, to_attribute
    from ember.dialects.kernel import CudaOp
    from tests.codegen.test_emit_cuda import _kernel_module

    tile = gemm_tma.TmaTile(128, 64, 8)
    _force_tma(monkeypatch, tile)
    model, _ = _matmul_model([256, 128], [128, 192], "float16", trans_b=True, seed=1)
    module, _ = _kernel_module(model)
    EmitCuda().apply(Context(), module)
    text = str(module)
    assert 'tmaps [{operand = 0 : i64, dtype = "u16", dims = array<i64: 128, 256>' in text
    parsed = Parser(ember_context(), text).parse_module()
    assert str(parsed) == text
    (op,) = [op for op in parsed.walk() if isinstance(op, CudaOp)]
    assert spec_of(op).tensor_maps == (TensorMap(0, "u16", (128, 256), 256, (64, 128)),
                                       TensorMap(1, "u16", (128, 192), 256, (64, 64)))
    maps = [attribute_value(t) for t in op.tmaps]
    op.properties["tmaps"] = type(op.tmaps)([to_attribute(maps[0]),
                                             to_attribute({**maps[1], "box": [16, 64]})])
    with pytest.raises(VerifyException, match="tensor map #1"):
        op.verify()


def _force_tma(monkeypatch, tile: gemm_tma.TmaTile) -> None:
    """Every wgmma-able matmul of the build gets `tile` fed by the copy engine (the cost model
    never puts a TMA tile first on its own)."""
    monkeypatch.setattr(gemm_wgmma, "merged_candidates",
                        lambda *a, tma=False, **k: [gemm_tma.TmaGemm(tile).tactic()] if tma
                        else [{"wgmma": [128, 64, 4]}])


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("tile", [t for t, _ in gemm_tma.TMA_TILES] + list(gemm_tma.PAIRED_TILES),
                         ids=str)
def test_every_tma_tile_matches_float64(tile: gemm_tma.TmaTile, dtype: str,
                                        monkeypatch) -> None:
    """Partial tiles in M, N and K, K over many stages (the producer wraps around the ring),
    and a batched A whose blocks straddle two batch items' rows."""
    _force_tma(monkeypatch, tile)
    for seed, (a_shape, n, k) in enumerate([([300, 200], 264, 200), ([130, 1000], 70, 1000),
                                            ([3, 37, 264], 40, 264)]):
        # a batched A: MatMul with a [K, N] weight (made K-major by the build)
        model, rng = (_matmul_model(a_shape, [k, n], dtype, trans_b=True, seed=30 + seed)
                      if len(a_shape) == 2 else _batched_model(a_shape, [k, n], dtype, 30 + seed))
        x = _half(rng, a_shape, dtype)
        manifest, sections = _build(model)
        (step,) = _tensor_core_steps(manifest)
        assert step["params"]["tactic"] == gemm_tma.TmaGemm(tile).tactic()
        assert len(step["cuda"]["tmaps"]) == 2
        w = numpy_helper.to_array(model.graph.initializer[0])
        w = w.T if len(a_shape) == 2 else w  # Gemm's transB weight is [N, K]
        out = _run(manifest, sections, {"x": x})
        assert _relative_l2(out, _matmul_reference(x, w)) < TOLERANCE[dtype], (a_shape, n, k)


def _batched_model(a_shape, b_shape, dtype: str, seed: int):
    from onnx import helper

    from tests.runtime.test_mma_tactics import ONNX_TYPE

    rng = np.random.default_rng(seed)
    t = ONNX_TYPE[dtype]
    w = _half(rng, b_shape, dtype)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", t, a_shape)],
                              [helper.make_tensor_value_info("y", t, None)],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), rng


@pytest.mark.cuda
@needs_gpu
def test_tma_maps_follow_io_bound_to_the_callers_memory(monkeypatch) -> None:
    """execute_async_v3 with the input at the caller's address: the kernel reads it there (its
    tensor map re-encoded), twice with two different buffers."""
    from ember.runtime import cuda
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    _force_tma(monkeypatch, gemm_tma.TmaTile(128, 128, 6))
    model, rng = _matmul_model([256, 128], [128, 192], "float16", trans_b=True, seed=40)
    manifest, sections = _build(model)
    engine = Runtime().deserialize_cuda_engine(plan_bytes(manifest, sections))
    ctx = engine.create_execution_context()
    w = numpy_helper.to_array(model.graph.initializer[0]).T
    stream = cuda.Stream()
    out = cuda.DeviceBuffer(256 * 192 * 2)
    ctx.set_tensor_address("y", out.ptr)
    for seed in (1, 2):
        x = _half(np.random.default_rng(seed), (256, 128), "float16")
        buf = cuda.DeviceBuffer(x.nbytes)
        buf.upload(x)
        ctx.set_tensor_address("x", buf.ptr)
        ctx.execute_async_v3(stream.handle)
        stream.synchronize()
        got = out.download(np.empty((256, 192), np.float16))
        assert _relative_l2(got, _matmul_reference(x, w)) < TOLERANCE["float16"], seed


def test_which_convs_take_tma_and_through_which_maps() -> None:
    """A plain 1x1 NHWC conv: both operands through tiled maps. A 3x3 (or a strided 1x1) one in
    FP16 over channels in whole 128-byte rows: its input through an im2col map, each wgmma
    tile's TMA twin timed after the cp.async tiles (the cost model's choice stays cp.async),
    a one-warpgroup twin's two-k-tile form after them; over 32 channels, or grouped: no TMA."""
    from ember.codegen.templates import conv
    from ember.runtime.tensor_maps import Im2colMap

    base = {"in_shapes": [[2, 7, 7, 64], [96, 1, 1, 64], [96]], "in_dtypes": ["float16"] * 3,
            "out_shapes": [[2, 7, 7, 96]], "out_dtypes": ["float16"], "layout": "NHWC",
            "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1}
    assert any(gemm_tma.is_tma(t) for t in conv.tactics(base, "sm_90"))
    tactic = gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 64, 8)).tactic()
    spec = conv.emit("k", {**base, "tactic": tactic})
    assert spec.tensor_maps == (TensorMap(0, "u16", (64, 98), 128, (64, 128)),
                                TensorMap(1, "u16", (64, 96), 128, (64, 64)))
    three = {**base, "in_shapes": [[2, 7, 7, 64], [96, 3, 3, 64], [96]], "pads": [1, 1, 1, 1]}
    strided = {**base, "strides": [2, 2], "out_shapes": [[2, 4, 4, 96]]}
    for params in (three, strided):
        tactics = conv.tactics(params, "sm_90")
        fed = [i for i, t in enumerate(tactics) if gemm_tma.is_tma(t)]
        # the TMA twins come last, after every cp.async and mma.sync candidate
        assert fed and fed == list(range(len(tactics) - len(fed), len(tactics)))
        # the twins, then (K of 9 k-tiles: deep enough) the one-warpgroup twins' paired forms
        twins = gemm_tma.twins(tactics[:-len(fed)])
        assert tactics[len(tactics) - len(fed):] == twins + gemm_tma.paired(twins, 576) \
            if params is three else twins
        assert not any(gemm_tma.is_tma(t) for t in conv.tactics(params, "sm_80"))
    assert any("stage_tiles" in t for t in conv.tactics(three, "sm_90"))
    # the copy engine walks the windows its corners and strides give: an output shape that is
    # not those, or a filter reaching past the copy's offsets, runs no TMA
    wrong_out = {**three, "out_shapes": [[2, 5, 5, 96]]}
    far = {**three, "in_shapes": [[2, 300, 300, 64], [96, 3, 3, 64], [96]],
           "out_shapes": [[2, 300, 300, 96]], "dilations": [100, 100],
           "pads": [100, 100, 100, 100]}
    for params in (wrong_out, far):
        assert not any(gemm_tma.is_tma(t) for t in conv.tactics(params, "sm_90"))
    spec = conv.emit("k", {**three, "tactic": tactic})
    assert spec.tensor_maps == (
        Im2colMap(0, (64, 7, 7, 2), (128, 896, 6272), (-1, -1), (-1, -1), (1, 1), 64, 128),
        TensorMap(1, "u16", (576, 96), 1152, (64, 64)))
    assert "tma_load_im2col(" in spec.source and "(tap_ * 1 + cb_) * 64" in spec.source
    spec = conv.emit("k", {**strided, "tactic": tactic})
    assert spec.tensor_maps[0] == Im2colMap(0, (64, 7, 7, 2), (128, 896, 6272), (0, 0), (0, 0),
                                            (2, 2), 64, 128)
    narrow = {**three, "in_shapes": [[2, 7, 7, 32], [96, 3, 3, 32], [96]]}
    grouped = {**three, "in_shapes": [[2, 7, 7, 128], [96, 3, 3, 64], [96]], "groups": 2}
    for params in (narrow, grouped):
        assert not any(gemm_tma.is_tma(t) for t in conv.tactics(params, "sm_90"))
        with pytest.raises(ValueError, match="tactic tma needs an NHWC conv"):
            conv.emit("k", {**params, "tactic": tactic})


def test_an_im2col_conv_compiles_for_sm90a_and_its_map_round_trips() -> None:
    """A 3x3 conv over 128 channels (two blocks of 64 per tap) on the im2col TMA loop: NVRTC
    compiles it for sm_90a; its map goes through the manifest's JSON and back, and a map the
    copy engine cannot take is a PlanError naming the problem."""
    from ember.codegen.templates import conv
    from ember.dialects.attributes import attribute_value, to_attribute
    from ember.runtime.tensor_maps import Im2colMap

    params = {"in_shapes": [[2, 9, 9, 128], [64, 3, 3, 128], [64]], "in_dtypes": ["bfloat16"] * 3,
              "out_shapes": [[2, 9, 9, 64]], "out_dtypes": ["bfloat16"], "layout": "NHWC",
              "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1,
              "tactic": gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 64, 8)).tactic()}
    spec = conv.emit("k", params)
    assert "(tap_ * 2 + cb_) * 64" in spec.source  # B's k of tap t, channel block c
    for tile, _ in gemm_tma.TMA_TILES:  # every TMA tile compiles with the im2col copy
        compile_cuda(conv.emit("k", {**params, "tactic": gemm_tma.TmaGemm(tile).tactic()})
                     .source, name="k", arch="sm_90a")
    im2col = spec.tensor_maps[0]
    assert TensorMap.from_json(im2col.to_json(), "m") == im2col
    # as kernel IR carries it (`kernel.cuda`'s tmaps: the flag an i1)
    assert TensorMap.from_json(attribute_value(to_attribute(im2col.to_json())), "m") == im2col
    bad = {**im2col.to_json(), "lower": [-200, -1]}
    with pytest.raises(PlanError, match="window corners must lie within -128 to 127"):
        TensorMap.from_json(bad, "m")
    with pytest.raises(PlanError, match="must be an object with keys im2col"):
        TensorMap.from_json({**im2col.to_json(), "box": [64, 64]}, "m")
    assert isinstance(im2col, Im2colMap) and im2col.reach() == 2 * 9 * 9 * 128 * 2


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("tile", [gemm_tma.TmaTile(128, 128, 6), gemm_tma.TmaTile(64, 64, 8)],
                         ids=str)
def test_a_1x1_conv_on_tma_matches_float64(tile: gemm_tma.TmaTile, monkeypatch) -> None:
    """A 1x1 NHWC conv with bias and relu (staged epilogue), pixels not a multiple of BM."""
    from onnx import helper

    from tests.runtime.test_mma_tactics import _conv_model

    _force_tma(monkeypatch, tile)
    model, rng, w, b = _conv_model([2, 64, 9, 9], [96, 64, 1, 1], {}, "float16", seed=50)
    graph = model.graph
    graph.node[0].output[0] = "c"
    graph.node.append(helper.make_node("Relu", ["c"], ["y"]))
    x = _half(rng, (2, 64, 9, 9), "float16")
    manifest, sections = _build(model, nhwc=True)
    assert manifest["inputs"][0]["format"] == "NHWC"
    (step,) = _tensor_core_steps(manifest)
    assert step["params"]["tactic"] == gemm_tma.TmaGemm(tile).tactic()
    assert step["params"]["epilogue"]  # the relu, fused
    out = _run(manifest, sections, {"x": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})
    want = np.einsum("nchw,kc->nhwk", x.astype(np.float64), w[:, :, 0, 0].astype(np.float64))
    want = np.maximum(want + b.astype(np.float64), 0)
    assert _relative_l2(out, want) < TOLERANCE["float16"]


@pytest.mark.cuda
@needs_gpu
def test_a_tensor_map_past_its_buffer_is_a_plan_error(monkeypatch) -> None:
    """A plan whose tensor map spans more rows than its operand holds is refused when the
    executor makes the launch, before the copy engine could read past the buffer."""
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    _force_tma(monkeypatch, gemm_tma.TmaTile(128, 64, 8))
    model, _ = _matmul_model([256, 128], [128, 192], "float16", trans_b=True, seed=41)
    manifest, sections = _build(model)
    (step,) = _tensor_core_steps(manifest)
    step["cuda"]["tmaps"][0]["dims"][1] = 512  # A has 256 rows
    with pytest.raises(PlanError, match="a tensor map spans 131072 bytes of operand 0, which "
                                        "has 65536"):
        engine = Runtime().deserialize_cuda_engine(plan_bytes(manifest, sections))
        engine.create_execution_context().execute({"x": np.zeros((256, 128), np.float16)})


IM2COL_CONVS = {  # (x shape NCHW, w shape, attributes)
    "3x3_pad1": ([2, 64, 9, 9], [96, 64, 3, 3], {"pads": [1, 1, 1, 1]}),
    "3x3_stride2_128ch": ([2, 128, 13, 13], [64, 128, 3, 3], {"pads": [1, 1, 1, 1],
                                                              "strides": [2, 2]}),
    "1x1_stride2": ([3, 64, 9, 9], [128, 64, 1, 1], {"strides": [2, 2]}),
    "3x3_dilated_uneven_pads": ([1, 64, 11, 10], [64, 64, 3, 3], {"pads": [2, 1, 0, 2],
                                                                  "dilations": [2, 2]}),
    "7x7_stride2_pad3": ([2, 64, 16, 16], [64, 64, 7, 7], {"pads": [3, 3, 3, 3],
                                                           "strides": [2, 2]}),
    # H and W told apart: a 3x5 filter, strides (1, 2), dilations (2, 1), uneven pads
    "3x5_mixed": ([2, 64, 12, 15], [64, 64, 3, 5], {"pads": [2, 1, 1, 3], "strides": [1, 2],
                                                    "dilations": [2, 1]}),
}
IM2COL_TILES = [gemm_tma.TmaTile(128, 64, 8), gemm_tma.TmaTile(256, 128, 4),
                gemm_tma.TmaTile(256, 64, 5), gemm_tma.TmaTile(64, 128, 8),
                gemm_tma.TmaTile(64, 128, 4, 2)]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(IM2COL_CONVS))
def test_an_im2col_tma_conv_matches_float64(case: str, dtype: str, monkeypatch) -> None:
    """Convs whose input the copy engine reads through an im2col map: padding on every side,
    strides, dilation, H and W of different filter sizes, strides and dilations, blocks of
    pixels that cross rows and images, pixels not a multiple of BM; bias + relu fused (staged
    epilogue)."""
    _check_im2col_conv(case, dtype, gemm_tma.TmaTile(128, 64, 8), monkeypatch)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("tile", IM2COL_TILES[1:], ids=str)
def test_every_im2col_tile_shape_matches_float64(tile: gemm_tma.TmaTile, monkeypatch) -> None:
    """The 256-row tiles (four consumer warpgroups) and a 64-row one on the im2col copy."""
    for case in ("3x3_pad1", "3x5_mixed"):
        _check_im2col_conv(case, "float16", tile, monkeypatch)


def _check_im2col_conv(case: str, dtype: str, tile: gemm_tma.TmaTile, monkeypatch) -> None:
    from onnx import helper

    from ember.codegen.templates import gemm_mma
    from tests.runtime.test_mma_tactics import _conv_model, conv_reference

    tactic = gemm_tma.TmaGemm(tile).tactic()
    monkeypatch.setattr(gemm_mma, "candidates", lambda *a, **k: [])
    monkeypatch.setattr(gemm_tma, "twins", lambda found: [tactic])
    x_shape, w_shape, attrs = IM2COL_CONVS[case]
    model, rng, w, b = _conv_model(x_shape, w_shape, attrs, dtype, seed=60)
    model.graph.node[0].output[0] = "c"
    model.graph.node.append(helper.make_node("Relu", ["c"], ["y"]))
    x = _half(rng, x_shape, dtype)
    manifest, sections = _build(model, nhwc=True)
    assert manifest["inputs"][0]["format"] == "NHWC"
    (step,) = _tensor_core_steps(manifest)
    assert step["params"]["tactic"] == tactic
    assert step["cuda"]["tmaps"][0]["im2col"] is True
    out = _run(manifest, sections, {"x": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})
    full = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1, **attrs}
    (ref,) = conv_reference([x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)],
                            full)
    ref = np.maximum(ref, 0).transpose(0, 2, 3, 1)
    assert out.shape == ref.shape and _relative_l2(out, ref) < TOLERANCE[dtype]
