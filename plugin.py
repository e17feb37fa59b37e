"""`ember.plugin`: TensorRT's `tensorrt.plugin` for ember (`import ember.plugin as trtp`), with
TensorRT's classic plugin registry; defined in compiler/plugins.py and plugins_registry.py."""

from ember.compiler import plugins as _plugins
from ember.compiler import plugins_registry as _registry
from ember.compiler.plugins import *  # noqa: F403
from ember.compiler.plugins_registry import *  # noqa: F403

__all__ = [*_plugins.__all__, *_registry.__all__]
