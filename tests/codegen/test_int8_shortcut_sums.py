"""fuse-shortcut-convs' INT8 form: a QDQ ResNet block's downsample conv computed inside the conv3
whose residual it is, its int32 sums kept apart (`codegen.shortcut_sums`,
`templates.conv_sums`). The step exact against numpy on the CPU executor, on emulated warps for
every tactic and on the GPU; a QDQ block from onnxruntime's quantizer fusing into one step
whose results are the unfused plan's bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.templates import conv, conv_sums, epilogue_split
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model, pipeline_for
from ember.errors import PlanError, UnsupportedError
from ember.runtime.cpu_kernels.linear import KERNELS
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator
from tests.codegen.test_int8_tensor_cores import _int8, _run_on_gpu, needs_gpu, needs_gxx

CLIP = {"fn": "clip", "dtype": "float32", "alpha": -128.0, "beta": 127.0}
# the fused epilogue as fuse-shortcut-convs writes it: inputs scale[n], bias[n], s3, the
# downsample's sums (input 3: x), s5, sd[n], bd[n]; the downsample's quantize on value 4, then
# conv3's requantized residual tail reading it
FUSED = {
    "ops": [{"fn": "cast", "args": [4], "dtype": "float32"},          # 8
            {"fn": "mul", "args": [8, 6], "dtype": "float32"},        # 9
            {"fn": "add", "args": [9, 7], "dtype": "float32"},        # 10
            {"fn": "round", "args": [10], "dtype": "float32"},        # 11
            {**CLIP, "args": [11]},                                   # 12
            {"fn": "cast", "args": [12], "dtype": "int8"},            # 13: the downsample's
            {"fn": "cast", "args": [13], "dtype": "float32"},         # 14
            {"fn": "mul", "args": [14, 5], "dtype": "float32"},       # 15
            {"fn": "cast", "args": [0], "dtype": "float32"},          # 16
            {"fn": "mul", "args": [16, 1], "dtype": "float32"},       # 17
            {"fn": "add", "args": [17, 2], "dtype": "float32"},       # 18
            {"fn": "round", "args": [18], "dtype": "float32"},        # 19
            {**CLIP, "args": [19]},                                   # 20
            {"fn": "cast", "args": [20], "dtype": "int8"},            # 21: conv3's
            {"fn": "cast", "args": [21], "dtype": "float32"},         # 22
            {"fn": "mul", "args": [22, 3], "dtype": "float32"},       # 23
            {"fn": "add", "args": [23, 15], "dtype": "float32"},      # 24
            {"fn": "relu", "args": [24], "dtype": "float32"},         # 25
            {"fn": "round", "args": [25], "dtype": "float32"},        # 26
            {**CLIP, "args": [26]},                                   # 27
            {"fn": "cast", "args": [27], "dtype": "int8"}],           # 28
    "result": 28, "out_dtype": "int8",
    "in_dtypes": ["float32", "float32", "float32", "int8", "float32", "float32", "float32"]}

# (y [N, H, W, C1], x [N, H2, W2, C2], out channels, the downsample's stride)
CASES = {"stride1": ([2, 9, 9, 64], [2, 9, 9, 64], 96, 1),
         "stride2": ([2, 7, 7, 32], [2, 13, 13, 128], 64, 2)}


def _case(name: str, seed: int):
    """(params, inputs, want) of a fused step: numpy's float32 op by op."""
    y_shape, x_shape, n, s = CASES[name]
    c1, c2 = y_shape[-1], x_shape[-1]
    out = [*y_shape[:3], n]
    col = [1, 1, 1, n]
    params = {"in_shapes": [y_shape, [n, 1, 1, c1 + c2]], "in_dtypes": ["int8", "int8"],
              "out_shapes": [out], "out_dtypes": ["int32"], "layout": "NHWC",
              "strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1], "groups": 1,
              "shortcut": {"strides": [s, s], "sums": 3},
              "epilogue": {**FUSED, "in_shapes": [col, col, [], x_shape, [], col, col]}}
    rng = np.random.default_rng(seed)
    y, x, w = _int8(rng, y_shape), _int8(rng, x_shape), _int8(rng, [n, 1, 1, c1 + c2])
    f = np.float32
    scale, sd = ((rng.random(col) * 2e-3 + 5e-4).astype(f) for _ in range(2))
    bias, bd = ((rng.standard_normal(col) * 8).astype(f) for _ in range(2))
    # (scales whose multiples of integers do not land on halves: see test_int8_split_epilogue)
    s3, s5 = np.array(0.7071068, f), np.array(0.4472136, f)
    w2 = w[:, 0, 0].astype(np.int64)
    down = x[:, ::s, ::s].astype(np.int64) @ w2[:, :c2].T
    main = y.astype(np.int64) @ w2[:, c2:].T
    qd = np.clip(np.rint(down.astype(f) * sd + bd), -128, 127)
    q = np.clip(np.rint(main.astype(f) * scale + bias), -128, 127)
    want = np.clip(np.rint(np.maximum(q.astype(f) * s3 + qd.astype(f) * s5, f(0))), -128, 127)
    return params, [y, w, scale, bias, s3, x, s5, sd, bd], want.astype(np.int8)


