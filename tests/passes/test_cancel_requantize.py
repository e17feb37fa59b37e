"""cancel-requantize: the identity it relies on, checked over every int8/uint8 value and scales
across its range in IEEE float32, and a QDQ model's plan computing the same bits with and
without the pass (its dequantize -> relu -> quantize pairs gone from the epilogues)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ember.compiler.builder import BuilderConfig, build_model
from ember.passes import cancel_requantize
from ember.passes.cancel_requantize import SCALE_RANGE, CancelRequantize
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.passes.test_fold_qdq import _projection, _quantized, _residual


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
@pytest.mark.parametrize("make", [_residual, _projection], ids=["residual", "projection"])
def test_a_qdq_block_gives_the_same_bits_without_its_requantize_pairs(tmp_path, arch, make,
                                                                      monkeypatch) -> None:
    _, qdq, shapes = _quantized(tmp_path, make, symmetric=True)
    feed = {"x": np.random.default_rng(8).standard_normal(shapes["x"]).astype(np.float32)}
    config = BuilderConfig(target_arch=arch, autotune=False)

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
