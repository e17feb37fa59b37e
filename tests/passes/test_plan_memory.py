"""plan-memory: each activation's arena offset on its kernel op, the arena's size on the function;
the offsets are `plan_arena`'s over the lifetimes read back from the packed plan (what the plan
builder computed before the pass existed), no two live buffers share a byte, and the packer takes
them as recorded (refusing a module without a plan, or with a stale one)."""

from __future__ import annotations

import io
import math

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, i64

from ember.compiler.builder import BuilderConfig, _apply_profiles, build_model, pipeline_for
from ember.compiler.models import light_model_path
from ember.compiler.onnx_importer import import_onnx, load_model
from ember.compiler.opt import opt
from ember.compiler.pack import pack
from ember.compiler.pipeline import run_passes
from ember.dialects.kernel import ElementwiseOp, LaunchOp
from ember.dialects.symbol_ranges import set_symbol_ranges
from ember.errors import EmberError
from ember.passes.plan_memory import (
    ACTIVATION_BYTES,
    ALIGNMENT,
    ARENA_BYTES,
    Interval,
    arena_conflicts,
    plan_arena,
)
from ember.runtime.symbolic import dim_value
from tests.runtime.test_dynamic_shapes import BERT_DYNAMIC_SEQ, SEQ_PROFILE, _profile


def _config(case: str) -> tuple[str, BuilderConfig]:
    if case == "resnet50-cpu":
        return str(light_model_path("resnet50")), BuilderConfig()
    if case == "resnet50-sm90":
        return str(light_model_path("resnet50")), BuilderConfig(target_arch="sm_90",
                                                                 autotune=False)
    assert case == "bert-dynamic-seq-sm90"
    return str(BERT_DYNAMIC_SEQ), BuilderConfig(target_arch="sm_90", autotune=False,
                                                profiles=[_profile(**SEQ_PROFILE)])


def _planned(path: str, config: BuilderConfig):
    """The final module of a build (the passes build_model runs) and the plan's symbols."""
    proto, _ = load_model(path)
    proto, symbols = _apply_profiles(proto, config)
    module = import_onnx(proto)
    if symbols:
        set_symbol_ranges(module, symbols)
    run_passes(module, pipeline_for(config))
    return module, symbols


def _plan_intervals(manifest: dict) -> list[Interval]:
    """Each arena buffer's lifetime and size, from the packed plan alone: written by the step
    that outputs it, read by every step that takes it or a view of it, a graph output to the
    end; sized at the symbols' max."""
    buffers = {b["id"]: b for b in manifest["buffers"]}

    def root(i: int) -> int:
        while "base" in buffers[i]:
            i = buffers[i]["base"]
        return i

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, step in enumerate(manifest["steps"]):
        for i in step["inputs"]:
            last[root(i)] = k
        for o in step["outputs"]:
            first[o] = k
    for out in manifest["outputs"]:
        last[root(out["buffer"])] = len(manifest["steps"])
    maxima = {k: v[2] for k, v in manifest.get("symbols", {}).items()}
    return [Interval(i, first[i], last.get(i, first[i]),
                     math.prod(dim_value(d, maxima) for d in b["shape"])
                     * np.dtype(b["dtype"]).itemsize)
            for i, b in buffers.items() if b["kind"] == "arena"]


@pytest.mark.parametrize("case", ["resnet50-cpu", "resnet50-sm90", "bert-dynamic-seq-sm90"])
def test_offsets_are_plan_arenas_and_live_buffers_never_share_bytes(case):
    path, config = _config(case)
    module, symbols = _planned(path, config)
    manifest, _ = build_model(onnx.load(path), config)
    assert bool(symbols) == (case == "bert-dynamic-seq-sm90")

    # the plan's offsets are what plan_arena gives for the plan's own lifetimes: what the plan
    # builder computed itself before plan-memory (so plans are unchanged)
    intervals = _plan_intervals(manifest)
    offsets = {b["id"]: b["offset"] for b in manifest["buffers"] if b["kind"] == "arena"}
    assert plan_arena(intervals) == (offsets, manifest["arena_bytes"])
    assert manifest["activation_bytes"] == sum(iv.nbytes for iv in intervals)
    assert manifest["arena_bytes"] < manifest["activation_bytes"]  # bytes are shared

    # no two buffers live at the same step share a byte (checked pair by pair)
    shared = 0
    for a in intervals:
        assert offsets[a.key] % ALIGNMENT == 0
        assert offsets[a.key] + a.nbytes <= manifest["arena_bytes"]
        for b in intervals:
            if a.key >= b.key:
                continue
            overlap = (offsets[a.key] < offsets[b.key] + b.nbytes
                       and offsets[b.key] < offsets[a.key] + a.nbytes)
            shared += overlap
            assert not (overlap and a.start <= b.end and b.start <= a.end), (a, b)
    assert shared > 0
    assert arena_conflicts(intervals, offsets, manifest["arena_bytes"]) == []

    # the plan copies the IR's attributes: each step's outputs sit at its op's `arena`
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))
    assert fn.attributes[ARENA_BYTES].value.data == manifest["arena_bytes"]
    assert fn.attributes[ACTIVATION_BYTES].value.data == manifest["activation_bytes"]
    ops = [op for op in fn.body.block.ops if isinstance(op, LaunchOp | ElementwiseOp)]
    assert len(ops) == len(manifest["steps"])
    for op, step in zip(ops, manifest["steps"], strict=True):
        assert list(op.arena.get_values()) == [offsets[o] for o in step["outputs"]]


