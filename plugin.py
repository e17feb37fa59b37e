"""`ember.plugin`: TensorRT's `tensorrt.plugin` for ember (`import ember.plugin as trtp`); the
definitions are in compiler/plugins.py."""

from ember.compiler.plugins import *  # noqa: F403
from ember.compiler.plugins import __all__  # noqa: F401
