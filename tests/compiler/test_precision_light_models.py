"""ONNX's light models built in FP16 and BF16 on the CPU executor, against the FP32 build.

The packaged light models fill every weight with one constant (ConstantOfShape), so their
activations grow to ~1e10 (past FP16's 65504: an FP16 build of five of them overflows, as it
would in any FP16 engine) and their outputs are a near-uniform softmax that hides any error.
`realistic_weights` gives each the random weights of an initialized network instead (conv / gemm
weights N(0, 1/fan_in), small biases, BatchNorm near identity), and the test checks the logits
(the softmax's input, a second output) as well as the probabilities.

Three models run by default (~25 s on 2 cores); EMBER_ALL_LIGHT_PRECISION=1 runs all nine (~5
minutes: vgg19 alone takes 2). On a GPU (`cuda` marker) all nine run in FP16, BF16 and TF32
against the CPU executor's FP32.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model, detect_arch
from ember.compiler.models import LIGHT_MODELS, light_model_case
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")

DEFAULT = ("squeezenet", "shufflenet", "inception_v1")
MODELS = LIGHT_MODELS if os.environ.get("EMBER_ALL_LIGHT_PRECISION") else DEFAULT


def realistic_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """`model` with each ConstantOfShape weight of a Conv / Gemm / MatMul / BatchNormalization
    replaced by seeded random values in an initialized network's range; the logits (the input
    of a final Softmax) become a second output."""
    rng = np.random.default_rng(seed)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    users: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            users.setdefault(name, []).append((node.op_type, i))
    keep, weights = [], []
    for node in graph.node:
        kinds = set(users.get(node.output[0], [])) if node.output else set()
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits or len(kinds) != 1:
            keep.append(node)
            continue
        shape = tuple(int(d) for d in inits[node.input[0]])
        ((op, i),) = kinds
        if op in ("Conv", "Gemm", "MatMul") and i == 1 and len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if op == "Conv" else shape[0]
            array = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif op in ("Conv", "Gemm") and i == 2:
            array = rng.standard_normal(shape) * 0.05
        elif op == "BatchNormalization":
            array = {1: 1 + 0.1 * rng.standard_normal(shape), 2: 0.1 * rng.standard_normal(shape),
                     3: 0.1 * rng.standard_normal(shape), 4: 1 + 0.2 * rng.random(shape)}[i]
        else:
            keep.append(node)
            continue
        weights.append(numpy_helper.from_array(array.astype(np.float32), node.output[0]))
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(weights)
    last = graph.node[-1]
    if last.op_type == "Softmax":
        logits = onnx.ValueInfoProto(name=last.input[0])
        logits.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        graph.output.append(logits)
    return model


def _run(model: onnx.ModelProto, flags: BuilderFlag, inputs: dict,
         arch: str | None = None) -> dict[str, np.ndarray]:
    """Build with `flags` (for `arch`'s GPU, cost-model tactics, or a CPU plan) and run."""
    config = BuilderConfig(flags=flags, target_arch=arch, autotune=False if arch else None)
    manifest, sections = build_model(model, config)
    engine = Runtime(device="cuda" if arch else "cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections))
    assert engine.device == ("cuda" if arch else "cpu")
    return engine(inputs)


def _rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _check(name: str, flags: tuple[BuilderFlag, ...], arch: str | None = None) -> None:
    """Each of `flags` against the CPU executor's FP32, output by output."""
    path, inputs, _ = light_model_case(name)
    model = realistic_weights(onnx.load(str(path)))
    want = _run(model, 0, inputs)
    for flag in flags:
        got = _run(model, flag, inputs, arch)
        errors = {k: _rel_l2(got[k], want[k]) for k in want}
        assert all(got[k].dtype == want[k].dtype for k in want)
        first, *logits = list(want)  # the model's output, then the logits (if it ends in softmax)
        for k in [first, *logits]:
            # BF16 keeps 8 mantissa bits: logits of |x| ~ 20 stored in BF16 move each
            # probability by up to ~4% (exp of a 0.04 error), inherent in BF16 storage
            bound = 5e-2 if flag == BuilderFlag.BF16 and logits and k == first else 1e-2
            assert errors[k] < bound, (flag.name, k, errors)
            assert errors[k] > 0 or arch, (flag.name, k, errors)  # the CPU rounds visibly


@pytest.mark.parametrize("name", MODELS)
def test_light_model_in_fp16_and_bf16(name):
    _check(name, (BuilderFlag.FP16, BuilderFlag.BF16))


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_in_fp16_bf16_and_tf32_on_the_gpu(name):
    _check(name, (BuilderFlag.FP16, BuilderFlag.BF16, BuilderFlag.TF32), detect_arch())
