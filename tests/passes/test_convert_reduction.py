"""convert-onnx-to-nn on reductions, softmax, normalizations, LRN and pooling: numbers against
onnx.reference, symbolic dims kept, bad inputs named."""

import numpy as np
import onnx
import pytest
from onnx import helper

from ember.compiler.interpret import interpret
from ember.compiler.ort_compat import for_onnxruntime
from ember.dialects import ember_context
from ember.errors import EmberError
from tests.onnx_cases import check_against_reference, legalize, single_node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
IMG = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def _data(op_type):
    return np.abs(X) + 0.1 if op_type == "ReduceLogSum" else X


@pytest.mark.parametrize("op_type", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, -1], 0), ([-2], 1), (None, 0),
                                           (None, 1)])
def test_reduce_axes_as_input(op_type, axes, keepdims):
    x = _data(op_type)
    inits = {} if axes is None else {"axes": np.array(axes, np.int64)}
    model = single_node_model(op_type, {"x": x}, initializers=inits, opset=18, keepdims=keepdims)
    check_against_reference(model, {"x": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op_type", REDUCE_OPS)
def test_reduce_axes_as_attribute(op_type):
    x = _data(op_type)
    model = single_node_model(op_type, {"x": x}, opset=13 if op_type != "ReduceSum" else 11,
                              axes=[2, 0], keepdims=0)
    check_against_reference(model, {"x": x}, atol=1e-5)


def test_reduce_sum_opset13_axes_input_and_noop():
    axes = np.array([-1], np.int64)
    check_against_reference(single_node_model("ReduceSum", {"x": X}, initializers={"axes": axes},
                                              opset=13), {"x": X})
    empty = {"axes": np.array([], np.int64)}
    check_against_reference(single_node_model("ReduceSum", {"x": X}, initializers=empty,
                                              opset=13, noop_with_empty_axes=1), {"x": X})
    check_against_reference(single_node_model("ReduceSum", {"x": X}, initializers=empty,
                                              opset=13, keepdims=0), {"x": X})


def test_reduce_run_time_axes():
    axes = np.array([0, -1], np.int64)
    for keepdims in (0, 1):
        model = single_node_model("ReduceMean", {"x": X, "axes": axes}, opset=18,
                                  keepdims=keepdims)
        model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        check_against_reference(model, {"x": X, "axes": axes})


def test_reduce_integer_and_bool():
    xi = (X * 10).astype(np.int32)
    check_against_reference(single_node_model("ReduceSum", {"x": xi}, opset=13), {"x": xi})
    check_against_reference(single_node_model("ReduceMax", {"x": xi}, opset=18), {"x": xi})
    xb = X > 0
    axes = {"axes": np.array([1], np.int64)}
    check_against_reference(single_node_model("ReduceMin", {"x": xb}, initializers=axes,
                                              opset=20), {"x": xb})


@pytest.mark.parametrize("op_type", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("attrs", [{}, {"axis": -1, "keepdims": 0}, {"axis": 1},
                                   {"axis": 2, "select_last_index": 1}])
def test_arg_reduce(op_type, attrs):
    x = np.round(X * 2)  # ties, for select_last_index
    check_against_reference(single_node_model(op_type, {"x": x}, opset=13, **attrs), {"x": x})


def _typed(model, elem_type=onnx.TensorProto.FLOAT):
    """Declare the outputs' element type (where ONNX shape inference gives none)."""
    for o in model.graph.output:
        o.type.tensor_type.elem_type = elem_type
    return model


def _run(model, inputs):
    return interpret(legalize(model), inputs)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [None, 0, 1, -2])
def test_softmax(op_type, axis):
    attrs = {} if axis is None else {"axis": axis}
    check_against_reference(single_node_model(op_type, {"x": X}, opset=13, **attrs), {"x": X},
                            atol=1e-5)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(11, None), (11, 0), (11, -1), (1, 1), (11, -2)])
