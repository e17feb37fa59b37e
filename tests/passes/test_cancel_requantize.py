"""cancel-requantize: the identity it relies on, checked over every int8/uint8 value and scales
across its range in IEEE float32, and a QDQ model's plan computing the same bits with and
without the pass (its dequantize -> relu -> quantize pairs gone from the epilogues)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ember.compiler.builder import BuilderConfig, build_model
from ember.passes import cancel_requantize, tabulate_int8_chains
from ember.passes.cancel_requantize import SCALE_RANGE, CancelRequantize
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.passes.test_fold_qdq import _init, _projection, _quantized, _residual


def _relu6() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """conv -> Clip(0, 6) twice (MobileNetV2's ReLU6): the quantizer's DQ -> Clip -> Q pairs."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper

    rng = np.random.default_rng(6)
    bounds = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0),
                                                                               ("hi", 6.0))]
    nodes = [h.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
             h.make_node("Clip", ["c0", "lo", "hi"], ["r0"]),
             h.make_node("Conv", ["r0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Clip", ["c1", "lo", "hi"], ["y"])]
    weights = [_init(rng, "w0", 32, 16, 3, 3, scale=1.0), _init(rng, "b0", 32),
               _init(rng, "w1", 32, 32, 3, 3, scale=0.5), _init(rng, "b1", 32), *bounds]
    graph = h.make_graph(nodes, "relu6", [h.make_tensor_value_info("x", T.FLOAT, [2, 16, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 32, 8, 8])], weights)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (2, 16, 8, 8)}


def _scales(count: int) -> np.ndarray:
    """float32 scales log-uniform over SCALE_RANGE, its ends, and ones a quantizer makes."""
    lo, hi = np.log2(SCALE_RANGE[0]), np.log2(SCALE_RANGE[1])
    rng = np.random.default_rng(0)
    drawn = np.exp2(rng.uniform(lo, hi, count))
    usual = rng.uniform(1e-4, 1.0, count) / 127
    return np.concatenate([drawn, usual, SCALE_RANGE, [0.1, 1 / 3, 1.0, 1 / 127]]
                          ).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_round_of_relu_of_q_times_s_over_s_is_relu_of_q(dtype) -> None:
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1).astype(np.float32)[:, None]
    s = _scales(20000)[None, :]
    assert s.min() >= SCALE_RANGE[0] and s.max() <= SCALE_RANGE[1]
    product = q * s  # float32 products and quotients, each rounded once (IEEE)
    assert product.dtype == np.float32
    assert np.array_equal(np.rint(np.maximum(product, 0) / s), np.maximum(q, 0) + 0 * s)
    assert np.array_equal(np.rint(product / s), q + 0 * s)


@pytest.mark.parametrize("arch", [None, "sm_90"], ids=["cpu", "sm90"])
@pytest.mark.parametrize("make", [_residual, _projection, _relu6],
                         ids=["residual", "projection", "relu6"])
def test_a_qdq_block_gives_the_same_bits_without_its_requantize_pairs(tmp_path, arch, make,
                                                                      monkeypatch) -> None:
    _, qdq, shapes = _quantized(tmp_path, make, symmetric=True)
    feed = {"x": np.random.default_rng(8).standard_normal(shapes["x"]).astype(np.float32)}
    config = BuilderConfig(target_arch=arch, autotune=False)
    # GPU builds tabulate what is left of such chains next (tabulate-int8-chains): kept out,
    # so that the divisions counted are this pass's
    monkeypatch.setattr(tabulate_int8_chains, "MIN_OPS", 10 ** 6)

    def run(manifest, sections):
        engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
        return engine.create_execution_context().execute(feed)["y"]

    def divisions(manifest) -> int:
        return sum(op["fn"] == "div" for s in manifest["steps"]
                   for op in [*(s["params"].get("epilogue") or {}).get("ops", []),
                              *(s["params"].get("region") or {}).get("ops", [])])

    manifest, sections = build_model(onnx.load(qdq), config)
    with monkeypatch.context() as m:
        m.setattr(CancelRequantize, "apply", lambda self, ctx, module: None)
        kept, kept_sections = build_model(onnx.load(qdq), config)
    assert divisions(manifest) < divisions(kept)
    assert run(manifest, sections).tobytes() == run(kept, kept_sections).tobytes()


def test_the_scale_must_be_a_constant_in_range() -> None:
    from ember.dialects.weights import WeightStore
    from ember.passes.convert_onnx_to_nn.builder import make_constant

    store = WeightStore()
    for value, ok in ((0.02, True), (2.0 ** -101, False), (-0.5, False), (2.0 ** 101, False),
                      ([0.5, 0.0], False), ([0.5, 0.25], True)):
        const = make_constant(np.array(value, np.float32), store)
        assert cancel_requantize._scale_ok(const.results[0], store) is ok, value
    assert not cancel_requantize._scale_ok(None, store)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("bounds", [(0.0, 6.0), (-1.0, 0.7), (0.0, 1e9)])
def test_clip_bounds_are_what_every_integer_gives(dtype, bounds) -> None:
    """`clip_bounds`' table against the same arithmetic in numpy, over quantizer-like scales:
    round(clip(q * s, lo, hi) / s) is clip(q, A, B) with the A, B it returns."""
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1).astype(np.float32)
    lo, hi = np.float32(bounds[0]), np.float32(bounds[1])
    for s in _scales(200)[200:]:  # the quantizer-like ones and the fixed ones
        found = cancel_requantize.clip_bounds(np.dtype(dtype), np.dtype(np.float32), float(s),
                                              *bounds)
        with np.errstate(all="ignore"):
            want = np.rint(np.clip(q * s, lo, hi) / s)
        assert found is not None, s
        assert np.array_equal(np.clip(q, *found), want), (s, found)
    # a table that is no clip of q: the scale's quotient rounds off the integers (s = 0)
    assert cancel_requantize.clip_bounds(np.dtype(dtype), np.dtype(np.float32), 0.0,
                                         *bounds) is None
