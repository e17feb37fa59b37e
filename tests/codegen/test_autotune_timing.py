"""How the autotuner times one candidate kernel (`autotune._time`), on a stand-in CUDA module
whose kernels take a fixed time per launch: a short kernel is warmed up and timed over
REPEATS launches (or, shorter than a host launch, as a captured graph); a long one over about
BUDGET_MS of launches; one already SLOWER times slower than the best so far after its first
timed launch is not timed further."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ember.codegen import autotune


class _Cuda:
    """Launches advance a clock by `ms` each; events read the clock."""

    def __init__(self, ms: float) -> None:
        self.ms, self.clock, self.launches = ms, 0.0, 0

    def launch(self, function, grid, block, shared, stream, args) -> None:
        self.launches += 1
        self.clock += self.ms

    def pack_args(self, args):
        return args

    def capture(self, stream):
        """A runtime that cannot capture graphs: the launches are timed one by one."""
        from ember.errors import CudaError

        raise CudaError("cuStreamBeginCapture: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED")

    def Event(self):  # noqa: N802 (the runtime's name)
        cuda = self

        class Event:
            def record(self, stream) -> None:
                self.at = cuda.clock

            def elapsed_ms(self, end) -> float:
                return end.at - self.at

        return Event()


SPEC = SimpleNamespace(shared_bytes=0, grid=(1, 1, 1), block=(32, 1, 1), tensor_maps=())


@pytest.mark.parametrize("ms, bound, launches", [
    (0.01, None, 1 + 1 + (autotune.WARMUP - 1) + autotune.REPEATS),  # short: full repeats
    (0.01, 1.0, 1 + 1 + (autotune.WARMUP - 1) + autotune.REPEATS),
    (2.0, None, 1 + 1 + int(autotune.BUDGET_MS / 2.0)),  # long: BUDGET_MS of launches
    (40.0, None, 1 + 1 + 1),  # longer than the budget: one
    (3.0, 1.0, 1 + 1),  # 3x the best so far: its first timed launch is its time
    # 3x the best, but a single launch this short may read long: timed in full
    (0.03, 0.01, 1 + 1 + (autotune.WARMUP - 1) + autotune.REPEATS),
])
def test_a_candidate_is_timed_over_its_budget(ms, bound, launches):
    cuda = _Cuda(ms)
    got = autotune._time(SPEC, object(), [], cuda, stream=None, bound=bound)
    assert got == pytest.approx(ms)
    assert cuda.launches == launches


def test_random_operands_repeat_a_seeded_pool():
    """Operands are the seeded pool repeated (drawing each tensor's values was most of a large
    model's tuning time), each from its own offset, in each operand's dtype (int8 spread over
    its range); two operands of one shape differ."""
    uploaded = []

    class Buffer:
        def __init__(self, size):
            self.size = size

        def upload(self, data, stream):
            uploaded.append(data)

    step = {"params": {"in_shapes": [[3, autotune.POOL], [64, 64], [64, 64]],
                       "in_dtypes": ["float16", "int8", "int8"],
                       "out_shapes": [[4]], "out_dtypes": ["float32"]}}
    fake = SimpleNamespace(DeviceBuffer=Buffer)
    bufs = autotune._buffers(step, fake, np.random.default_rng(0), None)
    assert [b.size for b in bufs] == [3 * autotune.POOL * 2, 4096, 4096, 16]
    big, a, b = uploaded
    assert big.dtype == np.float16 and a.dtype == b.dtype == np.int8
    period = big[:autotune.POOL]
    np.testing.assert_array_equal(big, np.tile(period, 3))  # the pool, repeated
    assert (a != b).mean() > 0.9 and (a == 0).mean() < 0.05 and np.abs(a).max() > 100


def test_steps_of_one_kernel_are_timed_once(tmp_path, monkeypatch):
    """choose-formats asks for the same reformat between many pairs of ops (an INT8 model's
    Q/DQ chains: 600 requests of a few dozen kernels): each kernel is timed once, and every
    step of it gets its time."""
    from tests.api.test_timing_cache import _stand_in

    gpu = _stand_in(tmp_path, monkeypatch)
    io = {"in_shapes": [[2, 8, 4, 4]], "in_dtypes": ["int8"], "out_shapes": [[2, 4, 4, 8]],
          "out_dtypes": ["int8"]}
    step = {"template": "transpose", "params": {"perm": [0, 2, 3, 1], **io}}
    other = {"template": "transpose", "params": {"perm": [0, 2, 3, 1], **io,
                                                 "in_dtypes": ["float16"],
                                                 "out_dtypes": ["float16"]}}
    steps = [dict(step, name=f"r{i}") for i in range(5)] + [dict(other, name="h")]
    times = autotune.time_kernels(steps, "sm_90")
    assert len(gpu.timed) == 2
    assert times[:5] == [times[0]] * 5 and times[0] is not None and times[5] is not None


def test_int8_candidates_must_agree_exactly_and_unwritten_integers_show():
    """INT8 GEMMs sum exactly: their candidates must give the reference's int32 sums bit for
    bit (a kernel that drops a K tile is off by far less than the float tolerance), and with a
    dequantizing epilogue within INT8_EPILOGUE; integer outputs are poisoned with random values
    so that a candidate writing nothing cannot pass as the reference (its buffer held the
    reference's sums)."""
    int8 = {"in_dtypes": ["int8", "int8"], "out_dtypes": ["int32"]}
    assert autotune._tolerance(int8) == 0.0
    assert autotune._tolerance({**int8, "epilogue": {"ops": []}}) == autotune.INT8_EPILOGUE
    assert autotune._tolerance({"in_dtypes": ["float16"] * 2}) == autotune.AGREEMENT
    sums = np.arange(4096, dtype=np.float64) * 1000
    one_tile_short = sums.copy()
    one_tile_short[7] -= 1  # what a missing K tile does to one sum: far inside 1e-2
    assert autotune.disagreement(one_tile_short, sums) is None
    assert autotune.disagreement(one_tile_short, sums, 0.0) == \
        "1 element(s) differ from the reference tactic's"
    assert autotune.disagreement(sums, sums, 0.0) is None

    uploaded = []
    buf = SimpleNamespace(upload=lambda data, stream: uploaded.append(data))
    autotune._poison([(1000, np.dtype(np.int32)), (8, np.dtype(np.float16))], [buf, buf], None,
                     np.random.default_rng(0))
    ints, halves = uploaded
    assert ints.dtype == np.int32 and len(np.unique(ints)) > 900 and np.isnan(halves).all()


class _HostBound(_Cuda):
    """Launches from the host take at least `host` ms each (the GPU waits for the next one);
    a captured graph replays its launches back to back, `ms` each."""

    def __init__(self, ms: float, host: float, fails: bool = False) -> None:
        super().__init__(ms)
        self.host, self.fails, self.capturing, self.captured = host, fails, False, 0

    def launch(self, function, grid, block, shared, stream, args) -> None:
        if self.capturing:
            self.captured += 1
            return
        self.launches += 1
        self.clock += max(self.ms, self.host)

    def capture(self, stream):
        from contextlib import contextmanager

        if self.fails:
            return super().capture(stream)
        cuda = self

        class Exec:
            closed = False

            def launch(self, stream) -> None:
                cuda.clock += cuda.captured * cuda.ms

            def close(self) -> None:
                self.closed = True

        @contextmanager
        def capturing():
            holder = SimpleNamespace(exec=None)
            cuda.capturing = True
            try:
                yield holder
            finally:
                cuda.capturing = False
            holder.exec = cuda.graph = Exec()

        return capturing()


def test_a_kernel_shorter_than_a_host_launch_is_timed_as_a_graph():
    """A 4 us kernel launched from a host that needs 9 us a launch: one launch at a time the
    loop would read the host's 9 us; GRAPHED launches captured as one graph read the kernel's
    4 us. A longer kernel keeps the loop; where capture fails, so does a short one."""
    cuda = _HostBound(0.004, 0.009)
    assert autotune._time(SPEC, object(), [], cuda, stream=None) == pytest.approx(0.004)
    assert cuda.captured == autotune.GRAPHED and cuda.graph.closed
    long_kernel = _HostBound(0.2, 0.009)
    assert autotune._time(SPEC, object(), [], long_kernel, stream=None) == pytest.approx(0.2)
    assert long_kernel.captured == 0
    failing = _HostBound(0.004, 0.009, fails=True)
    assert autotune._time(SPEC, object(), [], failing, stream=None) == pytest.approx(0.009)