def test_softmax_before_opset13_flattens(op_type, opset, axis):
    # onnx.reference applies opset-13 semantics to every opset: compare with the definition
    attrs = {} if axis is None else {"axis": axis}
    got = _run(single_node_model(op_type, {"x": X}, opset=opset, **attrs), {"x": X})["y"]
    want = _flattened_softmax(X, 1 if axis is None else axis, op_type == "LogSoftmax")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _flattened_softmax(x, axis, log=False):
    a = axis % x.ndim
    flat = x.reshape(int(np.prod(x.shape[:a])), -1).astype(np.float64)
    shifted = flat - flat.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return (shifted - logsum if log else np.exp(shifted - logsum)).reshape(x.shape)


def test_batch_norm_inference():
    c = IMG.shape[1]
    params = {"scale": rng.standard_normal(c).astype(np.float32),
              "bias": rng.standard_normal(c).astype(np.float32),
              "mean": rng.standard_normal(c).astype(np.float32),
              "var": np.abs(rng.standard_normal(c)).astype(np.float32)}
    model = single_node_model("BatchNormalization", {"x": IMG}, initializers=params, opset=15,
                              epsilon=1e-3)
    check_against_reference(model, {"x": IMG}, atol=1e-5)
    # opset 9 (onnx.reference uses running statistics there): against the definition
    got = _run(single_node_model("BatchNormalization", {"x": IMG}, initializers=params, opset=9,
                                 epsilon=1e-3), {"x": IMG})["y"]
    p = {k: v[:, None, None] for k, v in params.items()}
    want = (IMG - p["mean"]) / np.sqrt(p["var"] + 1e-3) * p["scale"] + p["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [IMG.shape, (4, 3, 5)])
def test_batch_norm_training_mode_against_the_reference(shape):
    """training_mode=1: Y from the batch's own statistics, and the running mean and variance
    moved toward them (momentum 0.8)."""
    x = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    params = {"scale": rng.standard_normal(c).astype(np.float32),
              "bias": rng.standard_normal(c).astype(np.float32),
              "mean": rng.standard_normal(c).astype(np.float32),
              "var": np.abs(rng.standard_normal(c)).astype(np.float32)}
    model = single_node_model("BatchNormalization", {"x": x}, ["y", "running_mean",
                                                               "running_var"],
                              initializers=params, opset=15, training_mode=1, momentum=0.8)
    check_against_reference(model, {"x": x}, rtol=1e-5, atol=1e-5)


def test_instance_and_group_norm():
    c = IMG.shape[1]
    scale = rng.standard_normal(c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    check_against_reference(single_node_model("InstanceNormalization", {"x": IMG},
                                              initializers={"s": scale, "b": bias}),
                            {"x": IMG}, atol=1e-5)
    x = rng.standard_normal((2, 6, 3, 3)).astype(np.float32)
    s6, b6 = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    check_against_reference(_typed(single_node_model("GroupNormalization", {"x": x},
                                                     initializers={"s": s6, "b": b6}, opset=21,
                                                     num_groups=3, epsilon=1e-3)),
                            {"x": x}, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1, 0, -2])
def test_layer_norm(axis):
    inner = X.shape[axis % 3:]
    scale = rng.standard_normal(inner).astype(np.float32)
    bias = rng.standard_normal(inner).astype(np.float32)
    model = single_node_model("LayerNormalization", {"x": X}, initializers={"s": scale, "b": bias},
                              opset=17, axis=axis)
    check_against_reference(model, {"x": X}, atol=1e-5)


def test_layer_norm_without_bias_and_with_mean_outputs():
    scale = rng.standard_normal(4).astype(np.float32)
    check_against_reference(single_node_model("LayerNormalization", {"x": X},
                                              initializers={"s": scale}, opset=17), {"x": X},
                            atol=1e-5)
    model = single_node_model("LayerNormalization", {"x": X}, ("y", "mean", "inv_std"),
                              initializers={"s": scale}, opset=17, axis=1, epsilon=1e-3)
    check_against_reference(model, {"x": X}, atol=1e-5)


def test_lrn():
    # onnx.reference's LRN loops over the batch dim for channels: keep N = C
    x = rng.standard_normal((5, 5, 3, 3)).astype(np.float32)
    check_against_reference(single_node_model("LRN", {"x": x}, size=3, alpha=2e-4, beta=0.5,
                                              bias=2.0), {"x": x})
    check_against_reference(single_node_model("LRN", {"x": x}, size=4, alpha=0.1), {"x": x})


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 3], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 1]},
    {"kernel_shape": [2, 2], "dilations": [2, 1]},
])
def test_pool_2d(op_type, attrs):
    check_against_reference(single_node_model(op_type, {"x": IMG}, opset=19, **attrs),
                            {"x": IMG}, atol=1e-5)


