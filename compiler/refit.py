"""Refit from an ONNX model (TensorRT's OnnxParserRefitter) and `ember refit`.

    refitter = ember.Refitter(engine, logger)
    ember.OnnxParserRefitter(refitter, logger).refit_from_file("new.onnx")
    refitter.refit_cuda_engine()

The new model must be the build's graph with other weights: every refittable weight is taken
from its initializer of the same name, and every other initializer must be what the build saw
(the plan keeps a digest of each; a changed one is refused, naming it). `ember refit MODEL.plan
NEW.onnx -o OUT.plan` does that and writes the refit plan atomically (a weight-stripped plan
comes out whole).
"""

from __future__ import annotations

import argparse
import os
import time

import onnx
from onnx import numpy_helper

from ember.compiler.onnx_importer import load_model
from ember.errors import EmberError
from ember.runtime.logger import ILogger, Severity, check_logger, emit
from ember.runtime.refit import Refitter
from ember.runtime.trt_types import ContextManaged


class OnnxParserRefitter(ContextManaged):
    """Sets a Refitter's weights from an ONNX model's initializers. `refit_from_file` /
    `refit_from_bytes` return True once every refittable weight is set (then call
    `refitter.refit_cuda_engine()`); a model that lacks one, or changes an initializer the plan
    folded for good, is an EmberError naming them (logged as an ERROR first)."""

    def __init__(self, refitter: Refitter, logger: ILogger | None = None) -> None:
        if not isinstance(refitter, Refitter):
            raise EmberError(f"OnnxParserRefitter takes an ember.Refitter, not "
                             f"{type(refitter).__name__}")
        self.refitter = refitter
        self.logger = check_logger(logger, "OnnxParserRefitter")

    def refit_from_file(self, path: str | os.PathLike) -> bool:
        proto, _ = load_model(os.fspath(path))
        return self._refit(proto, str(path))

    def refit_from_bytes(self, model: bytes, path: str | None = None) -> bool:
        """`path`: unsupported (external data is read by refit_from_file)."""
        if path is not None:
            raise EmberError("refit_from_bytes(path=...): external-data models are read with "
                             "refit_from_file(path)")
        proto, _ = load_model(bytes(model))
        return self._refit(proto, "model bytes")

    def _refit(self, model: onnx.ModelProto, where: str) -> bool:
        refitter = self.refitter
        wanted = set(refitter.get_all_weights())
        present = {t.name for t in model.graph.initializer}
        lacking = sorted(wanted - present)
        if lacking:
            message = (f"refit from {where}: the model has no initializer(s) "
                       f"{', '.join(repr(n) for n in lacking)}, which the plan's refittable "
                       "weights read: it is not the graph the plan was built from")
            emit(self.logger, Severity.ERROR, message)
            raise EmberError(message)
        for init in model.graph.initializer:
            array = numpy_helper.to_array(init)
            if init.name in wanted:
                refitter.set_named_weights(init.name, array)
            else:
                refitter.check_unchanged(init.name, array)
        emit(self.logger, Severity.INFO, f"refit from {where}: {len(wanted)} weight(s) set")
        return True


def refit(plan: str | os.PathLike, model: str | os.PathLike, output: str | os.PathLike, *,
          weights_validation: bool = True, logger: ILogger | None = None) -> float:
    """Refit the plan file `plan` from the ONNX model `model` and write it to `output`
    (atomically: a failure leaves `output` as it was). Returns the seconds the refit took
    (loading, replaying the recipes, not the writing)."""
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import read_plan, write_plan
    from ember.runtime.refit import refit_plan_parts

    start = time.perf_counter()
    engine = Runtime(logger, device="cpu").load(plan)
    refitter = Refitter(engine, logger)
    refitter.weights_validation = weights_validation
    OnnxParserRefitter(refitter, logger).refit_from_file(model)
    refitter.refit_cuda_engine()
    seconds = time.perf_counter() - start
    manifest, sections = refit_plan_parts(engine)
    write_plan(output, manifest, sections)
    read_plan(output).close()  # what was written reads back
    return seconds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refit", help="give a REFIT plan the weights of another ONNX model "
                       "(same graph) without rebuilding",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n"
                              "  ember refit model.plan finetuned.onnx -o finetuned.plan\n"
                              "  ember refit stripped.plan model.onnx -o model.plan   "
                              "(a STRIP_PLAN plan, made whole)")
    p.add_argument("plan", help="a plan built with BuilderFlag.REFIT or STRIP_PLAN")
    p.add_argument("model", help="the ONNX model whose initializers to take")
    p.add_argument("-o", "--output", required=True, help="the refit plan to write")
    p.add_argument("--no-weights-validation", action="store_true",
                   help="accept NaN/infinite weights (Refitter.weights_validation = False)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    seconds = refit(args.plan, args.model, args.output,
                    weights_validation=not args.no_weights_validation)
    print(f"refit {args.plan} from {args.model} in {seconds:.3f} s -> {args.output}")
    return 0