def test_arena_conflicts_names_a_planted_overlap():
    intervals = [Interval(0, 0, 2, 1000), Interval(1, 1, 3, 1000), Interval(2, 3, 4, 1000)]
    offsets, total = plan_arena(intervals)
    assert offsets == {0: 0, 1: 1024, 2: 0} and total == 2048
    assert arena_conflicts(intervals, offsets, total) == []
    assert arena_conflicts(intervals, {**offsets, 2: 1024}, total) == [
        "buffers 1 (steps 1-3) and 2 (steps 3-4) are live together and share bytes [1024, 2024)"]
    assert arena_conflicts(intervals, {0: 0, 2: 0}, total) == ["buffer 1 has no offset"]
    assert arena_conflicts(intervals, {**offsets, 2: 1536}, total) == [
        "buffer 2 at [1536, 2536) is misaligned or past the arena's 2048 bytes",
        "buffers 1 (steps 1-3) and 2 (steps 3-4) are live together and share bytes [1536, 2024)"]


def _first_fit_reference(intervals: list[Interval]) -> tuple[dict[int, int], int]:
    """plan_arena as first written (each buffer against every placed one: n^2)."""
    placed: list[tuple[int, int, Interval]] = []
    offsets: dict[int, int] = {}
    for iv in sorted(intervals, key=lambda i: (-i.nbytes, i.start, i.key)):
        size = (max(iv.nbytes, 1) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        live = sorted((o, s) for o, s, other in placed
                      if not (other.end < iv.start or iv.end < other.start))
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        offsets[iv.key] = offset
        placed.append((offset, size, iv))
    return offsets, max((o + s for o, s, _ in placed), default=0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 8), st.integers(0, 3000)),
                max_size=40))
def test_plan_arena_is_the_first_fit_it_replaced(spans):
    """The sorted-lifetime search finds the same live buffers, so the same offsets, as the
    quadratic scan (plans stay byte-identical)."""
    intervals = [Interval(k, start, start + length, nbytes)
                 for k, (start, length, nbytes) in enumerate(spans)]
    offsets, total = plan_arena(intervals)
    assert (offsets, total) == _first_fit_reference(intervals)
    assert arena_conflicts(intervals, offsets, total) == []


def _conflicts_reference(intervals, offsets, arena_bytes) -> list[str]:
    """arena_conflicts as first written (every pair of byte ranges compared)."""
    problems, spans = [], []
    for iv in intervals:
        offset = offsets.get(iv.key)
        if offset is None:
            problems.append(f"buffer {iv.key} has no offset")
            continue
        if offset % ALIGNMENT or offset + iv.nbytes > arena_bytes:
            problems.append(f"buffer {iv.key} at [{offset}, {offset + iv.nbytes}) is misaligned "
                            f"or past the arena's {arena_bytes} bytes")
        spans.append((offset, offset + max(iv.nbytes, 1), iv))
    spans.sort(key=lambda s: s[0])
    for i, (lo, hi, iv) in enumerate(spans):
        for lo2, hi2, other in spans[i + 1:]:
            if lo2 >= hi:
                break
            if not (other.end < iv.start or iv.end < other.start):
                problems.append(f"buffers {iv.key} (steps {iv.start}-{iv.end}) and {other.key} "
                                f"(steps {other.start}-{other.end}) are live together and share "
                                f"bytes [{max(lo, lo2)}, {min(hi, hi2)})")
    return problems


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 5), st.integers(0, 700),
                          st.none() | st.integers(0, 12)), max_size=30))
