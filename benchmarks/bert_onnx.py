"""A BERT-base encoder as ONNX without PyTorch: `bert_base(batch, seq)` builds with onnx.helper the
graph `torch.onnx.export` (static shapes, opset 17 by default) gives for a HuggingFace-style
BertModel's last hidden state, in its older form (scores divided by sqrt(d), the additive
(1 - mask) * -10000 mask, Erf GELU), with seeded random weights that keep every activation near
unit scale (FP16 builds do not overflow). For build-time measurements where torch is absent;
bench_models.py exports the real model where it is there.

    python benchmarks/bert_onnx.py bert.onnx --batch 8 --seq 128
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPSILON = 1e-12  # BertConfig.layer_norm_eps
MASKED = -10000.0  # what older transformers add to masked scores


class _Graph:
    """Nodes, initializers and constants named as the PyTorch exporter names them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.counts: dict[str, int] = {}

    def node(self, op: str, inputs: list[str], scope: str, **attrs) -> str:
        """One node named `<scope>/<op>` (numbered as the exporter does when the scope has
        several of that op); returns its output's name."""
        name = f"{scope}/{op}"
        count = self.counts[name] = self.counts.get(name, -1) + 1
        if count:
            name = f"{name}_{count}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def constant(self, value: np.ndarray, scope: str) -> str:
        return self.node("Constant", [], scope, value=numpy_helper.from_array(value))

    def weight(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def normal(self, name: str, shape: tuple[int, ...], std: float) -> str:
        return self.weight(name, (self.rng.standard_normal(shape) * std).astype(np.float32))

    def linear(self, x: str, prefix: str, scope: str, n_in: int, n_out: int) -> str:
        """torch.nn.Linear on a [B, S, n_in] tensor: MatMul by the transposed weight, then the
        bias added first-operand-first, as exported. Weights ~ N(0, 1/n_in) keep activations
        near unit scale (no FP16 overflow); biases small."""
        w = self.normal(f"{prefix}.weight_t", (n_in, n_out), 1 / math.sqrt(n_in))
        b = self.normal(f"{prefix}.bias", (n_out,), 0.02)
        return self.node("Add", [b, self.node("MatMul", [x, w], scope)], scope)

    def layer_norm(self, x: str, prefix: str, scope: str, hidden: int, opset: int) -> str:
        """LayerNormalization from opset 17; before it, as the exporter writes it out:
        (x - mean) / sqrt(mean((x - mean)^2) + eps) * weight + bias."""
        g = self.weight(f"{prefix}.weight", (1 + 0.1 * self.rng.standard_normal(hidden))
                        .astype(np.float32))
        b = self.normal(f"{prefix}.bias", (hidden,), 0.1)
        if opset >= 17:
            return self.node("LayerNormalization", [x, g, b], scope, axis=-1, epsilon=EPSILON)
        d = self.node("Sub", [x, self.node("ReduceMean", [x], scope, axes=[-1])], scope)
        square = self.node("Pow", [d, self.constant(np.array(2.0, np.float32), scope)], scope)
        var = self.node("ReduceMean", [square], scope, axes=[-1])
        eps = self.constant(np.array(EPSILON, np.float32), scope)
        std = self.node("Sqrt", [self.node("Add", [var, eps], scope)], scope)
        return self.node("Add", [self.node("Mul", [self.node("Div", [d, std], scope), g], scope),
                                 b], scope)


def _self_attention(g: _Graph, x: str, mask: str, at: str, name: str, batch: int, seq: int,
                    hidden: int, heads: int) -> str:
    """BertSelfAttention: Q/K/V projections, heads split by Reshape + Transpose (K transposed
    again for Kᵀ), scores / sqrt(d) + mask, Softmax, times V, heads merged back."""
    d = hidden // heads
    scope = f"{at}/attention/self"
    split = g.constant(np.array([batch, seq, heads, d], np.int64), scope)

    def heads_of(which: str) -> str:
        proj = g.linear(x, f"{name}.attention.self.{which}", f"{scope}/{which}", hidden, hidden)
        return g.node("Transpose", [g.node("Reshape", [proj, split], scope)], scope,
                      perm=[0, 2, 1, 3])

    q, k, v = heads_of("query"), heads_of("key"), heads_of("value")
    kt = g.node("Transpose", [k], scope, perm=[0, 1, 3, 2])
    scores = g.node("MatMul", [q, kt], scope)
    scores = g.node("Div", [scores, g.constant(np.array(math.sqrt(d), np.float32), scope)], scope)
    probs = g.node("Softmax", [g.node("Add", [scores, mask], scope)], scope, axis=-1)
    context = g.node("Transpose", [g.node("MatMul", [probs, v], scope)], scope, perm=[0, 2, 1, 3])
    merged = g.constant(np.array([batch, seq, hidden], np.int64), scope)
    return g.node("Reshape", [context, merged], scope)


def _gelu(g: _Graph, x: str, scope: str) -> str:
    """x * 0.5 * (1 + erf(x / sqrt(2))) in the exporter's order: Div, Erf, Add, Mul, Mul."""
    erf = g.node("Erf", [g.node("Div", [x, g.constant(np.array(math.sqrt(2), np.float32),
                                                         scope)], scope)], scope)
    one_plus = g.node("Add", [erf, g.constant(np.array(1.0, np.float32), scope)], scope)
    return g.node("Mul", [g.node("Mul", [x, one_plus], scope),
                          g.constant(np.array(0.5, np.float32), scope)], scope)


def _layer(g: _Graph, x: str, mask: str, i: int, batch: int, seq: int, hidden: int,
           heads: int, ffn: int, opset: int) -> str:
    """BertLayer: self-attention, output dense + residual + LayerNorm, FFN with GELU, output
    dense + residual + LayerNorm."""
    name, at = f"bert.encoder.layer.{i}", f"/bert/encoder/layer.{i}"
    attended = _self_attention(g, x, mask, at, name, batch, seq, hidden, heads)
    out = g.linear(attended, f"{name}.attention.output.dense", f"{at}/attention/output/dense",
                   hidden, hidden)
    out = g.node("Add", [out, x], f"{at}/attention/output")
    x = g.layer_norm(out, f"{name}.attention.output.LayerNorm",
                     f"{at}/attention/output/LayerNorm", hidden, opset)
    up = g.linear(x, f"{name}.intermediate.dense", f"{at}/intermediate/dense", hidden, ffn)
    up = _gelu(g, up, f"{at}/intermediate/intermediate_act_fn")
    down = g.linear(up, f"{name}.output.dense", f"{at}/output/dense", ffn, hidden)
    down = g.node("Add", [down, x], f"{at}/output")
    return g.layer_norm(down, f"{name}.output.LayerNorm", f"{at}/output/LayerNorm", hidden,
                        opset)


def bert_base(batch: int, seq: int, layers: int = 12, hidden: int = 768, heads: int = 12,
              ffn: int = 3072, opset: int = 17, *, vocab: int = 30522, max_positions: int = 512,
              type_vocab: int = 2, seed: int = 0) -> onnx.ModelProto:
    """BERT's encoder: inputs `input_ids` and `attention_mask` (int64 [batch, seq]), output `y`
    (float32 [batch, seq, hidden], the last hidden state). Word + position + token-type
    embeddings (token types all 0, positions 0..seq-1, as the exporter bakes them), LayerNorm,
    `layers` BertLayers. Opset 17 on has LayerNormalization; 11 to 16 get the exporter's
    decomposed layer norm (ReduceMean, Sub, Pow, Sqrt, Div) that fuse-normalization
    recognizes."""
    if opset < 11:
        raise ValueError(f"bert_base: opset {opset} is older than 11, the oldest written here")
    if hidden % heads:
        raise ValueError(f"bert_base: hidden {hidden} does not split into {heads} heads")
    if seq > max_positions:
        raise ValueError(f"bert_base: seq {seq} exceeds the {max_positions} positions")
    g = _Graph(np.random.default_rng(seed))
    scope = "/bert/embeddings"
    words = g.normal("bert.embeddings.word_embeddings.weight", (vocab, hidden), 0.5)
    positions = g.normal("bert.embeddings.position_embeddings.weight", (max_positions, hidden),
                         0.5)
    types = g.normal("bert.embeddings.token_type_embeddings.weight", (type_vocab, hidden), 0.5)
    position_ids = g.constant(np.arange(seq, dtype=np.int64)[None], scope)
    type_ids = g.node("Expand", [g.constant(np.zeros((1, seq), np.int64), scope),
                                 g.constant(np.array([batch, seq], np.int64), scope)], scope)
    x = g.node("Gather", [words, "input_ids"], f"{scope}/word_embeddings")
    x = g.node("Add", [x, g.node("Gather", [types, type_ids], f"{scope}/token_type_embeddings")],
               scope)
    x = g.node("Add", [x, g.node("Gather", [positions, position_ids],
                                 f"{scope}/position_embeddings")], scope)
    x = g.layer_norm(x, "bert.embeddings.LayerNorm", f"{scope}/LayerNorm", hidden, opset)
    # the extended mask, once: attention_mask[:, None, None, :], (1 - m) * -10000
    m = (g.node("Unsqueeze", ["attention_mask", g.constant(np.array([1, 2], np.int64), "/bert")],
                "/bert") if opset >= 13 else
         g.node("Unsqueeze", ["attention_mask"], "/bert", axes=[1, 2]))
    m = g.node("Cast", [m], "/bert", to=TensorProto.FLOAT)
    m = g.node("Sub", [g.constant(np.array(1.0, np.float32), "/bert"), m], "/bert")
    mask = g.node("Mul", [m, g.constant(np.array(MASKED, np.float32), "/bert")], "/bert")
    for i in range(layers):
        x = _layer(g, x, mask, i, batch, seq, hidden, heads, ffn, opset)
    g.nodes[-1].output[0] = "y"  # the exporter names the output after output_names
    graph = helper.make_graph(
        g.nodes, "bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, seq])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, seq, hidden])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="ember benchmarks/bert_onnx.py")
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="the .onnx file to write")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--ffn", type=int, default=3072)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = bert_base(args.batch, args.seq, args.layers, args.hidden, args.heads, args.ffn,
                      args.opset, seed=args.seed)
    onnx.save(model, args.output)
    print(f"{args.output}: BERT {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
          f"FFN {args.ffn}, batch {args.batch} x seq {args.seq}, {len(model.graph.node)} nodes, "
          f"{sum(math.prod(t.dims) for t in model.graph.initializer) / 1e6:.1f} M weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
