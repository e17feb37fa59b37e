"""The manifest's typed schema (runtime/manifest_schema.py) and the packer (compiler/pack.py):
every plan the builder makes round-trips through the schema byte for byte, a malformed field is a
PlanError naming it, and a small kernel-level module packs into the expected manifest text."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.models import light_model_path
from ember.compiler.pack import pack
from ember.dialects import ember_context
from ember.dialects.weights import parse_module
from ember.errors import EmberError, PlanError, UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.manifest_schema import CudaLaunch, Manifest
from ember.runtime.plan import plan_bytes, read_plan
from tests.runtime.test_dynamic_shapes import BERT_DYNAMIC_SEQ, WIDE_SEQ_PROFILE, _profile

_BUILT: dict[str, tuple[dict, dict]] = {}


def _built(which: str) -> tuple[dict, dict]:
    """The builder's (manifest, sections), built once per module."""
    if which not in _BUILT:
        if which.startswith("resnet50"):
            arch = "sm_90" if which.endswith("sm_90") else None
            _BUILT[which] = build_model(str(light_model_path("resnet50")),
                                        BuilderConfig(target_arch=arch))
        else:  # two symbols, a profile, kernels with small-shape variants
            _BUILT[which] = build_model(str(BERT_DYNAMIC_SEQ), BuilderConfig(
                target_arch="sm_90", autotune=False, profiles=[_profile(**WIDE_SEQ_PROFILE)]))
    return _BUILT[which]


@pytest.mark.parametrize("which", ["resnet50-cpu", "resnet50-sm_90", "bert_dynamic-sm_90"])
def test_every_built_manifest_round_trips(which):
    manifest, sections = _built(which)
    schema = Manifest.from_json(manifest)
    assert schema.to_json() == manifest
    assert json.dumps(schema.to_json()) == json.dumps(manifest)  # key order too
    assert Manifest.from_json(schema.to_json()) == schema
    assert plan_bytes(schema.to_json(), sections) == plan_bytes(manifest, sections)
    # what the loader reads back (with the container's section table) is the same schema
    with read_plan(plan_bytes(manifest, sections)) as plan:
        assert Manifest.from_json(plan.manifest) == schema
    if which != "resnet50-cpu":
        assert schema.target.device == "cuda" and schema.target.arch == "sm_90"
        assert schema.kernels and all(s.cuda is not None for s in schema.steps)
    if which == "bert_dynamic-sm_90":
        assert len(schema.symbols) == 2 and schema.profiles
        assert any(len(s.cuda.variants or ()) > 1 for s in schema.steps)


def test_the_schema_hands_out_copies():
    manifest, _ = _built("resnet50-cpu")
    schema = Manifest.from_json(manifest)
    out = schema.to_json()
    out["steps"][0]["params"]["mutated"] = True
    out["buffers"][0]["shape"].append(7)
    assert schema.to_json() == manifest


def _mutated(which: str, edit) -> dict:
    manifest = copy.deepcopy(_built(which)[0])
    edit(manifest)
    return manifest


def _first_launch(m: dict) -> dict:
    return next(s["cuda"] for s in m["steps"] if "cuda" in s)


def _first_variant(m: dict) -> dict:
    return next(s["cuda"]["variants"][0] for s in m["steps"] if "variants" in s.get("cuda", {}))


