"""TensorRT's builder-side enums and the ONNX parser's error objects, numbered as TensorRT 10
numbers them: NetworkDefinitionCreationFlag, MemoryPoolType, ErrorCode, ParserError. The
builder (compiler/builder.py) says which members take effect; the others are errors naming them.
"""

from __future__ import annotations

import enum

from ember.errors import EmberError, UnsupportedError
from ember.runtime.trt_types import Numbered


class NetworkDefinitionCreationFlag(Numbered):
    """`builder.create_network(1 << int(flag) | ...)`. EXPLICIT_BATCH is how every ember
    network is (accepted, as TensorRT 10 accepts it); STRONGLY_TYPED: tensor types come from
    the network, and precision flags or per-layer precisions that would change them are
    errors."""

    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1
    PREFER_JIT_PYTHON_PLUGINS = 2
    PREFER_AOT_PYTHON_PLUGINS = 3


def network_flags(flags: int) -> frozenset[NetworkDefinitionCreationFlag]:
    """The creation flags in a bit field; a flag ember does not implement is an error."""
    if isinstance(flags, enum.Enum) or isinstance(flags, bool) or not isinstance(flags, int):
        raise EmberError(f"create_network takes a bit field of NetworkDefinitionCreationFlag "
                         f"(1 << int(flag)), not {flags!r}")
    members = {f for f in NetworkDefinitionCreationFlag if flags >> f.value & 1}
    unknown = flags & ~sum(1 << f.value for f in NetworkDefinitionCreationFlag)
    if unknown or flags < 0:
        raise EmberError(f"create_network: bits {unknown:#x} name no "
                         "NetworkDefinitionCreationFlag")
    for f in members:
        if f.name.startswith("PREFER_"):
            raise UnsupportedError(f"NetworkDefinitionCreationFlag.{f.name}: ember has no "
                                   "Python plugins")
    return frozenset(members)


class DeviceType(Numbered):
    """Where a layer runs (`config.set_device_type(layer, device)`): GPU, or — ember's
    counterpart of TensorRT's DLA, which it has not — the CPU, whose steps run on the host
    inside a GPU plan with copies to and from the device around them. DLA is an error."""

    GPU = 0
    DLA = 1
    CPU = 2


class HardwareCompatibilityLevel(Numbered):
    """`config.hardware_compatibility_level`: NONE (the plan runs on GPUs of its target's
    compute capability, which ember's plans always do: SAME_COMPUTE_CAPABILITY is the same), or
    AMPERE_PLUS: kernels of sm_80 features only (mma.sync, no Hopper wgmma), compiled for sm_80
    (CUBIN and PTX); the plan runs on any GPU from sm_80 up, JIT-compiling its PTX on another
    arch as it loads (it says so once)."""

    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


class MemoryPoolType(Numbered):
    """`config.set_memory_pool_limit(pool, bytes)`. WORKSPACE bounds the plan's kernel scratch
    memory (split-K partial sums: `engine.workspace_bytes`); a plan over it is refused, naming
    the kernels. The other pools are errors naming them (no DLA; timing buffers and static
    shared memory are not bounded)."""

    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5


class ErrorCode(Numbered):
    """The ONNX parser's error codes (`parser.get_error(i).code()`)."""

    SUCCESS = 0
    INTERNAL_ERROR = 1
    MEM_ALLOC_FAILED = 2
    MODEL_DESERIALIZE_FAILED = 3
    INVALID_VALUE = 4
    INVALID_GRAPH = 5
    INVALID_NODE = 6
    UNSUPPORTED_GRAPH = 7
    UNSUPPORTED_NODE = 8
    UNSUPPORTED_NODE_ATTR = 9
    UNSUPPORTED_NODE_INPUT = 10
    UNSUPPORTED_NODE_DATATYPE = 11
    UNSUPPORTED_NODE_DYNAMIC = 12
    UNSUPPORTED_NODE_SHAPE = 13
    REFIT_FAILED = 14

    def __str__(self) -> str:
        return self.name


class ParserError:
    """One parser error (TensorRT's IParserError): `code()`, `desc()`, `node()` (the node's
    index in the graph, -1 when the error is the model's), `node_name()`, `node_operator()`;
    `file()`, `line()` and `func()` say where in ember it was raised."""

    def __init__(self, code: ErrorCode, desc: str, node: int = -1, node_name: str = "",
                 node_operator: str = "", func: str = "") -> None:
        self._code, self._desc, self._node = code, desc, node
        self._node_name, self._node_operator, self._func = node_name, node_operator, func

    def code(self) -> ErrorCode:
        return self._code

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._node_name

    def node_operator(self) -> str:
        return self._node_operator

    def file(self) -> str:
        return "ember/compiler/onnx_importer.py"

    def line(self) -> int:
        return 0

    def func(self) -> str:
        return self._func

    def local_function_stack(self) -> list[str]:
        return []

    def local_function_stack_size(self) -> int:
        return 0

    def __str__(self) -> str:
        where = f"({self._func}): {self._code}: {self._desc}"
        if self._code is ErrorCode.MODEL_DESERIALIZE_FAILED or self._node < 0:
            return where
        return (f"In node {self._node} with name: {self._node_name} and operator: "
                f"{self._node_operator} {where}")

    __repr__ = __str__


__all__ = ["DeviceType", "ErrorCode", "HardwareCompatibilityLevel", "MemoryPoolType",
           "NetworkDefinitionCreationFlag", "ParserError", "network_flags"]
