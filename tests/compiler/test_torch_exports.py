"""Models exported by PyTorch itself (where torch is installed: the GPU host; CI has none and
skips): a TorchScript module with an If on data and a Loop over a static dim, and a bi-LSTM +
GRU sequence tagger. Each matches onnxruntime on the CPU, and on the GPU where there is one.
The CPU suite covers the same structures with hand-written models (test_onnx_control.py,
tests/runtime/test_recurrent.py)."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ember.compiler.builder import BuilderConfig, build_model, detect_arch
from ember.compiler.ort_compat import for_onnxruntime
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

torch = pytest.importorskip(
    "torch", reason="torch is not installed (the GPU host has it; CI runs these models' "
    "structures without torch in test_onnx_control.py and test_recurrent.py)")


def _export(module, args, names: list[str]) -> onnx.ModelProto:
    """torch.onnx.export's TorchScript-based exporter (the one that writes Loop for a scripted
    for-loop), opset 17."""
    buffer = io.BytesIO()
    torch.onnx.export(module, args, buffer, opset_version=17, dynamo=False,
                      input_names=names, output_names=["y"])
    return onnx.load_from_string(buffer.getvalue())


def _check(model: onnx.ModelProto, feed: dict[str, np.ndarray], ops: set[str]) -> None:
    assert ops <= {n.op_type for n in model.graph.node}, "the export lacks the ops under test"
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
    targets = [("cpu", None)] + ([("cuda", detect_arch())] if cuda_available() else [])
    for device, arch in targets:
        manifest, sections = build_model(model, BuilderConfig(target_arch=arch))
        engine = Runtime(device).deserialize_cuda_engine(plan_bytes(manifest, sections))
        got = engine.create_execution_context().execute(feed)["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=device)


@pytest.mark.cuda
def test_a_scripted_if_and_loop():
    class IfLoop(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(x.sum() > 0):
                y = x * 2.0
            else:
                y = x - 1.0
            for i in range(x.size(0)):
                y = y + i
            return y

    x = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 4
    model = _export(torch.jit.script(IfLoop()), (x,), ["x"])
    for sign in (1, -1):
        _check(model, {"x": sign * x.numpy()}, {"If", "Loop"})


@pytest.mark.cuda
def test_a_bilstm_gru_tagger():
    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(50, 16)
            self.lstm = torch.nn.LSTM(16, 24, batch_first=True, bidirectional=True)
            self.gru = torch.nn.GRU(48, 20, batch_first=True)
            self.out = torch.nn.Linear(20, 7)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x, _ = self.lstm(self.embed(ids))
            x, _ = self.gru(x)
            return self.out(x)

    torch.manual_seed(0)
    ids = torch.randint(0, 50, (3, 11))
    model = _export(Tagger().eval(), (ids,), ["ids"])
    _check(model, {"ids": ids.numpy()}, {"LSTM", "GRU"})
