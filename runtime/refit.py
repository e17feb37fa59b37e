"""Refitting a plan's weights (TensorRT's Refitter): new values for the ONNX initializers a REFIT
build kept addressable, replayed through each plan weight's recipe (runtime/refit_recipes.py)
into the engine's weights, on the CPU executor's memory and on the GPU's. Nothing else of the
plan changes: steps, tactics, formats and the memory plan are the build's.

A REFIT plan carries a `refit` section (JSON, `RefitTable`): the refittable initializers (name,
dtype, shape), each refittable weight buffer with its recipe, and a digest of every initializer
the build folded in a way a refit cannot redo (`constants`). A STRIP_PLAN plan leaves out the
refittable weights' bytes (its `weights_kept` section holds the rest) and refuses to run until
refit. Imports numpy, the standard library and `ember.runtime` only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ember.errors import EmberError, PlanError, UnsupportedError
from ember.runtime import refit_recipes
from ember.runtime.logger import ILogger, Severity, check_logger, emit
from ember.runtime.plan import Plan, plan_bytes
from ember.runtime.trt_types import ContextManaged

if TYPE_CHECKING:
    from ember.runtime.engine import Engine

SECTION = "refit"
KEPT_SECTION = "weights_kept"
TABLE_VERSION = 1


def digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (how a plan remembers a folded constant)."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.name}{list(array.shape)}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Source:
    """A refittable initializer: what `set_named_weights` must be given."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class RefitWeight:
    """A plan weight buffer and the recipe that makes it from initializers."""

    buffer: int
    recipe: dict[str, Any]
    leaves: frozenset[str]


@dataclass(frozen=True)
class Constant:
    """An initializer the build folded where no recipe follows it: it cannot change by refit."""

    name: str
    digest: str
    why: str


