"""Runs the IR tests (tests/filecheck/**/*.mlir) with lit, so `pytest` covers them too."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.skipif(shutil.which("ember-opt") is None or shutil.which("filecheck") is None,
                    reason="ember-opt and filecheck must be on PATH (pip install -e '.[test]')")
def test_filecheck_suite():
    done = subprocess.run([sys.executable, "-c", "import lit.main; lit.main.main()", "-q",
                           str(HERE / "filecheck")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
