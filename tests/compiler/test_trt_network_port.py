"""TensorRT's network API ported by changing the import: the network-API MNIST sample's network
as the sample writes it (`_nd` layers, attributes set after creation), each layer kind and
attribute against a numpy float64 forward pass on the CPU executor, renaming, and the errors."""

from __future__ import annotations

import enum
import types

import numpy as np
import pytest

import ember
from ember.errors import EmberError, UnsupportedError
from ember.runtime.cuda import cuda_available

rng = np.random.default_rng(12)


trt = ember  # TensorRT's names, the network API's included (ember/__init__.py)


# -- numpy float64 references --------------------------------------------------------------------

def conv2d(x, w, b=None, stride=(1, 1), pre=(0, 0), post=(0, 0), dilation=(1, 1), groups=1):
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])))
    w = np.asarray(w, np.float64)
    n, _, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (wd - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((n, m, oh, ow))
    mg = m // groups
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                r, c = i * dilation[0], j * dilation[1]
                patch = xs[:, :, r:r + (oh - 1) * stride[0] + 1:stride[0],
                           c:c + (ow - 1) * stride[1] + 1:stride[1]]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch,
                                                         w[g * mg:(g + 1) * mg, :, i, j])
    return out if b is None else out + np.asarray(b, np.float64).reshape(1, -1, 1, 1)