@pytest.mark.parametrize("which, edit, message", [
    ("resnet50-cpu", lambda m: m.update(extra=1), r"unknown key\(s\) \['extra'\]"),
    ("resnet50-cpu", lambda m: m["steps"][0].update(speed="fast"), r"step 'conv_0'.*'speed'"),
    ("resnet50-cpu", lambda m: m["target"].update(device="gpu"), "target 'device'"),
    ("resnet50-cpu", lambda m: m["buffers"][1].update(base=0), "buffer #1 .* has a base"),
    ("resnet50-cpu", lambda m: m["inputs"][0].update(layout="NHWC"),
     r"an entry of 'inputs' has unknown key"),
    ("resnet50-cpu", lambda m: m.update(activation_bytes=-1), "activation_bytes"),
    ("resnet50-cpu", lambda m: m.update(ember_version=3), "ember_version"),
    ("resnet50-sm_90", lambda m: m["target"].pop("arch"), "'cuda' target has no 'arch'"),
    ("resnet50-sm_90", lambda m: m["target"].update(nvrtc=[12]), "target 'nvrtc'"),
    ("resnet50-sm_90", lambda m: m["kernels"][0].update(ptx_size=-4), "ptx_size"),
    ("resnet50-sm_90", lambda m: m["kernels"][0].update(name="no such"), "bad name"),
    ("resnet50-sm_90", lambda m: m["kernels"].append(dict(m["kernels"][0])), "appears twice"),
    ("resnet50-sm_90", lambda m: m["kernels"][0].pop("cubin_offset"), "lacks"),
    ("resnet50-sm_90", lambda m: m.update(autotune={"steps": 1, "won": 2}), "'autotune'"),
    ("resnet50-sm_90", lambda m: m.update(autotune={"steps": -1}), "autotune's 'steps'"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(kernel="gone"),
     "launches kernel 'gone'"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(grid=[1, 2, 3, 4]), "grid and block"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(grid=[["min", 2], 1, 1]),
     "grid has a bad expression"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(block=[0, 1, 1]), "block"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(shared=1.5), "shared"),
    ("resnet50-sm_90", lambda m: _first_launch(m).pop("counters"), "'counters'"),
    ("resnet50-sm_90", lambda m: _first_launch(m).pop("block"), "cuda launch lacks"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(pdl=False), "pdl must be true"),
    ("resnet50-sm_90", lambda m: _first_launch(m).update(pdl=1), "pdl must be true"),
    ("resnet50-sm_90", lambda m: m["steps"][0].update(device="gpu"), "device must be 'cpu'"),
    ("resnet50-sm_90", lambda m: m["steps"][0].update(fallback=1), "fallback"),
    ("bert_dynamic-sm_90", lambda m: _first_variant(m).pop("when"), "variant #0 .* lacks"),
    ("bert_dynamic-sm_90", lambda m: _first_variant(m).update(when={"S": 0}), "'when'"),
    ("bert_dynamic-sm_90", lambda m: _first_launch(m).update(sizes=["nope"]),
     "unknown symbols"),
    ("bert_dynamic-sm_90", lambda m: m["symbols"].update(batch=[4, 1, 8]), "bad range"),
])
def test_malformed_fields_name_themselves(which, edit, message):
    with pytest.raises(PlanError, match=message):
        Manifest.from_json(_mutated(which, edit))


def test_the_loader_validates_through_the_schema():
    manifest, sections = _built("resnet50-cpu")
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    assert engine.schema == Manifest.from_json(manifest)
    bad = _mutated("resnet50-cpu", lambda m: m["steps"][0].update(speed="fast"))
    with pytest.raises(PlanError, match="'speed'"):
        Runtime("cpu").deserialize_cuda_engine(plan_bytes(bad, sections))


_MATMUL_RELU = """
builtin.module {
  func.func @main(%x: tensor<2x3xf32> {ember.name = "x"}, %w: tensor<3x4xf32> {ember.name = "w"})
      -> (tensor<2x4xf32> {ember.name = "y"})
      attributes {ember.arena_bytes = 512 : i64, ember.activation_bytes = 64 : i64} {
    %y = kernel.launch "matmul"(%x, %w) {params = {
        in_shapes = [array<i64: 2, 3>, array<i64: 3, 4>], in_dtypes = ["float32", "float32"],
        out_shapes = [array<i64: 2, 4>], out_dtypes = ["float32"]}, arena = array<i64: 0>}
        : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
    %z = kernel.elementwise(%y) attributes {arena = array<i64: 256>}
        : (tensor<2x4xf32>) -> tensor<2x4xf32> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "relu" %0 : (f32) -> f32
      kernel.yield %1 : f32
    }
    func.return %z : tensor<2x4xf32>
  }
}
"""

_MATMUL_RELU_MANIFEST = """{
 "ember_version": "VERSION",
 "target": {"device": "any"},
 "inputs": [
  {"name": "x", "dtype": "float32", "shape": [2, 3], "format": "", "buffer": 0},
  {"name": "w", "dtype": "float32", "shape": [3, 4], "format": "", "buffer": 1}
 ],
 "outputs": [{"name": "y", "dtype": "float32", "shape": [2, 4], "format": "", "buffer": 3}],
 "buffers": [
  {"id": 0, "kind": "input", "dtype": "float32", "shape": [2, 3], "name": "x"},
  {"id": 1, "kind": "input", "dtype": "float32", "shape": [3, 4], "name": "w"},
  {"id": 2, "kind": "arena", "dtype": "float32", "shape": [2, 4], "offset": 0},
  {"id": 3, "kind": "arena", "dtype": "float32", "shape": [2, 4], "offset": 256}
 ],
 "arena_bytes": 512,
 "activation_bytes": 64,
 "weights_bytes": 0,
 "steps": [
  {"name": "matmul_0", "template": "matmul",
   "params": {"in_shapes": [[2, 3], [3, 4]], "in_dtypes": ["float32", "float32"],
              "out_shapes": [[2, 4]], "out_dtypes": ["float32"]},
   "inputs": [0, 1], "outputs": [2], "origin": []},
  {"name": "elementwise_1", "template": "elementwise",
   "params": {"region": {"ops": [{"fn": "relu", "args": [0], "dtype": "float32"}], "result": 1},
              "in_shapes": [[2, 4]], "in_dtypes": ["float32"],
              "out_shapes": [[2, 4]], "out_dtypes": ["float32"]},
   "inputs": [2], "outputs": [3], "origin": []}
 ]
}"""


