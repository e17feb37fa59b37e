"""lit configuration for ember's IR tests: `// RUN: ember-opt %s -p PASS | filecheck %s`."""

import os

import lit.formats

config.name = "ember"  # noqa: F821
config.test_format = lit.formats.ShTest(False)  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.excludes = ["lit.cfg.py", "models.py"]  # noqa: F821
config.substitutions.append(("%models", os.path.join(os.path.dirname(__file__), "models.py")))  # noqa: F821
config.environment["PATH"] = os.environ.get("PATH", "")  # noqa: F821
if "PYTHONPATH" in os.environ:  # a worktree's ember, not the installed one
    config.environment["PYTHONPATH"] = os.environ["PYTHONPATH"]  # noqa: F821
