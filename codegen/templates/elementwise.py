"""elementwise: a scalar region over broadcast inputs, one thread per output element
(grid-stride loop); each input is read through its own broadcast strides, computed here.
Half-precision values are computed in float (rounded to their type after each op, as the numpy
reference rounds); where a half is involved and the last output dim is even, each thread takes
two neighbouring elements with 4-byte loads and stores of the half pairs.
`epilogue_lines` prints the same region as a conv's / matmul's epilogue."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from ember.codegen import quantize_c
from ember.codegen.quantize_c import FILE_SCOPE
from ember.codegen.scalar_c import (
    c_type,
    compute_type,
    dtype_name,
    is_float8,
    is_half,
    load_float,
    round_to,
    scalar_expr,
    storage_type,
    store_from_float,
    stored_in_float,
)
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    VEC_HELPER,
    KernelSpec,
    broadcast_strides,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    item_bytes,
    linear,
    prod,
    signature,
    source,
    vector_width,
)
from ember.runtime.cpu_kernels.common import stored_dtype
from ember.runtime.cpu_kernels.elementwise import table_values


def _at(shape: Sequence[int], out_shape: Sequence[int], index: str, prefix: str) -> str:
    """Where input `shape` is read at output index `index` (coordinates `<prefix>c0..`)."""
    if list(shape) == list(out_shape):
        return index
    if prod(shape) == 1:
        return "0"
    return linear(f"{prefix}c", broadcast_strides(shape, out_shape))


def _uniform(shapes: Sequence[Sequence[int]], first: int = 0,
             views: Collection[int] = (), pointer_first: int = 0) -> dict[int, str]:
    """The region values (input k is value `first + k`) read at one element for every output,
    each with its kernel argument (`in<pointer_first + k>`)."""
    return {first + k: f"in{pointer_first + k}" for k, shape in enumerate(shapes)
            if k not in views and prod(shape) == 1}


def _needs_coords(shapes: Sequence[Sequence[int]], out_shape: Sequence[int]) -> bool:
    return any(list(s) != list(out_shape) and prod(s) != 1 for s in shapes)


def read_inputs(first: int, shapes: Sequence[Sequence[int]], dtypes: Sequence[str],
                out_shape: Sequence[int], index: str, prefix: str, indent: str,
                itype: str = "int", number_from: int = 0,
                loaded: Mapping[int, str] | None = None,
                views: Mapping[int, dict] | None = None) -> list[str]:
    """C lines defining `<prefix><number_from + k>` = the element of input `in<first + k>` at
    output index `index`, read through its broadcast strides (coordinates `<prefix>c0..` where
    needed), as a `compute_type` value (a half is loaded into a float). `loaded[k]`, where
    given, is input k's value already loaded by the caller (a `compute_type` expression);
    `views[k]` (`in_views` entries) reads input k at `offset + sum(c_d * strides[d])`."""
    loaded, views = loaded or {}, views or {}
    lines: list[str] = []
    if views or _needs_coords([s for k, s in enumerate(shapes) if k not in loaded], out_shape):
        lines += decompose(index, out_shape, f"{prefix}c", indent, itype)
    for k, (shape, dt) in enumerate(zip(shapes, dtypes, strict=True)):
        if k in views:
            offset = int(views[k]["offset"])
            at = linear(f"{prefix}c", [int(x) for x in views[k]["strides"]])
            at = f"{offset} + {at}" if offset else at
        else:
            at = _at(shape, out_shape, index, prefix)
        value = loaded[k] if k in loaded else load_float(f"in{first + k}[{at}]", dt)
        lines.append(f"{indent}const {compute_type(dt)} {prefix}{number_from + k} = {value};")
    return lines


def region_lines(region: dict, dtypes: Sequence[str], prefix: str, indent: str,
                 uniform: Mapping[int, str] | None = None,
                 reciprocals: Mapping[int, str] | None = None) -> list[str]:
    """C lines computing a region's ops over values `<prefix>0..` (of `dtypes`), each op's result
    the next numbered value; the result is `<prefix><region["result"]>`. A value of a half type
    is a float holding a value of that type. `uniform`: the arguments that hold the same value
    for every element, each with the kernel argument it is element 0 of (a float32 division by
    one multiplies by its reciprocal, computed once per thread, and corrects: exactly,
    `quantize_c.div_by`); quantize arithmetic prints in `quantize_c`'s cheaper exact forms, and
    divisions by constants of the build without a branch where `quantize_c.divisions` proves
    that exact (the region's `constant_ranges`); a division by a value that varies by element
    takes its reciprocal from `reciprocals` (value -> C expression) where the caller computed
    it once, else calls `__frcp_rn` there."""
    dtypes, lines, uniform, reciprocals = list(dtypes), [], uniform or {}, reciprocals or {}
    cheaper = quantize_c.rewrites(region, dtypes)
    near = quantize_c.divisions(region, dtypes, cheaper)
    bare = quantize_c.unguarded(region, dtypes, cheaper, near)
    for i, op in enumerate(region["ops"]):
        args = [f"{prefix}{a}" for a in op["args"]]
        if op["fn"] == "lookup":  # an 8-bit integer's entry of a table at file scope
            table_line, expr = lookup_c(op, dtypes[op["args"][0]], args[0])
            lines += [table_line] if table_line else []
        elif i in cheaper:  # the same value, without the conversion unit (quantize arithmetic)
            expr = quantize_c.expression(*cheaper[i], prefix, c_type(op["dtype"]))
        elif op["fn"] == "div" and op["args"][1] in uniform and op["dtype"] in quantize_c.FLOATS \
                and all(dtypes[a] in quantize_c.FLOATS for a in op["args"]):
            divisor = op["args"][1]
            rcp, line = quantize_c.reciprocal(uniform[divisor], dtypes[divisor])
            lines.append(line)
            expr = round_to(quantize_c.div_by(*args, rcp, near=i in near, rounded=i in bare),
                            op["dtype"])
        elif i in near:  # by a constant that varies by element: a merged GEMM's column scales
            expr = round_to(quantize_c.div_by(*args, reciprocals.get(op["args"][1]), near=True,
                                              rounded=i in bare), op["dtype"])
        else:
            expr = scalar_expr(op["fn"], args, [dtypes[a] for a in op["args"]], op["dtype"],
                               op.get("alpha"), op.get("beta"))
        lines.append(f"{indent}const {compute_type(op['dtype'])} {prefix}{len(dtypes)} = {expr};"
                     f"  // {op['fn']}")
        dtypes.append(op["dtype"])
    return lines


def lookup_c(op: dict, source: str, arg: str) -> tuple[str, str]:
    """(the file-scope line defining a `lookup` op's table, its C expression at `arg`): the
    entries as the result's compute type (floats kept as their bit patterns, converted at the
    read), named by a hash of the table so that one definition serves every use. A table of
    integers that is its index clamped to a range (a ReLU, a clip in the integer domain) is
    that clamp instead: no table, no load ("" for the line)."""
    out = dtype_name(op["dtype"])
    table = [int(v) for v in op["table"]]
    clamp = clamp_range(table, source, out)
    if clamp is not None:
        lo, hi = clamp
        return "", f"({c_type(out)})min(max((int)({arg}), {lo}), {hi})"
    bits = is_half(out) or out == "float32"
    ctype = "unsigned" if bits else c_type(out)
    name = "ember_lut_" + hashlib.sha1(f"{out}:{table}".encode()).hexdigest()[:12]
    if is_half(out):  # a half's bits -> the float holding that half
        table = [int(v) for v in table_values(table, out).astype(np.float32).view(np.uint32)]
    items = ", ".join(str(v) + ("u" if bits else "") for v in table)
    line = f"__device__ const {ctype} {name}[256] = {{{items}}};{FILE_SCOPE}"
    index = f"(int)({arg}) + 128" if source == "int8" else f"(int)({arg})"
    read = f"__ldg(&{name}[{index}])"
    return line, f"__uint_as_float({read})" if bits else read


def clamp_range(table: list[int], source: str, out: str) -> tuple[int, int] | None:
    """(lo, hi) where a lookup table from 8-bit `source` integers to integers of type `out` maps
    each index v to min(max(v, lo), hi); else None."""
    if out not in ("int8", "uint8", "int16", "uint16", "int32", "uint32") or \
            source not in ("int8", "uint8"):
        return None
    first = -128 if source == "int8" else 0
    values = range(first, first + 256)
    lo, hi = min(table), max(table)
    if all(t == min(max(v, lo), hi) for v, t in zip(values, table, strict=True)):
        return lo, hi
    return None


def epilogue_lines(params: dict, value: str, index: str, indent: str,
                   loaded: Mapping[int, str] | None = None, result: str | None = None,
                   reciprocals: Mapping[int, str] | None = None) -> list[str]:
    """C lines applying a launch's `epilogue` to `value` (the output element at flat output
    index `index`), assigning the result back to `value`; none without an epilogue. Its extra
    inputs are the kernel's last pointer arguments (declare them with `epilogue_dtypes` and
    `signature(..., halves=True)` where one may be a half).

    The contract for the kernel's own result dtype `T = params["out_dtypes"][0]` and the dtype
    it stores, `S = stored_dtype(params)` (T, unless the epilogue ends in a cast to another
    float type): `value` is an lvalue of `compute_type(T)` (float for float16 / bfloat16, as a
    GEMM accumulates). For a half `T` the region starts from `value` rounded to `T` (the
    reference rounds the kernel's result before its epilogue); it leaves in `value` the result,
    already rounded to `S` for a half `S`; the caller stores it with `store_from_float(value, S)`
    and declares `out0` of type S — as it does with no epilogue (where these lines are empty and
    S is T). Extra inputs of half types are loaded into floats (`loaded`: as `read_inputs`').
    `result`: another lvalue (of S's compute type) to leave the result in, where `value` cannot
    hold it (an integer GEMM's int32 sum dequantized to float). `reciprocals`: region values
    (1 + k for extra input k) whose `__frcp_rn` the caller computed already (`region_lines`).
    Kernels using it get the half prelude from `source` automatically."""
    epilogue = params.get("epilogue")
    if epilogue is None:
        return []
    out_shape, dtype = params["out_shapes"][0], params["out_dtypes"][0]
    stored = stored_dtype(params)
    first = len(params["in_shapes"])
    lines = [f"{indent}// epilogue: {', '.join(op['fn'] for op in epilogue['ops']) or 'copy'}",
             f"{indent}const {compute_type(dtype)} e0 = {round_to(value, dtype)};"]
    lines += read_inputs(first, epilogue["in_shapes"], epilogue["in_dtypes"], out_shape,
                         index, "e", indent, "size_t", number_from=1, loaded=loaded)
    lines += region_lines(epilogue, [dtype, *epilogue["in_dtypes"]], "e", indent,
                          uniform=_uniform(epilogue["in_shapes"], first=1, pointer_first=first),
                          reciprocals=reciprocals)
    last = f"e{epilogue['result']}"
    target = result or value
    ops = epilogue["ops"]
    if is_float8(stored) and ops and ops[-1]["dtype"] == stored and epilogue["result"] == \
            len(ops) + len(epilogue["in_shapes"]):
        lines.append(f"{indent}{target} = {last};")  # its last op rounded it to E4M3 already
    elif stored_in_float(stored):
        lines.append(f"{indent}{target} = {round_to(last, stored)};")
    else:
        lines.append(f"{indent}{target} = ({c_type(stored)}){last};")
    return lines


def epilogue_summary(params: dict) -> list[str]:
    """The tactic-comment line describing a launch's epilogue (none without one)."""
    epilogue = params.get("epilogue")
    if epilogue is None:
        return []
    fns = ", ".join(op["fn"] for op in epilogue["ops"]) or "copy"
    stored = f", stored as {epilogue['out_dtype']}" if epilogue.get("out_dtype") else ""
    return [f"epilogue fused: [{fns}] on each output before the store, "
            f"{len(epilogue['in_shapes'])} extra input(s) read through broadcast strides"
            f"{stored}"]


def epilogue_store(params: dict, value: str) -> str:
    """The element a conv / matmul stores for `value` (what `epilogue_lines` leaves in it), in
    the step's `stored_dtype`: converted with `store_from_float`, except where a kernel stores
    its own FP32 / FP64 result (a register tile's accumulator, stored as it is)."""
    stored = stored_dtype(params)
    if stored == params["out_dtypes"][0] and not is_half(stored):
        return value
    return store_from_float(value, stored)


def epilogue_dtypes(params: dict) -> list[str]:
    """The dtypes of a launch's extra (epilogue) inputs, which follow its own in the signature."""
    epilogue = params.get("epilogue")
    return list(epilogue["in_dtypes"]) if epilogue else []


def uses_mod(params: dict) -> bool:
    epilogue = params.get("epilogue")
    return bool(epilogue) and any(op["fn"] == "mod" for op in epilogue["ops"])


def _pairs_ok(params: dict) -> bool:
    """Whether two neighbouring elements per thread (half pairs) fit: a half is involved and the
    last output dim is even, so a pair never straddles a row and every input is read at an even
    index (a whole pair) or broadcast along the last dim (one value for both); no input is
    read through strides (`in_views`)."""
    out_shape = params["out_shapes"][0]
    if params.get("in_views"):
        return False
    dtypes = [*params["in_dtypes"], params["out_dtypes"][0]]
    if not out_shape or not any(is_half(t) for t in dtypes):
        return False
    last = out_shape[-1]
    return not is_sym(last) and last > 0 and last % 2 == 0


def _group_reads(params: dict, itype: str, width: int, counter: str, ind: str
                 ) -> tuple[list[str], list[tuple[int, str, str, bool]]]:
    """The head of a loop body taking `width` neighbouring elements from i = width · counter:
    its lines (i, and its coordinates where a broadcast read needs them) and, per input, (k,
    dtype, index of element i, whether it is one value for the group: broadcast along the
    last dim)."""
    in_shapes, out_shape = params["in_shapes"], params["out_shapes"][0]
    body = [f"{ind}const {itype} i = {width} * {counter};"]
    if _needs_coords(in_shapes, out_shape):
        body += decompose("i", out_shape, "c", ind, itype)
    reads = []
    for k, (shape, dt) in enumerate(zip(in_shapes, params["in_dtypes"], strict=True)):
        padded = [1] * (len(out_shape) - len(shape)) + list(shape)
        reads.append((k, dt, _at(shape, out_shape, "i", ""),
                      prod(shape) == 1 or padded[-1] == 1))
    return body, reads


def _pair_lines(params: dict, itype: str) -> list[str]:
    """The loop body of the paired path: element i = 2·p and i + 1."""
    in_shapes, in_dtypes = params["in_shapes"], params["in_dtypes"]
    out_dtype = params["out_dtypes"][0]
    region = params["region"]
    ind = "        "
    body, reads = _group_reads(params, itype, 2, "p", ind)
    for k, dt, at, single in reads:  # single: one value for both elements
        ct = compute_type(dt)
        if single:
            body.append(f"{ind}const {ct} a{k} = {load_float(f'in{k}[{at}]', dt)}, b{k} = a{k};")
        elif is_half(dt):
            pair = f"p{k}"
            body.append(f"{ind}const {storage_type(dt)}2 {pair} = "
                        f"*(const {storage_type(dt)}2*)(in{k} + {at});")
            body.append(f"{ind}const {ct} a{k} = {load_float(pair + '.x', dt)}, "
                        f"b{k} = {load_float(pair + '.y', dt)};")
        else:
            body.append(f"{ind}const {ct} a{k} = in{k}[{at}], b{k} = in{k}[{at} + 1];")
    uniform = _uniform(in_shapes)
    body += region_lines(region, in_dtypes, "a", ind, uniform=uniform)
    body += region_lines(region, in_dtypes, "b", ind, uniform=uniform)
    a, b = f"a{region['result']}", f"b{region['result']}"
    if is_half(out_dtype):
        st = storage_type(out_dtype)
        body.append(f"{ind}*({st}2*)(out0 + i) = {st}2{{{store_from_float(a, out_dtype)}, "
                    f"{store_from_float(b, out_dtype)}}};")
    else:
        body.append(f"{ind}out0[i] = {store_from_float(a, out_dtype)};")
        body.append(f"{ind}out0[i + 1] = {store_from_float(b, out_dtype)};")
    return body


QUAD = 4  # elements per thread of a kernel storing 8-bit results from 4-byte ones (a quantize)
_QUAD_IN = {"float32": "float4", "int8": "char4", "uint8": "uchar4"}
_QUAD_OUT = {"int8": "char4", "uint8": "uchar4"}
_LANES = "xyzw"


def _quads_ok(params: dict) -> bool:
    """Whether four neighbouring elements per thread fit: an 8-bit result (a quantize, a
    requantize) of float32 / 8-bit inputs, no half involved (halves go in pairs), static sizes,
    the last output dim a multiple of 4, and every input read whole along it (one 16- or
    4-byte load at an index that is a multiple of 4) or broadcast along it (one value for the
    four); none through strides (`in_views`). One element per thread left a quantize of an
    image waiting on its loads (ResNet-50 INT8's input, 24 MB: 20.7 us on an H100)."""
    out_shape = params["out_shapes"][0]
    if params.get("in_views") or not out_shape or params["out_dtypes"][0] not in _QUAD_OUT:
        return False
    if any(t not in _QUAD_IN for t in params["in_dtypes"]) or any(is_sym(d) for d in out_shape):
        return False
    last = out_shape[-1]
    if last <= 0 or last % QUAD:
        return False
    for shape in params["in_shapes"]:
        padded = [1] * (len(out_shape) - len(shape)) + list(shape)
        if padded[-1] not in (1, last) or any(is_sym(d) for d in shape):
            return False
    return True


def _quad_lines(params: dict, itype: str) -> list[str]:
    """The loop body of the four-element path: elements i = 4·q .. i + 3, each lane's region
    over values named `l<lane>_<n>`."""
    in_shapes, in_dtypes = params["in_shapes"], params["in_dtypes"]
    out_dtype = params["out_dtypes"][0]
    region = params["region"]
    ind = "        "
    body, reads = _group_reads(params, itype, QUAD, "q", ind)
    for k, dt, at, single in reads:
        ct = compute_type(dt)
        if single:  # one value for the four elements
            body.append(f"{ind}const {ct} l0_{k} = {load_float(f'in{k}[{at}]', dt)};")
            body += [f"{ind}const {ct} l{lane}_{k} = l0_{k};" for lane in range(1, QUAD)]
        else:
            vec = _QUAD_IN[dt]
            body.append(f"{ind}const {vec} w{k} = *(const {vec}*)(in{k} + {at});")
            body += [f"{ind}const {ct} l{lane}_{k} = w{k}.{_LANES[lane]};"
                     for lane in range(QUAD)]
    uniform = _uniform(in_shapes)
    for lane in range(QUAD):
        body += region_lines(region, in_dtypes, f"l{lane}_", ind, uniform=uniform)
    results = ", ".join(store_from_float(f"l{lane}_{region['result']}", out_dtype)
                        for lane in range(QUAD))
    vec = _QUAD_OUT[out_dtype]
    body.append(f"{ind}*({vec}*)(out0 + i) = make_{vec}({results});")
    return body


def _wide_reads(params: dict) -> list[str] | None:
    """How each input of a kernel reading some of them through strides (`in_views`) is read by a
    group of neighbouring outputs along the last dim: "single" (one value for the group:
    broadcast along it), "vector" (whole and contiguous along it: a view of stride 1 there, or
    an input of the output's last dim) or None where some input is neither (read across it,
    as a transpose reads)."""
    out_shape = params["out_shapes"][0]
    views = {int(v["input"]): v for v in params.get("in_views") or ()}
    kinds = []
    for k, shape in enumerate(params["in_shapes"]):
        if k in views:
            last = int(views[k]["strides"][-1]) if views[k]["strides"] else 0
            kinds.append({0: "single", 1: "vector"}.get(last))
        else:
            padded = [1] * (len(out_shape) - len(shape)) + list(shape)
            kinds.append("single" if padded[-1] == 1 else "vector")
    return None if None in kinds else kinds


def _wide_width(params: dict) -> int:
    """Elements per thread of the strided path, 0 where it does not apply: a kernel reading some
    input through strides (`in_views`, which the paths above refuse) whose inputs are each read
    whole along the last output dim or broadcast along it (`_wide_reads`); static sizes. The
    width is the most elements whose widest vector (the result, each input read whole) fits
    16 bytes, dividing the last dim and every view's offset and outer strides, so that each vector
    is one aligned load or store; at least 2. One element per thread left BERT's INT8
    Q/K/V dequantizes (int8 [B, S, 3·H·D] read as [B, H, S, D]) at 5-7 us where their bytes
    move in about one."""
    out_shape, views = params["out_shapes"][0], params.get("in_views") or ()
    kinds = _wide_reads(params) if views and out_shape else None
    if kinds is None or any(is_sym(d) for s in [out_shape, *params["in_shapes"]] for d in s):
        return 0
    sizes = [item_bytes(params["out_dtypes"][0])] + [
        item_bytes(dt) for dt, kind in zip(params["in_dtypes"], kinds, strict=True)
        if kind == "vector"]
    aligned = [int(out_shape[-1])]
    for v in views:
        aligned += [int(v["offset"]), *(int(s) for s in v["strides"][:-1])]
    return vector_width(sizes, aligned)


def _wide_lines(params: dict, itype: str, width: int) -> list[str]:
    """The loop body of the strided path: elements i = width·g .. i + width - 1, each vector
    input read by one load at element i's index, each lane's region over `l<lane>_<n>`, the
    results stored by one store."""
    in_shapes, in_dtypes = params["in_shapes"], params["in_dtypes"]
    out_shape, out_dtype = params["out_shapes"][0], params["out_dtypes"][0]
    region = params["region"]
    views = {int(v["input"]): v for v in params.get("in_views") or ()}
    ind = "        "
    body = [f"{ind}const {itype} i = {width} * g;"]
    if views or _needs_coords(in_shapes, out_shape):
        body += decompose("i", out_shape, "c", ind, itype)
    for k, ((shape, dt), kind) in enumerate(zip(zip(in_shapes, in_dtypes, strict=True),
                                                  _wide_reads(params), strict=True)):
        if k in views:
            offset = int(views[k]["offset"])
            at = linear("c", [int(x) for x in views[k]["strides"]])
            at = f"{offset} + {at}" if offset else at
        else:
            at = _at(shape, out_shape, "i", "")
        ct, st = compute_type(dt), storage_type(dt)
        if kind == "single":
            body.append(f"{ind}const {ct} l0_{k} = {load_float(f'in{k}[{at}]', dt)};")
            body += [f"{ind}const {ct} l{lane}_{k} = l0_{k};" for lane in range(1, width)]
        else:
            vec = f"ember_vec<{st}, {width}>"
            body.append(f"{ind}const {vec} w{k} = *(const {vec}*)(in{k} + {at});")
            body += [f"{ind}const {ct} l{lane}_{k} = {load_float(f'w{k}.v[{lane}]', dt)};"
                     for lane in range(width)]
    uniform = _uniform(in_shapes, views=views)
    for lane in range(width):
        body += region_lines(region, in_dtypes, f"l{lane}_", ind, uniform=uniform)
    vec = f"ember_vec<{storage_type(out_dtype)}, {width}>"
    result = region["result"]
    body.append(f"{ind}{vec} o;")
    body += [f"{ind}o.v[{lane}] = {store_from_float(f'l{lane}_{result}', out_dtype)};"
             for lane in range(width)]
    body.append(f"{ind}*({vec}*)(out0 + i) = o;")
    return body


def emit(name: str, params: dict) -> KernelSpec:
    in_shapes, in_dtypes = params["in_shapes"], params["in_dtypes"]
    out_shape, out_dtype = params["out_shapes"][0], params["out_dtypes"][0]
    region = params["region"]
    n = prod(out_shape)
    views = {int(v["input"]): v for v in params.get("in_views") or ()}
    itype = index_type(n, *(prod(in_shapes[k]) for k in views))
    fns = ", ".join(op["fn"] for op in region["ops"]) or "copy"
    helpers = ""
    if width := _wide_width(params):
        groups = n // width
        body = [f"    for ({itype} g = ({itype})blockIdx.x * blockDim.x + threadIdx.x; "
                f"g < {groups}; g += ({itype})blockDim.x * gridDim.x) {{"]
        body += _wide_lines(params, itype, width)
        tactic = (f"tactic: {width} neighbouring elements per thread (inputs read through "
                  "strides, each one load of its elements or one value for them; one store); "
                  "grid-stride loop, block 256;")
        grid, block = grid_1d(groups)
        helpers = VEC_HELPER
    elif _pairs_ok(params):
        pairs = prod(out_shape[:-1]) * (out_shape[-1] // 2)
        body = [f"    for ({itype} p = ({itype})blockIdx.x * blockDim.x + threadIdx.x; "
                f"p < {pairs}; p += ({itype})blockDim.x * gridDim.x) {{"]
        body += _pair_lines(params, itype)
        tactic = ("tactic: two neighbouring elements per thread (4-byte loads and stores of "
                  "half pairs), computed in float; grid-stride loop, block 256;")
        grid, block = grid_1d(pairs)
    elif _quads_ok(params):
        quads = n // QUAD
        body = [f"    for ({itype} q = ({itype})blockIdx.x * blockDim.x + threadIdx.x; "
                f"q < {quads}; q += ({itype})blockDim.x * gridDim.x) {{"]
        body += _quad_lines(params, itype)
        tactic = (f"tactic: {QUAD} neighbouring elements per thread (one load of each input's "
                  f"{QUAD}, one {QUAD}-byte store); grid-stride loop, block 256;")
        grid, block = grid_1d(quads)
    else:
        body = [grid_stride_loop(n, itype)]
        body += read_inputs(0, in_shapes, in_dtypes, out_shape, "i", "v", "        ", itype,
                            views=views)
        body += region_lines(region, in_dtypes, "v", "        ",
                             uniform=_uniform(in_shapes, views=views))
        result = f"v{region['result']}"
        body.append(f"        out0[i] = {store_from_float(result, out_dtype)};")
        tactic = "tactic: one thread per output element, grid-stride loop, block 256;"
        grid, block = grid_1d(n)
    body.append("    }")
    text = source(f"elementwise [{fns}] -> {out_dtype}{list(out_shape)}",
                  [tactic, "inputs read through numpy broadcast strides"] + [
                      f"input {k} read through strides {v['strides']} from element "
                      f"{v['offset']} of its {list(in_shapes[k])} (fuse-strided-reads)"
                      for k, v in sorted(views.items())],
                  signature(name, in_dtypes, [out_dtype], halves=True), body,
                  prelude=any(op["fn"] == "mod" for op in region["ops"]), helpers=helpers)
    return KernelSpec(text, grid, block, 0)