def _module(text: str):
    return parse_module(ember_context(), text)


def test_the_plan_builder_builds_the_schema():
    from ember.compiler.plan_builder import build_plan
    from ember.runtime.manifest_schema import Target

    manifest, sections = build_plan(_module(_MATMUL_RELU))
    assert isinstance(manifest, Manifest) and manifest.target == Target("any")
    assert [b.offset for b in manifest.buffers] == [None, None, 0, 256]  # plan-memory's
    assert manifest.steps[1].params["region"]["ops"][0]["fn"] == "relu"
    assert Manifest.from_json(manifest.to_json(),
                              weights_bytes=len(sections["weights"])) == manifest


def test_pack_kernel_ir_to_manifest_text():
    import ember

    packed = pack(_module(_MATMUL_RELU))
    expected = json.loads(_MATMUL_RELU_MANIFEST.replace("VERSION", ember.__version__))
    assert json.dumps(packed.manifest.to_json()) == json.dumps(expected)
    assert dict(packed.sections) == {"weights": b""}
    # the plan runs: relu(x @ w)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    engine = Runtime("cpu").deserialize_cuda_engine(packed.plan_bytes())
    out = engine.create_execution_context().execute(
        {"x": x.astype(np.float32), "w": w.astype(np.float32)})
    np.testing.assert_allclose(out["y"], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-6)


_ATTENTION_256 = """
builtin.module {
  func.func @main(%q: tensor<1x2x256xf32> {ember.name = "q"}, %k: tensor<1x3x256xf32>
      {ember.name = "k"}, %v: tensor<1x3x256xf32> {ember.name = "v"})
      -> (tensor<1x2x256xf32> {ember.name = "r"}) {
    %y = nn.attention %q, %k, %v {num_heads = 1 : i64, head_dim = 256 : i64,
        scale = 6.250000e-02 : f64}
        : (tensor<1x2x256xf32>, tensor<1x3x256xf32>, tensor<1x3x256xf32>) -> tensor<1x2x256xf32>
    %r = nn.unary "relu" %y : tensor<1x2x256xf32> -> tensor<1x2x256xf32>
    func.return %r : tensor<1x2x256xf32>
  }
}
"""


def test_pack_cuda_records_and_host_fallback():
    """NVRTC compiles without a GPU: the packer compiles the kernels emit-cuda recorded and puts
    their records into the schema (a step its template cannot emit runs on the host, with the
    reason); without emit-cuda's records it refuses to pack for a GPU."""
    from ember.compiler.pipeline import run_passes

    module = _module(_ATTENTION_256)
    run_passes(module, ["convert-nn-to-kernel", "plan-memory"])
    with pytest.raises(EmberError, match="step 'attention_0' has no CUDA kernel: run emit-cuda"):
        pack(module, target_arch="sm_90")
    run_passes(module, ["emit-cuda"])
    packed = pack(module, target_arch="sm_90")
    attention, relu = packed.manifest.steps
    assert (attention.device, attention.cuda) == ("cpu", None)
    assert "256" in attention.fallback
    assert relu.device is None and relu.fallback is None
    assert isinstance(relu.cuda, CudaLaunch) and relu.cuda.kernel.startswith("elementwise_")
    assert [k.name for k in packed.manifest.kernels] == [relu.cuda.kernel]
    assert packed.manifest.target.to_json()["arch"] == "sm_90"
    assert set(packed.sections) == {"weights", "cubin", "ptx", "cuda_source"}
    kernel = packed.manifest.kernels[0]
    source = packed.sections["cuda_source"][kernel.source_offset:][:kernel.source_size]
    assert source.startswith(b"// elementwise [relu]") and f" {kernel.name}(".encode() in source
    assert Manifest.from_json(packed.manifest.to_json()) == packed.manifest
    with pytest.raises(UnsupportedError):
        pack(module, target_arch="sm_90", cpu_fallback=False)
