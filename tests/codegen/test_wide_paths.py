"""Kernels moving several neighbouring elements a thread in one vector load / store:
- the elementwise template's strided path: a kernel reading an input through strides
  (`in_views`, fuse-strided-reads) where each input is contiguous along the last output dim
  (BERT's INT8 Q/K/V dequantizes: int8 [B, S, 3·H·D] read as [B, H, S, D], 8 elements a
  thread: one 8-byte load, one 16-byte store);
- the transpose template where the perm keeps the last dim last (BERT's INT8 attention output
  [B, H, S, D] -> [B, S, H, D]: 16 bytes a thread).
Each case's CUDA C runs on emulated threads against the CPU kernel of the same step."""

from __future__ import annotations

import numpy as np
import pytest

from ember.codegen.emit_cuda import emit_step
from ember.codegen.templates import elementwise
from ember.runtime.cpu_kernels import KERNELS
from tests.codegen import simt_emulator

B, S, H, D = 2, 4, 2, 16
WIDTH3 = 3 * H * D  # a packed Q/K/V row


def _dequant(offset: int, strides: list[int], out_shape: list[int], out_dtype="float16",
             extra: list | None = None) -> dict:
    """cast(int8 view) * scale [+ extra input] -> out_dtype."""
    ops = [{"fn": "cast", "args": [0], "dtype": "float32"},
           {"fn": "mul", "args": [2, 1], "dtype": "float32"}]
    in_shapes, in_dtypes = [[B, S, WIDTH3], []], ["int8", "float32"]
    if extra is not None:
        ops.append({"fn": "add", "args": [3, 2 + len(ops) - 1], "dtype": "float32"})
        in_shapes.append(extra)
        in_dtypes.append("float32")
    n = len(in_shapes)
    ops.append({"fn": "cast", "args": [n + len(ops) - 1], "dtype": out_dtype})
    return {"region": {"ops": ops, "result": n + len(ops) - 1}, "in_shapes": in_shapes,
            "in_dtypes": in_dtypes, "out_shapes": [out_shape], "out_dtypes": [out_dtype],
            "in_views": [{"input": 0, "offset": offset, "strides": strides}]}


def _heads(offset: int) -> dict:  # [B, S, 3·H·D] columns offset.. as [B, H, S, D]
    return _dequant(offset, [S * WIDTH3, D, WIDTH3, 1], [B, H, S, D])


def _inputs(params: dict, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [rng.integers(-128, 128, (B, S, WIDTH3)).astype(np.int8), np.array(0.037, np.float32)]
    for shape in params["in_shapes"][2:]:
        out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def _emulated(params: dict, tmp_path) -> tuple[str, np.ndarray, np.ndarray]:
    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    name, spec = emit_step({"name": "elementwise", "template": "elementwise", "params": params})
    inputs = _inputs(params)
    (want,) = KERNELS["elementwise"](inputs, params)
    got = simt_emulator.run(spec, name, inputs, params["out_shapes"][0],
                            np.dtype(params["out_dtypes"][0]), tmp_path)
    return spec.source, got, want


@pytest.mark.parametrize("offset", [0, D * H, 2 * D * H])
def test_a_heads_dequantize_takes_eight_elements_a_thread(offset, tmp_path):
    text, got, want = _emulated(_heads(offset), tmp_path)
    assert "tactic: 8 neighbouring elements per thread" in text
    assert "ember_vec<signed char, 8>" in text and "ember_vec<ember_half, 8>" in text
    np.testing.assert_array_equal(got, want)
    x = _inputs(_heads(offset))[0].astype(np.float64)
    heads = x[:, :, offset:offset + H * D].reshape(B, S, H, D).transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(want, (heads * np.float32(0.037)).astype(np.float16))


def test_the_width_is_what_the_widest_vector_and_alignment_allow():
    assert elementwise._wide_width(_heads(0)) == 8  # 8 halves: 16 bytes
    assert elementwise._wide_width(_dequant(0, [S * WIDTH3, D, WIDTH3, 1], [B, H, S, D],
                                            out_dtype="float32")) == 4
    assert elementwise._wide_width(_heads(4)) == 4  # an offset of 4 elements: 4-aligned
    assert elementwise._wide_width(_heads(2)) == 2
    assert elementwise._wide_width(_heads(1)) == 0  # odd: one element a thread
    # read across the last dim (K as [B, H, D, S]): no contiguous group
    assert elementwise._wide_width(_dequant(0, [S * WIDTH3, D, 1, WIDTH3], [B, H, D, S])) == 0
    # no view: the paired / quad paths' business
    plain = dict(_heads(0), in_views=[])
    assert elementwise._wide_width(plain) == 0


@pytest.mark.parametrize("offset", [4, 1])
def test_narrower_groups_and_one_element_agree(offset, tmp_path):
    params = _heads(offset)
    text, got, want = _emulated(params, tmp_path)
    width = elementwise._wide_width(params)
    assert (f"tactic: {width} neighbouring" if width else "one thread per output element") \
        in text
    np.testing.assert_array_equal(got, want)


def test_a_transposing_view_keeps_one_element_a_thread(tmp_path):
    params = _dequant(0, [S * WIDTH3, D, 1, WIDTH3], [B, H, D, S])
    text, got, want = _emulated(params, tmp_path)
    assert "one thread per output element" in text
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("extra", [[D], [B, H, S, 1], [B, H, S, D]])
def test_other_inputs_read_whole_or_once_a_group(extra, tmp_path):
    """A second input broadcast along the rows ([D]: one load of its 8), along the last dim
    ([.., 1]: one value for the 8) or of the output's shape."""
    params = _dequant(0, [S * WIDTH3, D, WIDTH3, 1], [B, H, S, D], out_dtype="float32",
                      extra=extra)
    text, got, want = _emulated(params, tmp_path)
    assert "tactic: 4 neighbouring elements per thread" in text
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype, shape, width", [
    ("int8", [2, 3, 4, 32], 16), ("float16", [2, 3, 4, 8], 8), ("float32", [2, 3, 4, 6], 2),
    ("float32", [2, 3, 4, 5], 0)])
def test_a_transpose_keeping_rows_moves_vectors(dtype, shape, width, tmp_path):
    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    perm = [0, 2, 1, 3]
    params = {"perm": perm, "in_shapes": [shape], "in_dtypes": [dtype],
              "out_shapes": [[shape[p] for p in perm]], "out_dtypes": [dtype]}
    name, spec = emit_step({"name": "transpose", "template": "transpose", "params": params})
    assert (f"{width} neighbouring elements per thread" if width
            else "one thread per output element") in spec.source
    x = np.random.default_rng(3).standard_normal(shape) * 50
    x = x.astype(np.int8) if dtype == "int8" else x.astype(dtype)
    got = simt_emulator.run(spec, name, [x], params["out_shapes"][0], np.dtype(dtype), tmp_path)
    np.testing.assert_array_equal(got, x.transpose(perm))
    (want,) = KERNELS["transpose"]([x], params)
    np.testing.assert_array_equal(want, x.transpose(perm))