@pytest.mark.parametrize("ceil_mode", [0, 1])
def test_average_pool_count_include_pad(ceil_mode):
    model = single_node_model("AveragePool", {"x": IMG}, opset=19, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], strides=[2, 2], count_include_pad=1,
                              ceil_mode=ceil_mode)
    check_against_reference(model, {"x": IMG}, atol=1e-5)


def test_pool_1d_3d_and_old_opset():
    x1 = rng.standard_normal((1, 2, 9)).astype(np.float32)
    check_against_reference(single_node_model("MaxPool", {"x": x1}, kernel_shape=[3],
                                              strides=[2]), {"x": x1})
    x3 = rng.standard_normal((1, 2, 4, 5, 3)).astype(np.float32)
    check_against_reference(single_node_model("AveragePool", {"x": x3}, kernel_shape=[2, 2, 2],
                                              pads=[1, 0, 0, 0, 1, 1]), {"x": x3}, atol=1e-5)
    check_against_reference(single_node_model("MaxPool", {"x": IMG}, opset=7,
                                              kernel_shape=[2, 2]), {"x": IMG})


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_max_pool_asymmetric_pads(dtype):
    # onnx.reference mixes up asymmetric pads of MaxPool and pads integers with NaN: compare with
    # the reference on an input padded by hand with the lowest value
    x = (IMG * 50).astype(dtype)
    low = np.iinfo(dtype).min if dtype != np.float32 else -np.inf
    got = _run(single_node_model("MaxPool", {"x": x}, kernel_shape=[3, 2], pads=[1, 0, 2, 1],
                                 strides=[2, 1]), {"x": x})["y"]
    padded = np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 1)], constant_values=low)
    want = onnx.reference.ReferenceEvaluator(single_node_model(
        "MaxPool", {"x": padded}, kernel_shape=[3, 2], strides=[2, 1])).run(None, {"x": padded})
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, want[0])


def test_lp_pool():
    # no padding: onnx.reference agrees with the ONNX definition (padding is scaled there)
    for p in (1, 2, 3):
        check_against_reference(single_node_model("LpPool", {"x": IMG}, opset=18,
                                                  kernel_shape=[2, 3], strides=[1, 2], p=p),
                                {"x": IMG}, rtol=1e-4, atol=1e-5)
    # with padding, pads count as zeros: (sum of |x|^p over the window)^(1/p)
    x = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    module = legalize(single_node_model("LpPool", {"x": x}, opset=18, kernel_shape=[2, 2],
                                        pads=[1, 1, 0, 0], p=2))
    got = interpret(module, {"x": x})["y"]
    padded = np.pad(x[0, 0], ((1, 0), (1, 0)))
    want = np.array([[np.sqrt(np.sum(padded[i:i + 2, j:j + 2] ** 2)) for j in range(3)]
                     for i in range(3)], np.float32)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5)


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op_type):
    check_against_reference(single_node_model(op_type, {"x": IMG}), {"x": IMG}, atol=1e-5)


@pytest.mark.parametrize("p", [None, 1, 3])
def test_global_lp_pool(p):
    # not in onnx.reference: against the definition
    attrs = {} if p is None else {"p": p}
    got = _run(single_node_model("GlobalLpPool", {"x": IMG}, **attrs), {"x": IMG})["y"]
    q = 2 if p is None else p
    want = (np.abs(IMG.astype(np.float64)) ** q).sum(axis=(2, 3), keepdims=True) ** (1 / q)
    np.testing.assert_allclose(got, want, rtol=1e-5)


# -- symbolic dims -------------------------------------------------------------------------------

