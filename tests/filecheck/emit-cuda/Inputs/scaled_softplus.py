"""Plugins for emit-cuda/plugin.mlir, loaded by `ember opt --plugins`: ScaledSoftplus with its
shape function and CUDA kernel (alpha baked into the source), and HostSoftplus with a shape
function only, which has no kernel to emit."""

import ember.plugin as trtp
from ember.plugin import TensorDesc

KERNEL = """\
extern "C" __global__ void scaled_softplus(const float* __restrict__ x, float* __restrict__ y) {{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < {n}) y[i] = {alpha}f * log1pf(expf(x[i]));
}}
"""


@trtp.register("my.domain::ScaledSoftplus")
def scaled_softplus(x: TensorDesc, alpha: float) -> TensorDesc:
    return x.like()


@trtp.aot_impl("my.domain::ScaledSoftplus")
def scaled_softplus_kernel(x: TensorDesc, alpha: float, outputs, tactic):
    n = x.numel()
    launch = trtp.KernelLaunchParams(grid_x=trtp.cdiv(n, 128), block_x=128)
    return "scaled_softplus", KERNEL.format(n=n, alpha=repr(float(alpha))), launch


@trtp.register("my.domain::HostSoftplus")
def host_softplus(x: TensorDesc) -> TensorDesc:
    return x.like()
