"""Export small PyTorch models to ONNX as test fixtures (run where torch is installed, e.g. the
GPU host): a 2-layer BERT encoder with BERT-base's graph shape (hidden 64, 4 heads, seq 16, a
100-token vocabulary) exported exactly as benchmarks/bench_models.py exports BERT-base; and the
same with a dynamic batch axis (as benchmarks/bench_dynamic.py exports it), and with dynamic
batch and sequence axes.

    python tools/export_fixtures.py OUT_DIR
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np


def bert_tiny(dynamic_batch: bool = False, dynamic_seq: bool = False) -> bytes:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, intermediate_size=128,
                                             max_position_embeddings=32))

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]

    model = Encoder().eval()
    ids = torch.from_numpy(np.arange(32, dtype=np.int64).reshape(2, 16) % 100)
    mask = torch.ones((2, 16), dtype=torch.int64)
    buf = io.BytesIO()
    torch.onnx.export(model, (ids, mask), buf, input_names=["input_ids", "attention_mask"],
                      output_names=["y"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch", **({1: "sequence"} if dynamic_seq else {})}
                                    for n in ("input_ids", "attention_mask", "y")}
                      if dynamic_batch else None)
    return buf.getvalue()


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "bert_tiny.onnx").write_bytes(bert_tiny())
    (out / "bert_tiny_dynamic.onnx").write_bytes(bert_tiny(dynamic_batch=True))
    (out / "bert_tiny_dynamic_seq.onnx").write_bytes(bert_tiny(dynamic_batch=True,
                                                               dynamic_seq=True))
    print("wrote", *(out / f"bert_tiny{s}.onnx" for s in ("", "_dynamic", "_dynamic_seq")))


if __name__ == "__main__":
    main()
