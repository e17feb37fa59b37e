"""ember's Polygraphy extension: `polygraphy run MODEL --ember --onnxrt` through the entry point
pyproject.toml declares (registered here from pyproject's own text in a temporary dist-info, so
the test does not depend on how ember was installed), Polygraphy's comparator, tolerances,
precision and shape flags, and per-layer comparison with `--ember-outputs mark all`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import import_module, metadata
from pathlib import Path

import numpy as np
import onnx
import pytest
import tomllib

from ember.compiler.models import LIGHT_MODELS, light_model_path
from ember.runtime import cpu_kernels
from ember.runtime.cuda import cuda_available
from tests.dynamic_models import cnn

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
ROOT = Path(__file__).parent.parent.parent
GROUP = "polygraphy.run.plugins"
QUICK = ("squeezenet", "shufflenet", "inception_v1")
LIGHT = LIGHT_MODELS if os.environ.get("EMBER_ALL_LIGHT") else QUICK  # as test_compare's


def _entry_points() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"][GROUP]


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    """A folder holding a dist-info with pyproject's `polygraphy.run.plugins` entry point."""
    d = tmp_path_factory.mktemp("plugin")
    info = d / "ember_polygraphy_test-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ember-polygraphy-test\n"
                                   "Version: 0\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in _entry_points().items()))
    return d


@pytest.fixture
def polygraphy(plugin_dir, monkeypatch):
    """`polygraphy ARGS` in-process (Polygraphy's own main), returning its exit status."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    from polygraphy.tools._main import main

    return lambda *args: main(list(args))


def polygraphy_cli(plugin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`polygraphy ARGS` as a user runs it, in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir),
                                                      env.get("PYTHONPATH")]))
    script = Path(sys.executable).parent / "polygraphy"  # the console script pip installed
    argv = [str(script)] if script.exists() else [shutil.which("polygraphy") or "polygraphy"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pgy")
    onnx.save(cnn(2), d / "cnn.onnx")
    onnx.save(cnn("N"), d / "cnn_dynamic.onnx")
    return d


def test_pyproject_declares_the_entry_point(plugin_dir, monkeypatch):
    target = _entry_points()["ember"]
    module, _, name = target.partition(":")
    groups = getattr(import_module(module), name)()
    assert [type(g).__name__ for g in groups] == ["EmberRunnerArgs"]
    monkeypatch.syspath_prepend(str(plugin_dir))
    found = metadata.entry_points().select(group=GROUP)
    assert "ember" in found.names and found["ember"].value == target


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_ember_cpu_against_onnxruntime(polygraphy, name, capfd):
    status = polygraphy("run", str(light_model_path(name)), "--ember", "--onnxrt",
                        "--ember-device", "cpu")
    out = capfd.readouterr().out
    assert status == 0, out
    assert "Accuracy Comparison | ember-runner" in out
    assert "PASSED | simple | All outputs matched" in out


def test_polygraphy_run_as_a_user_does(plugin_dir, small):
    done = polygraphy_cli(plugin_dir, "run", str(small / "cnn.onnx"), "--ember", "--onnxrt")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED | Runtime" in done.stdout and "ember-runner" in done.stdout


def test_precision_flags_and_refusals(polygraphy, small, capfd):
    model = str(small / "cnn.onnx")
    # the precision flags take effect (Polygraphy's spellings), judged by its tolerances
    assert polygraphy("run", model, "--ember", "--onnxrt", "--fp16", "--atol", "1e-7",
                      "--rtol", "1e-7", "--check-error-stat", "max") == 1
    assert "FAILED | Output: 'y'" in capfd.readouterr().out
    assert polygraphy("run", model, "--ember", "--onnxrt", "--fp16", "--atol", "1e-2",
                      "--rtol", "1e-2") == 0
    assert "PASSED | Output: 'y'" in capfd.readouterr().out
    # INT8 is refused by name, as is a TensorRT builder flag only ember would see
    for flag in ("--int8", "--sparse-weights"):
        assert polygraphy("run", model, "--ember", "--onnxrt", flag) == 1
        out = capfd.readouterr()
        assert f"--ember does not implement {flag}" in out.out + out.err


def test_generated_script_runs(plugin_dir, small, tmp_path):
    script = tmp_path / "compare.py"
    done = polygraphy_cli(plugin_dir, "run", str(small / "cnn.onnx"), "--ember", "--onnxrt",
                          "--ember-device", "cpu", "--gen-script", str(script))
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert "from ember.compiler.polygraphy_ext import EmberRunner" in text
    assert "EmberRunner(" in text and "device='cpu'" in text
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_dynamic_model_shapes(polygraphy, small, capfd):
    model = str(small / "cnn_dynamic.onnx")
    assert polygraphy("run", model, "--ember", "--onnxrt", "--input-shapes", "x:[3,3,8,8]") == 0
    out = capfd.readouterr().out
    assert "shape=(3, 10)" in out
    # no shapes: Polygraphy's data loader makes the dynamic dim 1; ember builds for that
    assert polygraphy("run", model, "--ember", "--onnxrt") == 0
    assert "shape=(1, 10)" in capfd.readouterr().out
    # a profile in Polygraphy's TensorRT spellings: one build with a symbolic batch
    assert polygraphy("run", model, "--ember", "--onnxrt", "--trt-min-shapes", "x:[1,3,8,8]",
                      "--trt-opt-shapes", "x:[2,3,8,8]", "--trt-max-shapes", "x:[4,3,8,8]",
                      "--input-shapes", "x:[4,3,8,8]") == 0


def test_onnx_outputs_mark_all_unfused(polygraphy, small, capfd):
    """Polygraphy's own spelling gives ember the model with every tensor an output."""
    assert polygraphy("run", str(small / "cnn.onnx"), "--ember", "--onnxrt", "--onnx-outputs",
                      "mark", "all") == 0
    out = capfd.readouterr().out
    for name in ("c", "r", "p", "f", "g", "y"):
        assert f"PASSED | Output: '{name}'" in out


def test_ember_outputs_mark_all_per_layer_names_a_planted_kernel(polygraphy, monkeypatch,
                                                                  capfd):
    model = onnx.load(light_model_path("squeezenet"))
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    args = ("run", str(light_model_path("squeezenet")), "--ember", "--onnxrt", "--ember-device",
            "cpu", "--onnx-outputs", "mark", "all", "--ember-outputs", "mark", "all")
    assert polygraphy(*args) == 0
    out = capfd.readouterr().out
    assert f"PASSED | Output: '{pool.output[0]}'" in out
    compared = out.count("PASSED | Output: '")
    assert 20 < compared < len(model.graph.node)  # the tensors that survive fusion
    right = cpu_kernels.KERNELS["pool"]
    monkeypatch.setitem(cpu_kernels.KERNELS, "pool",
                        lambda a, p: [np.asarray(r) + 1.0 for r in right(a, p)])
    assert polygraphy(*args) == 1
    out = capfd.readouterr().out
    assert f"FAILED | Output: '{pool.output[0]}'" in out
    assert "PASSED | Output: 'softmaxout_1'" in out  # the final output hides it


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_ember_cuda_against_onnxruntime(polygraphy, name, capfd):
    status = polygraphy("run", str(light_model_path(name)), "--ember", "--onnxrt",
                        "--ember-device", "cuda", "--atol", "1e-4", "--rtol", "1e-4")
    out = capfd.readouterr().out
    assert status == 0, out
    assert "on cuda" in out
