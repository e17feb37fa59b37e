"""ember's Polygraphy extension: the `--ember` runner and its flags for `polygraphy run`
(Polygraphy's documented extension point: pyproject's `polygraphy.run.plugins` entry point
names `export_argument_groups`). Precision and shape flags are Polygraphy's own (`--fp16`,
`--bf16`, `--tf32`, `--precision-constraints`, `--trt-min/opt/max-shapes`, `--input-shapes`);
a TensorRT builder flag ember does not honour is an error naming it when only ember would see it.

    polygraphy run model.onnx --ember --onnxrt
    polygraphy run model.onnx --ember --onnxrt --fp16 --atol 1e-2 --rtol 1e-2
    polygraphy run model.onnx --ember --onnxrt --onnx-outputs mark all --ember-outputs mark all
"""

from __future__ import annotations

from typing import Any

from polygraphy import constants
from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import util as args_util
from polygraphy.tools.args.backend.onnx.loader import OnnxLoadArgs
from polygraphy.tools.args.backend.runner_select import RunnerSelectArgs
from polygraphy.tools.args.backend.trt.config import TrtConfigArgs
from polygraphy.tools.args.base import BaseRunnerArgs
from polygraphy.tools.args.model import ModelArgs
from polygraphy.tools.script import make_invocable

# TensorRT builder flags of `polygraphy run` (argparse dest -> spelling) that ember refuses:
# INT8/FP8 always (ember would compare another precision than asked), the others when no
# TensorRT runner (--trt) is there to take them
_NEVER = {"int8": "--int8", "fp8": "--fp8"}
_TRT_ONLY = {
    "sparse_weights": "--sparse-weights", "version_compatible": "--version-compatible",
    "exclude_lean_runtime": "--exclude-lean-runtime", "calibration_cache": "--calibration-cache",
    "calibration_base_class": "--calibration-base-class", "load_timing_cache":
    "--load-timing-cache", "error_on_timing_cache_miss": "--error-on-timing-cache-miss",
    "disable_compilation_cache": "--disable-compilation-cache", "save_tactics":
    "--save-tactics", "load_tactics": "--load-tactics", "tactic_sources": "--tactic-sources",
    "trt_config_script": "--trt-config-script", "trt_config_postprocess_script":
    "--trt-config-postprocess-script", "restricted": "--trt-safety-restricted",
    "refittable": "--refittable", "strip_plan": "--strip-plan", "use_dla": "--use-dla",
    "allow_gpu_fallback": "--allow-gpu-fallback", "memory_pool_limit": "--pool-limit",
    "preview_features": "--preview-features", "builder_optimization_level":
    "--builder-optimization-level", "hardware_compatibility_level":
    "--hardware-compatibility-level", "max_aux_streams": "--max-aux-streams",
    "quantization_flags": "--quantization-flags", "profiling_verbosity":
    "--profiling-verbosity", "weight_streaming": "--weight-streaming", "runtime_platform":
    "--runtime-platform", "engine_capability": "--engine-capability", "direct_io":
    "--direct-io", "tiling_optimization_level": "--tiling-optimization-level",
}


class EmberRunnerArgs(BaseRunnerArgs):
    """ember Inference: building and running a model with ember.

    Depends on:

        - ModelArgs
        - OnnxLoadArgs
        - TrtConfigArgs: its precision and profile flags
        - RunnerSelectArgs
    """

    def get_name_opt_impl(self) -> tuple[str, str]:
        return "ember", "ember"

    def add_parser_args_impl(self) -> None:
        self.group.add_argument(
            "--ember-device", choices=["auto", "cpu", "cuda"], default=None,
            help="where ember runs the model: the GPU (cuda), its CPU executor (cpu), or the "
                 "GPU when there is one (auto, the default)")
        self.group.add_argument(
            "--ember-outputs", nargs="+", default=None, metavar="TENSOR",
            help="tensors ember marks as outputs too; 'mark all' (or '*') marks every tensor "
                 "that survives ember's fusion (each fused kernel's output), for per-layer "
                 "comparison with --onnx-outputs mark all on the other side; --onnx-outputs "
                 "then leaves ember's model alone")

    def parse_impl(self, args: Any) -> None:
        """Attributes: device (str), outputs (list of names, MARK_ALL, or None), refused (the
        TensorRT flags given that ember cannot honour)."""
        self.device = args_util.get(args, "ember_device") or "auto"
        raw = args_util.get(args, "ember_outputs")
        self.outputs = (constants.MARK_ALL if raw in (["*"], ["mark", "all"]) else raw)
        self._given = {dest: flag for dest, flag in {**_NEVER, **_TRT_ONLY}.items()
                       if args_util.get(args, dest) not in (None, False, [])}

    def add_to_script_impl(self, script: Any) -> None:
        if not self.arg_groups[ModelArgs].model_type.is_onnx():
            G_LOGGER.critical("--ember runs ONNX models; the model given is "
                              f"{self.arg_groups[ModelArgs].model_type}")
        with_trt = "trt" in self.arg_groups[RunnerSelectArgs].runners
        refused = [flag for dest, flag in self._given.items()
                   if dest in _NEVER or not with_trt]
        if refused:
            G_LOGGER.critical(f"--ember does not implement {', '.join(refused)} (ember builds "
                              "FP32/TF32/FP16/BF16 and runs Q/DQ models, int8 and FP8 ones, as "
                              "their nodes say; BuilderFlag.FP8, TensorRT 10's plugins with FP8 "
                              "I/O, is ember build's --fp8)")
        config = self.arg_groups[TrtConfigArgs]
        onnx_args = self.arg_groups[OnnxLoadArgs]
        # with --ember-outputs, --onnx-outputs marks tensors for the other runners only
        own_outputs = self.outputs is not None
        if onnx_args.must_use_onnx_loader(disable_custom_outputs=own_outputs):
            model = onnx_args.add_to_script(script, disable_custom_outputs=own_outputs)
        else:
            model = self.arg_groups[ModelArgs].path
        profiles = [{name: tuple(tuple(int(d) for d in shape) for shape in shapes)
                     for name, shapes in profile.items()} for profile in config.profile_dicts]
        outputs = args_util.get_outputs_for_script(script, self.outputs)
        script.add_import(imports=["EmberRunner"], frm="ember.compiler.polygraphy_ext")
        script.add_runner(make_invocable(
            "EmberRunner", model, device=self.device, fp16=bool(config.fp16),
            bf16=bool(config.bf16), tf32=bool(config.tf32),
            precision_constraints=config.precision_constraints, profiles=profiles or None,
            outputs=outputs))


def export_argument_groups() -> list:
    """The `polygraphy.run.plugins` entry point: the argument groups `polygraphy run` adds."""
    return [EmberRunnerArgs()]
