"""`ember debug` composes the flag groups `ember run` / `ember compare` use (flag_groups): the
model and --shapes, input data (--load-inputs .npz/.json, --seed, --input-range), Polygraphy's
tolerances (abs OR rel, per output, --check-error-stat) and the build's precision flags."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx

from ember.compiler.compare import compare_arrays
from ember.compiler.debug import output_errors
from ember.compiler.debug_bisect import bisect
from ember.compiler.flag_groups import Tolerances, input_data
from ember.compiler.pipeline import parse_pipeline_text
from tests.compiler.test_debug_bisect import _cpu_passes, conv_bn_model
from tests.compiler.test_debug_precision import overflow_model


def _debug(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "ember.compiler.cli", "debug", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_the_tolerance_is_polygraphys_rule_as_compare_holds_it():
    """An element passes where abs error <= atol OR rel error <= rtol: 0.15 off 10 fails atol
    0.1 / rtol 0.01 (the old atol + rtol*|want| let it pass); --check-error-stat mean passes
    one outlier among many exact elements; per-output tolerances apply by name."""
    want = {"y": np.full(100, 10.0, np.float32)}
    got = {"y": want["y"].copy()}
    got["y"][0] += 0.15
    strict = Tolerances(0.1, 0.01)
    (error,) = output_errors(got, want, strict)
    assert not error.passed and error.mismatched == 1
    assert error.passed == compare_arrays("y", got["y"], want["y"], strict).passed
    assert output_errors(got, want, Tolerances(0.1, 0.01, "mean"))[0].passed
    assert output_errors(got, want, Tolerances(0.1, 0.01, per_output={"y": {"atol": 0.2}})
                         )[0].passed


def test_bisect_takes_the_stat_range_and_seed_of_the_groups(tmp_path):
    """`ember debug bisect` reads --seed, --input-range, per-output --atol and
    --check-error-stat as `ember compare` does (the JSON report states the tolerance it held);
    the inputs the group makes for a seed and range pass through the API too, and --load-inputs
    takes .npz and .json, refusing random-input flags beside it."""
    onnx.save(conv_bn_model(), tmp_path / "m.onnx")
    done = _debug("bisect", str(tmp_path / "m.onnx"), "--seed", "7", "--input-range=-2,2",
                  "--atol", "1e-4", "y:1e-3", "--check-error-stat", "max", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "passed"
    assert data["tolerance"]["stat"] == "max"
    assert data["tolerance"]["per_output"] == {"y": {"atol": 1e-3}}
    # the inputs the CLI made: the group's (seed 7, uniform in [-2, 2)), given to the API
    feeds = input_data(_namespace(seed=7, input_range=["-2,2"])).feed(
        [_spec("x", (2, 3, 4, 4))])
    assert feeds["x"].min() < -1 and feeds["x"].max() > 1
    assert bisect(conv_bn_model(), _cpu_passes(), feeds=feeds).status == 0
    np.savez(tmp_path / "in.npz", **feeds)
    (tmp_path / "in.json").write_text(json.dumps({"x": feeds["x"].tolist()}))
    for path in ("in.npz", "in.json"):  # the group reads both
        done = _debug("bisect", str(tmp_path / "m.onnx"), "--load-inputs", str(tmp_path / path))
        assert done.returncode == 0 and "first diverging pass" not in done.stdout, done.stderr
    done = _debug("bisect", str(tmp_path / "m.onnx"), "--load-inputs", str(tmp_path / "in.npz"),
                  "--input-range=0,1")
    assert done.returncode == 2 and "--input-range is for random inputs" in done.stderr
    done = _debug("bisect", str(tmp_path / "m.onnx"), "--check-error-stat", "p99")
    assert done.returncode == 2 and "the statistic is one of elemwise, max, mean, median" \
        in done.stderr


def test_precision_flags_are_the_build_groups(tmp_path):
    """bisect's build takes every precision flag of the build group (here TF32 and a pinned
    layer, in the pipeline it prints); with a hand-written pass list each is refused by name;
    debug precision refuses the per-layer flags it chooses itself."""
    onnx.save(conv_bn_model(), tmp_path / "m.onnx")
    done = _debug("bisect", str(tmp_path / "m.onnx"), "--tf32", "--layer-precisions",
                  "gemm:fp32", "--precision-constraints", "obey")
    assert done.returncode == 0, done.stderr
    pipeline = done.stdout.splitlines()[0].removeprefix("pipeline: ")
    (assign,) = [p for p in parse_pipeline_text(pipeline) if p.name == "assign-precision"]
    assert assign.tf32 and assign.layer_precisions == "gemm:fp32"
    assert assign.constraints == "obey"
    done = _debug("bisect", str(tmp_path / "m.onnx"), "--passes", "convert-onnx-to-nn",
                  "--layer-precisions", "gemm:fp32")
    assert done.returncode == 2 and "--layer-precisions: choose a build's pipeline" in done.stderr
    onnx.save(overflow_model(), tmp_path / "o.onnx")
    done = _debug("precision", str(tmp_path / "o.onnx"), "--fp16", "--layer-precisions",
                  "big:fp32")
    assert done.returncode == 2
    assert "--layer-precisions: ember debug precision chooses the per-layer precisions itself" \
        in done.stderr
    done = _debug("precision", str(tmp_path / "o.onnx"), "--fp16", "--bf16")
    assert done.returncode == 2 and "give --fp16 or --bf16 (one)" in done.stderr


def _namespace(**given):
    import argparse

    return argparse.Namespace(**{"load_inputs": None, "seed": None, "input_range": None,
                                 **given})


def _spec(name, shape):
    from ember.compiler.flag_groups import InputSpec

    return InputSpec(name, np.dtype(np.float32), shape)
