"""The `ember` command: every error is one message and a non-zero exit, never a traceback, and
names from a model or plan reach the terminal with their control characters escaped."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ember.compiler import cli
from ember.compiler.cli import main
from ember.runtime.printable import printable

ESC = "\x1b"
RED = f"{ESC}[31mred"            # an ANSI colour
CLEAR = f"{ESC}[2J{ESC}[Hclear"  # clear the screen, cursor home
TITLE = f"{ESC}]0;pwned\x07y"    # set the window title (an OSC sequence ended by BEL)


def _model(path, node_name: str, op: str = "Relu", output: str = "y") -> str:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], [output], name=node_name)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [2, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_printable_escapes_control_characters_only():
    assert printable("conv1\tok\n") == "conv1\tok\n"
    assert printable(RED) == "\\x1b[31mred"
    assert printable(TITLE) == "\\x1b]0;pwned\\x07y"
    assert printable("a\rb\x00c\x9bd\u202ee") == "a\\x0db\\x00c\\x9bd\\u202ee"
    assert printable("naïve ✓ 名前") == "naïve ✓ 名前"


def test_an_import_error_names_the_node_escaped(tmp_path, capsys):
    model = _model(tmp_path / "m.onnx", CLEAR, op="NoSuchOp")
    assert main(["build", model, "-o", str(tmp_path / "m.plan")]) == 1
    err = capsys.readouterr().err
    assert ESC not in err and "Traceback" not in err
    assert "node '\\x1b[2J\\x1b[Hclear' (NoSuchOp): unknown operator" in err
    assert not (tmp_path / "m.plan").exists()


def test_plan_names_are_escaped_in_build_inspect_and_run(tmp_path, capsys):
    model = _model(tmp_path / "m.onnx", RED, output=TITLE)
    plan = str(tmp_path / "m.plan")
    np.savez(tmp_path / "in.npz", x=np.ones((2, 3), np.float32))
    for argv in (["build", model, "-o", plan, "--verbose"], ["inspect", plan],
                 ["inspect", plan, "--format", "json"],
                 ["run", plan, "--inputs", str(tmp_path / "in.npz")]):
        assert main(argv) == 0, argv
        out, err = capsys.readouterr()
        assert ESC not in out + err and "\x07" not in out + err, argv
        assert "\\x1b" in out or "json" in argv and "\\u001b" in out, (argv, out)


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "not onnx", "bad plan",
                                  "unwritable output"])
def test_bad_files_are_one_error_message(tmp_path, capsys, case):
    model = _model(tmp_path / "m.onnx", "relu")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07\x12\x03abc\xff\xff")
    (tmp_path / "bad.plan").write_bytes(b"EMBERPLN" + bytes(100))
    argv = {"missing": ["build", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "a.plan")],
            "empty": ["build", str(tmp_path / "empty.onnx"), "-o", str(tmp_path / "a.plan")],
            "directory": ["build", str(tmp_path), "-o", str(tmp_path / "a.plan")],
            "not onnx": ["build", str(tmp_path / "junk.onnx"), "-o", str(tmp_path / "a.plan")],
            "bad plan": ["run", str(tmp_path / "bad.plan")],
            "unwritable output": ["build", model, "-o", str(tmp_path / "no" / "dir" / "a.plan")],
            }[case]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ember {argv[0]}: error: ") and "Traceback" not in err, err
    assert err.count(": error: ") == 1 and "[E]" not in err, err  # once: not logged first


def test_an_internal_error_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    def broken(args):
        raise ValueError(f"a bug {ESC}[31m")

    monkeypatch.setattr(cli, "_build", broken)
    monkeypatch.delenv("EMBER_TRACEBACK", raising=False)
    assert main(["build", _model(tmp_path / "m.onnx", "r"), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ESC not in err
    assert err.startswith("ember build: internal error: ValueError: a bug \\x1b[31m")
    monkeypatch.setenv("EMBER_TRACEBACK", "1")
    with pytest.raises(ValueError):
        main(["build", _model(tmp_path / "m.onnx", "r"), "-o", str(tmp_path / "a")])


def test_the_installed_command_prints_no_traceback(tmp_path):
    """The real entry point, in a subprocess: an import error is one message, exit status 1."""
    model = _model(tmp_path / "m.onnx", CLEAR, op="NoSuchOp")
    result = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "build", model, "-o",
                             str(tmp_path / "m.plan")], capture_output=True, text=True,
                            timeout=300, env={**os.environ})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and ESC not in result.stderr
    assert result.stderr.startswith("ember build: error: cannot import")


@pytest.mark.parametrize("quiet", [False, True])
def test_build_warnings_print_once_each_and_not_with_quiet(capsys, quiet):
    import warnings

    with cli._warnings_as_lines("build", quiet=quiet):
        for _ in range(3):
            warnings.warn("overflow encountered in cast", RuntimeWarning, stacklevel=1)
        warnings.warn("another", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    if quiet:
        assert err == ""
    else:
        assert err.splitlines() == ["ember build: warning: overflow encountered in cast (3 times)",
                                    "ember build: warning: another"]


def test_build_quiet_prints_no_warning(tmp_path, capsys):
    """A per-layer FP16 pin ember cannot honour (CumSum stays FP32) is a warning under
    --precision-constraints prefer; -q (errors only) keeps it off stderr."""
    axis = helper.make_tensor("axis", TensorProto.INT64, [], [1])
    graph = helper.make_graph(
        [helper.make_node("CumSum", ["x", "axis"], ["y"], name="cs")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [axis])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              tmp_path / "m.onnx")
    args = ["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.plan"), "--fp16",
            "--layer-precisions", "cs:fp16", "--precision-constraints", "prefer"]
    assert main(args) == 0
    assert "ember build: warning: assign-precision: node 'cs'" in capsys.readouterr().err
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().err == ""
