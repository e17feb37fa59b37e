"""ember: an inference compiler for NVIDIA GPUs (ONNX -> xDSL dialects -> CUDA C -> plan).

The TensorRT-shaped API is re-exported here; the compiler is imported lazily, so
`from ember.runtime import ...` on a deployment machine never loads xDSL or ONNX.
"""

from __future__ import annotations

from typing import Any

from ember.errors import EmberError, ModelImportError, PlanError, UnsupportedError  # noqa: F401

__version__ = "0.1.0"

# public name -> "module" (the same name there) or "module:name"; TensorRT's I* interface names
# are the classes that implement them
_LAZY = {
    "Builder": "ember.compiler.builder",
    "IBuilder": "ember.compiler.builder:Builder",
    "BuilderConfig": "ember.compiler.builder",
    "IBuilderConfig": "ember.compiler.builder:BuilderConfig",
    "BuilderFlag": "ember.compiler.builder",
    "OptimizationProfile": "ember.compiler.builder",
    "IProgressMonitor": "ember.compiler.progress",
    "ITimingCache": "ember.codegen.timing_cache:TimingCache",
    "IOptimizationProfile": "ember.compiler.builder:OptimizationProfile",
    "OnnxParser": "ember.compiler.builder",
    "compile": "ember.compiler.builder",
    "IInt8Calibrator": "ember.compiler.calibrate",
    "IInt8EntropyCalibrator2": "ember.compiler.calibrate",
    "IInt8EntropyCalibrator": "ember.compiler.calibrate",
    "IInt8MinMaxCalibrator": "ember.compiler.calibrate",
    "IInt8LegacyCalibrator": "ember.compiler.calibrate",
    "CalibrationAlgoType": "ember.compiler.calibrate",
    "NetworkDefinitionCreationFlag": "ember.compiler.trt_names",
    "MemoryPoolType": "ember.compiler.trt_names",
    "DeviceType": "ember.compiler.trt_names",
    "HardwareCompatibilityLevel": "ember.compiler.trt_names",
    "ErrorCode": "ember.compiler.trt_names",
    "ParserError": "ember.compiler.trt_names",
    "IParserError": "ember.compiler.trt_names:ParserError",
    "NetworkDefinition": "ember.compiler.network",
    "INetworkDefinition": "ember.compiler.network:NetworkDefinition",
    "ITensor": "ember.compiler.network:Tensor",
    "ILayer": "ember.compiler.network:Layer",
    "ActivationType": "ember.compiler.network",
    "ElementWiseOperation": "ember.compiler.network",
    "PoolingType": "ember.compiler.network",
    "ReduceOperation": "ember.compiler.network",
    "MatrixOperation": "ember.compiler.network",
    "Runtime": "ember.runtime.engine",
    "IRuntime": "ember.runtime.engine:Runtime",
    "Engine": "ember.runtime.engine",
    "ICudaEngine": "ember.runtime.engine:Engine",
    "ExecutionContext": "ember.runtime.engine",
    "IExecutionContext": "ember.runtime.engine:ExecutionContext",
    "EngineInspector": "ember.runtime.inspector",
    "IEngineInspector": "ember.runtime.inspector:EngineInspector",
    "LayerInformationFormat": "ember.runtime.inspector",
    "ProfilingVerbosity": "ember.runtime.inspector",
    "Profiler": "ember.runtime.profiler",
    "IProfiler": "ember.runtime.profiler",
    "Logger": "ember.runtime.logger",
    "ILogger": "ember.runtime.logger",
    "DataType": "ember.runtime.trt_types",
    "TensorIOMode": "ember.runtime.trt_types",
    "TensorFormat": "ember.runtime.trt_types",
    "Dims": "ember.runtime.trt_types",
    "Dims2": "ember.runtime.trt_types",
    "Dims3": "ember.runtime.trt_types",
    "Dims4": "ember.runtime.trt_types",
    "DimsHW": "ember.runtime.trt_types",
    "IHostMemory": "ember.runtime.trt_types:HostMemory",
    "IOutputAllocator": "ember.runtime.trt_types",
    "Refitter": "ember.runtime.refit",
    "IRefitter": "ember.runtime.refit:Refitter",
    "OnnxParserRefitter": "ember.compiler.refit",
    "volume": "ember.runtime.trt_types",
    "nptype": "ember.runtime.trt_types",
    # plugins (`ember.plugin` is TensorRT's `tensorrt.plugin`: the decorators)
    "get_plugin_registry": "ember.compiler.plugins_registry",
    "PluginRegistry": "ember.compiler.plugins_registry",
    "IPluginRegistry": "ember.compiler.plugins_registry:PluginRegistry",
    "IPluginCreatorV3One": "ember.compiler.plugins_registry:PluginCreator",
    "IPluginV3": "ember.compiler.plugins_registry:PluginV3",
    "PluginField": "ember.compiler.plugins_registry",
    "PluginFieldCollection": "ember.compiler.plugins_registry",
    "PluginFieldType": "ember.compiler.plugins_registry",
    "TensorRTPhase": "ember.compiler.plugins_registry",
    "PluginError": "ember.errors",
}
# TensorRT's DataType aliases: `trt.float32` is DataType.FLOAT (numpy takes it as a dtype)
_DTYPES = ("float32", "float16", "bfloat16", "int8", "int32", "int64", "bool", "uint8", "fp8",
           "int4", "fp4")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    if name in _DTYPES:
        from ember.runtime.trt_types import DTYPE_ALIASES

        return DTYPE_ALIASES[name]
    if name in ("backend", "compiler", "runtime", "dialects", "passes", "codegen"):
        return importlib.import_module(f"ember.{name}")
    if name[:1].isupper():  # the network API's own TensorRT names (its __all__: layer kinds, ...)
        network = importlib.import_module("ember.compiler.network")
        if name in getattr(network, "__all__", ()):
            return getattr(network, name)
    raise AttributeError(f"module 'ember' has no attribute {name!r}")


def __dir__() -> list[str]:
    import sys

    network = sys.modules.get("ember.compiler.network")
    return sorted({*globals(), *_LAZY, *_DTYPES,
                   *(n for n in getattr(network, "__all__", ()) if n[:1].isupper())})
