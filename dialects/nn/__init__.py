"""The `nn` dialect: the compute ops ember reasons about, each value typed with shape and format.

Ops live in modules by family (elementwise, linear, reduction, movement, quant); `NN` gathers them.
"""

from __future__ import annotations

from xdsl.ir import Dialect

from ember.dialects.nn import elementwise
from ember.dialects.tensor_types import LayoutAttr

_FAMILIES = [elementwise]
for _name in ("linear", "reduction", "movement", "sampling", "recurrent", "quant", "attention",
              "data_dependent", "unpool", "kv_cache", "bilinear", "col2im", "assertion", "plugin"):
    try:
        _FAMILIES.append(__import__(f"ember.dialects.nn.{_name}", fromlist=["OPS"]))
    except ModuleNotFoundError as _e:  # a family not written yet
        if _e.name != f"ember.dialects.nn.{_name}":
            raise

NN = Dialect("nn", [op for family in _FAMILIES for op in family.OPS], [LayoutAttr])
