"""`ember opt`: run passes over an ONNX model or `.mlir` file and print or dump the IR, like
mlir-opt (`--print-ir-after-all`, `--print-ir-before/after=P`, `--dump-dir`, `--time-passes`,
`--stop-after=P`). `StageDump` writes a run's stages to a folder; `ember build --dump-dir` uses it
too."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import ParseError

from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import (
    AfterPass,
    PipelineRun,
    pipeline_text,
    resolve_passes,
    run_passes,
)
from ember.dialects import ember_context
from ember.dialects.weights import parse_module, print_module, save_weights, weights_of
from ember.errors import EmberError, PipelineError
from ember.passes import make_pass
from ember.runtime.files import write_atomic


def load_module(path: str | os.PathLike) -> ModuleOp:
    """An ONNX model (imported) or a `.mlir` file (parsed with ember's dialects, with the
    weights its resource section holds or refers to)."""
    path = Path(path)
    if path.suffix == ".mlir":
        if not path.is_file():
            raise EmberError(f"no such file: {path}")
        try:
            return parse_module(ember_context(), path.read_text(), path)
        except ParseError as e:
            raise EmberError(f"{path}: {e}") from None
    return import_onnx(path)


class StageDump:
    """A pass run written to a folder: `00-input.mlir`, then `NN-<pass>.mlir` after each pass,
    `pipeline.txt` (the passes in `ember-opt -p` syntax) and `weights.npz`, written once, which
    every stage refers to by name. Stages print each op's location (its ONNX origin, which
    passes read: fold-batch-norm names weights after it, kernels keep it), so any stage replays
    the rest of the pipeline to the same last stage; `ember-opt DIR/00-input.mlir -p "$(cat
    DIR/pipeline.txt)"` prints the last stage again. Stage files of an earlier dump there are
    removed first; the folder is checked (and `pipeline.txt` written) before any work."""

    WEIGHTS = "weights.npz"
    PIPELINE = "pipeline.txt"
    _STAGE = re.compile(r"\d\d+-[\w.-]+\.mlir")

    def __init__(self, directory: str | os.PathLike, passes: Sequence[ModulePass]) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise EmberError(f"--dump-dir {self.directory}: exists and is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.iterdir():
                if self._STAGE.fullmatch(stale.name):
                    stale.unlink()
        except OSError as e:
            raise EmberError(f"--dump-dir {self.directory}: {e.strerror or e}") from None
        self._write(self.PIPELINE, pipeline_text(passes) + "\n")

    def _write(self, name: str, text: str) -> None:
        path = self.directory / name
        try:
            write_atomic(path, text)
        except OSError as e:
            raise EmberError(f"--dump-dir: cannot write {path}: {e.strerror or e}") from None

    def stage(self, index: int, name: str, module: ModuleOp) -> None:
        self._write(f"{index:02d}-{name}.mlir",
                    print_module(module, weights_file=self.WEIGHTS, debuginfo=True))

    def run(self, module: ModuleOp, passes: Sequence[str | ModulePass], *,
            stop_after: str | None = None, after_pass: AfterPass | None = None) -> PipelineRun:
        """`run_passes` with every stage written; the weights are written even if a pass fails,
        so the stages before it replay."""
        def dump_then(index: int, p: ModulePass, m: ModuleOp) -> None:
            self.stage(index, p.name, m)
            if after_pass is not None:
                after_pass(index, p, m)

        self.stage(0, "input", module)
        try:
            return run_passes(module, passes, stop_after=stop_after, after_pass=dump_then)
        finally:
            save_weights(weights_of(module), self.directory / self.WEIGHTS)


def _banner(when: str, name: str) -> str:
    return f"// -----// IR Dump {when} {name} //----- //\n"


def opt(model: str | os.PathLike | ModuleOp, *, pipeline: str | None = None,
        passes: str | None = None, print_ir_after_all: bool = False,
        print_ir_before: Sequence[str] = (), print_ir_after: Sequence[str] = (),
        dump_dir: str | os.PathLike | None = None, time_passes: bool = False,
        stop_after: str | None = None, output: str | os.PathLike | None = None,
        print_weights: bool = False, out: TextIO | None = None,
        err: TextIO | None = None) -> ModuleOp:
    """Run passes over `model` and write the final IR to `output` (or `out`). Weights print
    elided (as a reference to the file they came from, if any) unless `print_weights`."""
    out = out or sys.stdout
    err = err or sys.stderr
    names = resolve_passes(pipeline, passes)
    for flag, wanted in (("--print-ir-before", print_ir_before),
                         ("--print-ir-after", print_ir_after)):
        unknown = [p for p in wanted if p not in names]
        if unknown:
            raise EmberError(f"{flag}: {', '.join(unknown)} not in the pipeline "
                             f"({', '.join(names)})")
    if stop_after is not None:
        if stop_after not in names:
            raise PipelineError(f"--stop-after={stop_after}: that pass is not in the pipeline "
                                f"({', '.join(names)})")
        names = names[: names.index(stop_after) + 1]
    dump = StageDump(dump_dir, [make_pass(n) for n in names]) if dump_dir is not None else None
    module = model if isinstance(model, ModuleOp) else load_module(model)

    def text(m: ModuleOp) -> str:
        return print_module(m, inline_weights=print_weights)

    if print_ir_after_all:
        out.write(_banner("Before", "any pass") + text(module) + "\n")

    # --print-ir-before=P needs the IR as it stands after the pass before P
    def after_pass(index: int, p: ModulePass, m: ModuleOp) -> None:
        if print_ir_after_all or p.name in print_ir_after:
            out.write(_banner("After", p.name) + text(m) + "\n")
        following = names[index] if index < len(names) else None
        if following in print_ir_before:
            out.write(_banner("Before", following) + text(m) + "\n")

    if names and names[0] in print_ir_before:
        out.write(_banner("Before", names[0]) + text(module) + "\n")
    if dump is not None:
        run = dump.run(module, names, stop_after=stop_after, after_pass=after_pass)
    else:
        run = run_passes(module, names, stop_after=stop_after, after_pass=after_pass)
    final = text(module)
    if output is not None:
        write_atomic(Path(output), final)
    elif not print_ir_after_all:
        out.write(final)
    if time_passes:
        _print_timings(run, err)
    return module


def _print_timings(run: PipelineRun, err: TextIO) -> None:
    total = sum(t.seconds for t in run.timings) or 1e-12
    err.write("===-------------------------------------------------------------------------===\n")
    err.write("                          ember pass timings\n")
    err.write("===-------------------------------------------------------------------------===\n")
    err.write(f"  {'wall (s)':>10}  {'share':>6}  pass\n")
    for t in run.timings:
        err.write(f"  {t.seconds:10.4f}  {100 * t.seconds / total:5.1f}%  {t.name}\n")
    err.write(f"  {total:10.4f}  100.0%  total\n")
