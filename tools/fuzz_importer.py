"""Hunt for models that crash the process (not an exception: an abort or a segfault inside a
C++ library ember calls) with the importer fuzz test's malformed models, each batch in a child
process; the model a crashed child was building is kept.

    python tools/fuzz_importer.py --minutes 30 --out /tmp/crashes

The CI test (tests/compiler/test_importer_hardening.py) runs a fixed, derandomized set; this
explores new examples. A model kept here becomes a regression test once its cause is fixed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(count: int, last: Path) -> int:
    """Build `count` new examples, each written to `last` first; other exceptions are
    printed (the CI test's failures), ember's errors are the expected outcome."""
    sys.path.insert(0, str(ROOT))
    warnings.simplefilter("ignore")  # the builder's warnings on malformed models
    from ember.compiler.builder import BuilderConfig, build_model
    from ember.errors import EmberError
    from tests.compiler.test_importer_hardening import malformed_models

    strategy = malformed_models()
    for _ in range(count):
        data = strategy.example()
        last.write_bytes(data)
        try:
            build_model(data, BuilderConfig(autotune=False))
        except EmberError:
            pass
        except Exception as e:  # noqa: BLE001 (reported: the CI test would fail on it)
            print(f"exception {type(e).__name__}: {e}", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--batch", type=int, default=300, help="examples per child process")
    p.add_argument("--out", default="fuzz-crashes", help="where crashing models are kept")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.onnx"
    if args.child is not None:
        return child(args.child, last)
    deadline, batches, crashes = time.monotonic() + 60 * args.minutes, 0, 0
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, __file__, "--child", str(args.batch),
                               "--out", str(out)], cwd=ROOT)
        batches += 1
        if done.returncode < 0 or done.returncode > 1:
            crashes += 1
            kept = out / f"crash_{crashes}.onnx"
            shutil.copy(last, kept)
            print(f"batch {batches}: the child died (status {done.returncode}); kept {kept}",
                  flush=True)
    print(f"{batches} batches of {args.batch}: {crashes} crash(es)")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
