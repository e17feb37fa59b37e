"""The register-tiled matmul and conv tactics against numpy in float64, at shapes that exercise
every tile choice, partial tiles, transposes, batch broadcasting, groups, strides, dilations,
asymmetric padding, 1-d/3-d convs, the direct (depthwise) tactic and fused epilogues. Building
(NVRTC) runs everywhere; running needs a GPU (`cuda` marker)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.templates.gemm_tiles import TILES, choose, choose_tile
from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.cpu_kernels.linear import conv as conv_reference
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _matmul_model(a_shape, b_shape, trans_b_weight: bool, relu: bool, seed: int):
    """y = [relu](x @ w) with w a weight (given transposed through Gemm when asked)."""
    rng = _rng(seed)
    nodes, inits = [], []
    if trans_b_weight:  # Gemm with transB: B stored [N, K]
        w = rng.standard_normal((b_shape[1], b_shape[0])).astype(np.float32)
        bias = rng.standard_normal(b_shape[1]).astype(np.float32)
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["t"], transB=1))
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
        ins = [helper.make_tensor_value_info("x", F, a_shape)]
    else:
        nodes.append(helper.make_node("MatMul", ["x", "x2"], ["t"]))
        ins = [helper.make_tensor_value_info("x", F, a_shape),
               helper.make_tensor_value_info("x2", F, b_shape)]
    nodes.append(helper.make_node("Relu" if relu else "Identity", ["t"], ["y"]))
    graph = helper.make_graph(nodes, "mm", ins, [helper.make_tensor_value_info("y", F, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_model(x_shape, w_shape, attrs, bias: bool, seed: int):
    rng = _rng(seed)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    names = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(w_shape[0]).astype(np.float32),
                                             "b"))
        names.append("b")
    nodes = [helper.make_node("Conv", names, ["c"], **attrs),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", F, x_shape)],
                              [helper.make_tensor_value_info("y", F, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# (a shape, b shape, Gemm with transB + bias)
MATMULS = {
    "square_128": ([256, 256], [256, 256], False),
    "bert_qkv": ([256, 768], [768, 768], True),
    "bert_3d": ([2, 128, 64], [64, 96], False),
    "odd": ([37, 45], [45, 29], False),
    "k_not_multiple_of_bk": ([64, 13], [13, 70], False),
    "batched_broadcast": ([3, 1, 33, 40], [4, 40, 17], False),
    "vector_matrix": ([1, 300], [300, 200], True),
    "tall": ([1000, 24], [24, 8], False),
    "split_k": ([16, 4096], [4096, 64], False),
    "split_k_gemm": ([2, 2048], [2048, 1000], True),
}
# (x shape, w shape, attributes, bias)
CONVS = {
    "3x3_pad1": ([2, 16, 14, 14], [32, 16, 3, 3], {"pads": [1, 1, 1, 1]}, True),
    "1x1": ([2, 64, 7, 7], [48, 64, 1, 1], {}, True),
    "1x1_stride2": ([2, 32, 9, 9], [16, 32, 1, 1], {"strides": [2, 2]}, False),
    "7x7_s2_stem": ([1, 3, 32, 32], [16, 3, 7, 7], {"strides": [2, 2], "pads": [3, 3, 3, 3]},
                    True),
    "asym_pad_dilated": ([1, 8, 11, 13], [12, 8, 3, 2],
                         {"pads": [0, 1, 2, 0], "dilations": [2, 1]}, True),
    "groups2": ([2, 16, 8, 8], [32, 8, 3, 3], {"group": 2, "pads": [1, 1, 1, 1]}, True),
    "depthwise": ([2, 24, 10, 10], [24, 1, 3, 3], {"group": 24, "pads": [1, 1, 1, 1]}, True),
    "depthwise_s2": ([1, 32, 9, 9], [32, 1, 3, 3],
                     {"group": 32, "strides": [2, 2], "pads": [1, 1, 1, 1]}, False),
    "few_out_channels": ([1, 6, 5, 5], [3, 6, 3, 3], {}, True),
    "conv1d": ([2, 12, 30], [20, 12, 5], {"pads": [2, 2]}, True),
    "conv3d": ([1, 4, 5, 6, 7], [8, 4, 3, 3, 3], {"pads": [1, 1, 1, 1, 1, 1]}, True),
    "split_k_deep": ([1, 512, 7, 7], [512, 512, 3, 3], {"pads": [1, 1, 1, 1]}, True),
}


def _plan(model):
    manifest, sections = build_model(model.SerializeToString(),
                                     BuilderConfig(target_arch="sm_90"))
    return manifest, sections


def _matmul_reference(feeds, model):
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64)
             for t in model.graph.initializer}
    x = feeds["x"].astype(np.float64)
    if "w" in inits:
        out = x @ inits["w"].T + inits["b"]
    else:
        out = x @ feeds["x2"].astype(np.float64)
    if model.graph.node[-1].op_type == "Relu":
        out = np.maximum(out, 0)
    return out


def _conv_expected(feeds, model):
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = model.graph.node[0]
    attrs = {a.name: list(helper.get_attribute_value(a)) if a.type == a.INTS
             else helper.get_attribute_value(a) for a in node.attribute}
    x = feeds["x"]
    nd = x.ndim - 2
    params = {"strides": attrs.get("strides", [1] * nd), "pads": attrs.get("pads", [0] * 2 * nd),
              "dilations": attrs.get("dilations", [1] * nd), "group": attrs.get("group", 1),
              "groups": attrs.get("group", 1)}
    args = [x.astype(np.float64), inits["w"].astype(np.float64)]
    if "b" in inits:
        args.append(inits["b"].astype(np.float64))
    (out,) = conv_reference(args, params)
    return np.maximum(out, 0)


def _run_gpu(model, feeds):
    """The output, checked to be bit-equal over two runs (split-K's counters reset)."""
    manifest, sections = _plan(model)
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    ctx = engine.create_execution_context()
    first = ctx.execute(feeds)["y"]
    np.testing.assert_array_equal(ctx.execute(feeds)["y"], first)
    return first


def _feeds(model, seed):
    rng = _rng(seed + 100)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def test_split_k_for_long_k_and_few_tiles():
    assert choose(16, 64, 4096).splits > 1
    assert choose(4096, 4096, 4096).splits == 1
    manifest, _ = _plan(_matmul_model(*MATMULS["split_k"], True, 0))
    (launch,) = [s["cuda"] for s in manifest["steps"] if s["template"] == "matmul"]
    assert launch["workspace"] > 0 and launch["grid"][2] > 1


def test_tile_choice_prefers_filling_the_gpu():
    assert choose_tile(4096, 4096) == TILES[0][0]  # big: the biggest tile
    small = choose_tile(1024, 768)  # BERT's 768-wide GEMMs: 48 big tiles would idle the GPU
    assert small.bm * small.bn < 128 * 128
    for tile, eff, regs in TILES:
        assert tile.bm * tile.bk % tile.threads == 0 and tile.threads % tile.bm == 0
        assert 0 < eff <= 1 and regs <= 128


@pytest.mark.parametrize("case", sorted(MATMULS))
def test_matmul_builds_without_host_steps(case):
    a, b, gemm = MATMULS[case]
    manifest, _ = _plan(_matmul_model(a, b, gemm, True, 0))
    assert all(step.get("device") != "cpu" for step in manifest["steps"])


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_builds_without_host_steps(case):
    x, w, attrs, bias = CONVS[case]
    manifest, _ = _plan(_conv_model(x, w, attrs, bias, 0))
    assert all(step.get("device") != "cpu" for step in manifest["steps"])


def _chain_model(seed: int):
    """Two split-K matmuls of different tile counts back to back: the second's counters must
    not meet the first's partial tiles in the shared workspace."""
    rng = _rng(seed)
    w1 = (rng.standard_normal((4096, 512)) / 64).astype(np.float32)
    w2 = (rng.standard_normal((512, 48)) / 22).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", F, [8, 4096])],
                              [helper.make_tensor_value_info("y", F, None)],
                              [numpy_helper.from_array(w1, "w1"),
                               numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), w1, w2


def test_chain_has_two_split_k_steps():
    manifest, _ = _plan(_chain_model(0)[0])
    launches = [s["cuda"] for s in manifest["steps"] if s["template"] == "matmul"]
    assert len(launches) == 2 and all(ln.get("workspace") for ln in launches)


@needs_gpu
@pytest.mark.cuda
def test_split_k_chain_matches_float64():
    model, w1, w2 = _chain_model(3)
    feeds = _feeds(model, 3)
    want = np.maximum(feeds["x"].astype(np.float64) @ w1, 0) @ w2
    for _ in range(2):  # a fresh context each time: zeroed workspaces, then reused ones
        np.testing.assert_allclose(_run_gpu(model, feeds), want, rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", sorted(MATMULS))
def test_matmul_tactic_matches_float64(case):
    a, b, gemm = MATMULS[case]
    for seed, relu in ((1, True), (2, False)):
        model = _matmul_model(a, b, gemm, relu, seed)
        feeds = _feeds(model, seed)
        got = _run_gpu(model, feeds)
        want = _matmul_reference(feeds, model)
        assert np.isfinite(got).all()
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_tactic_matches_float64(case):
    x, w, attrs, bias = CONVS[case]
    for seed in (1, 2):
        model = _conv_model(x, w, attrs, bias, seed)
        feeds = _feeds(model, seed)
        got = _run_gpu(model, feeds)
        want = _conv_expected(feeds, model)
        assert got.shape == want.shape and np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_named_tactic_is_emitted_and_checked():
    from ember.codegen.templates import matmul

    params = {"in_shapes": [[256, 512], [512, 384]], "in_dtypes": ["float32"] * 2,
              "out_shapes": [[256, 384]], "out_dtypes": ["float32"]}
    options = matmul.tactics(params)
    assert len(options) >= 2 and options[0] != options[1]
    for tactic in options:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        bm, bn, bk, tm, tn = tactic["tile"]
        assert f"{bm}x{bn}x{bk} tile, {tm}x{tn} per thread" in spec.source
        assert spec.grid[2] == tactic["splits"]
    with pytest.raises(ValueError, match="not one of the GEMM tiles"):
        matmul.emit("k", {**params, "tactic": {"tile": [8, 8, 8, 1, 1], "splits": 1}})


def test_autotune_required_without_that_gpu_is_a_clear_error():
    if cuda_available():
        pytest.skip("a GPU is present: autotune runs")
    from ember.errors import EmberError

    model = _matmul_model(*MATMULS["square_128"], False, 0)
    with pytest.raises(EmberError, match="autotune needs a sm_90 GPU"):
        build_model(model.SerializeToString(), BuilderConfig(target_arch="sm_90", autotune=True))
    manifest, _ = _plan(model)  # autotune=None: no GPU, no timing, the cost model's tactic
    assert "autotune" not in manifest


@needs_gpu
@pytest.mark.cuda
def test_autotune_times_tactics_caches_them_and_stays_correct(tmp_path, monkeypatch):
    from ember.compiler.builder import detect_arch

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    model = _matmul_model([512, 768], [768, 1024], True, True, 5)
    config = BuilderConfig(target_arch=detect_arch(), autotune=True)
    manifest, sections = build_model(model.SerializeToString(), config)
    assert manifest["autotune"]["steps"] == 1 and manifest["autotune"]["timed"] >= 2
    (step,) = [s for s in manifest["steps"] if s["template"] == "matmul"]
    assert step["params"]["tactic"]["tile"]
    feeds = _feeds(model, 5)
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, _matmul_reference(feeds, model), rtol=1e-4, atol=1e-4)
    again, _ = build_model(model.SerializeToString(), config)
    assert again["autotune"]["cached"] == 1 and again["autotune"]["timed"] == 0


# (a shape, b shape, transpose_a, transpose_b): aligned (float4 loads) and not
DIRECT = [([96, 64], [64, 128], False, False), ([64, 96], [64, 128], True, False),
          ([96, 64], [128, 64], False, True), ([2, 40, 36], [36, 52], False, False),
          ([33, 17], [17, 29], False, False), ([8, 1024], [1024, 64], False, False)]


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", range(len(DIRECT)))
def test_every_matmul_tactic_matches_float64(case):
    """Each candidate tactic (tile, split-K, float4 or scalar loads) launched on its own."""
    from ember.codegen.emit_cuda import emit_step
    from ember.codegen.nvrtc import compile_cuda
    from ember.codegen.templates import matmul
    from ember.compiler.builder import detect_arch
    from ember.runtime import cuda

    a_shape, b_shape, ta, tb = DIRECT[case]
    rng = _rng(case)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    a64 = np.swapaxes(a, -1, -2) if ta else a
    b64 = np.swapaxes(b, -1, -2) if tb else b
    want = a64.astype(np.float64) @ b64.astype(np.float64)
    params = {"in_shapes": [a_shape, b_shape], "in_dtypes": ["float32"] * 2,
              "out_shapes": [list(want.shape)], "out_dtypes": ["float32"],
              "transpose_a": ta, "transpose_b": tb}
    tactics = matmul.tactics(params)
    assert len(tactics) >= 2
    for tactic in tactics:
        name, spec = emit_step({"name": "mm", "template": "matmul",
                                "params": {**params, "tactic": tactic}})
        kernel = compile_cuda(spec.source, name=name, arch=detect_arch())
        module = cuda.Module.load(kernel.cubin, kernel.ptx, name=name)
        bufs = [cuda.DeviceBuffer(a.nbytes), cuda.DeviceBuffer(b.nbytes),
                cuda.DeviceBuffer(want.size * 4)]
        bufs[0].upload(a)
        bufs[1].upload(b)
        if spec.workspace_bytes:
            bufs += [cuda.DeviceBuffer(spec.counter_bytes), cuda.DeviceBuffer(spec.workspace_bytes)]
            bufs[3].zero()
        args = cuda.pack_args([("ptr", buf.ptr) for buf in bufs])
        got = []
        for _ in range(2):  # twice: split-K counters must come back to zero
            cuda.launch(module.function(name), spec.grid, spec.block, spec.shared_bytes, None,
                        args)
            got.append(bufs[2].download(np.empty(want.shape, np.float32)))
        np.testing.assert_array_equal(got[0], got[1])
        np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-4, err_msg=str(tactic))
        module.unload()


