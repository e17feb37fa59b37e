"""`ember debug tactics`: an MLP built for sm_90 gets a different tactic on each matmul; a planted
bad tactic (wrong results from the kernel that runs it) must be named, and excluding it must
give the next candidate. Without a GPU the plans run on the CPU executor through `runner`, with
the numpy matmul planted to be wrong for that one tactic (the CPU executor passes each step's
tactic in its params); on a GPU (`cuda` tests) the CUDA emitter of the tactic is planted."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as h

from ember.compiler.debug import as_json, engine_runner
from ember.compiler.debug_tactics import debug_tactics, tactic_key
from ember.compiler.flag_groups import Tolerances
from ember.runtime import cpu_kernels
from ember.runtime.cuda import cuda_available


def mlp_model() -> onnx.ModelProto:
    """Three matmul+relu layers of different sizes: three different tactics on sm_90."""
    rng = np.random.default_rng(0)
    dims = [64, 256, 32, 128]
    nodes, inits, x = [], [], "x"
    for i, (a, b) in enumerate(zip(dims, dims[1:], strict=False)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(h.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"fc{i}"))
        nodes.append(h.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu{i}"))
        x = f"r{i}"
    graph = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", TensorProto.FLOAT, [8, 64])],
                         [h.make_tensor_value_info(x, TensorProto.FLOAT, [8, dims[-1]])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


CPU = engine_runner("cpu")


def _plant_cpu(monkeypatch, bad: str) -> None:
    """The numpy matmul computes 1.5x the product when its step's tactic is `bad`."""
    real = cpu_kernels.KERNELS["matmul"]

    def planted(args, params):
        out = real(args, params)
        if "tactic" in params and tactic_key("matmul", params["tactic"]) == bad:
            out = [o * 1.5 for o in out]
        return out

    monkeypatch.setitem(cpu_kernels.KERNELS, "matmul", planted)


def test_a_correct_build_passes_with_no_trial() -> None:
    result = debug_tactics(mlp_model(), target_arch="sm_90", runner=CPU)
    assert result.status == 0 and result.trials == [] and result.bad == []
    assert len(result.uses) == 3
    assert [u.nodes[0] for u in result.uses] == ["fc0", "fc1", "fc2"]
    assert len({tactic_key(u.template, u.tactic) for u in result.uses}) == 3
    assert "PASSED" in result.report().text


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_planted_bad_tactic_is_named(monkeypatch, which) -> None:
    uses = debug_tactics(mlp_model(), target_arch="sm_90", runner=CPU).uses
    bad = tactic_key(uses[which].template, uses[which].tactic)
    _plant_cpu(monkeypatch, bad)
    result = debug_tactics(mlp_model(), target_arch="sm_90", runner=CPU)
    assert result.bad == [bad] and result.status == 0
    assert result.baseline[0].mismatched > 0
    trial = next(t for t in result.trials if t.tactic == bad)
    assert trial.passed and trial.kernels == [[f"fc{which}", f"relu{which}"]]
    assert trial.replaced_by[0] is not None and trial.replaced_by[0] != bad
    others = [t for t in result.trials if t.tactic != bad]
    assert len(others) == 2 and not any(t.passed for t in others)
    report = result.report()
    assert f"bad tactic: {bad} (kernels of fc{which}, relu{which})" in report.text
    assert report.data["bad_tactics"] == [bad]
    data = json.loads(json.dumps(as_json(report.data)))  # what --json prints
    assert data["status"] == "found" and data["trials"][which]["passed"]
    assert data["kernels"][which]["nodes"] == [f"fc{which}", f"relu{which}"]


def test_a_wrong_output_no_tactic_explains_fails(monkeypatch) -> None:
    # every matmul wrong whatever its tactic: no single exclusion fixes it
    matmul = cpu_kernels.KERNELS["matmul"]
    monkeypatch.setitem(cpu_kernels.KERNELS, "matmul",
                        lambda args, params: [o + 1.0 for o in matmul(args, params)])
    result = debug_tactics(mlp_model(), target_arch="sm_90", runner=CPU,
                           tolerance=Tolerances(1e-4, 1e-3))
    assert result.status == 1 and result.bad == [] and len(result.trials) == 3
    assert "FAILED" in result.report().text


def test_without_a_gpu_the_python_api_refuses_the_default_runner() -> None:
    if cuda_available():
        pytest.skip("a GPU is present")
    from ember.errors import EmberError

    with pytest.raises(EmberError, match="needs a GPU"):
        debug_tactics(mlp_model(), target_arch="sm_90")


def _ember(*args: str, code: str = "") -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code + "\nimport sys\nfrom ember.compiler.cli import main\n"
            f"sys.exit(main(['debug', 'tactics', *{list(args)!r}]))"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(cuda_available(), reason="the CPU-only refusal")
def test_cli_on_the_cpu_refuses_in_one_line(tmp_path) -> None:
    onnx.save(mlp_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "needs a GPU" in done.stderr
    assert "numpy kernel per template whatever its tactic" in done.stderr
    done = _ember("--help")
    assert done.returncode == 0 and "ember debug tactics model.onnx" in done.stdout


# -- on the GPU: the CUDA emitter of one tactic planted -------------------------------------------

PLANT_EMITTER = """
import dataclasses
from ember.codegen.templates import matmul
from ember.compiler.debug_tactics import tactic_key
_real = matmul.emit
def _planted(name, params):
    spec = _real(name, params)
    if tactic_key("matmul", params.get("tactic") or {}) == BAD:
        # every stored value 1.5x the product (a wrong grid that leaves outputs unwritten is
        # not seen where the arena still holds an earlier run's right answers)
        spec = dataclasses.replace(spec, source=spec.source.replace(
            "out0[oi] = ", "out0[oi] = 1.5f * "))
    return spec
matmul.emit = _planted
"""


def _gpu_uses() -> list:
    from ember.compiler.builder import detect_arch

    return debug_tactics(mlp_model(), target_arch=detect_arch(), autotune=False).uses


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_a_planted_bad_cuda_emitter_is_named_on_the_gpu(monkeypatch) -> None:
    from ember.codegen.templates import matmul
    from ember.compiler.builder import detect_arch

    uses = _gpu_uses()
    bad = tactic_key(uses[1].template, uses[1].tactic)
    real = matmul.emit

    def planted(name, params):
        spec = real(name, params)
        if tactic_key("matmul", params.get("tactic") or {}) == bad:  # as PLANT_EMITTER
            assert "out0[oi] = " in spec.source
            spec = dataclasses.replace(spec, source=spec.source.replace(
                "out0[oi] = ", "out0[oi] = 1.5f * "))
        return spec

    monkeypatch.setattr(matmul, "emit", planted)
    result = debug_tactics(mlp_model(), target_arch=detect_arch(), autotune=False)
    assert result.baseline[0].mismatched > 0
    assert result.bad == [bad] and result.status == 0


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_cli_names_a_planted_bad_cuda_emitter(tmp_path) -> None:
    onnx.save(mlp_model(), tmp_path / "m.onnx")
    uses = _gpu_uses()
    bad = tactic_key(uses[1].template, uses[1].tactic)
    done = _ember(str(tmp_path / "m.onnx"), "--autotune", "off", "--json",
                  code=f"BAD = {bad!r}\n" + PLANT_EMITTER)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "found" and data["bad_tactics"] == [bad]