def pool2d(x, window, stride, kind="max", pre=(0, 0), post=(0, 0), count_pad=False):
    x = np.asarray(x, np.float64)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])), constant_values=fill)
    ones = np.pad(np.ones(x.shape[2:]), ((pre[0], post[0]), (pre[1], post[1])))
    oh = (xp.shape[2] - window[0]) // stride[0] + 1
    ow = (xp.shape[3] - window[1]) // stride[1] + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            r, c = i * stride[0], j * stride[1]
            win = xp[:, :, r:r + window[0], c:c + window[1]]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                count = window[0] * window[1] if count_pad else \
                    ones[r:r + window[0], c:c + window[1]].sum()
                out[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return out


def run(network, inputs, builder=None, config=None, device="cpu"):
    builder = builder or ember.Builder()
    config = config or builder.create_builder_config()
    config.clear_flag(ember.BuilderFlag.TF32)  # compared with float64: strict FP32
    if device == "cuda":
        from ember.compiler.builder import detect_arch

        config.target_arch = detect_arch()
    else:  # create_builder_config targets the GPU present, as TensorRT's
        config.target_arch = None
    plan = builder.build_serialized_network(network, config)
    engine = ember.Runtime(device=device).deserialize_cuda_engine(plan)
    return engine, engine(inputs)


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# -- the network-API MNIST sample, as it writes its network ---------------------------------------

class ModelData:
    INPUT_NAME = "data"
    INPUT_SHAPE = (1, 1, 28, 28)
    OUTPUT_NAME = "prob"
    OUTPUT_SIZE = 10
    DTYPE = trt.float32


def populate_network(network, weights):
    # the sample's function (samples/python/network_api_pytorch_mnist), weights as numpy
    input_tensor = network.add_input(
        name=ModelData.INPUT_NAME, dtype=ModelData.DTYPE, shape=ModelData.INPUT_SHAPE
    )

    def add_matmul_as_fc(net, input, outputs, w, b):
        assert len(input.shape) >= 3
        m = 1 if len(input.shape) == 3 else input.shape[0]
        k = int(np.prod(input.shape) / m)
        assert np.prod(input.shape) == m * k
        n = int(w.size / k)
        assert w.size == n * k
        assert b.size == n

        input_reshape = net.add_shuffle(input)
        input_reshape.reshape_dims = trt.Dims2(m, k)

        filter_const = net.add_constant(trt.Dims2(n, k), w)
        mm = net.add_matrix_multiply(
            input_reshape.get_output(0),
            trt.MatrixOperation.NONE,
            filter_const.get_output(0),
            trt.MatrixOperation.TRANSPOSE,
        )

        bias_const = net.add_constant(trt.Dims2(1, n), b)
        bias_add = net.add_elementwise(
            mm.get_output(0), bias_const.get_output(0), trt.ElementWiseOperation.SUM
        )

        output_reshape = net.add_shuffle(bias_add.get_output(0))
        output_reshape.reshape_dims = trt.Dims4(m, n, 1, 1)
        return output_reshape

    conv1 = network.add_convolution_nd(
        input=input_tensor, num_output_maps=20, kernel_shape=(5, 5),
        kernel=weights["conv1.weight"], bias=weights["conv1.bias"],
    )
    conv1.stride_nd = (1, 1)

    pool1 = network.add_pooling_nd(
        input=conv1.get_output(0), type=trt.PoolingType.MAX, window_size=(2, 2)
    )
    pool1.stride_nd = trt.Dims2(2, 2)

    conv2 = network.add_convolution_nd(
        pool1.get_output(0), 50, (5, 5), weights["conv2.weight"], weights["conv2.bias"]
    )
    conv2.stride_nd = (1, 1)

    pool2 = network.add_pooling_nd(conv2.get_output(0), trt.PoolingType.MAX, (2, 2))
    pool2.stride_nd = trt.Dims2(2, 2)

    fc1 = add_matmul_as_fc(network, pool2.get_output(0), 500, weights["fc1.weight"],
                           weights["fc1.bias"])

    relu1 = network.add_activation(input=fc1.get_output(0), type=trt.ActivationType.RELU)

    fc2 = add_matmul_as_fc(network, relu1.get_output(0), ModelData.OUTPUT_SIZE,
                           weights["fc2.weight"], weights["fc2.bias"])

    fc2.get_output(0).name = ModelData.OUTPUT_NAME
    network.mark_output(tensor=fc2.get_output(0))


def mnist_weights():
    shapes = {"conv1.weight": (20, 1, 5, 5), "conv1.bias": (20,), "conv2.weight": (50, 20, 5, 5),
              "conv2.bias": (50,), "fc1.weight": (500, 800), "fc1.bias": (500,),
              "fc2.weight": (10, 500), "fc2.bias": (10,)}
    return {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in shapes.items()}


def mnist_reference(x, w):
    y = pool2d(conv2d(x, w["conv1.weight"], w["conv1.bias"]), (2, 2), (2, 2))
    y = pool2d(conv2d(y, w["conv2.weight"], w["conv2.bias"]), (2, 2), (2, 2))
    y = y.reshape(1, -1) @ w["fc1.weight"].T.astype(np.float64) + w["fc1.bias"]
    y = np.maximum(y, 0) @ w["fc2.weight"].T.astype(np.float64) + w["fc2.bias"]
    return y.reshape(1, 10, 1, 1)


def test_mnist_network_api_sample_builds_and_matches_numpy():
    weights = mnist_weights()
    builder = ember.Builder()
    network = builder.create_network()
    populate_network(network, weights)
    assert network.num_inputs == 1 and network.get_input(0).name == "data"
    assert network.num_outputs == 1 and network.get_output(0).name == "prob"
    assert network.get_output(0).shape == (1, 10, 1, 1)
    assert network.get_output(0).is_network_output and network.get_input(0).is_network_input
    types_ = [network.get_layer(i).type for i in range(network.num_layers)]
    assert types_[:4] == [trt.LayerType.CONVOLUTION, trt.LayerType.POOLING,
                          trt.LayerType.CONVOLUTION, trt.LayerType.POOLING]
    assert types_.count(trt.LayerType.SHUFFLE) == 4 and types_.count(trt.LayerType.CONSTANT) == 4
    x = rng.standard_normal(ModelData.INPUT_SHAPE).astype(np.float32)
    engine, out = run(network, {"data": x}, builder)
    assert engine.output_names == ["prob"]
    close(out["prob"], mnist_reference(x, weights), 1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_mnist_network_api_sample_on_the_gpu():
    weights = mnist_weights()
    network = ember.Builder().create_network()
    populate_network(network, weights)
    x = rng.standard_normal(ModelData.INPUT_SHAPE).astype(np.float32)
    engine, out = run(network, {"data": x}, device="cuda")
    assert engine.device == "cuda"
    close(out["prob"], mnist_reference(x, weights), 1e-4)


# -- attributes set after creation take effect ----------------------------------------------------

def _net(shape=(1, 3, 9, 9), dtype=np.float32):
    network = ember.Builder().create_network()
    return network, network.add_input("x", dtype, shape)


def test_convolution_attributes_set_after_creation():
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    network, inp = _net(x.shape)
    conv = network.add_convolution_nd(inp, 6, (3, 3), np.zeros((6, 4, 3, 3), np.float32), None)
    assert conv.get_output(0).shape == (1, 6, 7, 7)
    conv.kernel, conv.bias = w, b  # replaced after creation, as TensorRT allows
    conv.num_groups = 2
    conv.stride_nd = (2, 1)
    conv.pre_padding, conv.post_padding = (1, 0), (0, 2)
    conv.dilation_nd = (1, 2)
    assert conv.get_output(0).shape == (1, 6, 4, 7)
    assert conv.padding_nd == (1, 0) and conv.type == trt.LayerType.CONVOLUTION
    network.mark_output(conv.get_output(0))
    _, out = run(network, {"x": x})
    want = conv2d(x, w, b, stride=(2, 1), pre=(1, 0), post=(0, 2), dilation=(1, 2), groups=2)
    close(out[conv.get_output(0).name], want)
    conv.padding_nd = (1, 1)  # symmetric: pre and post
    conv.padding_mode = trt.PaddingMode.EXPLICIT_ROUND_DOWN
    _, out = run(network, {"x": x})
    close(out[conv.get_output(0).name],
          conv2d(x, w, b, stride=(2, 1), pre=(1, 1), post=(1, 1), dilation=(1, 2), groups=2))


def test_stride_set_after_creation_changes_the_output():
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    network, inp = _net(x.shape)
    conv = network.add_convolution_nd(inp, 4, (3, 3), w)
    network.mark_output(conv.get_output(0))
    assert conv.get_output(0).shape == (1, 4, 7, 7)
    conv.stride_nd = (2, 2)
    assert conv.get_output(0).shape == (1, 4, 4, 4)
    _, out = run(network, {"x": x})
    close(out[conv.get_output(0).name], conv2d(x, w, stride=(2, 2)))


def test_same_padding_mode():
    x = rng.standard_normal((1, 2, 7, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    network, inp = _net(x.shape)
    conv = network.add_convolution_nd(inp, 3, (4, 4), w)
    conv.padding_mode = trt.PaddingMode.SAME_UPPER
    conv.stride_nd = (2, 2)
    network.mark_output(conv.get_output(0))
    assert conv.get_output(0).shape == (1, 3, 4, 4)
    _, out = run(network, {"x": x})
    # total padding 3 per spatial dim: SAME_UPPER puts the odd one at the end
    close(out[conv.get_output(0).name], conv2d(x, w, stride=(2, 2), pre=(1, 1), post=(2, 2)))


def test_convolution_rounding_up():
    x = rng.standard_normal((1, 2, 8, 9)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    network, inp = _net(x.shape)
    conv = network.add_convolution_nd(inp, 3, (3, 3), w)
    conv.stride_nd = (2, 3)
    conv.padding_mode = trt.PaddingMode.EXPLICIT_ROUND_UP
    network.mark_output(conv.get_output(0))
    # ceil((8 - 3) / 2) + 1 = 4 rows (one past the end, read as zero); ceil(6 / 3) + 1 = 3
    assert conv.get_output(0).shape == (1, 3, 4, 3)
    _, out = run(network, {"x": x})
    close(out[conv.get_output(0).name], conv2d(x, w, stride=(2, 3), post=(1, 0)))


def test_pooling_attributes():
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    network, inp = _net(x.shape)
    pool = network.add_pooling_nd(inp, trt.PoolingType.MAX, (3, 3))
    assert pool.stride_nd == (1, 1)  # TensorRT's default, unlike the old add_pooling
    assert pool.get_output(0).shape == (2, 3, 5, 5)
    avg = network.add_pooling_nd(inp, trt.PoolingType.AVERAGE, (2, 2))
    avg.stride_nd = (2, 2)
    avg.padding_nd = (1, 1)
    incl = network.add_pooling_nd(inp, trt.PoolingType.AVERAGE, (2, 2))
    incl.stride_nd, incl.padding_nd = (2, 2), (1, 1)
    incl.average_count_excludes_padding = False
    up = network.add_pooling_nd(inp, trt.PoolingType.MAX, (2, 2))
    up.stride_nd = (2, 2)
    up.padding_mode = trt.PaddingMode.EXPLICIT_ROUND_UP
    for layer in (pool, avg, incl, up):
        network.mark_output(layer.get_output(0))
    assert up.get_output(0).shape == (2, 3, 4, 4)
    _, out = run(network, {"x": x})
    close(out[pool.get_output(0).name], pool2d(x, (3, 3), (1, 1)))
    close(out[avg.get_output(0).name], pool2d(x, (2, 2), (2, 2), "avg", (1, 1), (1, 1)))
    close(out[incl.get_output(0).name],
          pool2d(x, (2, 2), (2, 2), "avg", (1, 1), (1, 1), count_pad=True))
    close(out[up.get_output(0).name], pool2d(x, (2, 2), (2, 2), post=(1, 1)))


def test_deconvolution():
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)  # C x K x R x S
    network, inp = _net(x.shape)
    deconv = network.add_deconvolution_nd(inp, 3, (3, 3), w, np.arange(3, dtype=np.float32))
    deconv.stride_nd = (2, 2)
    deconv.padding_nd = (1, 1)
    network.mark_output(deconv.get_output(0))
    assert deconv.get_output(0).shape == (1, 3, 9, 9)
    _, out = run(network, {"x": x})
    full = np.zeros((1, 3, 11, 11))
    for i in range(5):
        for j in range(5):
            full[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("nc,ckrs->nkrs",
                                                                      x[:, :, i, j], w)
    close(out[deconv.get_output(0).name],
          full[:, :, 1:-1, 1:-1] + np.arange(3).reshape(1, 3, 1, 1))
    deconv.padding_mode = trt.PaddingMode.SAME_LOWER  # P = 3 - 2 = 1, before the output
    assert deconv.get_output(0).shape == (1, 3, 10, 10)
    _, out = run(network, {"x": x})
    close(out[deconv.get_output(0).name],
          full[:, :, 1:, 1:] + np.arange(3).reshape(1, 3, 1, 1))


def test_shuffle_transposes_reshape_and_placeholder():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    network, inp = _net(x.shape)
    s = network.add_shuffle(inp)
    s.first_transpose = (0, 2, 3, 1)
    s.reshape_dims = (0, 0, -1)  # 0: copy the (transposed) input's dim
    s.second_transpose = (2, 0, 1)
    network.mark_output(s.get_output(0))
    assert s.get_output(0).shape == (15, 2, 4)
    _, out = run(network, {"x": x})
    close(out[s.get_output(0).name], x.transpose(0, 2, 3, 1).reshape(2, 4, 15).transpose(2, 0, 1))
    dyn = network.add_shuffle(inp)
    shape = network.add_constant((2,), np.array([6, 20], np.int32))
    dyn.set_input(1, shape.get_output(0))
    assert dyn.num_inputs == 2 and dyn.get_output(0).shape == (6, 20)
    network.unmark_output(s.get_output(0))
    network.mark_output(dyn.get_output(0))
    _, out = run(network, {"x": x})
    close(out[dyn.get_output(0).name], x.reshape(6, 20))


def test_zero_is_placeholder():
    network, inp = _net((2, 3, 4, 5))
    s = network.add_shuffle(inp)
    s.reshape_dims = (0, 60)
    assert s.get_output(0).shape == (2, 60)  # 0 copies the input's dim
    s.zero_is_placeholder = False  # 0 is a zero-length dim: 0 x 60 != 120 elements
    network.mark_output(s.get_output(0))
    with pytest.raises(EmberError):
        run(network, {"x": np.zeros((2, 3, 4, 5), np.float32)})


def test_reduce_softmax_concat_slice():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    network, inp = _net(x.shape)
    red = network.add_reduce(inp, trt.ReduceOperation.MAX, 1 << 1, False)
    red.axes = (1 << 3) | (1 << 1)  # set after creation
    red.keep_dims = True
    red.op = trt.ReduceOperation.SUM
    sm = network.add_softmax(inp)
    assert sm.axes == 1 << 1  # TensorRT's default: rank - 3
    sm2 = network.add_softmax(inp)
    sm2.axes = 1 << 3
    cat = network.add_concatenation([inp, inp])
    assert cat.axis == 1
    cat.axis = 3
    sl = network.add_slice(inp, (0, 0, 0, 0), (2, 3, 4, 5), (1, 1, 1, 1))
    sl.start, sl.shape, sl.stride = (1, 0, 3, 4), (1, 3, 2, 2), (1, 1, -2, -2)
    outs = [red, sm, sm2, cat, sl]
    for layer in outs:
        network.mark_output(layer.get_output(0))
    _, out = run(network, {"x": x})
    got = [out[layer.get_output(0).name] for layer in outs]
    x64 = x.astype(np.float64)

    def softmax(v, axis):
        e = np.exp(v - v.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    close(got[0], x64.sum(axis=(1, 3), keepdims=True))
    close(got[1], softmax(x64, 1))
    close(got[2], softmax(x64, 3))
    close(got[3], np.concatenate([x, x], axis=3))
    close(got[4], x[1:2][:, :, [3, 1]][:, :, :, [4, 2]])


def test_slice_out_of_bounds_is_an_error_naming_the_layer():
    network, inp = _net((1, 3, 4, 4))
    sl = network.add_slice(inp, (0, 0, 0, 0), (1, 3, 4, 4), (1, 1, 1, 1))
    sl.name = "crop"
    sl.stride = (1, 1, 2, 1)
    network.mark_output(sl.get_output(0))
    with pytest.raises(EmberError, match="'crop'.*axis 2 reads"):
        network.to_onnx()


@pytest.mark.parametrize("kind,alpha,beta,ref", [
    ("LEAKY_RELU", 0.2, 0.0, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("ELU", 0.5, 0.0, lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    ("SELU", 1.5, 1.2, lambda x: 1.2 * np.where(x > 0, x, 1.5 * np.expm1(x))),
    ("SOFTPLUS", 2.0, 0.5, lambda x: 2.0 * np.log1p(np.exp(0.5 * x))),
    ("CLIP", -0.5, 0.7, lambda x: np.clip(x, -0.5, 0.7)),
    ("HARD_SIGMOID", 0.3, 0.4, lambda x: np.clip(0.3 * x + 0.4, 0, 1)),
    ("SCALED_TANH", 1.7, 0.6, lambda x: 1.7 * np.tanh(0.6 * x)),
    ("THRESHOLDED_RELU", 0.3, 0.0, lambda x: np.where(x > 0.3, x, 0)),
    ("SOFTSIGN", 0.0, 0.0, lambda x: x / (1 + np.abs(x))),
    ("SIGMOID", 0.0, 0.0, lambda x: 1 / (1 + np.exp(-x))),
])
def test_activation_alpha_beta_set_after_creation(kind, alpha, beta, ref):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    network, inp = _net(x.shape)
    act = network.add_activation(inp, trt.ActivationType.RELU)
    act.type = getattr(trt.ActivationType, kind)
    act.alpha, act.beta = alpha, beta
    network.mark_output(act.get_output(0))
    _, out = run(network, {"x": x})
    close(out[act.get_output(0).name], ref(x.astype(np.float64)))


def test_elementwise_unary_and_matrix_multiply():
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 3, 4)).astype(np.float32) + 3
    network = ember.Builder().create_network()
    ta = network.add_input("a", np.float32, a.shape)
    tb = network.add_input("b", np.float32, b.shape)
    ew = network.add_elementwise(ta, tb, trt.ElementWiseOperation.SUM)
    ew.op = trt.ElementWiseOperation.FLOOR_DIV
    un = network.add_unary(tb, trt.UnaryOperation.EXP)
    un.op = trt.UnaryOperation.SQRT
    mm = network.add_matrix_multiply(ta, trt.MatrixOperation.NONE, tb, trt.MatrixOperation.NONE)
    mm.op1 = trt.MatrixOperation.TRANSPOSE
    vec = network.add_matrix_multiply(ta, trt.MatrixOperation.VECTOR, tb,
                                      trt.MatrixOperation.VECTOR)
    cmp = network.add_elementwise(ta, tb, trt.ElementWiseOperation.LESS)
    for layer in (ew, un, mm, vec, cmp):
        network.mark_output(layer.get_output(0))
    assert mm.get_output(0).shape == (2, 3, 3) and vec.get_output(0).shape == (2, 3)
    _, out = run(network, {"a": a, "b": b})
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    close(out[ew.get_output(0).name], np.floor(a64 / b64))
    close(out[un.get_output(0).name], np.sqrt(b64))
    close(out[mm.get_output(0).name], a64 @ b64.transpose(0, 2, 1))
    close(out[vec.get_output(0).name], (a64 * b64).sum(-1))
    np.testing.assert_array_equal(out[cmp.get_output(0).name], a < b)


def test_constant_scale_normalization_padding():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    network, inp = _net(x.shape)
    shift, scale = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3)
    sc = network.add_scale(inp, trt.ScaleMode.UNIFORM, np.array([0.5], np.float32))
    sc.mode = trt.ScaleMode.CHANNEL
    sc.shift, sc.scale = shift, scale.astype(np.float32)
    g = network.add_constant((1, 1, 1, 5), rng.standard_normal(5).astype(np.float32))
    beta = network.add_constant((1, 1, 1, 5), rng.standard_normal(5).astype(np.float32))
    norm = network.add_normalization(inp, g.get_output(0), beta.get_output(0), 1 << 3)
    norm.epsilon = 1e-3
    pad = network.add_padding_nd(inp, (1, 0), (0, -2))
    for layer in (sc, norm, pad):
        network.mark_output(layer.get_output(0))
    _, out = run(network, {"x": x})
    x64 = x.astype(np.float64)
    close(out[sc.get_output(0).name], x64 * scale.reshape(3, 1, 1) + shift.reshape(3, 1, 1))
    mean = x64.mean(-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(-1, keepdims=True)
    want = (x64 - mean) / np.sqrt(var + 1e-3) * g.weights.reshape(1, 1, 1, 5) + \
        beta.weights.reshape(1, 1, 1, 5)
    close(out[norm.get_output(0).name], want, 1e-4)
    close(out[pad.get_output(0).name], np.pad(x64, ((0, 0), (0, 0), (1, 0), (0, 0)))[..., :3])


def test_identity_cast_select_shape_gather_fill_resize():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    network, inp = _net(x.shape)
    ident = network.add_identity(inp)
    cast = network.add_cast(inp, np.float16)
    cast.to_type = trt.float32
    zero = network.add_constant((1,), np.zeros(1, np.float32))
    cond = network.add_elementwise(inp, zero.get_output(0), trt.ElementWiseOperation.GREATER)
    neg = network.add_unary(inp, trt.UnaryOperation.NEG)
    sel = network.add_select(cond.get_output(0), inp, neg.get_output(0))
    shp = network.add_shape(inp)
    idx = network.add_constant((2,), np.array([2, 0], np.int32))
    gat = network.add_gather(inp, idx.get_output(0), 0)
    gat.axis = 1
    fill = network.add_fill((2, 3), trt.FillOperation.LINSPACE, np.float32)
    fill.alpha, fill.beta = 1.0, (10.0, 0.5)
    rs = network.add_resize(inp)
    rs.shape = (2, 6, 8)
    outs = (ident, cast, sel, shp, gat, fill, rs)
    for layer in outs:
        network.mark_output(layer.get_output(0))
    assert shp.get_output(0).dtype == np.int64 or shp.get_output(0).dtype.name == "INT64"
    _, out = run(network, {"x": x})
    got = [out[layer.get_output(0).name] for layer in outs]
    np.testing.assert_array_equal(got[0], x)
    assert got[1].dtype == np.float32  # to_type set after creation: no float16 rounding
    np.testing.assert_array_equal(got[1], x)
    np.testing.assert_array_equal(got[2], np.abs(x))
    np.testing.assert_array_equal(got[3], [2, 3, 4])
    np.testing.assert_array_equal(got[4], x[:, [2, 0]])
    close(got[5], 1.0 + 10.0 * np.arange(2)[:, None] + 0.5 * np.arange(3)[None, :])
    # nearest, asymmetric, floor (TensorRT's defaults): index floor(i * in / out)
    np.testing.assert_array_equal(got[6], x[:, [0, 0, 1, 1, 2, 2]][:, :, [0, 0, 1, 1, 2, 2, 3, 3]])


# -- names -----------------------------------------------------------------------------------------

def _origins(engine) -> set[str]:
    return {node for layer in engine.inspector.layers() for node in layer["origin"]}


def test_renamed_layers_and_tensors_reach_the_engine():
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    network, inp = _net(x.shape)
    conv = network.add_convolution_nd(inp, 4, (3, 3), w)
    act = network.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    network.mark_output(act.get_output(0))
    conv.name = "stem"
    inp.name = "image"
    act.get_output(0).name = "features"
    config = ember.Builder().create_builder_config()
    config.set_flag(ember.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    conv.precision = "fp16"
    engine, out = run(network, {"image": x}, config=config)
    assert engine.get_tensor_name(0) == "image" and engine.output_names == ["features"]
    assert "stem" in _origins(engine)
    assert {layer["precision"] for layer in engine.inspector.layers()
            if "stem" in layer["origin"]} == {"fp16"}
    want = np.maximum(conv2d(x.astype(np.float16), w.astype(np.float16)), 0)
    close(out["features"], want, 2e-2)
    with pytest.raises(EmberError, match="has a layer of that name"):
        act.name = "stem"
    with pytest.raises(EmberError, match="has a tensor of that name"):
        conv.get_output(0).name = "image"


def test_add_input_takes_numpy_and_tensorrt_dtypes():
    class DataType(enum.IntEnum):  # the shape of TensorRT's DataType
        FLOAT = 0
        HALF = 1
        INT32 = 3

    network = ember.Builder().create_network()
    a = network.add_input("a", DataType.HALF, (2, 3))
    b = network.add_input("b", np.int32, (-1, 3))
    c = network.add_input("c", trt.float32, (2, 3))
    assert [str(np.dtype(t.dtype) if isinstance(t.dtype, np.dtype) else t.dtype.name)
            for t in (a, b, c)] in (["float16", "int32", "float32"], ["HALF", "INT32", "FLOAT"])
    assert b.shape == (-1, 3)
    with pytest.raises(EmberError, match="not a dtype"):
        network.add_input("d", object(), (1,))


def test_parsed_network_inputs_outputs_and_renaming():
    from tests.onnx_cases import small_cnn

    builder = ember.Builder()
    network = builder.create_network()
    assert ember.OnnxParser(network).parse(small_cnn())
    assert network.get_input(0).shape == (2, 3, 8, 8)
    assert network.get_output(0).name == "y" and network.get_output(0).shape == (2, 5)
    assert network.to_onnx() is network.parsed_model  # unchanged: the parsed model itself
    network.get_output(0).name = "logits"
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    from onnx.reference import ReferenceEvaluator

    want = ReferenceEvaluator(small_cnn()).run(None, {"x": x})[0]
    engine, out = run(network, {"x": x}, builder)
    assert engine.output_names == ["logits"]
    close(out["logits"], want)


# -- errors ----------------------------------------------------------------------------------------

def test_unknown_and_unimplemented_attributes_raise():
    network, inp = _net()
    conv = network.add_convolution_nd(inp, 4, (3, 3), np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(AttributeError):
        conv.stride = (2, 2)  # TensorRT 10 has only stride_nd: no attribute is made up
    with pytest.raises(AttributeError):
        inp.foo = 1
    with pytest.raises(EmberError, match=r"stride_nd.*not a sequence"):
        conv.stride_nd = 2
    pool = network.add_pooling_nd(inp, trt.PoolingType.MAX, (2, 2))
    pool.blend_factor = 0.0  # TensorRT's default: nothing to implement
    with pytest.raises(UnsupportedError, match="blend_factor = 0.5"):
        pool.blend_factor = 0.5
    with pytest.raises(UnsupportedError, match="metadata"):
        conv.metadata = "stem"
    pool.type = trt.PoolingType.MAX_AVERAGE_BLEND
    network.mark_output(pool.get_output(0))
    with pytest.raises(UnsupportedError, match="MAX_AVERAGE_BLEND"):
        network.to_onnx()
    with pytest.raises(EmberError, match="not a PoolingType"):
        pool.type = "median"


def test_topk_and_non_zero_layers():
    """add_topk (indices INT32 unless indices_type says INT64, as TensorRT's) and add_non_zero
    (a data-dependent count: its output's shape is -1 until a run finds it)."""
    x = rng.standard_normal((2, 7)).astype(np.float32)
    x[x < 0.3] = 0.0
    network, inp = _net(x.shape)
    top = network.add_topk(inp, trt.TopKOperation.MIN, 3, 1 << 1)
    assert isinstance(top, trt.ITopKLayer) and top.num_outputs == 2
    nz = network.add_non_zero(inp)
    nz.indices_type = trt.int64
    for t, name in ((top.get_output(0), "v"), (top.get_output(1), "i"),
                    (nz.get_output(0), "nz")):
        t.name = name
        network.mark_output(t)
    with pytest.raises(EmberError, match="int32 or int64"):
        top.indices_type = trt.float32
    engine, got = run(network, {"x": x})
    order = np.argsort(x, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(got["i"], order)
    assert got["i"].dtype == np.int32
    np.testing.assert_array_equal(got["v"], np.take_along_axis(x, order, 1))
    np.testing.assert_array_equal(got["nz"], np.stack(np.nonzero(x)))
    assert got["nz"].dtype == np.int64
    assert tuple(engine.get_tensor_shape("nz")) == (2, -1)


def test_unimplemented_layers_raise_naming_them():
    network, inp = _net()
    with pytest.raises(UnsupportedError, match="add_scatter"):
        network.add_scatter(inp, inp, inp, trt.ScatterMode.ELEMENT)
    with pytest.raises(AttributeError):
        network.add_no_such_layer(inp)
    sl = network.add_slice(inp, (0,) * 4, (1, 3, 9, 9), (1,) * 4)
    with pytest.raises(UnsupportedError, match=r"set_input\(1\)"):
        sl.set_input(1, inp)
    with pytest.raises(EmberError, match="has 1 input"):
        network.add_identity(inp).set_input(3, inp)
    other = ember.Builder().create_network().add_input("x", np.float32, (1,))
    with pytest.raises(EmberError, match="another network"):
        network.add_identity(other)


# -- every operation of the enums, and the API walked ----------------------------------------------

_UNARY = {"EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt, "RECIP": lambda v: 1 / v,
          "ABS": np.abs, "NEG": np.negative, "SIN": np.sin, "COS": np.cos, "TAN": np.tan,
          "SINH": np.sinh, "COSH": np.cosh, "ASIN": lambda v: np.arcsin(v / 4),
          "ACOS": lambda v: np.arccos(v / 4), "ATAN": np.arctan, "ASINH": np.arcsinh,
          "ACOSH": lambda v: np.arccosh(v + 1), "ATANH": lambda v: np.arctanh(v / 4),
          "CEIL": np.ceil, "FLOOR": np.floor, "ERF": None, "SIGN": np.sign, "ROUND": np.round}


def test_every_unary_and_elementwise_and_reduce_operation():
    import math

    x = (rng.random((2, 3, 4)) * 3 + 0.1).astype(np.float32)
    y = (rng.random((2, 3, 4)) * 3 + 0.1).astype(np.float32)
    network = ember.Builder().create_network()
    tx = network.add_input("x", np.float32, x.shape)
    ty = network.add_input("y", np.float32, y.shape)
    quarter = network.add_constant((1, 1, 1), np.array([0.25], np.float32))
    cases = {}
    for op in trt.UnaryOperation:
        if op.name in ("NOT", "ISINF", "ISNAN"):
            continue
        src = tx
        if op.name in ("ASIN", "ACOS", "ATANH"):
            src = network.add_elementwise(tx, quarter.get_output(0),
                                          trt.ElementWiseOperation.PROD).get_output(0)
        elif op.name == "ACOSH":
            one = network.add_constant((1, 1, 1), np.ones(1, np.float32))
            src = network.add_elementwise(tx, one.get_output(0),
                                          trt.ElementWiseOperation.SUM).get_output(0)
        cases[f"unary {op.name}"] = network.add_unary(src, op)
    for op in trt.ElementWiseOperation:
        if op.name in ("AND", "OR", "XOR"):
            continue
        cases[f"ew {op.name}"] = network.add_elementwise(tx, ty, op)
    for op in trt.ReduceOperation:
        cases[f"reduce {op.name}"] = network.add_reduce(tx, op, 0b110, False)
    for layer in cases.values():
        network.mark_output(layer.get_output(0))
    _, out = run(network, {"x": x, "y": y})
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    ew = {"SUM": x64 + y64, "PROD": x64 * y64, "MAX": np.maximum(x64, y64),
          "MIN": np.minimum(x64, y64), "SUB": x64 - y64, "DIV": x64 / y64, "POW": x64 ** y64,
          "FLOOR_DIV": np.floor(x64 / y64), "EQUAL": x == y, "GREATER": x > y, "LESS": x < y}
    red = {"SUM": np.sum, "PROD": np.prod, "MAX": np.max, "MIN": np.min, "AVG": np.mean}
    for key, layer in cases.items():
        kind, name = key.split()
        if kind == "unary":
            fn = _UNARY[name] or np.vectorize(math.erf)
            want = fn(x64)
        elif kind == "ew":
            want = ew[name]
        else:
            want = red[name](x64, axis=(1, 2))
        np.testing.assert_allclose(out[layer.get_output(0).name], want, rtol=2e-5, atol=2e-5,
                                   err_msg=key)


def test_gelu_einsum_squeeze_cumulative_prelu_and_gather_elements():
    import math

    x = rng.standard_normal((2, 1, 4)).astype(np.float32)
    network, inp = _net(x.shape)
    gelu = network.add_activation(inp, trt.ActivationType.GELU_ERF)
    gelu_tanh = network.add_activation(inp, trt.ActivationType.GELU_TANH)
    ein = network.add_einsum([inp, inp], "abc,abd->acd")
    axes = network.add_constant((1,), np.array([1], np.int64))
    sq = network.add_squeeze(inp, axes.get_output(0))
    unsq = network.add_unsqueeze(sq.get_output(0), axes.get_output(0))
    axis = network.add_constant((), np.array(2, np.int32))
    cum = network.add_cumulative(inp, axis.get_output(0), trt.CumulativeOperation.SUM, False,
                                 False)
    cum.reverse = True
    slopes = network.add_constant((1, 1, 4), np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    prelu = network.add_parametric_relu(inp, slopes.get_output(0))
    idx = network.add_constant((2, 1, 4), rng.integers(0, 4, (2, 1, 4)).astype(np.int64))
    gel = network.add_gather_v2(inp, idx.get_output(0), trt.GatherMode.ELEMENT)
    gel.axis = 2
    outs = (gelu, gelu_tanh, ein, sq, unsq, cum, prelu, gel)
    for layer in outs:
        network.mark_output(layer.get_output(0))
    assert sq.get_output(0).shape == (2, 4) and unsq.get_output(0).shape == (2, 1, 4)
    _, out = run(network, {"x": x})
    got = [out[layer.get_output(0).name] for layer in outs]
    x64 = x.astype(np.float64)
    close(got[0], x64 * 0.5 * (1 + np.vectorize(math.erf)(x64 / np.sqrt(2))))
    close(got[1], 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64 ** 3))))
    close(got[2], np.einsum("abc,abd->acd", x64, x64))
    close(got[3], x64[:, 0])
    close(got[4], x64)
    close(got[5], np.flip(np.cumsum(np.flip(x64, 2), 2), 2))
    close(got[6], np.where(x64 > 0, x64, x64 * np.array([0.1, 0.2, 0.3, 0.4])))
    close(got[7], np.take_along_axis(x64, idx.weights, 2))


def test_resize_attributes():
    x = rng.standard_normal((1, 1, 3, 4)).astype(np.float32)
    network, inp = _net(x.shape)
    lin = network.add_resize(inp)
    lin.scales = (1.0, 1.0, 2.0, 2.0)
    lin.resize_mode = trt.InterpolationMode.LINEAR
    lin.coordinate_transformation = trt.ResizeCoordinateTransformation.ALIGN_CORNERS
    network.mark_output(lin.get_output(0))
    assert lin.get_output(0).shape == (1, 1, 6, 8)
    _, out = run(network, {"x": x})

    def interp(v, n_out):  # align corners along the last axis
        pos = np.arange(n_out) * (v.shape[-1] - 1) / (n_out - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, v.shape[-1] - 1)
        return v[..., lo] * (1 - (pos - lo)) + v[..., hi] * (pos - lo)

    want = interp(interp(x.astype(np.float64), 8).swapaxes(2, 3), 6).swapaxes(2, 3)
    close(out[lin.get_output(0).name], want)


def test_unnamed_nodes_of_a_parsed_model_take_precisions():
    from tests.onnx_cases import small_cnn

    model = small_cnn()
    for node in model.graph.node:
        node.name = ""
    builder = ember.Builder()
    network = builder.create_network()
    assert ember.OnnxParser(network).parse(model)
    conv = next(layer for layer in network if layer.type == trt.LayerType.CONVOLUTION)
    assert conv.name  # a generated name, carried by the model the builder gets
    assert [n.name for n in network.to_onnx().graph.node] == [la.name for la in network]
    config = builder.create_builder_config()
    config.set_flag(ember.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    conv.precision = "fp16"
    engine, _ = run(network, {"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)},
                    builder, config)
    assert {la["precision"] for la in engine.inspector.layers()
            if conv.name in la["origin"]} == {"fp16"}


# TensorRT 10's INetworkDefinition methods and each layer kind's attributes (the Python API's
# names): each exists in ember, working or raising UnsupportedError when used
_NETWORK_METHODS = """add_input add_convolution_nd add_activation add_pooling_nd add_lrn add_scale
add_scale_nd add_softmax add_concatenation add_deconvolution_nd add_elementwise add_unary
add_padding_nd add_shuffle add_slice add_reduce add_topk add_gather add_scatter add_gather_v2
add_ragged_softmax add_matrix_multiply add_constant add_identity add_cast add_plugin_v2
add_plugin_v3 add_plugin add_parametric_relu add_resize add_loop add_shape add_select
add_assertion add_grid_sample add_nms add_fill add_quantize add_dequantize add_dynamic_quantize
add_if_conditional add_einsum add_one_hot add_non_zero add_reverse_sequence add_normalization
add_cumulative add_squeeze add_unsqueeze mark_output unmark_output get_layer get_input
get_output num_layers num_inputs num_outputs name mark_weights_refittable remove_tensor
set_weights_name mark_debug unmark_debug is_debug_tensor""".split()

_LAYER_ATTRS = {
    "conv": "num_output_maps pre_padding post_padding padding_mode num_groups kernel bias "
            "kernel_size_nd stride_nd padding_nd dilation_nd",
    "deconv": "num_output_maps pre_padding post_padding padding_mode num_groups kernel bias "
              "kernel_size_nd stride_nd padding_nd dilation_nd",
    "pool": "type pre_padding post_padding padding_mode blend_factor "
            "average_count_excludes_padding window_size_nd stride_nd padding_nd",
    "act": "type alpha beta", "softmax": "axes", "concat": "axis", "ew": "op", "unary": "op",
    "reduce": "op axes keep_dims", "pad": "pre_padding_nd post_padding_nd",
    "shuffle": "first_transpose reshape_dims second_transpose zero_is_placeholder",
    "slice": "start shape stride mode axes", "matmul": "op0 op1", "cast": "to_type",
    "const": "weights shape", "gather": "axis num_elementwise_dims mode",
    "resize": "shape scales resize_mode coordinate_transformation selector_for_single_pixel "
              "nearest_rounding exclude_outside cubic_coeff",
    "fill": "shape operation alpha beta to_type", "scale": "mode shift scale power channel_axis",
    "norm": "epsilon axes num_groups compute_precision is_v2", "einsum": "equation",
    "cum": "op exclusive reverse",
}
_ILAYER = ("name metadata num_ranks type num_inputs num_outputs precision precision_is_set "
           "set_input get_input get_output reset_precision set_output_type get_output_type "
           "output_type_is_set reset_output_type").split()
_ITENSOR = ("name shape dtype broadcast_across_batch location allowed_formats is_network_input "
            "is_network_output dynamic_range set_dynamic_range reset_dynamic_range "
            "set_dimension_name get_dimension_name").split()


def test_every_tensorrt_network_name_exists():
    network, inp = _net((1, 3, 8, 8))
    w = np.zeros((3, 3, 3, 3), np.float32)
    ax = network.add_constant((1,), np.array([0], np.int64)).get_output(0)
    layers = {
        "conv": network.add_convolution_nd(inp, 3, (3, 3), w),
        "deconv": network.add_deconvolution_nd(inp, 3, (3, 3), w),
        "pool": network.add_pooling_nd(inp, trt.PoolingType.MAX, (2, 2)),
        "act": network.add_activation(inp, trt.ActivationType.RELU),
        "softmax": network.add_softmax(inp), "concat": network.add_concatenation([inp]),
        "ew": network.add_elementwise(inp, inp, trt.ElementWiseOperation.SUM),
        "unary": network.add_unary(inp, trt.UnaryOperation.EXP),
        "reduce": network.add_reduce(inp, trt.ReduceOperation.SUM, 2, True),
        "pad": network.add_padding_nd(inp, (1, 1), (1, 1)), "shuffle": network.add_shuffle(inp),
        "slice": network.add_slice(inp, (0,) * 4, (1,) * 4, (1,) * 4),
        "matmul": network.add_matrix_multiply(inp, trt.MatrixOperation.NONE, inp,
                                              trt.MatrixOperation.NONE),
        "cast": network.add_cast(inp, np.float16),
        "const": network.add_constant((1,), np.ones(1, np.float32)),
        "gather": network.add_gather(inp, ax, 0), "resize": network.add_resize(inp),
        "fill": network.add_fill((2,), trt.FillOperation.LINSPACE),
        "scale": network.add_scale(inp, trt.ScaleMode.UNIFORM),
        "norm": network.add_normalization(inp, inp, inp, 2),
        "einsum": network.add_einsum([inp], "abcd->abcd"),
        "cum": network.add_cumulative(inp, ax, trt.CumulativeOperation.SUM, False, False),
    }
    for name in _NETWORK_METHODS:
        assert getattr(network, name) is not None, name
    for kind, names in _LAYER_ATTRS.items():
        for name in names.split() + _ILAYER:
            getattr(layers[kind], name)  # no AttributeError
    for name in _ITENSOR:
        getattr(inp, name)
    with pytest.raises(UnsupportedError, match="set_dynamic_range"):
        inp.set_dynamic_range(-1.0, 1.0)
    with pytest.raises(UnsupportedError, match="is_shape_tensor"):
        _ = inp.is_shape_tensor
    with pytest.raises(UnsupportedError, match="refit"):
        network.mark_weights_refittable("conv_1/kernel")
    with pytest.raises(UnsupportedError, match="location"):
        inp.location = "HOST"
    inp.location = types.SimpleNamespace(name="DEVICE")  # TensorRT's default: a no-op


def test_dimension_names_make_inputs_share_a_dynamic_dim():
    network = ember.Builder().create_network()
    a = network.add_input("a", np.float32, (-1, 4))
    b = network.add_input("b", np.float32, (-1, 4))
    a.set_dimension_name(0, "batch")
    b.set_dimension_name(0, "batch")
    assert a.get_dimension_name(0) == "batch" and a.shape == (-1, 4)
    s = network.add_elementwise(a, b, trt.ElementWiseOperation.SUM)
    network.mark_output(s.get_output(0))
    dims = [d.dim_param for vi in network.to_onnx().graph.input
            for d in vi.type.tensor_type.shape.dim if d.dim_param]
    assert dims == ["batch", "batch"]
    with pytest.raises(EmberError, match="not a dynamic dim"):
        a.set_dimension_name(1, "four")


def test_scale_power_and_elementwise_mode():
    x = (rng.random((2, 3, 2, 4)) + 0.5).astype(np.float32)
    network, inp = _net(x.shape)
    scale = rng.random((2, 4)).astype(np.float32) + 0.5
    sc = network.add_scale_nd(inp, trt.ScaleMode.ELEMENTWISE, None, scale, None, 2)
    sc.power = np.array([2.0], np.float32) * np.ones((2, 4), np.float32)
    sc.shift = np.full((2, 4), 0.25, np.float32)
    uni = network.add_scale(inp, trt.ScaleMode.UNIFORM, power=np.array([3.0], np.float32))
    for layer in (sc, uni):
        network.mark_output(layer.get_output(0))
    assert uni.channel_axis == 1  # add_scale: the third dim from the end
    _, out = run(network, {"x": x})
    x64 = x.astype(np.float64)
    close(out[sc.get_output(0).name], (x64 * scale + 0.25) ** 2)
    close(out[uni.get_output(0).name], x64 ** 3)


def test_inputs_layers_and_connections_change_after_creation():
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    network, inp = _net((1, 2, 4, 4))
    other = network.add_input("other", np.float32, (1, 2, 6, 6))

    class Weights:  # anything with .numpy(), as TensorRT's Weights
        def __init__(self, a):
            self.a = a

        def numpy(self):
            return self.a

    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    conv = network.add_convolution_nd(inp, 3, (3, 3), Weights(w), np.zeros(0, np.float32))
    assert conv.bias is None  # empty weights: no bias
    network.mark_output(conv.get_output(0))
    assert conv.get_output(0).shape == (1, 3, 2, 2)
    inp.shape = (1, 2, 6, 6)
    assert conv.get_output(0).shape == (1, 3, 4, 4)
    conv.set_input(0, other)
    assert conv.get_input(0) is other and conv.num_inputs == 1
    assert network.num_layers == len(network) == 1 and network[0] == conv
    assert network.get_layer(0).type == trt.LayerType.CONVOLUTION
    assert [la.name for la in network] == [conv.name]
    _, out = run(network, {"x": x, "other": 2 * x})
    close(out[conv.get_output(0).name], conv2d(2 * x, w))
    act = network.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    conv.set_input(0, act.get_output(0))
    with pytest.raises(EmberError, match="cycle"):
        network.to_onnx()
    with pytest.raises(EmberError, match="out of range"):
        network.get_layer(2)
    network.unmark_output(conv.get_output(0))
    assert network.num_outputs == 0
    with pytest.raises(EmberError, match="not a network output"):
        network.unmark_output(conv.get_output(0))


def test_tensorrt_interface_names():
    from ember.compiler import network as api

    net, inp = _net()
    pool = net.add_pooling_nd(inp, trt.PoolingType.MAX, (2, 2))
    assert isinstance(pool, api.IPoolingLayer) and isinstance(pool, api.ILayer)
    assert isinstance(inp, api.ITensor) and isinstance(net, api.INetworkDefinition)
    assert pool.type == trt.PoolingType.MAX  # as TensorRT's IPoolingLayer.type
    assert net.get_layer(0).type == trt.LayerType.POOLING  # as TensorRT's ILayer.type


def test_float16_tensors_take_the_weights_in_their_type():
    """As TensorRT converts weights to the type of the tensor they meet: a float16 input and a
    float16 cast feed convolutions and scales with float32 weights."""
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    network = ember.Builder().create_network()
    half = network.add_input("h", np.float16, x.shape)
    full = network.add_input("f", np.float32, x.shape)
    conv_h = network.add_convolution_nd(half, 3, (3, 3), w, np.ones(3, np.float32))
    cast = network.add_cast(full, np.float16)
    act = network.add_activation(cast.get_output(0), trt.ActivationType.RELU)
    conv_c = network.add_convolution_nd(act.get_output(0), 3, (3, 3), w)
    sc = network.add_scale(conv_c.get_output(0), trt.ScaleMode.CHANNEL,
                           scale=np.array([1.0, 2.0, 3.0], np.float32))
    for layer in (conv_h, sc):
        network.mark_output(layer.get_output(0))
    assert conv_h.get_output(0).dtype in (np.float16, getattr(ember, "float16", None))
    _, out = run(network, {"h": x.astype(np.float16), "f": x})
    want = conv2d(x.astype(np.float16), w.astype(np.float16), np.ones(3))
    assert out[conv_h.get_output(0).name].dtype == np.float16
    close(out[conv_h.get_output(0).name], want, 2e-2)
    want = conv2d(np.maximum(x.astype(np.float16), 0), w.astype(np.float16)) * \
        np.array([1, 2, 3]).reshape(1, 3, 1, 1)
    close(out[sc.get_output(0).name], want, 5e-2)
