"""numpy kernel of nn.assert: the model's run-time assumption, an InputError when it fails."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.errors import InputError


def assertion(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    if not np.all(np.asarray(inputs[0])):
        raise InputError(f"the model's assumption failed: {params['message']}")
    return []


KERNELS = {"assert": assertion}
