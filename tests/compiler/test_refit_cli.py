"""`ember build --refit` / `--strip-weights` and `ember refit PLAN NEW.onnx -o OUT`, run as a user
runs them, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

import ember
from tests.api.test_refit import X, resnet_block


def _ember(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "ember.compiler.cli", *args],
                          capture_output=True, text=True, timeout=600, env=env)


def test_refit_cli(tmp_path):
    old, new = tmp_path / "old.onnx", tmp_path / "new.onnx"
    onnx.save(resnet_block(0), old)
    onnx.save(resnet_block(1), new)
    plan, out = tmp_path / "old.plan", tmp_path / "new.plan"
    done = _ember("build", str(old), "-o", str(plan), "--refit")
    assert done.returncode == 0, done.stderr
    done = _ember("refit", str(plan), str(new), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"refit {plan} from {new} in " in done.stdout
    engine = ember.Runtime(device="cpu").load(out)
    (expected,) = ReferenceEvaluator(resnet_block(1)).run(None, {"x": X})
    np.testing.assert_allclose(engine(x=X)["y"], expected, rtol=1e-5, atol=1e-5)

    # a weight-stripped plan, made whole from the model at deployment
    stripped, whole = tmp_path / "stripped.plan", tmp_path / "whole.plan"
    done = _ember("build", str(new), "-o", str(stripped), "--strip-weights")
    assert done.returncode == 0, done.stderr
    assert _ember("refit", str(stripped), str(new), "-o", str(whole)).returncode == 0
    assert whole.read_bytes() == out.read_bytes()

    # refused: a plan without REFIT; a model that changes a folded constant. Nothing written.
    plain, changed = tmp_path / "plain.plan", tmp_path / "changed.onnx"
    assert _ember("build", str(old), "-o", str(plain)).returncode == 0
    done = _ember("refit", str(plain), str(new), "-o", str(tmp_path / "x.plan"))
    assert done.returncode == 1 and "not built with BuilderFlag.REFIT" in done.stderr
    model = resnet_block(1)
    for t in model.graph.initializer:
        if t.name == "clip.max":
            t.CopyFrom(onnx.numpy_helper.from_array(np.float32(1.0), "clip.max"))
    onnx.save(model, changed)
    done = _ember("refit", str(plan), str(changed), "-o", str(out))
    assert done.returncode == 1 and "initializer 'clip.max' differs" in done.stderr
    assert out.read_bytes() == whole.read_bytes()  # left as it was
    assert not (tmp_path / "x.plan").exists()
