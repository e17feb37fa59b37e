"""The benchmark precisions — fp32 (strict), tf32, fp16, bf16, int8 — and what each one means to
ember's builder and to PyTorch: one definition for bench_models.py, bench_kernels.py and
ceilings.py.

ember: fp32 clears `BuilderFlag.TF32` (the builder API's default allows it, as TensorRT's does),
tf32 sets it, fp16/bf16 set `BuilderFlag.FP16`/`BF16` on the builder's defaults (as trtexec
--fp16 does); int8 sets `INT8` and `FP16` (trtexec --int8 --fp16: what is not quantized runs in
FP16) and is given a Q/DQ model (bench_models.py quantizes it with onnxruntime). PyTorch:
fp32/tf32 run float32 with TF32 off/on (cuBLAS, cuDNN and torch.compile's kernels); fp16/bf16
run the model converted to that dtype; int8 has no PyTorch peer (its matmul ceiling is
torch._int_mm's).
"""

from __future__ import annotations

from typing import Any

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")
# the ember builder flag each precision sets; fp32 sets none and clears TF32
FLAG = {"fp32": None, "tf32": "TF32", "fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
# the further flags a precision sets: int8 lets what is not quantized run in FP16
EXTRA_FLAGS = {"int8": ("FP16",)}
TORCH_DTYPE = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16",
               "int8": "int8"}
# how an ONNX model of this precision declares its tensors (tf32 computes on float32 data)
ONNX_TYPE = {"fp32": "FLOAT", "tf32": "FLOAT", "fp16": "FLOAT16", "bf16": "BFLOAT16",
             "int8": "FLOAT"}


class PrecisionError(SystemExit):
    """A precision this ember or this PyTorch cannot run: the benchmark stops, saying why."""


def parse_precisions(spec: str, option: str = "--precision") -> tuple[str, ...]:
    """`fp32,fp16` -> ("fp32", "fp16"), in order, without repeats; an unknown name is an error."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in spec.split(",") if p.strip()))
    unknown = [p for p in names if p not in PRECISIONS]
    if unknown or not names:
        raise PrecisionError(f"{option}: {'unknown ' + ', '.join(unknown) if unknown else 'empty'}"
                             f"; choose from {', '.join(PRECISIONS)} (a comma list)")
    return names


def is_half(precision: str) -> bool:
    return precision in ("fp16", "bf16")


def builder_flag(precision: str) -> Any:
    """The `ember.compiler.builder.BuilderFlag` member `precision` sets (None for fp32); a
    PrecisionError naming the flag where this ember has not got it."""
    from ember.compiler.builder import BuilderFlag

    name = FLAG[precision]
    if name is None:
        return None
    flag = BuilderFlag.__members__.get(name)
    if flag is None:
        raise PrecisionError(
            f"--precision {precision}: this ember has no BuilderFlag.{name} (it has "
            f"{', '.join(BuilderFlag.__members__)}), so it cannot build {precision} plans; "
            f"drop {precision} from --precision or update ember")
    return flag


def check_precisions(precisions: tuple[str, ...]) -> None:
    """Fail before any work if ember lacks the flag of one of `precisions`."""
    for precision in precisions:
        builder_flag(precision)


def builder_config(builder: Any, precision: str, arch: str | None,
                   io_formats: tuple[str, ...] = (), format_choice: str | None = None) -> Any:
    """A BuilderConfig for `precision` targeting `arch` (None: a CPU plan); `format_choice`:
    BuilderConfig.format_choice (None: the builder's default)."""
    from ember.compiler.builder import BuilderFlag

    config = builder.create_builder_config()
    config.target_arch = arch
    tf32 = BuilderFlag.__members__.get("TF32")
    if precision == "fp32" and tf32 is not None:
        config.clear_flag(tf32)
    flag = builder_flag(precision)
    if flag is not None:
        config.set_flag(flag)
    for name in EXTRA_FLAGS.get(precision, ()):
        config.set_flag(BuilderFlag.__members__[name])
    if io_formats:
        config.set_allowed_io_formats(*io_formats)
    if format_choice is not None:
        config.format_choice = format_choice
    return config


def flag_names(config: Any) -> str:
    """The flags a config has set, e.g. "FP16|TF32" ("none" for none)."""
    from ember.compiler.builder import BuilderFlag

    names = [name for name, flag in BuilderFlag.__members__.items() if config.get_flag(flag)]
    return "|".join(names) or "none"


def build_engine(model: bytes, precision: str, device: str,
                 io_formats: tuple[str, ...] = (), format_choice: str | None = None,
                 monitor: Any = None) -> tuple[Any, str]:
    """ember's engine for the ONNX `model` in `precision` through the builder API (Builder,
    OnnxParser, BuilderConfig, Runtime), on "cuda" (kernels for the GPU present, tactics timed on
    it) or "cpu"; and the flags the build had, for the log. `monitor`: the build's
    progress monitor (e.g. ember.compiler.progress.PhaseTimes)."""
    import ember
    from ember.compiler.builder import detect_arch

    builder = ember.Builder()
    network = builder.create_network()
    parser = ember.OnnxParser(network)
    if not parser.parse(model):
        raise ember.EmberError("; ".join(str(parser.get_error(i))
                                         for i in range(parser.num_errors)))
    arch = None
    if device == "cuda":
        arch = detect_arch()
        if arch is None:
            raise ember.EmberError("device cuda was asked for, but ember sees no GPU")
    config = builder_config(builder, precision, arch, io_formats, format_choice)
    config.progress_monitor = monitor
    plan = builder.build_serialized_network(network, config)
    return ember.Runtime(device).deserialize_cuda_engine(plan), flag_names(config)


def torch_dtype(precision: str) -> Any:
    import torch

    return getattr(torch, TORCH_DTYPE[precision])


def set_torch_precision(precision: str) -> Any:
    """Set PyTorch's TF32 switches for `precision` (on for tf32 only: cuBLAS, cuDNN and the
    float32 matmul precision torch.compile's kernels read) and return its dtype (int8 for int8,
    whose models PyTorch does not run)."""
    import torch

    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) != (tf32, tf32):
        raise PrecisionError(f"PyTorch did not take TF32 {'on' if tf32 else 'off'}")
    return torch_dtype(precision)


def numpy_dtype(precision: str) -> Any:
    """The numpy dtype of a tensor of `precision` (bfloat16 through ml_dtypes, an onnx
    dependency)."""
    import numpy as np

    if precision == "bf16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(np.float16 if precision == "fp16" else np.float32)