def test_arena_conflicts_reports_what_it_reported_before(spans):
    """Planted offsets (missing, misaligned, overlapping): the same problems, in the same order,
    as the pairwise scan it replaced."""
    intervals = [Interval(k, start, start + length, nbytes)
                 for k, (start, length, nbytes, _) in enumerate(spans)]
    offsets = {k: slot * 128 for k, (*_, slot) in enumerate(spans) if slot is not None}
    assert arena_conflicts(intervals, offsets, 1024) == _conflicts_reference(intervals, offsets,
                                                                             1024)


def test_plan_arena_of_a_long_chain_is_fast():
    """20000 short lifetimes (a chain of kernels): no scan of every placed buffer for each."""
    import time

    intervals = [Interval(k, k, k + 1, 4096) for k in range(20000)]
    start = time.perf_counter()
    offsets, total = plan_arena(intervals)
    assert time.perf_counter() - start < 1.5  # 0.1 s here; the n^2 scan took 4 s
    assert total == 2 * 4096 and arena_conflicts(intervals, offsets, total) == []
    start = time.perf_counter()
    assert arena_conflicts(intervals, {k: 0 for k in offsets}, total)  # all share bytes
    assert arena_conflicts(intervals, offsets, total) == []
    assert time.perf_counter() - start < 3.0  # 0.3 s here; the pairwise scan is n^2 in both


def _small_model() -> onnx.ModelProto:
    nodes = [h.make_node("Relu", ["x"], ["a"]), h.make_node("Exp", ["x"], ["b"]),
             h.make_node("Add", ["a", "b"], ["c"]), h.make_node("Neg", ["c"], ["y"])]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 1024])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 1024])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _unfused_module():
    module = import_onnx(_small_model())
    run_passes(module, ["convert-onnx-to-nn", "convert-nn-to-kernel"])
    return module


def test_pack_needs_the_memory_plan_and_refuses_a_stale_one():
    module = _unfused_module()
    with pytest.raises(EmberError, match="no memory plan .* run plan-memory before packing"):
        pack(module)
    run_passes(module, ["plan-memory"])
    manifest = pack(module).manifest.to_json()
    arena = [b for b in manifest["buffers"] if b["kind"] == "arena"]
    assert [b["offset"] for b in arena] == [0, 4096, 8192, 0]
    assert manifest["arena_bytes"] == 12288 and manifest["activation_bytes"] == 16384

    # %c written at step 2 while %a (read there) is still live: moved onto %a's bytes
    ops = [op for op in module.walk() if isinstance(op, ElementwiseOp)]
    ops[2].properties["arena"] = DenseArrayBase.from_list(i64, [0])
    with pytest.raises(EmberError, match=r"memory plan does not fit its buffers \(buffers 1 "
                                         r"\(steps 0-2\) and 3 \(steps 2-3\) are live together"):
        pack(module)
    # a kernel added after the plan: its result has no offset
    run_passes(module, ["plan-memory"])
    assert pack(module).manifest.to_json() == manifest
    del ops[3].properties["arena"]
    with pytest.raises(EmberError, match="run plan-memory before packing"):
        pack(module)


def test_ember_opt_prints_the_offsets_after_plan_memory():
    out = io.StringIO()
    opt(import_onnx(_small_model()), passes="convert-onnx-to-nn,convert-nn-to-kernel,plan-memory",
        print_ir_after_all=True, out=out)
    before = out.getvalue().split("// -----// IR Dump After plan-memory //----- //\n")[0]
    assert "arena" not in before
    after = out.getvalue().split("// -----// IR Dump After plan-memory //----- //\n")[1]
    assert "attributes {ember.arena_bytes = 12288 : i64, ember.activation_bytes = 16384 : i64}" \
        in after
    assert after.count("attributes {arena = array<i64: ") == 4


def test_build_dump_dir_ends_with_the_planned_stage(tmp_path):
    model = tmp_path / "small.onnx"
    onnx.save(_small_model(), model)
    build_model(model, BuilderConfig(), dump_dir=tmp_path / "stages")
    last = sorted((tmp_path / "stages").glob("*.mlir"))[-1]
    assert last.name.endswith("-plan-memory.mlir")
    text = last.read_text()
    assert "ember.arena_bytes = " in text and "arena = array<i64: 0>" in text
