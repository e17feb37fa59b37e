"""Hashes of the plans a tree builds, to check a refactoring changes no plan byte: the 9 light
models for the CPU, sm_90, unoptimized and sm_90 FP16, and BERT-tiny with dynamic shapes. Run
with each tree on PYTHONPATH and diff the outputs (no GPU needed; autotuning off):

    PYTHONPATH=/path/to/old-tree-parent python tools/plan_hashes.py > before.txt
    python tools/plan_hashes.py > after.txt && diff before.txt after.txt

`--drop-section NAME` hashes the plans without that section, to compare with a tree that did
not write it (e.g. `explain`, the build's recorded reasons, new in session 8). `--content`
hashes the manifest and the sections rather than the plan file, to compare across plan-format
versions (format 2's checksum differs from format 1's for the same content).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import onnx

import ember
from ember.compiler.builder import BuilderConfig, BuilderFlag, OptimizationProfile, build_model
from ember.compiler.models import LIGHT_MODELS, light_model_path
from ember.errors import EmberError
from ember.runtime.plan import plan_bytes


def _profile(spec: dict) -> OptimizationProfile:
    p = OptimizationProfile()
    for name, (lo, opt, hi) in spec.items():
        p.set_shape(name, lo, opt, hi)
    return p


def cases() -> list[tuple[str, Path, BuilderConfig]]:
    out = []
    for name in LIGHT_MODELS:
        path = light_model_path(name)
        out += [(f"{name} cpu", path, BuilderConfig(autotune=False)),
                (f"{name} sm90", path, BuilderConfig(target_arch="sm_90", autotune=False)),
                (f"{name} unopt", path, BuilderConfig(optimize=False)),
                (f"{name} sm90fp16", path, BuilderConfig(target_arch="sm_90", autotune=False,
                                                         flags=BuilderFlag.FP16))]
    models = Path(ember.__file__).parent / "tests" / "models"
    seq = {n: ((1, 1), (2, 16), (4, 32)) for n in ("input_ids", "attention_mask")}
    batch = {n: ((1, 16), (2, 16), (4, 16)) for n in ("input_ids", "attention_mask")}
    out += [("bert_dynamic sm90", models / "bert_tiny_dynamic.onnx",
             BuilderConfig(target_arch="sm_90", autotune=False, profiles=[_profile(batch)])),
            ("bert_dynamic_seq sm90", models / "bert_tiny_dynamic_seq.onnx",
             BuilderConfig(target_arch="sm_90", autotune=False, profiles=[_profile(seq)])),
            ("bert_dynamic_seq cpu", models / "bert_tiny_dynamic_seq.onnx",
             BuilderConfig(autotune=False, profiles=[_profile(seq)]))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop-section", action="append", default=[], metavar="NAME")
    parser.add_argument("--content", action="store_true",
                        help="hash the manifest and sections, not the plan file")
    args = parser.parse_args()
    drop = set(args.drop_section)
    for name, path, config in cases():
        try:
            manifest, sections = build_model(onnx.load(str(path)), config)
            kept = {k: v for k, v in sections.items() if k not in drop}
            if args.content:
                data = json.dumps(manifest, sort_keys=True, default=str).encode() + b"".join(
                    k.encode() + bytes(kept[k]) for k in sorted(kept))
            else:
                data = plan_bytes(manifest, kept)
        except EmberError as e:
            data = f"ERROR {type(e).__name__}: {e}".encode()
        print(name, hashlib.sha256(data).hexdigest()[:16], flush=True)


if __name__ == "__main__":
    main()
