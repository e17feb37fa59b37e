"""rnn / lstm: ONNX RNN, GRU and LSTM as one fused kernel launch, with the numpy kernel's rules
(runtime/cpu_kernels/recurrent.py): one block per (batch row, direction) walks the time steps
with the hidden and cell state in shared memory; each step, its threads compute the gates'
input and recurrent dot products (one gate element each, strided), then the cell update. A
row's steps past its sequence length are not computed: its Y rows there are 0, its final
state the one at its length; the reverse direction starts at its last valid step. Sums in
float (double for float64)."""

from __future__ import annotations

from ember.codegen.scalar_c import load_float, store_from_float
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import KernelSpec, signature, source
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.recurrent import GATES, activation_specs

BLOCK = 256
MAX_SHARED = 40 * 1024  # bytes of state and gates one block keeps in shared memory
FLOATS = ("float32", "float64", "float16", "bfloat16")


def _activation(name: str, args: tuple[float, ...], ftype: str) -> str:
    """The C expression of activation `name` on `x`."""
    a, b = (repr(float(v)) for v in (*args, 0.0, 0.0)[:2])
    return {
        "Relu": "x > 0 ? x : 0",
        "Tanh": "tanh(x)",
        "Sigmoid": f"({ftype})1 / (1 + exp(-x))",
        "Affine": f"{a} * x + {b}",
        "LeakyRelu": f"x >= 0 ? x : {a} * x",
        "ThresholdedRelu": f"x > {a} ? x : 0",
        "ScaledTanh": f"{a} * tanh({b} * x)",
        "HardSigmoid": f"fmin(fmax({a} * x + {b}, ({ftype})0), ({ftype})1)",
        "Elu": f"x >= 0 ? x : {a} * (exp(x) - 1)",
        "Softsign": "x / (1 + fabs(x))",
        "Softplus": "log1p(exp(x))",
    }[name]


