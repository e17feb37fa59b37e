"""fp8_gemm_models.py DIR: y = x @ W (M = N = K = 4096) as an E4M3 Q/DQ model (per-column
weight scales: fold-qdq puts the matmul on FP8 tensor cores) and as a plain FP32 model (built
with --fp16), written to DIR/fp8_gemm.onnx and DIR/fp16_gemm.onnx for `ember bench --onnx=...
--dumpProfile` (`tools/gpu_check.sh` PARTS=fp8): the matmul step's time and TFLOP/s in each."""
import sys

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

out = sys.argv[1]
n = 4096
rng = np.random.default_rng(0)
w = (rng.standard_normal((n, n)) * 0.05).astype(np.float32)
scale = (np.abs(w).max(0) / 448).astype(np.float32)
q = (w / scale).astype(ml_dtypes.float8_e4m3fn)
inits = [nh.from_array(np.array(0.02, np.float32), "s"),
         h.make_tensor("z", T.FLOAT8E4M3FN, [], [0.0]),
         h.make_tensor("wq", T.FLOAT8E4M3FN, [n, n], q.view(np.uint8).tobytes(), raw=True),
         nh.from_array(scale, "ws"), h.make_tensor("wz", T.FLOAT8E4M3FN, [n], [0.0] * n)]
nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
         h.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
         h.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1),
         h.make_node("MatMul", ["xd", "w"], ["y"])]
io = ([h.make_tensor_value_info("x", T.FLOAT, [n, n])],
      [h.make_tensor_value_info("y", T.FLOAT, [n, n])])
onnx.save(h.make_model(h.make_graph(nodes, "fp8", *io, inits),
                       opset_imports=[h.make_opsetid("", 19)]), f"{out}/fp8_gemm.onnx")
g = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "fp16", *io, [nh.from_array(w, "w")])
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), f"{out}/fp16_gemm.onnx")
