"""tools/kernel_ab.py: text variants of an emitted INT8 residual conv (ResNet-50 layer1's
conv3 in small) each rewrite the part they name and compile with NVRTC; a variant that does not
apply, an unknown step and a machine without a GPU are one-line errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ember.codegen.nvrtc import compile_many
from ember.codegen.templates import conv
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.cuda import cuda_available
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator
from tests.codegen.test_int8_shortcut_sums import _qdq_block
from tests.codegen.test_int8_split_epilogue import _conv_case
from tests.codegen.test_int8_tensor_cores import needs_gxx

TOOL = Path(__file__).resolve().parents[2] / "tools" / "kernel_ab.py"
_spec = importlib.util.spec_from_file_location("kernel_ab", TOOL)
kernel_ab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_ab)


def _kernel():
    params, _, _ = _conv_case(seed=1)
    return conv.emit("k", {**params, "tactic": {"mma": [64, 64, 32, 2, 2, 4], "splits": 1}})


def test_each_variant_rewrites_its_part_and_compiles():
    spec = _kernel()
    sources = {name: kernel_ab.variant(name, spec)[0]
               for name in ("base", "pre", "cpre", "notail", "nohead", "bare", "magic", "lb6",
                            "persist8")}
    assert sources["base"] == spec.source
    assert "res = acc ^ r3[u].e[e];" in sources["notail"] and \
        "res = acc ^ r3[u].e[e];" not in sources["nohead"]
    assert "q0 = (signed char)acc;" in sources["nohead"]
    assert "__int_as_float(0x4B400000 + e0)" in sources["magic"] and \
        "(float)(e0)" in sources["base"] and "(float)(e0)" not in sources["magic"]
    assert "__launch_bounds__(128, 6)" in sources["lb6"]
    assert "for (int mt = blockIdx.y; mt <" in sources["persist8"]
    # pre: the residual's loads before the main loop
    assert sources["pre"].index("__ldg((const uint4*)&in5") < sources["pre"].index("frag[")
    assert kernel_ab.variant("persist8", spec)[1].grid[1] == 8
    # cpre: the residual copied to shared memory before the main loop, the drain reading it
    cpre = sources["cpre"]
    assert cpre.index("cp_async16(&Rs_r3[c * 16], &in5[oi], true);") < cpre.index("frag[")
    assert "r3[u].v = *(const uint4*)&Rs_r3[c * 16];" in cpre and "__ldg((const uint4*)&in5" \
        not in cpre and "cp_async_wait<0>();\n    __syncthreads();\n    for (int c0" in cpre
    assert len({*sources.values()}) == len(sources)
    compile_many([("k", s) for s in sources.values()], "sm_90", cache=False)


def test_the_tma_loop_variants_drop_the_part_they_name_and_compile():
    """An INT8 3x3 conv on the im2col TMA loop (128x128): tiledA reads A as B's rows through
    B's tiled map, nomma drops the wgmmas, noload the copies (the producer arrives instead),
    descs converts each wgmma's descriptors from its address; yN runs the first N M tiles;
    none of these applies to an mma.sync kernel."""
    from ember.codegen.templates import gemm_tma
    from tests.codegen.test_int8_im2col_tma import _params

    params = {**_params("3x3_pad1"), "in_shapes": [[2, 9, 9, 128], [128, 3, 3, 128]],
              "out_shapes": [[2, 9, 9, 128]]}
    tactic = gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 128, 6)).tactic()
    spec = conv.emit("k", {**params, "tactic": tactic})
    sources = {name: kernel_ab.variant(name, spec)[0]
               for name in ("tiledA", "nomma", "noload", "descs", "clocks", "noload+clocks",
                            "nowaitfull", "nosync", "relaxed", "depth2",
                            "warpwait", "prewait")}
    assert "tma_load_im2col(As" in spec.source and "tma_load_im2col(As" not in sources["tiledA"]
    assert "tma_load(As + s * 16384, &tmap_b, (tap_ * 1 + cb_) * 64, b_row, &full[s]);" \
        in sources["tiledA"]
    assert "wgmma_128(frag" in spec.source and "wgmma_128(frag" not in sources["nomma"]
    assert "wgmma_commit();" in sources["nomma"]
    assert "mbar_arrive(&full[s]);" in sources["noload"] and "tma_load" not in \
        sources["noload"].split("// the producer")[1].split("} else {")[0]
    # the emitted loop steps descriptors made once; descs converts addresses as before
    assert "wgmma_128(frag, da + ks * 2, db + ks * 2);" in spec.source
    assert "wgmma_128(frag, wgmma_desc(As + (s) * 16384 + group * 8192 + ks * 32), " \
        "wgmma_desc(Bs + (s) * 16384 + ks * 32));" in sources["descs"]
    # clocks: the phase clocks of thread 0, written to one more argument after the maps
    timed = sources["clocks"]
    assert "TmaDesc tmap_b, long long* __restrict__ ember_clocks_) {" in timed
    marks = ["ck_[0] = clock64();", "if (kt == 0 && tid == 0) ck_[1] = clock64();",
             "if (tid == 0) ck_[2] = clock64();", "if (tid == 0) ck_[3] = clock64();",
             "ck_[4] = clock64();", "o_[6] = sm_;"]
    at = [timed.index(mark) for mark in marks]
    assert at == sorted(at) and timed.index("wgmma_wait<0>();") < at[2]
    # no staged outputs: a barrier after the loops marks every consumer's end
    assert "const bool consumer = warp < 8;\n    __syncthreads();\n    if (tid == 0) ck_[3]" \
        in timed
    # staged outputs: their barrier does
    from tests.codegen.test_int8_im2col_tma import _requantize_residual

    out = params["out_shapes"][0]
    staged = {**params, "epilogue": _requantize_residual(out[-1], out)}
    staged["epilogue"]["in_shapes"][0] = [1, 1, 1, out[-1]]
    staged = kernel_ab.variant("clocks", conv.emit("k", {**staged, "tactic": tactic}))[0]
    assert "shared memory is free: stage the outputs\n    if (tid == 0) ck_[3] = clock64();" \
        in staged and staged.count("__syncthreads();") == 4
    sources["staged"] = staged
    # prefetch: the kernel's producer fetches both maps itself now (session 35), before its
    # wait for the kernel ahead; the variant says so
    assert spec.source.index("prefetch_tensormap(&tmap_b);") < spec.source.index(
        "    ember_pdl_sync();\n")
    with pytest.raises(kernel_ab.VariantError, match="prefetches its maps already"):
        kernel_ab.variant("prefetch", spec)
    # the consumers' handshake: without the wait for copies, without frees and producer loop,
    # with relaxed frees, two batches in flight
    assert "mbar_wait(&full[s]" not in sources["nowaitfull"] and \
        "mbar_arrive(&empty[(kt - 1) % 6]);" in sources["nowaitfull"]
    assert "mbar_arrive(&empty" not in sources["nosync"] and \
        "for (int kt = 0; kt < 0; ++kt) {" in sources["nosync"]
    assert "if (kt > 0 && lane == 0) mbar_arrive_relaxed(&empty[(kt - 1) % 6]);" in \
        sources["relaxed"] and "mbarrier.arrive.relaxed.cta" in sources["relaxed"]
    assert "if (lane == 0) mbar_wait(&full[s], (kt / 6) & 1);\n            __syncwarp();" in \
        sources["warpwait"]
    early = sources["prewait"]  # the next stage tested before waiting for the batch before
    assert early.index("bool ready_ = mbar_test(&full[0], 0);") < \
        early.index("if (!ready_) mbar_wait(&full[s], (kt / 6) & 1);") < \
        early.index("wgmma_commit();\n            if (kt + 1 < k_tiles) ready_ = mbar_test("
                    "&full[(kt + 1) % 6], ((kt + 1) / 6) & 1);\n            wgmma_wait<1>();")
    assert "wgmma_wait<2>();" in sources["depth2"] and \
        "if (kt > 1 && lane == 0) mbar_arrive(&empty[(kt - 2) % 6]);" in sources["depth2"]
    # a tile of two k-tiles a stage: its loop counts stages (j), clocks marks the first
    paired = conv.emit("k", {**params, "tactic": gemm_tma.TmaGemm(
        gemm_tma.TmaTile(64, 128, 4, 2)).tactic()})
    sources["paired"] = kernel_ab.variant("clocks", paired)[0]
    assert "if (j == 0 && tid == 0) ck_[1] = clock64();" in sources["paired"]
    both = sources["noload+clocks"]
    assert "mbar_arrive(&full[s]);" in both and "ember_clocks_" in both
    with pytest.raises(kernel_ab.VariantError, match="copy\\+clocks"):
        kernel_ab.variant("copy+clocks", spec)
    assert kernel_ab.known("noload+clocks") and not kernel_ab.known("noload+fast")
    assert kernel_ab.k_tiles(spec.source) == 9  # 128 int8 channels: a 128-byte k-tile a tap
    assert kernel_ab.variant("y1", spec)[1].grid == (spec.grid[0], 1, spec.grid[2])
    with pytest.raises(kernel_ab.VariantError, match="y99"):
        kernel_ab.variant("y99", spec)
    for name in ("tiledA", "nomma", "noload", "descs", "clocks", "prefetch", "nowaitfull",
                 "nosync", "relaxed", "depth2", "warpwait", "prewait"):
        with pytest.raises(kernel_ab.VariantError, match=name):
            kernel_ab.variant(name, _kernel())
    from ember.codegen.nvrtc import nvrtc_version

    if nvrtc_version() < (12, 8):  # mbarrier.arrive.relaxed: PTX ISA 8.6 (CUDA 12.8)
        del sources["relaxed"]
    compile_many([(f"k{i}", s.replace("void k(", f"void k{i}("))
                  for i, s in enumerate(sources.values())], "sm_90", cache=False)


@needs_gxx
def test_cpre_computes_what_the_kernel_does(tmp_path):
    """The residual read from shared memory, where cp.async put it: the same results."""
    params, inputs, want = _conv_case(seed=5)
    source, spec = kernel_ab.variant("cpre", _kernel())
    got = simt_emulator.run(dataclasses.replace(spec, source=source), "k", inputs, want.shape,
                            np.int8, tmp_path)
    np.testing.assert_array_equal(got, want)


def test_clock_report_reads_phases_rate_and_spread():
    # two blocks on two SMs, each 16000 cycles over 10 us (1.6 GHz), starting 1 us apart
    words = np.array([[5_000, 15_000, 1_000, 10_000, 10_500, 16_000, 3],
                      [6_000, 16_000, 3_000, 12_000, 12_100, 16_000, 7]], np.int64)
    lines = kernel_ab.clock_report(words, 9)
    assert "fill              median     2000 cycles, slowest     3000" in lines[0]
    assert "main loop         median     9000 cycles" in lines[1] and "1000 a k-tile" in lines[1]
    assert lines[2].split()[4] == "300" and lines[3].split()[3] == "4700"
    assert "at 1.600 GHz (10.00 us); 2 blocks on 2 SMs start within 1.00 us; first start to " \
        "last end 11.00 us" in lines[4]


def test_residual_convs_are_the_first_of_each_size():
    def conv_step(name, out, extras, **more):
        return {"name": name, "template": "conv",
                "params": {"out_shapes": [out], "epilogue": {"in_shapes": extras}, **more}}

    col = [1, 1, 1, 256]
    steps = [conv_step("c0", [1, 8, 8, 64], [[1, 1, 1, 64]]),              # no residual
             conv_step("c1", [1, 8, 8, 256], [col, [1, 8, 8, 256]], shortcut={"sums": 3}),
             conv_step("c2", [1, 8, 8, 256], [col, [1, 8, 8, 256]]),
             conv_step("c3", [1, 8, 8, 256], [col, [1, 8, 8, 256]]),
             {"name": "e4", "template": "elementwise", "params": {
                 "out_shapes": [[1, 4, 4, 512]], "epilogue": {"in_shapes": [[1, 4, 4, 512]]}}},
             conv_step("c5", [1, 4, 4, 512], [[1, 1, 1, 512], [1, 4, 4, 512]])]
    assert kernel_ab.residual_convs(steps) == ["c2", "c5"]


def test_copy_touches_each_buffer_once():
    spec = _kernel()
    source, copy = kernel_ab.variant("copy", spec, "k", [64, 4096, 8], 2048)
    assert copy.grid == kernel_ab.COPY_GRID and copy.block == (256, 1, 1)
    assert copy.shared_bytes == 0
    # one 16-byte read of each whole chunk of each input, up to the largest; the 8-byte input
    # has none; the output written where it has chunks
    assert "if (i < 4) {" in source and "if (i < 256) {" in source and \
        "if (i < 0) {" in source and "i < 256;" in source and "if (i < 128) out[i] = v;" in source
    compile_many([("k", source)], "sm_90", cache=False)


def test_a_variant_that_does_not_apply_is_named():
    params, _, _ = _conv_case(seed=1)
    plain = conv.emit("k", {**{k: v for k, v in params.items() if k != "epilogue"},
                            "tactic": {"mma": [64, 64, 32, 2, 2, 4], "splits": 1}})
    with pytest.raises(kernel_ab.VariantError, match="notail"):
        kernel_ab.variant("notail", plain)
    with pytest.raises(kernel_ab.VariantError, match="one of base"):
        kernel_ab.variant("fast", plain)


def test_at_batch_scales_the_tiles_not_the_columns():
    params, _, _ = _conv_case(seed=1)
    step = kernel_ab.at_batch({"name": "c", "template": "conv", "params": params}, 32)
    p = step["params"]
    assert p["in_shapes"][0][0] == 32 and p["out_shapes"][0][0] == 32
    assert [s[0] if s else None for s in p["epilogue"]["in_shapes"]] == [1, 1, None, 32, None]
    assert params["out_shapes"][0][0] == 2  # (a copy)
    # a 2-D matmul's rows are batch x sequence: scaled from the plan's batch
    rows = {"name": "m", "template": "matmul", "params": {
        "in_shapes": [[256, 768], [3072, 768]], "out_shapes": [[256, 3072]],
        "epilogue": {"in_shapes": [[1, 3072], [256, 3072], []]}}}
    p = kernel_ab.at_batch(rows, 8, plan_batch=2)["params"]
    assert p["in_shapes"] == [[1024, 768], [3072, 768]] and p["out_shapes"] == [[1024, 3072]]
    assert p["epilogue"]["in_shapes"] == [[1, 3072], [1024, 3072], []]
    with pytest.raises(ValueError, match="no whole rows"):
        kernel_ab.at_batch(rows, 2, plan_batch=3)


def test_errors_are_one_line(tmp_path):
    model, _ = _qdq_block(tmp_path, "stride1", seed=7)
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.set_flag(BuilderFlag.INT8)
    manifest, sections = build_model(model, config)
    plan = tmp_path / "block.plan"
    plan.write_bytes(plan_bytes(manifest, sections))
    done = subprocess.run([sys.executable, str(TOOL), str(plan), "nope"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "no step 'nope'" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, str(TOOL), str(plan), "conv_4", "--variants",
                           "bare,fast"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "unknown variant(s) fast" in done.stderr
    # a manifest alone (no weights) names the same steps; a file that is not one is an error
    (tmp_path / "block.json").write_text(json.dumps(manifest))
    (tmp_path / "bad.json").write_text("[1, 2]")
    for path, said in (("block.json", "no step 'nope'"), ("bad.json", "kernel_ab: ")):
        done = subprocess.run([sys.executable, str(TOOL), str(tmp_path / path), "nope"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and said in done.stderr and "Traceback" not in done.stderr
    if not cuda_available():
        done = subprocess.run([sys.executable, str(TOOL), str(plan), "conv_4"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "kernel_ab: needs a GPU" in done.stderr
