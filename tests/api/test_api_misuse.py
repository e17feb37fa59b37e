"""API misuse (an index out of range, a shape of non-integers, the wrong kind of argument) raises
ember's errors naming the call, never an IndexError / TypeError / ValueError from inside."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.errors import EmberError, InputError, PlanError
from ember.runtime.engine import Runtime
from ember.runtime.logger import Logger, Severity
from ember.runtime.plan import plan_bytes

SILENT = Logger(Severity.INTERNAL_ERROR)


@pytest.fixture(scope="module")
def engine():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    profile = OptimizationProfile()
    profile.set_shape("x", (1, 3), (2, 3), (4, 3))
    manifest, sections = build_model(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]), BuilderConfig(profiles=[profile]))
    return Runtime(SILENT, device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))


@pytest.mark.parametrize("index", [99, 2, -1, -5, "a", 1.0, None, True])
def test_get_tensor_name_out_of_range_or_not_an_int(engine, index):
    with pytest.raises(EmberError, match=r"the index of an I/O tensor is an integer in \[0, 2\)"):
        engine.get_tensor_name(index)
    assert [engine.get_tensor_name(i) for i in (0, np.int64(1))] == ["x", "y"]


@pytest.mark.parametrize("shape", [(2.5, 3), ("2", 3), (True, 3), (None, 3), 5, None, "23",
                                   [np.float32(2), 3]])
def test_set_input_shape_takes_integers_only(engine, shape):
    context = engine.create_execution_context()
    with pytest.raises(InputError, match=r"set_input_shape\('x'\): (dims|a shape) "):
        context.set_input_shape("x", shape)
    assert context.set_input_shape("x", [np.int64(2), 3])  # numpy integers are integers
    assert tuple(context.get_tensor_shape("y")) == (2, 3)


def test_profile_indices_are_integers(engine):
    context = engine.create_execution_context()
    for bad in ("0", 0.0, None):
        with pytest.raises(EmberError, match="a profile index is an integer"):
            context.set_optimization_profile_async(bad)
        with pytest.raises(EmberError, match="a profile index is an integer"):
            engine.get_tensor_profile_shape("x", bad)


def test_execute_takes_a_dict(engine):
    context = engine.create_execution_context()
    for bad in (None, [np.ones((2, 3), np.float32)], "x"):
        with pytest.raises(InputError, match="dict of input name -> array"):
            context.execute(bad)
    with pytest.raises(InputError, match="dict of input name -> array"):
        engine("x")
    with pytest.raises(EmberError, match="execute_v2 takes a list of addresses"):
        context.execute_v2(None)


def test_deserialize_takes_bytes():
    for bad in (None, "model.plan", 3.5):
        with pytest.raises(PlanError, match="takes the plan's bytes"):
            Runtime(SILENT, device="cpu").deserialize_cuda_engine(bad)


def test_profile_shapes_are_integers():
    profile = OptimizationProfile()
    with pytest.raises(EmberError, match=r"set_shape\('x'\) min: dims are integers, not 1.5"):
        profile.set_shape("x", (1.5, 3), (2, 3), (4, 3))
    with pytest.raises(EmberError, match=r"set_shape\('x'\) max: a shape is a sequence"):
        profile.set_shape("x", (1, 3), (2, 3), 4)
    profile.set_shape("x", (1, 3), np.array([2, 3]), [4, 3])
    assert profile.shapes["x"] == ((1, 3), (2, 3), (4, 3))


@pytest.mark.parametrize("arch", ["", "sm90x", 90, (9, 0)])
def test_target_arch_is_checked_when_set(arch):
    with pytest.raises(EmberError, match="target_arch"):
        BuilderConfig(target_arch=arch)
    config = BuilderConfig()
    with pytest.raises(EmberError, match="target_arch"):
        config.target_arch = arch
    assert config.target_arch is None
    config.target_arch = "sm_90"
    assert config.target_arch == "sm_90"
