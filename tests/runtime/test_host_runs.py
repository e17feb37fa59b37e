"""Runs of consecutive host steps in a GPU plan copy only at their edges: what a run reads that
it did not make comes from the device (weights are read from the plan on the host), what it
makes goes back only where a later step or an output reads it; views count as their base."""

from __future__ import annotations

from ember.runtime.host_runs import HostRun, host_runs


def buf(kind: str, **kw) -> dict:
    return {"kind": kind, "dtype": "float32", "shape": [4], **kw}


BUFFERS = [buf("input"), buf("weight", offset=0), buf("arena", offset=0),
           buf("arena", offset=256), buf("view", base=3), buf("arena", offset=512),
           buf("arena", offset=768), buf("arena", offset=0)]


def step(inputs, outputs, host=False) -> dict:
    return {"inputs": inputs, "outputs": outputs, **({"device": "cpu"} if host else {})}


def test_a_run_passes_tensors_on_the_host_and_copies_at_its_edges():
    steps = [step([0], [2]),                  # gpu: x -> #2
             step([2, 1], [3], host=True),    # host: reads #2 and a weight, makes #3
             step([4], [5], host=True),       # host: reads #3 through its view #4
             step([5, 2], [6], host=True),    # host: reads #5 (made here) and #2 (copied)
             step([6], [7])]                  # gpu: reads #6
    assert host_runs(steps, BUFFERS, outputs=[7]) == [HostRun((1, 2, 3), (2,), (6,))]


def test_what_goes_back_is_what_later_steps_or_outputs_read():
    steps = [step([0], [2], host=True),       # run 1 makes #2 (read by run 2) and #3 (unread)
             step([2], [3], host=True),
             step([2], [5]),
             step([5, 4], [6], host=True),    # run 2 reads #5 and #3's view #4: both copied
             step([6], [7], host=True)]       # makes #7, an output
    runs = host_runs(steps, BUFFERS, outputs=[7])
    assert runs == [HostRun((0, 1), (0,), (2, 3)), HostRun((3, 4), (5, 3), (7,))]


def test_a_gpu_plan_without_host_steps_has_no_runs():
    assert host_runs([step([0], [2]), step([2], [7])], BUFFERS, outputs=[7]) == []