def test_the_downsample_quantize_splits_off_for_the_main_loop():
    """split_second: the head is the downsample's own quantize of its sums (input 3, int32 in
    the fragments); the tail conv3's epilogue reading that byte as input 3."""
    params, _, _ = _case("stride1", seed=0)
    parts = epilogue_split.split_second(params)
    head, tail = parts.head["epilogue"], parts.tail["epilogue"]
    assert parts.dtype == "int8"
    assert [op["fn"] for op in head["ops"]] == ["cast", "mul", "add", "round", "clip", "cast"]
    assert [op["args"] for op in head["ops"]] == [[4], [8, 6], [9, 7], [10], [11], [12]]
    assert head["result"] == 13 and head["in_dtypes"][3] == "int32"
    assert tail["in_dtypes"][3] == "int8" and tail["in_shapes"][3] == [2, 9, 9, 96]
    assert [op["args"] for op in tail["ops"][:2]] == [[4], [8, 5]]  # the byte, times s5
    assert tail["result"] == 22 and len(tail["ops"]) == 15
    # no shortcut sums, or a downsample result read other than through a cast to float
    assert epilogue_split.split_second({**params, "shortcut": {"strides": [1, 1]}}) is None
    ops = list(params["epilogue"]["ops"])
    ops[6] = {"fn": "cast", "args": [13], "dtype": "float16"}
    assert epilogue_split.split_second(
        {**params, "epilogue": {**params["epilogue"], "ops": ops}}) is None


@pytest.mark.parametrize("name", list(CASES))
def test_the_cpu_executor_sums_both_convs_apart(name):
    params, inputs, want = _case(name, seed=1)
    assert len(np.unique(want)) > 50 and (want == 0).any() and (want == 127).any()
    (got,) = KERNELS["conv"](inputs, params)
    np.testing.assert_array_equal(got, want)


