"""Property tests: damaged or hostile plans raise PlanError and nothing else."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember.errors import PlanError
from ember.runtime.plan import CHECKSUM_SIZE, HEADER_SIZE, plan_bytes, read_plan

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
manifests = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k != "sections"), json_values, max_size=5
)
section_values = st.binary(max_size=300) | st.binary(max_size=160).map(
    lambda raw: np.frombuffer(raw[: len(raw) // 4 * 4], dtype=np.float32)
)
section_maps = st.dictionaries(st.text(min_size=1, max_size=10), section_values, max_size=4)


@st.composite
def plans(draw) -> bytes:
    return plan_bytes(draw(manifests), draw(section_maps))


def check_valid(plan) -> None:
    """Touch everything a loader would, so latent errors surface as exceptions."""
    for name in plan.section_names:
        plan.section(name).tobytes()
    plan.close()


@FAST
@given(plans(), st.data())
def test_round_trip(data, draw):
    with read_plan(data) as plan:
        assert (
            plan_bytes(
                {k: v for k, v in plan.manifest.items() if k != "sections"},
                {n: plan.section(n) for n in plan.section_names},
            )
            == data
        )


@FAST
@given(plans(), st.data())
def test_truncation_always_raises_plan_error(data, draw):
    n = draw.draw(st.integers(0, len(data) - 1))
    try:
        read_plan(data[:n])
    except PlanError as e:
        assert "truncated" in str(e) or "bad magic" in str(e) or n < 8
    else:
        raise AssertionError(f"truncation to {n} of {len(data)} bytes was accepted")


@FAST
@given(plans(), st.data())
def test_bit_flips_always_raise_plan_error(data, draw):
    flips = draw.draw(
        st.lists(
            st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=4
        )
    )
    damaged = bytearray(data)
    for position, bit in flips:
        damaged[position] ^= 1 << bit
    if bytes(damaged) == data:
        read_plan(bytes(damaged)).close()
        return
    try:
        read_plan(bytes(damaged))
    except PlanError:
        pass
    else:
        raise AssertionError(f"flips {flips} went unnoticed")


def reseal(damaged: bytearray) -> bytes:
    body = damaged[:-CHECKSUM_SIZE]
    if len(body) >= HEADER_SIZE:
        struct.pack_into("<Q", body, 52, len(body) + CHECKSUM_SIZE)
    return bytes(body) + hashlib.sha256(body).digest()


@FAST
@given(plans(), st.data())
def test_hostile_resealed_plans_never_crash(data, draw):
    """Damage the header or manifest and fix the checksum, as an attacker would."""
    (mlen,) = struct.unpack_from("<Q", data, 44)
    end = min(len(data) - CHECKSUM_SIZE, HEADER_SIZE + mlen)
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(8, end - 1))
        damaged[position] = draw.draw(st.integers(0, 255))
    try:
        plan = read_plan(reseal(damaged))
    except PlanError:
        return
    check_valid(plan)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data):
    for candidate in (data, b"EMBERPLN" + data):
        try:
            read_plan(candidate)
        except PlanError:
            continue
        raise AssertionError("random bytes were accepted as a plan")