def _symbolic_model(op_type, shape, initializers=None, opset=21, **attrs):
    initializers = initializers or {}
    node = helper.make_node(op_type, ["x", *initializers], ["y"], name="n0", **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.UNDEFINED, None)],
        [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("op_type,attrs,inits", [
    ("MaxPool", {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}, None),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, None),
    ("GlobalAveragePool", {}, None),
    ("ReduceMean", {"keepdims": 1}, {"axes": np.array([2, 3], np.int64)}),
    ("Softmax", {"axis": 1}, None),
    ("LRN", {"size": 3}, None),
    ("InstanceNormalization", {}, {"s": np.ones(3, np.float32), "b": np.zeros(3, np.float32)}),
])
def test_symbolic_batch_kept(op_type, attrs, inits):
    model = _symbolic_model(op_type, ["N", 3, 8, 8], inits, **attrs)
    module = legalize(model)
    assert '#nn.layout<["N"]>' in str(module)
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    want = onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(interpret(module, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)


def test_old_softmax_with_symbolic_batch():
    model = _symbolic_model("Softmax", ["N", 3, 4], opset=11, axis=1)
    module = legalize(model)
    assert '#nn.layout<["N"]>' in str(module)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(interpret(module, {"x": x})["y"], _flattened_softmax(x, 1),
                               rtol=1e-5, atol=1e-6)


def test_printed_ir_parses_back():
    from xdsl.parser import Parser

    model = _symbolic_model("AveragePool", ["N", 3, 8, 8], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            count_include_pad=1)
    text = str(legalize(model))
    assert "nn.pool" in text
    assert str(Parser(ember_context(), text).parse_module()) == text


# -- bad inputs ----------------------------------------------------------------------------------

def test_axis_out_of_range_names_the_node():
    with pytest.raises(EmberError, match=r"argmax0.*axis 3 is out of range for rank 3"):
        legalize(_typed(single_node_model("ArgMax", {"x": X}, opset=13, axis=3),
                        onnx.TensorProto.INT64))
    with pytest.raises(EmberError, match=r"reducesum0.*axis -4 is out of range"):
        legalize(_typed(single_node_model("ReduceSum", {"x": X}, opset=11, axes=[-4])))
    with pytest.raises(EmberError, match=r"softmax0.*axis 5"):
        legalize(_typed(single_node_model("Softmax", {"x": X}, opset=13, axis=5)))


def test_bad_pool_and_norm_inputs_name_the_node():
    with pytest.raises(EmberError, match=r"maxpool0.*needs an input of rank 3, not 4"):
        legalize(_typed(single_node_model("MaxPool", {"x": IMG}, kernel_shape=[3])))
    with pytest.raises(EmberError, match=r"maxpool0.*does not fit"):
        legalize(_typed(single_node_model("MaxPool", {"x": IMG}, kernel_shape=[9, 9])))
    with pytest.raises(EmberError, match=r"batchnormalization0.*2 values for 3 channels"):
        params = {n: np.ones(2, np.float32) for n in ("scale", "bias", "mean", "var")}
        legalize(_typed(single_node_model("BatchNormalization", {"x": IMG},
                                          initializers=params, opset=15)))
    with pytest.raises(EmberError, match=r"groupnormalization0.*3 channels do not split"):
        legalize(_typed(single_node_model("GroupNormalization", {"x": IMG},
                                          initializers={"s": np.ones(3, np.float32),
                                                        "b": np.ones(3, np.float32)},
                                          num_groups=2)))


@pytest.mark.parametrize("order", [0, 1])
def test_max_pool_indices_output_is_legalized_to_max_pool_indices(order):
    """MaxPool with its Indices output read: nn.max_pool_indices, against onnxruntime
    (onnx.reference's indices are wrong with the default strides)."""
    import onnxruntime as ort

    model = single_node_model("MaxPool", {"x": IMG}, ("y", "indices"), kernel_shape=[2, 2],
                              storage_order=order, opset=12)
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    model.graph.output[1].type.tensor_type.elem_type = onnx.TensorProto.INT64
    module = legalize(model)
    assert "nn.max_pool_indices" in str(module) and f"storage_order = {order}" in str(module)
    got = interpret(module, {"x": IMG})
    session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    values, indices = session.run(None, {"x": IMG})
    np.testing.assert_array_equal(got["y"], values)
    np.testing.assert_array_equal(got["indices"], indices)
