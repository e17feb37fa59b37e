"""`ember opt`: run passes over an ONNX model or `.mlir` file and print or dump the IR, like
mlir-opt (`--print-ir-after-all`, `--print-ir-before/after=P`, `--dump-dir`, `--time-passes`,
`--stop-after=P`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import ParseError

from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import PipelineRun, resolve_passes, run_passes
from ember.dialects import ember_context
from ember.errors import EmberError


def load_module(path: str | os.PathLike) -> ModuleOp:
    """An ONNX model (imported) or a `.mlir` file (parsed with ember's dialects)."""
    path = Path(path)
    if path.suffix == ".mlir":
        if not path.is_file():
            raise EmberError(f"no such file: {path}")
        try:
            return Parser(ember_context(), path.read_text(), str(path)).parse_module()
        except ParseError as e:
            raise EmberError(f"{path}: {e}") from None
    return import_onnx(path)


def _banner(when: str, name: str) -> str:
    return f"// -----// IR Dump {when} {name} //----- //\n"


def opt(model: str | os.PathLike | ModuleOp, *, pipeline: str | None = None,
        passes: str | None = None, print_ir_after_all: bool = False,
        print_ir_before: Sequence[str] = (), print_ir_after: Sequence[str] = (),
        dump_dir: str | os.PathLike | None = None, time_passes: bool = False,
        stop_after: str | None = None, output: str | os.PathLike | None = None,
        out: TextIO | None = None, err: TextIO | None = None) -> ModuleOp:
    """Run passes over `model` and write the final IR to `output` (or `out`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    names = resolve_passes(pipeline, passes)
    for flag, wanted in (("--print-ir-before", print_ir_before),
                         ("--print-ir-after", print_ir_after)):
        unknown = [p for p in wanted if p not in names]
        if unknown:
            raise EmberError(f"{flag}: {', '.join(unknown)} not in the pipeline "
                             f"({', '.join(names)})")
    module = model if isinstance(model, ModuleOp) else load_module(model)
    dump = Path(dump_dir) if dump_dir is not None else None
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        (dump / "00-input.mlir").write_text(str(module) + "\n")
    if print_ir_after_all:
        out.write(_banner("Before", "any pass") + str(module) + "\n\n")

    # --print-ir-before=P needs the IR as it stands after the pass before P
    def after_pass(index: int, p: ModulePass, m: ModuleOp) -> None:
        if dump is not None:
            (dump / f"{index:02d}-{p.name}.mlir").write_text(str(m) + "\n")
        if print_ir_after_all or p.name in print_ir_after:
            out.write(_banner("After", p.name) + str(m) + "\n\n")
        following = names[index] if index < len(names) else None
        if following in print_ir_before:
            out.write(_banner("Before", following) + str(m) + "\n\n")

    if names and names[0] in print_ir_before:
        out.write(_banner("Before", names[0]) + str(module) + "\n\n")
    run = run_passes(module, names, stop_after=stop_after, after_pass=after_pass)
    text = str(module) + "\n"
    if output is not None:
        _write_atomically(Path(output), text)
    elif not print_ir_after_all:
        out.write(text)
    if time_passes:
        _print_timings(run, err)
    return module


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _print_timings(run: PipelineRun, err: TextIO) -> None:
    total = sum(t.seconds for t in run.timings) or 1e-12
    err.write("===-------------------------------------------------------------------------===\n")
    err.write("                          ember pass timings\n")
    err.write("===-------------------------------------------------------------------------===\n")
    err.write(f"  {'wall (s)':>10}  {'share':>6}  pass\n")
    for t in run.timings:
        err.write(f"  {t.seconds:10.4f}  {100 * t.seconds / total:5.1f}%  {t.name}\n")
    err.write(f"  {total:10.4f}  100.0%  total\n")