def emit(name: str, params: dict) -> KernelSpec:
    cell = params["cell"]
    shapes = [list(s) for s in params["in_shapes"]]
    dtype = params["out_dtypes"][0]
    if dtype not in FLOATS or any(t != dtype for t in params["in_dtypes"][:3]):
        raise UnsupportedError(f"CUDA {cell}: {params['in_dtypes']} operands")
    if any(is_sym(d) for s in shapes for d in s):
        raise UnsupportedError(f"CUDA {cell}: symbolic shapes")
    optional = list(params.get("optional") or [])
    given = {n: 3 + i for i, n in enumerate(optional)}
    if "sequence_lens" in given and params["in_dtypes"][given["sequence_lens"]] not in (
            "int32", "int64"):
        raise UnsupportedError(f"CUDA {cell}: sequence_lens of "
                               f"{params['in_dtypes'][given['sequence_lens']]}")
    for n in ("bias", "initial_h", "initial_c", "peepholes"):
        if n in given and params["in_dtypes"][given[n]] != dtype:
            raise UnsupportedError(f"CUDA {cell}: {n} is {params['in_dtypes'][given[n]]}")
    hidden = int(params["hidden_size"])
    direction = params.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    layout = int(params.get("layout") or 0)
    x_shape = shapes[0]
    batch, seq = (x_shape[0], x_shape[1]) if layout else (x_shape[1], x_shape[0])
    size_in = x_shape[2]
    g = GATES[cell]
    ftype = "double" if dtype == "float64" else "float"
    width = 8 if ftype == "double" else 4
    shared = (2 * hidden + 2 * g * hidden) * width
    if shared > MAX_SHARED:
        raise UnsupportedError(f"CUDA {cell}: hidden size {hidden} needs {shared} bytes of "
                               f"shared memory (at most {MAX_SHARED})")
    acts = activation_specs(cell, params.get("activations"), params.get("activation_alpha"),
                            params.get("activation_beta"), dirs)
    helpers = []
    for d in range(dirs):
        for k, (act, args) in enumerate(acts[d]):
            helpers.append(f"__device__ __forceinline__ {ftype} act{d}_{k}({ftype} x) {{ "
                           f"return {_activation(act, args, ftype)}; }}")
    clip = params.get("clip")

    def clipped(expr: str) -> str:
        return f"fmin(fmax({expr}, ({ftype})-{clip!r}), ({ftype}){clip!r})" if clip is not None \
            else expr

    def act(k: int, expr: str) -> str:
        return f"(d == 0 ? act0_{k}({expr}) : act{dirs - 1}_{k}({expr}))" if dirs == 2 \
            else f"act0_{k}({expr})"

    def ld(i: int, index: str) -> str:
        return f"({ftype}){load_float(f'in{i}[{index}]', params['in_dtypes'][i])}"

    x_at = (f"((size_t)b * {seq} + rt) * {size_in}" if layout
            else f"((size_t)rt * {batch} + b) * {size_in}")
    y_at = (f"(((size_t)b * {seq} + rt) * {dirs} + d) * {hidden}" if layout
            else f"(((size_t)rt * {dirs} + d) * {batch} + b) * {hidden}")
    st_at = (f"((size_t)b * {dirs} + d) * {hidden}" if layout
             else f"((size_t)d * {batch} + b) * {hidden}")
    reverse = "d == 1" if dirs == 2 else str(direction == "reverse").lower()
    length = f"(int)in{given['sequence_lens']}[b]" if "sequence_lens" in given else str(seq)

    def start(state: str) -> str:
        return ld(given[state], st_at + " + j") if state in given else "0"

    body = ["    const int b = blockIdx.x, d = blockIdx.y;",
            f"    const bool reverse = {reverse};",
            "    extern __shared__ __align__(8) unsigned char smem[];",
            f"    {ftype}* h = ({ftype}*)smem;",
            f"    {ftype}* c = h + {hidden};",
            f"    {ftype}* gx = c + {hidden};   // input parts of the gates",
            f"    {ftype}* gh = gx + {g * hidden};   // recurrent parts",
            f"    const int len = {length};",
            f"    for (int j = threadIdx.x; j < {hidden}; j += blockDim.x) {{",
            f"        h[j] = {start('initial_h')};",
            f"        c[j] = {start('initial_c')};",
            "    }",
            # Y rows past the length are 0
            f"    for (int rt = len; rt < {seq}; ++rt)",
            f"        for (int j = threadIdx.x; j < {hidden}; j += blockDim.x) "
            f"out0[{y_at} + j] = {store_from_float('0', dtype)};",
            "    __syncthreads();",
            "    for (int t = 0; t < len; ++t) {",
            "        const int rt = reverse ? len - 1 - t : t;",
            f"        for (int j = threadIdx.x; j < {g * hidden}; j += blockDim.x) {{",
            f"            {ftype} sx = 0, sh = 0;",
            f"            const size_t w = ((size_t)d * {g * hidden} + j) * {size_in};",
            f"            for (int k = 0; k < {size_in}; ++k) sx += {ld(0, x_at + ' + k')} * "
            f"{ld(1, 'w + k')};",
            f"            const size_t r = ((size_t)d * {g * hidden} + j) * {hidden};",
            f"            for (int k = 0; k < {hidden}; ++k) sh += h[k] * {ld(2, 'r + k')};"]
    if "bias" in given:
        bias = given["bias"]
        row = f"(size_t)d * {2 * g * hidden}"
        body += [f"            sx += {ld(bias, f'{row} + j')};",
                 f"            sh += {ld(bias, f'{row} + {g * hidden} + j')};"]
    body += ["            gx[j] = sx; gh[j] = sh;",
             "        }",
             "        __syncthreads();",
             f"        for (int j = threadIdx.x; j < {hidden}; j += blockDim.x) {{"]
    hj = "h[j]"
    if cell == "rnn":
        body.append(f"            const {ftype} hn = {act(0, clipped('gx[j] + gh[j]'))};")
    elif cell == "gru":
        z = act(0, clipped("gx[j] + gh[j]"))
        r = act(0, clipped(f"gx[{hidden} + j] + gh[{hidden} + j]"))
        body += [f"            const {ftype} z = {z};", f"            const {ftype} rr = {r};"]
        if params.get("linear_before_reset"):
            cand = act(1, clipped(f"gx[{2 * hidden} + j] + rr * gh[{2 * hidden} + j]"))
        else:
            # (r * h) R_h: the reset gate scales h before the product, so compute it here
            bh = (ld(given["bias"], f"(size_t)d * {2 * g * hidden} + {g * hidden} + "
                                    f"{2 * hidden} + j") if "bias" in given else "0")
            reset_k = act(0, clipped(f"gx[{hidden} + k] + gh[{hidden} + k]"))
            body += [f"            {ftype} sr = 0;",
                     f"            const size_t r = ((size_t)d * {g * hidden} + {2 * hidden} "
                     f"+ j) * {hidden};",
                     f"            for (int k = 0; k < {hidden}; ++k) {{",
                     f"                const {ftype} rk = {reset_k};",
                     f"                sr += rk * h[k] * {ld(2, 'r + k')};",
                     "            }"]
            cand = act(1, clipped(f"gx[{2 * hidden} + j] + sr + {bh}"))
        body += [f"            const {ftype} hc = {cand};",
                 f"            const {ftype} hn = (1 - z) * hc + z * {hj};"]
    else:
        peep = given.get("peepholes")

        def p(k: int) -> str:
            return ld(peep, f"(size_t)d * {3 * hidden} + {k * hidden} + j") if peep is not None \
                else "0"
        ig = act(0, clipped(f"gx[j] + gh[j] + {p(0)} * c[j]"))
        body += [f"            const {ftype} ig = {ig};"]
        if params.get("input_forget"):
            body.append(f"            const {ftype} fg = 1 - ig;")
        else:
            fg = act(0, clipped(f"gx[{2 * hidden} + j] + gh[{2 * hidden} + j] + {p(2)} * c[j]"))
            body.append(f"            const {ftype} fg = {fg};")
        body += [f"            const {ftype} cg = "
                 f"{act(1, clipped(f'gx[{3 * hidden} + j] + gh[{3 * hidden} + j]'))};",
                 f"            const {ftype} cn = fg * c[j] + ig * cg;",
                 f"            const {ftype} og = "
                 f"{act(0, clipped(f'gx[{hidden} + j] + gh[{hidden} + j] + {p(1)} * cn'))};",
                 f"            const {ftype} hn = og * {act(2, 'cn')};",
                 "            gx[j] = cn;   // the new cell state (each thread reads its own)"]
    body += ["            gh[j] = hn;   // the new hidden state, likewise",
             "        }",
             "        __syncthreads();",
             f"        for (int j = threadIdx.x; j < {hidden}; j += blockDim.x) {{",
             "            h[j] = gh[j];"]
    if cell == "lstm":
        body.append("            c[j] = gx[j];")
    body += [f"            out0[{y_at} + j] = {store_from_float('h[j]', dtype)};",
             "        }",
             "        __syncthreads();",
             "    }",
             f"    for (int j = threadIdx.x; j < {hidden}; j += blockDim.x) {{",
             f"        out1[{st_at} + j] = {store_from_float('h[j]', dtype)};"]
    if cell == "lstm":
        body.append(f"        out2[{st_at} + j] = {store_from_float('c[j]', dtype)};")
    body.append("    }")
    sig = signature(name, params["in_dtypes"], params["out_dtypes"], halves=True)
    text = source(f"{cell} {direction} hidden={hidden} seq={seq} batch={batch} in={size_in} "
                  f"layout={layout} {dtype}",
                  [f"tactic: one block of {BLOCK} per (batch row, direction) over the time "
                   "steps; state and gates in shared memory; sums in " + ftype],
                  sig, body, helpers="\n".join(helpers))
    return KernelSpec(text, (batch, dirs, 1), (BLOCK, 1, 1), shared)