def test_float64_tactics_fit_shared_memory_and_compile():
    """float64 tiles are twice the bytes: only those within the 48 KB static limit are chosen."""
    from ember.codegen.nvrtc import compile_cuda
    from ember.codegen.templates import conv, matmul

    mm = {"in_shapes": [[2048, 2048], [2048, 2048]], "in_dtypes": ["float64"] * 2,
          "out_shapes": [[2048, 2048]], "out_dtypes": ["float64"]}
    cv = {"in_shapes": [[32, 256, 14, 14], [256, 256, 3, 3]], "in_dtypes": ["float64"] * 2,
          "out_shapes": [[32, 256, 14, 14]], "out_dtypes": ["float64"], "strides": [1, 1],
          "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    for module, params in ((matmul, mm), (conv, cv)):
        for tactic in [None, *module.tactics(params)]:
            spec = module.emit("k", {**params, "tactic": tactic} if tactic else params)
            assert compile_cuda(spec.source, name="k", arch="sm_90").cubin
    with pytest.raises(ValueError, match="shared memory"):
        matmul.emit("k", {**mm, "tactic": {"tile": [128, 128, 16, 8, 8], "splits": 1}})


def test_the_tactics_query_reaches_every_template_module():
    """Templates whose module name differs from the template's (range -> range_) too; only
    the tunable ones (conv, matmul, attention_chain: tests/codegen/test_attention_chain.py,
    layer_norm: tests/codegen/test_layer_norm_rows.py)
    offer tactics."""
    from ember.codegen.autotune import _tactics
    from ember.codegen.select_tactics import TUNABLE
    from ember.codegen.templates import TEMPLATES

    assert sorted(TUNABLE) == ["attention_chain", "conv", "layer_norm", "matmul"]
    assert _tactics({"template": "range", "params": {}}, "sm_90") == []
    for template in TEMPLATES:
        if template not in TUNABLE:
            assert _tactics({"template": template, "params": {}}, "sm_90") == [], template


def test_autotune_trusts_only_candidates_that_agree():
    """The check the autotuner applies to every candidate's output: unwritten (NaN) or
    non-finite elements, or a result farther than AGREEMENT from the reference candidate's."""
    from ember.codegen.autotune import AGREEMENT, disagreement

    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    assert disagreement(ref, None) is None
    assert disagreement(ref * (1 + AGREEMENT / 10), ref) is None  # another summation order
    assert "rel-L2" in disagreement(ref * 1.05, ref)
    poisoned = ref.copy()
    poisoned[7] = np.nan  # an element the kernel never wrote
    assert "1 unwritten" in disagreement(poisoned, None)


@needs_gpu
@pytest.mark.cuda
def test_autotune_rejects_a_planted_wrong_candidate(tmp_path, monkeypatch):
    """A candidate that computes something else is never chosen, however fast it runs: the
    second candidate's kernel is planted to store half of each result; the plan keeps a correct
    tactic and the rejection is counted."""
    from ember.codegen import autotune
    from ember.compiler.builder import detect_arch

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    real_emit = autotune.emit_step
    tactics = []

    def emit(step, *args):
        name, spec = real_emit(step, *args)
        tactics.append(step["params"]["tactic"])
        if len(tactics) == 2:  # the planted candidate
            spec = dataclasses.replace(spec, source=spec.source.replace(
                "out0[oi] = acc;", "out0[oi] = acc * 0.5f;"))
            assert "acc * 0.5f" in spec.source
        return name, spec

    monkeypatch.setattr(autotune, "emit_step", emit)
    model = _matmul_model([512, 768], [768, 1024], True, True, 5)
    manifest, sections = build_model(model.SerializeToString(),
                                     BuilderConfig(target_arch=detect_arch(), autotune=True))
    assert manifest["autotune"]["rejected"] == 1, manifest["autotune"]
    (step,) = [s for s in manifest["steps"] if s["template"] == "matmul"]
    assert step["params"]["tactic"] != tactics[1]
    feeds = _feeds(model, 5)
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, _matmul_reference(feeds, model), rtol=1e-4, atol=1e-4)
