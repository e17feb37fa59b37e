"""runtime/step_costs.py: the FLOPs and bytes of plan steps that `ember bench --dumpProfile`
divides by, counted by hand for each template."""

from ember.runtime.step_costs import step_cost


def test_step_costs_of_a_matmul_and_attention():
    matmul = {"template": "matmul", "params": {
        "transpose_b": True, "in_shapes": [["N", 64], [32, 64]],
        "in_dtypes": ["float16", "float16"], "out_shapes": [["N", 32]],
        "out_dtypes": ["float16"], "tf32": False}}
    cost = step_cost(matmul, {"N": 8})
    assert cost.flops == 2 * 8 * 32 * 64 and cost.math == "fp16"
    assert cost.bytes == 2 * (8 * 64 + 32 * 64 + 8 * 32)
    attention = {"template": "attention", "params": {
        "num_heads": 4, "head_dim": 16, "scale": 0.25,
        "in_shapes": [[2, 10, 64], [2, 12, 64], [2, 12, 64]],
        "in_dtypes": ["float32"] * 3, "out_shapes": [[2, 10, 64]], "out_dtypes": ["float32"]}}
    assert step_cost(attention).flops == 4 * 2 * 4 * 10 * 12 * 16




def test_step_costs_of_a_strided_grouped_conv_with_epilogue():
    conv = {"template": "conv", "params": {
        "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 2,
        "in_shapes": [[1, 8, 16, 16], [12, 4, 3, 3], [12]],
        "in_dtypes": ["float32"] * 3, "out_shapes": [[1, 12, 8, 8]], "out_dtypes": ["float32"],
        "epilogue": {"ops": [{"fn": "add", "args": [0, 1]}, {"fn": "relu", "args": [2]}],
                     "result": 3, "in_shapes": [[1, 12, 8, 8]], "in_dtypes": ["float32"]}}}
    cost = step_cost(conv)
    outputs = 12 * 8 * 8
    assert cost.flops == 2 * outputs * 4 * 9 + 2 * outputs  # 36 MACs each, then add and relu
    assert cost.bytes == 4 * (8 * 256 + 12 * 36 + 12 + outputs + outputs)
    assert cost.math == "fp32"


def test_tf32_only_on_tensor_core_tactics_and_unknown_dims():
    params = {"in_shapes": [[64, 64], [64, 64]], "in_dtypes": ["float32"] * 2,
              "out_shapes": [[64, 64]], "out_dtypes": ["float32"], "tf32": True}
    assert step_cost({"template": "matmul", "params": params}).math == "fp32"
    tuned = {**params, "tactic": {"wgmma": [128, 64, 4]}}
    assert step_cost({"template": "matmul", "params": tuned}).math == "tf32"
    unknown = {**params, "out_shapes": [[None, 64]]}
    cost = step_cost({"template": "matmul", "params": unknown})
    assert cost.flops is None and cost.bytes is None
    copy = {"template": "transpose", "params": {**params, "perm": [1, 0]}}
    assert step_cost(copy).flops == 0 and step_cost(copy).bytes == 3 * 64 * 64 * 4


def test_int8_operands_count_on_the_integer_unit():
    params = {"in_shapes": [[4, 32], [32, 8]], "in_dtypes": ["int8", "int8"],
              "out_shapes": [[4, 8]], "out_dtypes": ["int32"]}
    cost = step_cost({"template": "matmul", "params": params})
    assert cost.math == "int8" and cost.flops == 2 * 4 * 8 * 32
    assert cost.bytes == 4 * 32 + 32 * 8 + 4 * 8 * 4


def test_e4m3_operands_count_on_the_fp8_unit():
    params = {"in_shapes": [[4, 32], [32, 8]], "in_dtypes": ["float8_e4m3fn"] * 2,
              "out_shapes": [[4, 8]], "out_dtypes": ["float32"], "tf32": True}
    cost = step_cost({"template": "matmul", "params": params})
    assert cost.math == "fp8" and cost.flops == 2 * 4 * 8 * 32
