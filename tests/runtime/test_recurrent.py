"""RNN, GRU and LSTM (nn.rnn / nn.lstm) against onnxruntime, which implements every attribute
(onnx.reference ignores sequence_lens, activations, clip and input_forget): directions, layouts,
initial states, sequence lengths, activations with alpha/beta, clip, linear_before_reset,
input_forget, peepholes; and a bi-LSTM + GRU tagger as PyTorch exports one."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.ort_compat import for_onnxruntime
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT
SEQ, BATCH, IN, HID = 5, 3, 4, 6
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _model(op, direction="forward", layout=0, with_bias=True, lens=False, initial=False,
           peepholes=False, outputs=("Y", "Y_h"), **attrs):
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    rng = np.random.default_rng(len(op) * 10 + len(direction))  # layouts share weights
    x_shape = [BATCH, SEQ, IN] if layout else [SEQ, BATCH, IN]
    state = [BATCH, dirs, HID] if layout else [dirs, BATCH, HID]
    inits = [helper.make_tensor("W", F, [dirs, g * HID, IN],
                                rng.standard_normal(dirs * g * HID * IN) * 0.5),
             helper.make_tensor("R", F, [dirs, g * HID, HID],
                                rng.standard_normal(dirs * g * HID * HID) * 0.5)]
    names = ["X", "W", "R", "", "", "", "", ""]
    inputs = [helper.make_tensor_value_info("X", F, x_shape)]
    if with_bias:
        inits.append(helper.make_tensor("B", F, [dirs, 2 * g * HID],
                                        rng.standard_normal(dirs * 2 * g * HID) * 0.3))
        names[3] = "B"
    if lens:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [BATCH]))
        names[4] = "lens"
    if initial:
        inputs.append(helper.make_tensor_value_info("h0", F, state))
        names[5] = "h0"
        if op == "LSTM":
            inputs.append(helper.make_tensor_value_info("c0", F, state))
            names[6] = "c0"
    if peepholes:
        inits.append(helper.make_tensor("P", F, [dirs, 3 * HID],
                                        rng.standard_normal(dirs * 3 * HID) * 0.3))
        names[7] = "P"
    while names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, list(outputs), hidden_size=HID, direction=direction,
                            layout=layout, **attrs)
    y_shape = [BATCH, SEQ, dirs, HID] if layout else [SEQ, dirs, BATCH, HID]
    shapes = {"Y": y_shape, "Y_h": state, "Y_c": state}
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info(o, F, shapes[o]) for o in outputs
                               if o], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _feed(model, layout=0):
    rng = np.random.default_rng(3)
    feed = {}
    for vi in model.graph.input:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.name == "lens":
            feed["lens"] = np.array([SEQ, 2, 4], np.int32)
        else:
            feed[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feed


def _check(model, arch=None, twin=None):
    """ember on `model` against onnxruntime on it, or (onnxruntime runs no layout 1) on its
    layout-0 `twin` with the batch-major tensors transposed."""
    feed = _feed(model)
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch,
                                                          autotune=False if arch else None))
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)
    theirs = {k: np.swapaxes(v, 0, 1) if twin is not None and v.ndim == 3 else v
              for k, v in feed.items()}
    session = ort.InferenceSession(for_onnxruntime(twin or model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for name, want in zip(names, session.run(names, theirs), strict=True):
        if twin is not None:  # Y [seq, dirs, batch, h] -> [batch, seq, dirs, h]; states
            want = np.transpose(want, (2, 0, 1, 3)) if want.ndim == 4 else np.swapaxes(want, 0, 1)
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-5, err_msg=name)
    return manifest


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_directions_and_layouts_with_lengths_and_initial_states(op, direction, layout):
    outputs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    model = _model(op, direction, layout, lens=True, initial=True, outputs=outputs)
    twin = _model(op, direction, 0, lens=True, initial=True, outputs=outputs) if layout else None
    _check(model, twin=twin)


@pytest.mark.parametrize("op, attrs", [
    ("RNN", {"activations": ["Relu"]}),
    ("RNN", {"activations": ["LeakyRelu", "ScaledTanh"], "activation_alpha": [0.2, 0.7],
             "activation_beta": [1.5]}),
    ("GRU", {"linear_before_reset": 1}),
    ("GRU", {"clip": 0.5, "activations": ["HardSigmoid", "Softsign"] * 2,
             "activation_alpha": [0.3, 0.25], "activation_beta": [0.4, 0.45]}),
    ("LSTM", {"input_forget": 1}),
    ("LSTM", {"clip": 0.4, "activations": ["Sigmoid", "Elu", "Softplus"] * 2,
              "activation_alpha": [0.8, 0.6]}),
])
def test_activations_clip_and_cell_options(op, attrs):
    direction = "bidirectional" if "clip" in attrs or op == "RNN" and len(
        attrs.get("activations", ())) == 2 else "forward"
    _check(_model(op, direction, outputs=("Y", "Y_h"), **attrs))


def test_a_wrong_activation_list_is_refused_at_build():
    from ember.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="2 activations for 1 direction"):
        build_model(_model("RNN", activations=["Relu", "Tanh"]), BuilderConfig())
    with pytest.raises(UnsupportedError, match="activations \\['Swish'\\]"):
        build_model(_model("GRU", activations=["Swish", "Tanh"]), BuilderConfig())


def test_peepholes_and_omitted_outputs_and_no_bias():
    _check(_model("LSTM", peepholes=True, initial=True, outputs=("", "Y_h", "Y_c")))
    _check(_model("GRU", with_bias=False, outputs=("", "Y_h")))


def _tagger():
    """Token ids -> embedding -> bi-LSTM -> GRU -> per-token scores, as torch.onnx.export
    writes nn.LSTM(bidirectional=True) and nn.GRU (seq-major, the directions folded into the
    features by Transpose + Reshape; zero initial states)."""
    rng = np.random.default_rng(0)
    vocab, emb, hid, tags, seq, batch = 50, 8, 6, 5, 7, 2

    def t(name, *shape, scale=0.4):
        return helper.make_tensor(name, F, list(shape), rng.standard_normal(shape).ravel() * scale)

    inits = [t("emb", vocab, emb), t("W1", 2, 4 * hid, emb), t("R1", 2, 4 * hid, hid),
             t("B1", 2, 8 * hid), t("W2", 1, 3 * hid, 2 * hid), t("R2", 1, 3 * hid, hid),
             t("B2", 1, 6 * hid), t("fc", hid, tags), t("fcb", tags),
             helper.make_tensor("shape", TensorProto.INT64, [3], [seq, batch, 2 * hid]),
             helper.make_tensor("h1", F, [2, batch, hid], np.zeros(2 * batch * hid)),
             helper.make_tensor("h2", F, [1, batch, hid], np.zeros(batch * hid))]
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]),                 # [batch, seq, emb]
             helper.make_node("Transpose", ["e"], ["es"], perm=[1, 0, 2]),      # [seq, batch, emb]
             helper.make_node("LSTM", ["es", "W1", "R1", "B1", "", "h1", "h1"], ["y1"],
                              hidden_size=hid, direction="bidirectional"),
             helper.make_node("Transpose", ["y1"], ["y1t"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["y1t", "shape"], ["y1r"]),           # [seq, batch, 2h]
             helper.make_node("GRU", ["y1r", "W2", "R2", "B2", "", "h2"], ["y2"],
                              hidden_size=hid, linear_before_reset=1),
             helper.make_node("Squeeze", ["y2", "one"], ["y2s"]),              # [seq, batch, h]
             helper.make_node("MatMul", ["y2s", "fc"], ["m"]),
             helper.make_node("Add", ["m", "fcb"], ["scores"])]
    inits.append(helper.make_tensor("one", TensorProto.INT64, [1], [1]))
    graph = helper.make_graph(
        nodes, "tagger", [helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, seq])],
        [helper.make_tensor_value_info("scores", F, [seq, batch, tags])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_a_bilstm_gru_tagger_matches_onnxruntime(arch):
    model = _tagger()
    feed = {"ids": np.random.default_rng(1).integers(0, 50, (2, 7)).astype(np.int64)}
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch,
                                                          autotune=False if arch else None))
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)["scores"]
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if arch:  # both recurrent layers are fused CUDA kernels
        steps = {s["template"]: s for s in manifest["steps"] if s["template"] in ("lstm", "rnn")}
        assert set(steps) == {"lstm", "rnn"} and not any(s.get("device") for s in
                                                          steps.values())


@pytest.mark.cuda
def test_the_tagger_on_the_gpu():
    from ember.compiler.builder import detect_arch
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        pytest.skip("needs a GPU")
    model = _tagger()
    feed = {"ids": np.random.default_rng(1).integers(0, 50, (2, 7)).astype(np.int64)}
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch()))
    got = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)["scores"]
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op, direction, layout, attrs", [
    ("RNN", "forward", 0, {}),
    ("RNN", "bidirectional", 1, {"activations": ["Relu", "Tanh"]}),
    ("GRU", "reverse", 0, {}),
    ("GRU", "bidirectional", 0, {"linear_before_reset": 1, "clip": 0.7}),
    ("LSTM", "forward", 1, {}),
    ("LSTM", "bidirectional", 0, {"input_forget": 1}),
])
def test_the_cuda_kernel_matches_the_numpy_kernel(tmp_path, op, direction, layout, attrs):
    """The fused CUDA kernel on the emulated GPU (g++), with lengths, initial states and (LSTM)
    peepholes, against the numpy kernel: every output."""
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.cpu_kernels.recurrent import recurrent
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    outputs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    model = _model(op, direction, layout, lens=True, initial=True, peepholes=op == "LSTM",
                   outputs=outputs, **attrs)
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = [s for s in manifest["steps"] if s["template"] in ("rnn", "lstm")]
    assert "device" not in step  # a CUDA kernel, not a host step
    feed = _feed(model)
    from onnx import numpy_helper

    values = {**feed, **{t.name: numpy_helper.to_array(t) for t in model.graph.initializer}}
    node = model.graph.node[0]
    inputs = [values[n] for n in node.input if n]
    want = recurrent(inputs, step["params"])
    name, spec = emit_step({**step, "name": f"{step['template']}_0"})
    got = simt_emulator.run_outputs(spec, name, inputs, [w.shape for w in want],
                                    [w.dtype for w in want], tmp_path)
    for k, (mine, expected) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(mine, expected, rtol=1e-4, atol=1e-5, err_msg=f"output {k}")
