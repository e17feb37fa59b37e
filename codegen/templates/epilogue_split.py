"""An INT8 GEMM's fused epilogue split at a quantize: the part a thread can apply to its own
accumulators in registers, and the rest.

A QDQ model quantizes every conv's result before anything else reads it: ResNet-50's residual
conv is `q = quantize(acc * scale[n] + bias[n])`, then `requantize(relu(dequantize(q) +
dequantize(residual)))`. The staged epilogue (`gemm_epilogue.byte_row_store`) used to stage the
int32 sums (4 bytes an output, written and read again through shared memory: layer1's
conv3 + residual was bound by its shared-memory unit) and apply the whole epilogue in the drain.
Split at `q`, the head (`acc` and per-column or one-element inputs only) runs on the fragments,
the int8 `q` is staged (a byte an output), and the drain applies the tail to `q` with the
residual. The values are the same: the tail reads `q` only through casts to float, which give
the float `q` came from (the integer's value exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

BYTE_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class Split:
    """`head`: the launch's params whose epilogue ends at the quantize (result `dtype`, computed
    from the accumulator); `tail`: the params whose epilogue reads that quantized value as its
    own value 0 (its `out_dtypes[0]` is `dtype`), or None where the quantize is the epilogue's
    result (the staged values are the outputs)."""

    head: dict
    tail: dict | None
    dtype: str


def split(params: dict) -> Split | None:
    """The split of `params`' epilogue at its last cast to an 8-bit integer whose value depends
    on the accumulator and on nothing but one-element inputs, inputs broadcast along every dim
    but the output's innermost (per-column scales and biases) and a second GEMM's sums
    (`second_sums`), where no other op reads what that cast is computed from and only casts to
    float read the cast; else None."""
    epilogue = params.get("epilogue")
    if not epilogue or not epilogue.get("ops"):
        return None
    ops, result = epilogue["ops"], epilogue["result"]
    first = 1 + len(epilogue["in_shapes"])
    out_shape = list(params["out_shapes"][0])
    local = {0} | {1 + k for k, shape in enumerate(epilogue["in_shapes"])
                   if all(d == 1 for d in shape) or per_column(list(shape), out_shape)}
    second = second_sums(params)
    if second is not None:  # (in registers beside the accumulator)
        local.add(1 + second)
        # the kernel has the second sums in registers only: its whole epilogue is the head
        # where the result is 8-bit (a ReLU as a table after the requantize, say)
        cone = _cone(ops, first, result)
        if result >= first and ops[result - first]["dtype"] in BYTE_TYPES \
                and all(v >= first or v in local for v in cone):
            return _parts(params, cone, [], result, ops[result - first]["dtype"])
    for pos in reversed(range(len(ops))):
        op, value = ops[pos], first + pos
        if op["fn"] != "cast" or op["dtype"] not in BYTE_TYPES:
            continue
        cone = _cone(ops, first, value)
        if 0 not in cone or any(v < first and v not in local for v in cone):
            continue
        rest = [p for p in range(len(ops)) if first + p not in cone]
        reads = [(ops[p], a) for p in rest for a in ops[p]["args"]]
        if any(a in cone and (a != value or o["fn"] != "cast" or o["dtype"] != "float32")
               for o, a in reads):
            continue
        if result in cone and result != value:
            continue
        return _parts(params, cone, rest, value, op["dtype"])
    return None


def split_second(params: dict) -> Split | None:
    """Where a second GEMM's sums (`second_sums`: input k) are quantized on their own (the
    downsample conv's result in a fused QDQ ResNet block): the epilogue split at that cast to
    an 8-bit integer, whose value depends on input k and on nothing but one-element and
    per-column inputs (not the accumulator), where no other op reads what it is computed from
    and only casts to float read it. `head`: its ops (value 0 unread; input k the sums, int32);
    `tail`: the rest, input k the quantized value (of the output's shape and that 8-bit type),
    so the main loop can keep a byte an output, not the int32 sum. None otherwise."""
    k = second_sums(params)
    epilogue = params.get("epilogue")
    if k is None or not epilogue or not epilogue.get("ops"):
        return None
    ops, result = epilogue["ops"], epilogue["result"]
    first = 1 + len(epilogue["in_shapes"])
    out_shape = list(params["out_shapes"][0])
    local = {1 + k} | {1 + i for i, shape in enumerate(epilogue["in_shapes"])
                       if all(d == 1 for d in shape) or per_column(list(shape), out_shape)}
    for pos, op in enumerate(ops):
        value = first + pos
        if op["fn"] != "cast" or op["dtype"] not in BYTE_TYPES or value == result:
            continue
        cone = _cone(ops, first, value)
        if 1 + k not in cone or any(v < first and v not in local for v in cone):
            continue
        rest = [p for p in range(len(ops)) if first + p not in cone]
        if any(a in cone and (a != value or ops[p]["fn"] != "cast"
                              or ops[p]["dtype"] != "float32")
               for p in rest for a in ops[p]["args"]):
            continue
        head_pos = [p for p in range(len(ops)) if first + p in cone]
        renumber = {first + p: first + i for i, p in enumerate(head_pos)}
        held = sums_in_registers(params)["epilogue"]
        head = {**params, "epilogue": {
            **held, "ops": [_remapped(ops[p], renumber) for p in head_pos],
            "result": renumber[value], "out_dtype": op["dtype"]}}
        renumber = {value: 1 + k, **{first + p: first + i for i, p in enumerate(rest)}}
        dtypes = list(held["in_dtypes"])
        dtypes[k] = op["dtype"]
        tail = {**params, "epilogue": {
            **held, "ops": [_remapped(ops[p], renumber) for p in rest],
            "result": renumber[result], "in_dtypes": dtypes}}
        return Split(head, tail, op["dtype"])
    return None


def sums_in_registers(params: dict) -> dict:
    """`params` with the `second_sums` input as the fragments hold it: an int32 value of the
    output's shape (the operand itself is the second GEMM's input, another shape)."""
    k = second_sums(params)
    epilogue = params["epilogue"]
    shapes, dtypes = list(epilogue["in_shapes"]), list(epilogue["in_dtypes"])
    shapes[k], dtypes[k] = list(params["out_shapes"][0]), "int32"
    return {**params, "epilogue": {**epilogue, "in_shapes": shapes, "in_dtypes": dtypes}}


def second_sums(params: dict) -> int | None:
    """The extra input whose value is a second GEMM's sums, in the fragments beside the
    accumulator (fuse-shortcut-convs' INT8 form: `shortcut["sums"]`), or None."""
    sums = (params.get("shortcut") or {}).get("sums")
    return None if sums is None else int(sums)


def per_column(shape: list, out_shape: list) -> bool:
    """Whether an input broadcasts along every dim but the output's innermost, which it has
    whole (a bias or a per-channel scale of an NHWC conv)."""
    lead = [1] * (len(out_shape) - len(shape)) + list(shape)
    return len(shape) >= 1 and lead[-1] == out_shape[-1] and all(d == 1 for d in lead[:-1])


def _cone(ops: list[dict], first: int, value: int) -> set[int]:
    """`value` and every value it is computed from (inputs and ops)."""
    seen, todo = set(), [value]
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v >= first:
            todo += ops[v - first]["args"]
    return seen


def _parts(params: dict, cone: set[int], rest: list[int], value: int, dtype: str) -> Split:
    epilogue = params["epilogue"]
    ops, first = epilogue["ops"], 1 + len(epilogue["in_shapes"])
    head_pos = [p for p in range(len(ops)) if first + p in cone]
    renumber = {first + p: first + i for i, p in enumerate(head_pos)}
    head_ops = [_remapped(ops[p], renumber) for p in head_pos]
    head = {**params, "epilogue": {**epilogue, "ops": head_ops, "result": renumber[value],
                                   "out_dtype": dtype}}
    if epilogue["result"] == value:
        return Split(head, None, dtype)
    renumber = {value: 0, **{first + p: first + i for i, p in enumerate(rest)}}
    tail_ops = [_remapped(ops[p], renumber) for p in rest]
    tail = {**params, "out_dtypes": [dtype, *params["out_dtypes"][1:]],
            "epilogue": {**epilogue, "ops": tail_ops, "result": renumber[epilogue["result"]]}}
    return Split(head, tail, dtype)


def _remapped(op: dict, renumber: dict[int, int]) -> dict:
    return {**op, "args": [renumber.get(a, a) for a in op["args"]]}


def reads(params: dict) -> set[int]:
    """The extra inputs (k, for value 1 + k) the ops of `params`' epilogue read."""
    epilogue = params.get("epilogue") or {}
    n = len(epilogue.get("in_shapes", ()))
    return {a - 1 for op in epilogue.get("ops", ()) for a in op["args"] if 1 <= a <= n}
