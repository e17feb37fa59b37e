"""Property tests: damaged or hostile plans raise PlanError and nothing else."""

from __future__ import annotations

import copy
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
from ember.errors import EmberError, PlanError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.inspector import LayerInformationFormat
from ember.runtime.logger import Logger, Severity
from ember.runtime.plan import (
    CHECKSUM_SIZE,
    FORMAT_VERSION,
    HEADER_SIZE,
    checksum_of,
    plan_bytes,
    read_plan,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
manifests = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k != "sections"), json_values, max_size=5
)
section_values = st.binary(max_size=300) | st.binary(max_size=160).map(
    lambda raw: np.frombuffer(raw[: len(raw) // 4 * 4], dtype=np.float32)
)
section_maps = st.dictionaries(st.text(min_size=1, max_size=10), section_values, max_size=4)


@st.composite
def plans(draw) -> bytes:
    return plan_bytes(draw(manifests), draw(section_maps))


def check_valid(plan) -> None:
    """Touch everything a loader would, so latent errors surface as exceptions."""
    for name in plan.section_names:
        plan.section(name).tobytes()
    plan.close()


@FAST
@given(plans(), st.data())
def test_round_trip(data, draw):
    with read_plan(data) as plan:
        assert (
            plan_bytes(
                {k: v for k, v in plan.manifest.items() if k != "sections"},
                {n: plan.section(n) for n in plan.section_names},
            )
            == data
        )


@FAST
@given(plans(), st.data())
def test_truncation_always_raises_plan_error(data, draw):
    n = draw.draw(st.integers(0, len(data) - 1))
    try:
        read_plan(data[:n])
    except PlanError as e:
        assert "truncated" in str(e) or "bad magic" in str(e) or n < 8
    else:
        raise AssertionError(f"truncation to {n} of {len(data)} bytes was accepted")


@FAST
@given(plans(), st.data())
def test_bit_flips_always_raise_plan_error(data, draw):
    flips = draw.draw(
        st.lists(
            st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=4
        )
    )
    damaged = bytearray(data)
    for position, bit in flips:
        damaged[position] ^= 1 << bit
    if bytes(damaged) == data:
        read_plan(bytes(damaged)).close()
        return
    try:
        read_plan(bytes(damaged))
    except PlanError:
        pass
    else:
        raise AssertionError(f"flips {flips} went unnoticed")


def reseal(damaged: bytearray) -> bytes:
    body = damaged[:-CHECKSUM_SIZE]
    if len(body) >= HEADER_SIZE:
        struct.pack_into("<Q", body, 52, len(body) + CHECKSUM_SIZE)
    version = struct.unpack_from("<H", body, 8)[0] if len(body) >= 10 else FORMAT_VERSION
    return bytes(body) + checksum_of(body, version)


@FAST
@given(plans(), st.data())
def test_hostile_resealed_plans_never_crash(data, draw):
    """Damage the header or manifest and fix the checksum, as an attacker would."""
    (mlen,) = struct.unpack_from("<Q", data, 44)
    end = min(len(data) - CHECKSUM_SIZE, HEADER_SIZE + mlen)
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(8, end - 1))
        damaged[position] = draw.draw(st.integers(0, 255))
    try:
        plan = read_plan(reseal(damaged))
    except PlanError:
        return
    check_valid(plan)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data):
    for candidate in (data, b"EMBERPLN" + data):
        try:
            read_plan(candidate)
        except PlanError:
            continue
        raise AssertionError("random bytes were accepted as a plan")


# --------------------------------------------------------------------------------------------
# Hostile manifests in well-formed plans: the checksum recomputed, as an attacker would