@needs_gxx
@pytest.mark.parametrize("pack", [True, False], ids=["bytes", "sums"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_tactic_is_exact_on_emulated_warps(name, pack, tmp_path, monkeypatch):
    """The main loop keeping the downsample's quantized bytes (the default) or its sums."""
    monkeypatch.setattr(conv_sums, "PACK", pack)
    params, inputs, want = _case(name, seed=2)
    tactics = conv.tactics(params, "sm_90")
    assert tactics and all(set(t) - {"persist"} == {"mma", "splits"} for t in tactics)
    assert any("persist" in t for t in tactics)  # (the persistent forms, timed too)
    for tactic in tactics:
        spec = conv.emit("k", {**params, "tactic": tactic})
        kept = "unsigned frag2q[" if pack else "int frag2["
        assert kept in spec.source and "shortcut sums: K's first" in spec.source
        got = simt_emulator.run(spec, "k", inputs, want.shape, np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("pack", [True, False], ids=["bytes", "sums"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_tactic_is_exact_on_the_gpu(name, pack, monkeypatch):
    monkeypatch.setattr(conv_sums, "PACK", pack)
    params, inputs, want = _case(name, seed=3)
    for tactic in conv.tactics(params, "sm_90"):
        spec = conv.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", inputs, want.shape, np.int8)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


def test_malformed_steps_are_refused():
    params, inputs, _ = _case("stride2", seed=4)
    with pytest.raises(UnsupportedError, match="mma.sync"):
        conv.emit("k", {**params, "tactic": {"wgmma": [128, 64, 4]}})
    shapes = list(params["epilogue"]["in_shapes"])
    shapes[3] = [2, 13, 13, 96]  # x's channels not a multiple of 64
    x_short = dict(params, epilogue={**params["epilogue"], "in_shapes": shapes})
    with pytest.raises(UnsupportedError, match="channels multiples of 16"):
        conv_sums.gemm(x_short)
    with pytest.raises(PlanError, match="shortcut-sums conv"):
        KERNELS["conv"]([*inputs[:5], inputs[5][:, :6], *inputs[6:]], params)


def _qdq_block(tmp_path, name: str, seed: int):
    """A ResNet block's conv3 + downsample + add + relu in FP32 (NCHW), then the next block's
    first conv (so the block's output is an int8 tensor, as inside a ResNet), quantized by
    onnxruntime's quantize_static as tools/qdq_model.py does (QDQ, symmetric int8, weights per
    channel); (QDQ model, feed)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    y_shape, x_shape, n, s = CASES[name]
    nchw = [[d[0], d[3], d[1], d[2]] for d in (y_shape, x_shape)]
    rng = np.random.default_rng(seed)
    w3 = (rng.standard_normal((n, nchw[0][1], 1, 1)) / 8).astype(np.float32)
    wd = (rng.standard_normal((n, nchw[1][1], 1, 1)) / 8).astype(np.float32)
    b3, bd = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    w4 = (rng.standard_normal((16, n, 1, 1)) / 8).astype(np.float32)
    nodes = [helper.make_node("Conv", ["y", "w3", "b3"], ["c3"], name="conv3"),
             helper.make_node("Conv", ["x", "wd", "bd"], ["d"], name="down", strides=[s, s]),
             helper.make_node("Add", ["c3", "d"], ["sum"], name="add"),
             helper.make_node("Relu", ["sum"], ["block"], name="relu"),
             helper.make_node("Conv", ["block", "w4"], ["out"], name="next")]
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("y", TensorProto.FLOAT, nchw[0]),
                         helper.make_tensor_value_info("x", TensorProto.FLOAT, nchw[1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, k) for k, a in
         {"w3": w3, "wd": wd, "b3": b3, "bd": bd, "w4": w4}.items()])
    # (IR 8 for opset 17, not this onnx's newest: the GPU host's onnxruntime reads IR <= 13)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    src, dst = tmp_path / "block.onnx", tmp_path / "block_qdq.onnx"
    import onnx

    onnx.save(model, src)

    def feed():
        return {"y": np.abs(rng.standard_normal(nchw[0])).astype(np.float32),
                "x": np.abs(rng.standard_normal(nchw[1])).astype(np.float32)}
    batches = iter([feed() for _ in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return onnx.load(dst), feed()


def _config() -> BuilderConfig:
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.set_flag(BuilderFlag.INT8)
    return config


def _run(manifest, sections, feed, device: str) -> np.ndarray:
    engine = Runtime(device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute(feed)["out"]


@pytest.mark.parametrize("name", list(CASES))
def test_a_qdq_block_fuses_and_runs_as_before(name, tmp_path):
    model, feed = _qdq_block(tmp_path, name, seed=5)
    fused, sections = build_model(model, _config())
    convs = [s for s in fused["steps"] if s["template"] == "conv"]
    assert [s["params"].get("shortcut") for s in convs] == [
        {"strides": [CASES[name][3]] * 2, "sums": 3}, None]
    assert all("cuda" in s for s in fused["steps"])  # (no step left to the host)
    assert {"conv3", "down", "add"} <= set(convs[0]["origin"])
    passes = [p for p in pipeline_for(_config()) if p.name != "fuse-shortcut-convs"]
    apart, apart_sections = build_model(model, _config(), passes=passes)
    assert len([s for s in apart["steps"] if s["template"] == "conv"]) == 3
    got = _run(fused, sections, feed, "cpu")
    want = _run(apart, apart_sections, feed, "cpu")
    assert np.unique(want).size > 20
    np.testing.assert_array_equal(got, want)


def test_a_block_summing_over_more_channels_stays_apart(tmp_path, monkeypatch):
    """Both convs' input channels together over `shortcut_sums.MAX_K` (ResNet-50's layer2
    pair, 128 + 256: slower fused on an H100): three conv steps, as without the pass."""
    from ember.codegen import shortcut_sums

    monkeypatch.setitem(CASES, "layer2", ([2, 4, 4, 128], [2, 7, 7, 256], 64, 2))
    assert 128 + 256 > shortcut_sums.MAX_K
    model, _ = _qdq_block(tmp_path, "layer2", seed=5)
    manifest, _ = build_model(model, _config())
    convs = [s for s in manifest["steps"] if s["template"] == "conv"]
    assert len(convs) == 3 and not any(s["params"].get("shortcut") for s in convs)


@needs_gxx
def test_the_qdq_blocks_fused_step_is_exact_on_emulated_warps(tmp_path):
    """The fused step as the builder leaves it (its ReLU a table after the requantize: the
    whole epilogue in the fragments), every tactic against the CPU executor."""
    model, _ = _qdq_block(tmp_path, "stride2", seed=8)
    manifest, _ = build_model(model, _config())
    (step,) = [s for s in manifest["steps"] if (s["params"].get("shortcut") or {}).get("sums")]
    params = {k: v for k, v in step["params"].items() if k != "tactic"}
    assert params["epilogue"]["ops"][-1]["fn"] == "lookup"
    rng = np.random.default_rng(9)
    epilogue = params["epilogue"]
    inputs = [_int8(rng, shape) for shape in params["in_shapes"]]
    for shape, dtype in zip(epilogue["in_shapes"], epilogue["in_dtypes"], strict=True):
        if dtype == "int8":
            inputs.append(_int8(rng, shape))
        elif int(np.prod(shape)) == 1:  # a dequantize's scale over a quantize's
            inputs.append(np.array(rng.uniform(0.5, 1.0), np.float32).reshape(shape))
        else:  # per-channel scales and biases of the sums
            inputs.append((rng.random(shape) * 2e-3 + 5e-4).astype(np.float32))
    (want,) = KERNELS["conv"](inputs, params)
    assert np.unique(want).size > 64 and 0 < (want == 0).mean() < 0.9
    for tactic in conv.tactics(params, "sm_90"):
        spec = conv.emit("k", {**params, "tactic": tactic})
        got = simt_emulator.run(spec, "k", inputs, want.shape, np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("name", list(CASES))
def test_a_qdq_block_runs_on_the_gpu_as_on_the_cpu(name, tmp_path):
    model, feed = _qdq_block(tmp_path, name, seed=6)
    config = _config()
    from ember.compiler.builder import detect_arch

    config.target_arch = detect_arch()
    manifest, sections = build_model(model, config)
    assert any((s["params"].get("shortcut") or {}).get("sums") == 3 for s in manifest["steps"])
    np.testing.assert_array_equal(_run(manifest, sections, feed, "cuda"),
                                  _run(manifest, sections, feed, "cpu"))
