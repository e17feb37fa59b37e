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
from ember.runtime.logger import Logger, Severity
from ember.runtime.manifest import check_memory, host_memory_bytes
from ember.runtime.plan import plan_bytes


def _plan():
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Softmax", ["m"], ["r"]),
             h.make_node("Flatten", ["r"], ["y"], axis=0)]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 8])], [w])
    return build_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))


MANIFEST, SECTIONS = _plan()
SILENT = Logger(Severity.INTERNAL_ERROR)  # the errors are asserted, not printed


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


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


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
    # step params against the buffers a step binds
    "params decoding to a number": _set(["steps", 0, "params"], {"float": "1"}),
    "output shape other than its buffer's": _set(["steps", 0, "params", "out_shapes"], [[2, 2]]),
    "input shape other than its buffer's": _set(["steps", 1, "params", "in_shapes"], [[4, 2]]),
    "input dtype other than its buffer's": _set(["steps", 0, "params", "in_dtypes"],
                                                ["float16", "float32"]),
    "an output more than the params describe": _set(["steps", 0, "outputs"], [2, 3]),
    "an input fewer than the params describe": _set(["steps", 0, "inputs"], [0]),
    "params without out_shapes": _set(["steps", 1, "params", "out_shapes"], KeyError),
    "epilogue not an object": _set(["steps", 0, "params", "epilogue"], [1]),
    "reading an activation before it is written": _set(["steps", 1, "inputs"], [3]),
    "a graph output never written": _set(["steps"], [MANIFEST["steps"][0]]),
    # what the loader must bound
    "params nested past the decoder's depth": _set(["steps", 0, "params", "x"], _deep(200)),
    "an arena larger than the host's memory": _set(["arena_bytes"], 1 << 62),
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
        Runtime(SILENT, device="cpu").deserialize_cuda_engine(plan_bytes(manifest, SECTIONS))


def test_check_memory_bounds_arena_and_workspace_together():
    check_memory(1 << 20, 1 << 20, 1 << 21, "GPU")
    with pytest.raises(PlanError, match="1048576 bytes of arena and 1048577 of workspace, more "
                                        "than the GPU's 2097152"):
        check_memory(1 << 20, (1 << 20) + 1, 1 << 21, "GPU")
    assert host_memory_bytes() > 1 << 20
