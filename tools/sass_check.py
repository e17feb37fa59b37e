"""What each kernel of a plan really issues: `cuobjdump --dump-sass` over every CUBIN in the plan,
counting the tensor-core instructions (HMMA, HGMMA, IMMA, IGMMA, and the FP8 QMMA / QGMMA),
local-memory traffic (LDL/STL: register spills or stack arrays) and the instruction total, with
the steps (template and tactic) that launch the kernel. Runs where `cuobjdump` is (the GPU
host); no GPU needed.

    python tools/sass_check.py model.plan [more.plan ...] [--require TEMPLATE=OPCODE ...]
        [--all] [--sass-dir DIR]
    python tools/sass_check.py kernel.cu [--arch sm_90]

--sass-dir writes each kernel's SASS to DIR/<plan stem>.<kernel>.sass and its CUDA source
beside it (.cu). A .cu file (such a source, edited) is compiled with ember's NVRTC for --arch
(sm_90a where it carries the wgmma marker), its global/shared memory instructions are counted
by width (where a 16-byte store in the C became four 32-bit ones, say) and its SASS is written
beside it (<file>.sass); --no-local applies to it, --require does not.

--require conv=IMMA says every kernel launched by a step whose template starts with `conv`
must issue at least one IMMA instruction; any kernel that does not is listed and the exit
status is 1. So is a kernel with LDL/STL where --no-local is given.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from ember.runtime.plan import read_plan

OPCODES = ("HGMMA", "HMMA", "IGMMA", "IMMA", "QGMMA", "QMMA", "LDL", "STL")
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)((?:\.[\w]+)*)")


def sass_counts(sass: str) -> tuple[Counter, Counter]:
    """(opcode -> count over OPCODES and "total", full opcode with modifiers -> count for the
    tensor-core ones, e.g. "IMMA.16832.S8.S8")."""
    counts: Counter = Counter()
    variants: Counter = Counter()
    for match in _INSTRUCTION.finditer(sass):
        op, mods = match.group(1), match.group(2)
        counts["total"] += 1
        if op in OPCODES:
            counts[op] += 1
            if op not in ("LDL", "STL"):
                variants[op + mods] += 1
    return counts, variants


def kernel_steps(manifest: dict) -> dict[str, list[str]]:
    """kernel name -> "template[tactic]" of each step that launches it (variants too)."""
    users: dict[str, list[str]] = {}

    def visit(launch: dict, label: str) -> None:
        users.setdefault(launch["kernel"], []).append(label)
        for variant in launch.get("variants") or ():
            visit(variant, label + " (variant)")

    for step in manifest.get("steps") or ():
        launch = step.get("cuda")
        if not launch:
            continue
        tactic = (step.get("params") or {}).get("tactic")
        label = step["template"] + (f"[{_tactic(tactic)}]" if tactic else "")
        visit(launch, label)
    return users


def _tactic(tactic: object) -> str:
    if isinstance(tactic, dict):
        return ",".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in tactic.items())
    return str(tactic)


def disassemble(cubin: bytes, cuobjdump: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        done = subprocess.run([cuobjdump, "--dump-sass", f.name], capture_output=True, text=True,
                              check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump failed: {done.stderr.strip()[:300]}")
    return done.stdout


def check_plan(path: Path, cuobjdump: str, requires: list[tuple[str, str]], no_local: bool,
               show_all: bool, sass_dir: Path | None) -> list[str]:
    """Print the plan's kernel table; the problems found (a required opcode missing, local
    memory where --no-local)."""
    plan = read_plan(path)
    manifest = plan.manifest
    if "cubin" not in plan.section_names:
        return [f"{path}: no cubin section (a CPU plan, or built for rejit only)"]
    cubins = plan.section("cubin")
    users = kernel_steps(manifest)
    problems: list[str] = []
    arch = (manifest.get("target") or {}).get("arch", "?")
    print(f"== {path} (arch {arch}, {len(manifest.get('kernels') or [])} kernels)")
    totals: Counter = Counter()
    for k in manifest.get("kernels") or []:
        name = k["name"]
        sass = disassemble(bytes(cubins[k["cubin_offset"]:k["cubin_offset"] + k["cubin_size"]]),
                           cuobjdump)
        if sass_dir is not None:
            (sass_dir / f"{path.stem}.{name}.sass").write_text(sass)
            if "cuda_source" in plan.section_names and k.get("source_size"):
                start = k["source_offset"]
                (sass_dir / f"{path.stem}.{name}.cu").write_bytes(
                    bytes(plan.section("cuda_source")[start:start + k["source_size"]]))
        counts, variants = sass_counts(sass)
        totals.update(counts)
        steps = users.get(name, ["(no step)"])
        interesting = any(counts[op] for op in OPCODES)
        if show_all or interesting:
            mma = " ".join(f"{v}:{n}" for v, n in variants.most_common())
            local = f" LDL:{counts['LDL']} STL:{counts['STL']}" if counts["LDL"] or counts[
                "STL"] else ""
            print(f"  {name:40} {counts['total']:6} instrs  {mma or '-'}{local}  <- "
                  f"{'; '.join(sorted(set(steps)))[:200]}")
        for prefix, opcode in requires:
            if any(s.startswith(prefix) for s in steps) and not counts[opcode]:
                problems.append(f"{path}: kernel {name} ({'; '.join(sorted(set(steps)))[:120]}) "
                                f"issues no {opcode}")
        if no_local and (counts["LDL"] or counts["STL"]):
            problems.append(f"{path}: kernel {name} uses local memory (LDL {counts['LDL']}, "
                            f"STL {counts['STL']})")
    print("  total: " + ", ".join(f"{op} {totals[op]}" for op in ("total", *OPCODES)))
    return problems


_MEMORY = re.compile(r"\b((?:LDG|STG|LDS|STS|LD|ST|LDGSTS)(?:\.[A-Z0-9]+)*)\s")


def check_source(path: Path, cuobjdump: str, arch: str, no_local: bool) -> list[str]:
    """Compile one kernel's CUDA source, print its instruction counts and memory instructions
    by kind and width, write its SASS beside it (<path>.sass); the problems found (local memory
    where --no-local)."""
    from ember.codegen.nvrtc import compile_cuda, kernel_arch

    source = path.read_text()
    found = re.search(r"__global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(", source)
    if found is None:
        raise SystemExit(f"{path}: no __global__ kernel in it")
    name = found.group(1)
    compiled = compile_cuda(source, name=name, arch=kernel_arch(name, source, arch))
    sass = disassemble(compiled.cubin, cuobjdump)
    counts, variants = sass_counts(sass)
    memory = Counter(m.group(1) for m in _MEMORY.finditer(sass))
    print(f"== {path} ({name}, {kernel_arch(name, source, arch)}): {counts['total']} instrs  "
          + " ".join(f"{v}:{n}" for v, n in variants.most_common()))
    print("  memory: " + " ".join(f"{op}:{n}" for op, n in sorted(memory.items())))
    path.with_suffix(".sass").write_text(sass)
    if no_local and (counts["LDL"] or counts["STL"]):
        return [f"{path}: kernel {name} uses local memory (LDL {counts['LDL']}, "
                f"STL {counts['STL']})"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plans", nargs="+", type=Path)
    parser.add_argument("--require", action="append", default=[], metavar="TEMPLATE=OPCODE",
                        help=f"kernels of steps whose template starts with TEMPLATE must issue "
                             f"OPCODE (one of {', '.join(OPCODES[:4])})")
    parser.add_argument("--no-local", action="store_true",
                        help="a kernel with LDL/STL (spills, stack arrays) is a problem")
    parser.add_argument("--all", action="store_true",
                        help="list every kernel (default: those with tensor-core or local-memory "
                             "instructions)")
    parser.add_argument("--sass-dir", type=Path,
                        help="write each kernel's SASS and CUDA source here")
    parser.add_argument("--arch", default="sm_90", help="the target a .cu file compiles for")
    args = parser.parse_args(argv)
    requires = []
    for spec in args.require:
        prefix, _, opcode = spec.partition("=")
        if not prefix or opcode not in OPCODES[:4]:
            parser.error(f"--require {spec}: give TEMPLATE=OPCODE, OPCODE one of "
                         f"{', '.join(OPCODES[:4])}")
        requires.append((prefix, opcode))
    if requires and any(path.suffix == ".cu" for path in args.plans):
        parser.error("--require names steps' templates: it applies to plans, not to .cu files")
    cuobjdump = shutil.which("cuobjdump")
    if cuobjdump is None:
        parser.error("cuobjdump is not on PATH (it comes with the CUDA toolkit)")
    if args.sass_dir is not None:
        args.sass_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for path in args.plans:
        if path.suffix == ".cu":
            problems += check_source(path, cuobjdump, args.arch, args.no_local)
            continue
        problems += check_plan(path, cuobjdump, requires, args.no_local, args.all, args.sass_dir)
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
