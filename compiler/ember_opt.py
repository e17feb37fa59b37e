"""`ember-opt`: xDSL's opt driver over `.mlir` text (and `.onnx` files), with ember's dialects
and passes registered: `ember-opt in.mlir -p fold-constants,dce | filecheck in.mlir`."""

from __future__ import annotations

from typing import IO

from xdsl.xdsl_opt_main import xDSLOptMain

from ember.dialects import ember_context
from ember.passes import available_passes


class EmberOptMain(xDSLOptMain):
    def register_all_dialects(self) -> None:
        self.ctx = ember_context()

    def register_all_frontends(self) -> None:
        super().register_all_frontends()

        def parse_onnx(io: IO[bytes]):
            from ember.compiler.onnx_importer import import_onnx

            return import_onnx(io.read())

        self.available_frontends["onnx"] = parse_onnx

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in available_passes().items():
            self.register_pass(name, factory)


def main() -> None:
    import sys

    from ember.errors import EmberError

    try:
        EmberOptMain(description="ember's modular optimizer driver").run()
    except EmberError as e:
        print(f"ember-opt: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