@dataclass(frozen=True)
class RefitTable:
    stripped: bool
    sources: Mapping[str, Source]
    weights: tuple[RefitWeight, ...]
    constants: Mapping[str, Constant]
    # a stripped plan: the (offset, size) ranges of the weights area its `weights_kept` holds
    kept: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": TABLE_VERSION, "stripped": self.stripped,
                "sources": {s.name: {"dtype": s.dtype, "shape": list(s.shape)}
                            for s in self.sources.values()},
                "weights": [{"buffer": w.buffer, "recipe": w.recipe} for w in self.weights],
                "constants": {c.name: {"digest": c.digest, "why": c.why}
                              for c in self.constants.values()},
                "kept": [list(k) for k in self.kept]}

    def section(self) -> bytes:
        return json.dumps(self.to_json(), allow_nan=False, separators=(",", ":")).encode()

    @staticmethod
    def from_json(data: Any, where: str = "the plan's refit section") -> RefitTable:
        """Validate untrusted table data (a PlanError names what is wrong)."""
        def obj(value: Any, what: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
            if not isinstance(value, dict) or set(value) != set(keys):
                raise PlanError(f"{where}: {what} must be an object with keys {list(keys)}")
            return value

        d = obj(data, "the table", ("version", "stripped", "sources", "weights", "constants",
                                    "kept"))
        if d["version"] != TABLE_VERSION or not isinstance(d["stripped"], bool):
            raise PlanError(f"{where}: unknown version {d['version']!r} (this ember reads "
                            f"{TABLE_VERSION})")
        if not isinstance(d["sources"], dict) or not isinstance(d["constants"], dict) \
                or not isinstance(d["weights"], list) or not isinstance(d["kept"], list):
            raise PlanError(f"{where}: malformed table")
        sources = {}
        for name, s in d["sources"].items():
            s = obj(s, f"source '{name}'", ("dtype", "shape"))
            if not isinstance(s["dtype"], str) or not isinstance(s["shape"], list) \
                    or not all(isinstance(x, int) and x >= 0 for x in s["shape"]):
                raise PlanError(f"{where}: source '{name}' is malformed")
            sources[name] = Source(name, s["dtype"], tuple(s["shape"]))
        weights = []
        for i, w in enumerate(d["weights"]):
            w = obj(w, f"weight #{i}", ("buffer", "recipe"))
            if not isinstance(w["buffer"], int) or isinstance(w["buffer"], bool):
                raise PlanError(f"{where}: weight #{i}'s buffer is not an integer")
            refit_recipes.check_recipe(w["recipe"], f"{where}: weight #{i}")
            leaves = refit_recipes.leaves(w["recipe"])
            unknown = sorted(leaves - set(sources))
            if unknown or not leaves:
                raise PlanError(f"{where}: weight #{i} reads initializers {unknown} that the "
                                "table does not list" if unknown else
                                f"{where}: weight #{i} reads no initializer")
            weights.append(RefitWeight(w["buffer"], w["recipe"], frozenset(leaves)))
        constants = {}
        for name, c in d["constants"].items():
            c = obj(c, f"constant '{name}'", ("digest", "why"))
            if not isinstance(c["digest"], str) or not isinstance(c["why"], str):
                raise PlanError(f"{where}: constant '{name}' is malformed")
            constants[name] = Constant(name, c["digest"], c["why"])
        kept = []
        for k in d["kept"]:
            if not isinstance(k, list) or len(k) != 2 or not all(
                    isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in k):
                raise PlanError(f"{where}: malformed kept range {k!r}")
            kept.append((k[0], k[1]))
        return RefitTable(d["stripped"], sources, tuple(weights), constants, tuple(kept))

    def check_buffers(self, buffers: Sequence[Mapping[str, Any]], weights_bytes: int) -> None:
        """Each refit weight names a weight buffer; kept ranges lie in the weights area."""
        for w in self.weights:
            if not 0 <= w.buffer < len(buffers) or buffers[w.buffer]["kind"] != "weight":
                raise PlanError(f"the plan's refit section names buffer #{w.buffer}, which is "
                                "not a weight buffer")
        end = 0
        for off, size in self.kept:
            if off < end or off + size > weights_bytes:
                raise PlanError("the plan's refit section has kept ranges out of order or "
                                "outside the weights")
            end = off + size


def load_refit(plan: Plan) -> tuple[RefitTable, memoryview | bytearray]:
    """A REFIT plan's table and its weights: the plan's own section, or for a stripped plan
    the weights area rebuilt from what it kept (the refittable bytes zero until refit)."""
    try:
        data = json.loads(bytes(plan.section(SECTION)).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PlanError(f"the plan's refit section is not valid JSON ({e})") from None
    table = RefitTable.from_json(data)
    if not table.stripped:
        if "weights" not in plan.section_names:
            raise PlanError("a REFIT plan without its weights section (and not stripped)")
        return table, plan.section("weights")
    size = plan.manifest.get("weights_bytes")
    kept = plan.section(KEPT_SECTION) if KEPT_SECTION in plan.section_names else None
    if not isinstance(size, int) or kept is None \
            or sum(s for _, s in table.kept) != len(kept):
        raise PlanError("a weight-stripped plan whose kept weights do not match its refit table")
    weights = bytearray(size)
    at = 0
    for off, n in table.kept:
        if off + n > size:
            raise PlanError("a weight-stripped plan's kept range lies outside its weights")
        weights[off:off + n] = kept[at:at + n]
        at += n
    return table, weights


def refit_plan_parts(engine: Engine) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and sections of the engine's plan with its current weights (a refit
    stripped plan comes out whole)."""
    plan, table = engine.plan, engine.refit_table
    assert table is not None
    manifest = {k: v for k, v in plan.manifest.items() if k != "sections"}
    whole = RefitTable(False, table.sources, table.weights, table.constants)
    sections: dict[str, Any] = {"weights": engine.weights}
    for name in plan.section_names:
        if name not in ("weights", KEPT_SECTION):
            sections[name] = whole.section() if name == SECTION else plan.section(name)
    return manifest, sections


def refit_plan_bytes(engine: Engine) -> bytes:
    return plan_bytes(*refit_plan_parts(engine))


def as_array(weights: Any, name: str) -> np.ndarray:
    """New weights as numpy: an array, TensorRT-style Weights (`.numpy()`), or a buffer."""
    if hasattr(weights, "numpy") and not isinstance(weights, np.ndarray):
        weights = weights.numpy()
    array = np.asarray(weights)
    if array.dtype.hasobject:
        raise EmberError(f"weights '{name}': not numeric data ({type(weights).__name__})")
    return array


@dataclass
class _Pending:
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class Refitter(ContextManaged):
    """Updates the weights of an engine built with BuilderFlag.REFIT (TensorRT's Refitter).

        refitter = ember.Refitter(engine, logger)
        refitter.set_named_weights("conv1.weight", new_w)   # by ONNX initializer name
        ...
        assert refitter.refit_cuda_engine()

    Weights the build folded together (a conv and the BatchNorm after it) are refit together:
    once one of them is set, `get_missing_weights()` lists the others until they are. A
    stripped plan needs every refittable weight. A name that is not refittable, or weights of
    another shape or dtype, are refused (EmberError naming the weight). `weights_validation`
    (on by default) also refuses NaN or infinite new weights and values the plan's precision
    cannot hold (an FP16 weight over 65504). Works on the CPU executor's engines and the GPU's;
    contexts already made see the new weights from their next run."""

    def __init__(self, engine: Engine, logger: ILogger | None = None) -> None:
        object.__setattr__(self, "logger", check_logger(logger, "Refitter"))
        if getattr(engine, "refit_table", None) is None:
            raise self._error("the engine was not built with BuilderFlag.REFIT (or STRIP_PLAN): "
                              "its weights cannot be refit; rebuild it with the flag")
        object.__setattr__(self, "engine", engine)
        object.__setattr__(self, "weights_validation", True)
        object.__setattr__(self, "_pending", _Pending())

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "weights_validation":
            object.__setattr__(self, name, bool(value))
            return
        if name == "max_threads":
            raise UnsupportedError("Refitter.max_threads is not implemented (refit runs on the "
                             "calling thread); setting it would do nothing")
        raise EmberError(f"Refitter has no setting '{name}'")

    def _error(self, message: str) -> EmberError:
        emit(self.logger, Severity.ERROR, message)
        return EmberError(message)

    @property
    def _table(self) -> RefitTable:
        table = self.engine.refit_table
        assert table is not None
        return table

    # -- TensorRT's API --------------------------------------------------------------------------
    def get_all_weights(self) -> list[str]:
        """The names (ONNX initializers) of every refittable weight."""
        return list(self._table.sources)

    def get_missing_weights(self) -> list[str]:
        """Weights that must still be set before `refit_cuda_engine`: in a stripped plan,
        every one not set yet; otherwise those folded together with one that was set."""
        table, given = self._table, self._pending.arrays
        if table.stripped and not self.engine.refit_count:
            return [n for n in table.sources if n not in given]
        missing: dict[str, None] = {}
        for w in table.weights:
            if w.leaves & given.keys():
                for name in sorted(w.leaves - given.keys()):
                    missing[name] = None
        return list(missing)

    def set_named_weights(self, name: str, weights: Any, location: Any = None) -> bool:
        """New values of the initializer `name` (numpy, or TensorRT-style Weights), host
        memory only; same shape and dtype as the build's. True when accepted; a refusal is an
        EmberError naming the weight and why."""
        if location is not None and str(getattr(location, "name", location)).upper() \
                not in ("HOST", "KHOST"):
            raise self._error(f"set_named_weights('{name}'): only host weights "
                              f"(TensorLocation.HOST) are implemented, not {location!r}")
        table = self._table
        source = table.sources.get(name)
        if source is None:
            why = table.constants.get(name)
            detail = (f"the build folded it where a refit cannot follow ({why.why})"
                      if why is not None else "the plan has no weights of that name")
            raise self._error(f"weights '{name}' are not refittable: {detail}. "
                              f"Refittable: {', '.join(table.sources) or 'none'}")
        array = as_array(weights, name)
        if array.dtype.name != source.dtype or tuple(array.shape) != source.shape:
            raise self._error(f"weights '{name}': given {array.dtype.name} "
                              f"{list(array.shape)}, the plan was built with {source.dtype} "
                              f"{list(source.shape)}; refit cannot change a weight's shape or "
                              "dtype (rebuild instead)")
        if self.weights_validation and array.dtype.kind in "fc" \
                and not np.isfinite(array).all():
            raise self._error(f"weights '{name}' hold NaN or infinite values "
                              "(refitter.weights_validation = False accepts them)")
        self._pending.arrays[name] = np.array(array, copy=True)
        return True

    def check_unchanged(self, name: str, array: np.ndarray) -> None:
        """Refuse new values for an initializer the build folded for good (OnnxParserRefitter
        checks every initializer of the new model so)."""
        constant = self._table.constants.get(name)
        if constant is not None and digest(array) != constant.digest:
            raise self._error(f"initializer '{name}' differs from the build's, but "
                              f"the plan cannot take new values for it: {constant.why}. "
                              "Rebuild the plan from the new model")

    def refit_cuda_engine(self) -> bool:
        """Replay the recipes of every weight that reads a set initializer and write the results
        into the engine (and its GPU memory). True on success; missing weights, or a result the
        plan's precision cannot hold, are an EmberError naming them."""
        engine, table = self.engine, self._table
        missing = self.get_missing_weights()
        if missing:
            raise self._error(f"refit_cuda_engine: missing weights {missing}: they "
                              "were folded together with weights that were set (set them too, "
                              "e.g. from the model with OnnxParserRefitter)")
        given = self._pending.arrays
        if not given and not engine.needs_refit:
            return True
        updates: list[tuple[int, bytes]] = []
        for w in table.weights:
            if not w.leaves & given.keys():
                continue
            buf = engine.buffers[w.buffer]
            dtype, shape = np.dtype(buf["dtype"]), tuple(buf["shape"])
            try:
                with np.errstate(over="ignore", invalid="ignore"):  # validated below
                    out = np.ascontiguousarray(refit_recipes.replay(w.recipe, given)).astype(
                        dtype, copy=False)
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise self._error(f"refit of the weight made from {sorted(w.leaves)} "
                                  f"failed: {type(e).__name__}: {e}") from None
            if out.size != int(np.prod(shape)):
                raise self._error(f"refit: the weight made from {sorted(w.leaves)} has "
                                  f"{out.size} elements, its buffer {list(shape)}")
            if self.weights_validation and out.dtype.kind == "f" and not np.isfinite(out).all():
                raise self._error(f"refit: the {dtype} weight made from "
                                  f"{sorted(w.leaves)} overflows (NaN or infinite values): "
                                  "the new weights do not fit the plan's precision")
            updates.append((int(buf["offset"]), out.tobytes()))
        engine.write_weights(updates)
        self._pending.arrays = {}
        emit(self.logger, Severity.INFO, f"refit {len(updates)} weight buffer(s) from "
             f"{len(given)} weight(s)")
        return True
