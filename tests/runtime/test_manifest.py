"""A plan whose manifest is malformed (rebuilt with a valid checksum, so only the manifest is
hostile) gets a PlanError at load — never a KeyError, an out-of-bounds copy or a crash."""

import copy

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import build_model
from ember.errors import PlanError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _plan():
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Softmax", ["m"], ["r"]),
             h.make_node("Flatten", ["r"], ["y"], axis=0)]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 8])], [w])
    return build_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))


MANIFEST, SECTIONS = _plan()


def _set(path, value):
    def edit(m):
        node = m
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return edit


MUTATIONS = {
    "buffer not a dict": _set(["buffers", 0], 7),
    "buffer without shape": _set(["buffers", 0, "shape"], KeyError),
    "arena buffer without offset": _set(["buffers", 3, "offset"], KeyError),
    "arena buffer outside the arena": _set(["buffers", 3, "offset"], 1 << 40),
    "weight outside the weights": _set(["buffers", 1, "offset"], 1 << 20),
    "negative dim": _set(["buffers", 0, "shape"], [-2, 4]),
    "object dtype": _set(["buffers", 0, "dtype"], "O"),
    "unknown dtype": _set(["inputs", 0, "dtype"], "foo"),
    "input naming a missing buffer": _set(["inputs", 0, "buffer"], 99),
    "output larger than its buffer": _set(["outputs", 0, "shape"], [100, 100]),
    "view of another size": _set(["buffers", 4, "shape"], [3]),
    "step without a name": _set(["steps", 0, "name"], KeyError),
    "origin not a list": _set(["steps", 0, "origin"], 3),
    "step writing a weight": _set(["steps", 0, "outputs"], [1]),
    "negative arena": _set(["arena_bytes"], -1),
    "bad float": _set(["steps", 0, "params", "x"], {"float": 3}),
    "input bound elsewhere": _set(["inputs", 0, "buffer"], 3),
}


def test_the_unmutated_plan_loads():
    # the indices the mutations use
    assert [b["kind"] for b in MANIFEST["buffers"]] == ["input", "weight", "arena", "arena", "view"]
    Runtime("cpu").deserialize_cuda_engine(plan_bytes(MANIFEST, SECTIONS))


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_malformed_manifest_is_a_plan_error(name):
    manifest = copy.deepcopy(MANIFEST)
    manifest.pop("sections", None)
    MUTATIONS[name](manifest)
    with pytest.raises(PlanError):
        Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, SECTIONS))
