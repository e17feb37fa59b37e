"""`ember-opt`: xDSL's opt driver over `.mlir` text (and `.onnx` files), with ember's dialects
and passes registered: `ember-opt in.mlir -p fold-constants,dce | filecheck in.mlir`.

Weights: a `.mlir` input brings the weights its resource section holds (`{-# dialect_resources:
{ember: {"name": "0x..."}} #-}`) or names (`{-# external_resources: {ember: {weights:
"weights.npz"}} #-}`, a file beside the input, as `--dump-dir` writes); the output refers to that
file again while it holds every weight the result uses, and elides them otherwise, unless
`--print-weights`. An input with locations (`loc(...)`, ops' ONNX origins, as dumped stages
have) prints them back, as `--print-debuginfo` does.

`-t manifest` prints the plan manifest that the packer makes of the final IR (JSON, an entry
per line):
`-t manifest` a CPU plan's, `-t 'manifest{arch="sm_90"}'` a GPU plan's (its kernels compiled
by NVRTC, which needs no GPU), so the packer is tested as text like the passes."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.targets import Target
from xdsl.utils.arg_spec import parse_spec
from xdsl.xdsl_opt_main import xDSLOptMain

from ember.dialects import ember_context
from ember.dialects.weights import parse_module, weights_section
from ember.passes import available_passes

_LOCATION = re.compile(r"\bloc\(")


@dataclass(frozen=True)
class ManifestTarget(Target):
    """The packed plan's manifest (compiler/pack.py), as JSON."""

    name = "manifest"
    arch: str = ""

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from ember.compiler.pack import pack

        manifest = pack(module, target_arch=self.arch or None).manifest.to_json()
        output.write(manifest_text(manifest))


def manifest_text(manifest: dict) -> str:
    """A manifest as JSON, one top-level key per line and each entry of its lists (steps,
    buffers, kernels, ...) on a line of its own."""
    lines = ["{"]
    for k, (key, value) in enumerate(manifest.items()):
        comma = "," if k < len(manifest) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {json.dumps(key)}: [")
            lines += [f"    {json.dumps(v)}{',' if i < len(value) - 1 else ''}"
                      for i, v in enumerate(value)]
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    return "\n".join(lines + ["}"]) + "\n"


class EmberOptMain(xDSLOptMain):
    def register_all_dialects(self) -> None:
        self.ctx = ember_context()

    def register_all_frontends(self) -> None:
        super().register_all_frontends()

        def parse_mlir(io: IO[bytes]) -> ModuleOp:
            name = self.args.input_file
            text = io.read().decode()
            if _LOCATION.search(text):  # print them back, as a stage of --dump-dir has them
                self.args.print_debuginfo = True
            return parse_module(self.ctx, text, Path(name) if name is not None else None,
                                allow_implicit_module=not self.args.no_implicit_module)

        def parse_onnx(io: IO[bytes]) -> ModuleOp:
            from ember.compiler.onnx_importer import import_onnx

            return import_onnx(io.read())

        self.available_frontends["mlir"] = parse_mlir
        self.available_frontends["onnx"] = parse_onnx

    def register_all_targets(self) -> None:
        super().register_all_targets()
        self.available_targets["manifest"] = lambda: ManifestTarget

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in available_passes().items():
            self.register_pass(name, factory)

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--print-weights", action="store_true",
            help="print each weight's bytes in the output's resource section (MLIR's blob hex); "
                 "by default they are elided, or referred to in the weights file the input "
                 "named while it holds them all")

    def output_resulting_program(self, prog: ModuleOp) -> str:
        text = super().output_resulting_program(prog)
        if parse_spec(self.args.target).name != "mlir":
            return text
        return text.rstrip("\n") + weights_section(
            prog, inline_weights=self.args.print_weights) + "\n"


def main() -> None:
    import sys

    from xdsl.utils.exceptions import DiagnosticException

    from ember.errors import EmberError

    try:
        EmberOptMain(description="ember's modular optimizer driver. A .mlir input brings its "
                     "weights: the bytes in its resource section, or the .npz it names there "
                     "(resolved beside the input; `ember build --dump-dir` writes one); "
                     "the output elides them unless --print-weights. An input with "
                     "locations (loc(...)) prints them back.").run()
    except (EmberError, DiagnosticException) as e:
        # IR that does not verify (a bad param, say) prints with the op marked, as xDSL made it
        print(f"ember-opt: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
