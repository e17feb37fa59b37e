"""`nn.plugin`: a call of a registered plugin (a custom op; `ember.plugin`), its own op through
every level: convert-nn-to-kernel makes it `kernel.launch "plugin"` with the same properties,
emit-cuda asks the plugin for its kernel, the plan's step names the plugin and its attributes.

Result types come from the plugin's shape/type function where the plugin is registered in this
process; elsewhere (an IR dump replayed by `ember-opt` without it) the declared types stand.
A plugin is never evaluated at build time (constant folding leaves it alone): its numpy
reference belongs to the process that runs the plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import DictionaryAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from ember.dialects.attributes import attribute_value
from ember.dialects.dtypes import element_type_from_numpy
from ember.dialects.nn.base import NNOp, dtype_name
from ember.dialects.tensor_types import shape_of, tensor_type
from ember.errors import EmberError, ShapeError
from ember.runtime import plugins


@irdl_op_definition
class PluginOp(NNOp):
    """`plugin` ("namespace::name") at `version`, with its attribute values `attrs` (`arrays`:
    the attributes that are numpy arrays, name -> dtype); any number of inputs and results."""

    name = "nn.plugin"
    plugin = prop_def(StringAttr)
    version = prop_def(StringAttr)
    attrs = prop_def(DictionaryAttr)
    arrays = opt_prop_def(DictionaryAttr)
    inputs = var_operand_def()
    outputs = var_result_def()
    traits = traits_def(Pure())  # a function of its inputs: CSE and DCE apply
    assembly_format = "$plugin `(` $inputs `)` attr-dict `:` functional-type($inputs, results)"

    @property
    def definition(self) -> plugins.PluginDefinition | None:
        return plugins.definition(self.plugin.data, self.version.data)

    def attribute_values(self) -> dict[str, Any]:
        """The attributes as the plugin's functions take them."""
        params = {"attrs": attribute_value(self.attrs)}
        if self.arrays is not None:
            params["arrays"] = attribute_value(self.arrays)
        return plugins.attribute_values(params)

    def infer(self) -> list[Attribute]:
        found = self.definition
        if found is None or found.describe is None:
            return [r.type for r in self.results]
        shapes = []
        for i, v in enumerate(self.inputs):
            shape = shape_of(v)
            if shape is None:
                raise ShapeError(f"{self.name} '{self.plugin.data}': input #{i} has unknown "
                                 "rank")
            shapes.append(tuple(shape))
        try:
            outs = found.describe(shapes, [dtype_name(v.type) for v in self.inputs],
                                  self.attribute_values())
        except EmberError:
            raise
        except Exception as e:
            raise ShapeError(f"{found.label}: its shape function failed: "
                             f"{type(e).__name__}: {e}") from e
        if len(outs) != len(self.results):
            raise ShapeError(f"{found.label}: its shape function gives {len(outs)} output(s), "
                             f"the op has {len(self.results)}")
        # a plugin reads and writes row-major tensors (its template is NCHW-only)
        return [tensor_type(shape, element_type_from_numpy(np.dtype(dtype)))
                for shape, dtype in outs]

    def runs_in(self, element_type: Attribute) -> bool:
        """Whether the plugin declares (ember.plugin.autotune) that it computes in
        `element_type` where it is given float32: its float32 inputs and outputs in that type."""
        found = self.definition
        if found is None or found.describe is None or found.supports is None:
            return False
        low = dtype_name(element_type)
        shapes = [tuple(shape_of(v) or ()) for v in self.inputs]
        dtypes = [low if d == "float32" else d for d in (dtype_name(v.type) for v in self.inputs)]
        try:
            outs = found.describe(shapes, dtypes, self.attribute_values())
            if [d for _, d in outs] != [low if dtype_name(r.type) == "float32" else
                                        dtype_name(r.type) for r in self.results]:
                return False
            return bool(found.supports(shapes, dtypes, outs))
        except EmberError:
            return False

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise ShapeError(f"nn.plugin '{self.plugin.data}' is not evaluated at build time")

    def verify_(self) -> None:
        if not self.version.data:
            raise VerifyException("nn.plugin: the version is a non-empty string")
        try:
            plugins.split_name(self.plugin.data)
        except EmberError as e:
            raise VerifyException(str(e)) from None
        super().verify_()


OPS = [PluginOp]