def _model():
    import onnx
    from onnx import TensorProto, helper

    w = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("Relu", ["m"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["s"], name="sm"),
             helper.make_node("Add", ["s", "x"], ["a"], name="add"),
             helper.make_node("Transpose", ["a"], ["y"], perm=[1, 0], name="tr")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         [4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 4])],
                              [onnx.numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _built(arch):
    from ember.compiler.builder import BuilderConfig, build_model

    manifest, sections = build_model(_model(), BuilderConfig(target_arch=arch, autotune=False))
    return manifest, {k: bytes(memoryview(v).cast("B")) if not isinstance(v, np.ndarray)
                      else v.tobytes() for k, v in sections.items()}


BUILT = {"cpu": _built(None), "sm_90": _built("sm_90")}
FEEDS = {"x": np.linspace(-2, 2, 32, dtype=np.float32).reshape(4, 8)}
DEEP = "__ember_deep_"  # a string replaced by that many nested lists in the manifest's text


def forge_plan(manifest: dict, sections: dict[str, bytes]) -> bytes:
    """A plan laid out as runtime/plan.py lays one out (header, JSON manifest, 256-aligned
    sections), its manifest written as given (with DEEP markers expanded to nesting no JSON
    encoder writes) and its checksum recomputed: the current format's (`checksum_of`), so the
    hostile manifests go through the reader the plans of today take."""
    text = json.dumps(manifest, allow_nan=True)
    while DEEP in text:
        start = text.index(f'"{DEEP}')
        end = text.index('"', start + 1) + 1
        depth = int(text[start + 1 + len(DEEP):end - 1])
        text = text[:start] + "[" * depth + "]" * depth + text[end:]
    body = text.encode()
    data_start = -(-(HEADER_SIZE + len(body) + 4096) // 256) * 256
    table, cursor = {}, data_start
    for name, payload in sections.items():
        table[name] = {"offset": cursor, "size": len(payload)}
        cursor = -(-(cursor + len(payload)) // 256) * 256
    body = body[:-1] + b', "sections": ' + json.dumps(table).encode() + b"}"
    assert HEADER_SIZE + len(body) <= data_start
    out = bytearray(HEADER_SIZE) + body + bytes(data_start - HEADER_SIZE - len(body))
    for name, payload in sections.items():
        out += bytes(table[name]["offset"] - len(out)) + payload
    struct.pack_into("<8sHH32sQQI", out, 0, b"EMBERPLN", FORMAT_VERSION, 0,
                     ember.__version__.encode(), len(body), len(out) + CHECKSUM_SIZE, 0)
    return bytes(out) + checksum_of(out, FORMAT_VERSION)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*path, i))


hostile_scalars = (
    st.sampled_from([-1, 0, 1, 3, 255, 256, 2**31, 2**62, 2**63, -(2**63), 10**30, True, False,
                     None, "", "N", "N*N", "x", "float32", "float16", "int64", "bool", "O",
                     "NCHW", "NHWC", "sm_90", "cpu", "cuda", "relu", "__import__", 1e308,
                     -0.0, 0.5, {"float": "inf"}, {"float": "nan"}, {"float": 3}, [], {},
                     [-1], [0] * 70, ["N"], [[4, 8]], ["float32"], "9" * 5000])
    | st.integers(-300, 300)
)
hostile_values = hostile_scalars | st.integers(30, 3000).map(lambda d: f"{DEEP}{d}") | \
    st.recursive(hostile_scalars, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.sampled_from(["name", "shape", "dtype", "kind", "offset",
                                                    "buffer", "float", "ops", "args"]),
                                   inner, max_size=3), max_leaves=6)


@st.composite
def hostile_plans(draw):
    arch = draw(st.sampled_from(sorted(BUILT)))
    manifest, sections = BUILT[arch]
    manifest = copy.deepcopy({k: v for k, v in manifest.items() if k != "sections"})
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(manifest) if p]
        path = draw(st.sampled_from(paths))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "nudge",
                                       "duplicate"]))
        old = parent[path[-1]]
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "nudge" and type(old) is int:
            parent[path[-1]] = old + draw(st.sampled_from([-257, -1, 1, 256, 1 << 40]))
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(old))
        else:
            parent[path[-1]] = copy.deepcopy(draw(hostile_values))  # sampled objects are shared
    return forge_plan(manifest, sections)


SILENT = Logger(Severity.INTERNAL_ERROR)


def use_plan(data: bytes) -> None:
    """Everything a user does with a plan: load it, query its I/O, inspect it, run it."""
    engine = Runtime(SILENT, device="cpu").deserialize_cuda_engine(data)
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        engine.get_tensor_shape(name)
        engine.get_tensor_dtype(name)
        engine.get_tensor_format(name)
    engine.device_memory_size  # noqa: B018
    engine.create_engine_inspector().get_engine_information(LayerInformationFormat.JSON)
    engine(FEEDS)


def test_forged_plans_are_the_writers_plans():
    """forge_plan lays a plan out as the writer does: the unmutated plans load and run."""
    for manifest, sections in BUILT.values():
        plain = {k: v for k, v in manifest.items() if k != "sections"}
        use_plan(forge_plan(plain, sections))
        with read_plan(forge_plan(plain, sections)) as plan:
            assert {k: v for k, v in plan.manifest.items() if k != "sections"} == plain


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_plans())
def test_hostile_manifests_raise_ember_errors_only(data):
    """Load, query, inspect and run a plan whose manifest was mutated anywhere (values
    replaced by hostile ones, nesting deeper than any decoder takes, keys deleted, entries
    duplicated): an ember error or a working engine, never another exception or a crash."""
    try:
        use_plan(data)
    except EmberError:
        pass


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
def test_an_arena_larger_than_the_gpu_is_a_plan_error():
    """The bound is the GPU's memory on a CUDA engine: refused before any allocation."""
    from ember.runtime.cuda import default_device

    manifest, sections = BUILT["sm_90"]
    plain = {k: v for k, v in manifest.items() if k != "sections"}
    plain["arena_bytes"] = default_device().total_memory + 1
    with pytest.raises(PlanError, match="more than the GPU's"):
        Runtime(SILENT, device="cuda").deserialize_cuda_engine(forge_plan(plain, sections))
