"""The weight store: named tensors that live with the module, which refers to them by name
(`nn.weight "conv.weight" : tensor<...>`).

`weights_of(module)` is the module's store; passes that read or make weights (constant folding,
BatchNorm folding, refit) go through it. In text the weights follow the IR as an MLIR-style
resource section: each weight's bytes (`{-# dialect_resources: {ember: {"conv.weight": "0x04..."}}
#-}`, MLIR's blob encoding; `print_module(module, inline_weights=True)`), or a reference to an
`.npz` holding them by name (`{-# external_resources: {ember: {weights: "weights.npz"}} #-}`,
resolved beside the text; what `--dump-dir` writes). A plain print elides them, so dumps stay
readable; `parse_module` reads either form back.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.parser import Parser
from xdsl.printer import Printer

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.tensor_types import format_of
from ember.errors import EmberError
from ember.runtime.formats import FORMATS, physical_of

# ops that name a weight of the store in their `ref` property
WEIGHT_OPS = ("onnx.weight", "nn.weight")


@dataclass
class WeightFile:
    """The `.npz` a store's weights were read from: `reference` as the text spells it, `path`
    resolved; `names` holds the weights known to be in it with these very values."""

    reference: str
    path: Path
    names: set[str] = field(default_factory=set)


class WeightStore:
    """Name -> numpy array, in insertion order."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self.file: WeightFile | None = None
        # a REFIT build's runtime.refit_recipes.RecipeTrace (how entries came from initializers)
        self.refit = None

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return len(self._arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"weight '{name}' is not in the weight store") from None

    def names(self) -> list[str]:
        return list(self._arrays)

    def add(self, name: str, array: np.ndarray) -> str:
        """Store `array` under `name`, or under a fresh variant of it if taken; return the name."""
        unique, n = name, 0
        while unique in self._arrays:
            n += 1
            unique = f"{name}_{n}"
        self._arrays[unique] = np.asarray(array)
        return unique

    def total_bytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())


_ATTR = "ember_weights"  # the ModuleOp attribute (a Python one, not an IR one) holding the store


def weights_of(module: ModuleOp) -> WeightStore:
    """The module's weight store (empty for a module parsed from text without weights)."""
    store = getattr(module, _ATTR, None)
    if store is None:
        store = WeightStore()
        setattr(module, _ATTR, store)
    return store


def attach_weights(module: ModuleOp, store: WeightStore) -> None:
    setattr(module, _ATTR, store)


def weight_types(module: ModuleOp) -> dict[str, TensorType]:
    """Each weight the module refers to, with its tensor type, in order of first use."""
    types: dict[str, TensorType] = {}
    for op in module.walk():
        if op.name in WEIGHT_OPS:
            types.setdefault(op.properties["ref"].data, op.results[0].type)
    return types


# -- text ----------------------------------------------------------------------------------------

def print_module(module: ModuleOp, *, inline_weights: bool = False,
                 weights_file: str | None = None, debuginfo: bool = False) -> str:
    """The module's text: its IR (with each op's location, i.e. its ONNX origin, if
    `debuginfo`), then `weights_section`."""
    out = io.StringIO()
    Printer(stream=out, print_debuginfo=debuginfo).print_op(module)
    return out.getvalue() + weights_section(module, inline_weights=inline_weights,
                                            weights_file=weights_file) + "\n"


def weights_section(module: ModuleOp, *, inline_weights: bool = False,
                    weights_file: str | None = None) -> str:
    """The text that follows a module's IR for its weights: every weight it refers to, bytes
    inline (`inline_weights`); a reference to `weights_file` (where the caller saves them); a
    reference to the file they were read from while it still holds them; else none (elided)."""
    if inline_weights:
        blobs = {name: _blob(name, weights_of(module), t)
                 for name, t in weight_types(module).items()}
        return _section("dialect_resources", blobs) if blobs else ""
    reference = weights_file or _file_reference(module)
    return "" if reference is None else _section("external_resources", {"weights": reference})


def parse_module(ctx: Context, text: str, path: str | Path | None = None, *,
                 allow_implicit_module: bool = True) -> ModuleOp:
    """A module and its weights from text (`path`: where it came from, for messages and for
    resolving a weights file; the working directory without one)."""
    where = str(path) if path is not None else "<input>"
    body, section = _split_section(text)
    module = Parser(ctx, body, where).parse_module(allow_implicit_module)
    if section is not None:
        _load_section(module, _parse_section(section, where), where,
                      Path(path).parent if path is not None else Path())
    return module


def save_weights(store: WeightStore, path: str | Path) -> None:
    """Every weight of `store` into an `.npz` by name, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            for name, array in store._arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                    # np.ascontiguousarray makes a 0-d array 1-d; asarray keeps its shape
                    np.lib.format.write_array(f, np.asarray(array, order="C"),
                                              allow_pickle=False)
        tmp.replace(path)
    except OSError as e:
        raise EmberError(f"cannot write weights '{path}': {e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _file_reference(module: ModuleOp) -> str | None:
    """The store's file, if every weight the module refers to is in it with its value."""
    store = weights_of(module)
    if store.file is None:
        return None
    missing = [n for n in weight_types(module) if n not in store.file.names]
    if missing:
        try:
            with np.load(store.file.path, allow_pickle=False) as saved:
                for name in missing:
                    if (name not in saved.files or name not in store
                            or not np.array_equal(_as_stored(saved[name], store[name].dtype),
                                                  store[name])):
                        return None
                    store.file.names.add(name)
        except (OSError, ValueError, zipfile.BadZipFile):
            return None
    return store.file.reference


def _as_stored(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # .npz keeps dtypes numpy does not know (ml_dtypes' bfloat16) as raw bytes: view them back
    if array.dtype.kind == "V" and array.dtype.itemsize == dtype.itemsize:
        return array.view(dtype)
    return array


def _blob(name: str, store: WeightStore, t: TensorType) -> str:
    """MLIR's resource blob: `0x`, the alignment (uint32, little-endian), the bytes in hex."""
    if name not in store:
        raise EmberError(f"weight '{name}' is referred to but not in the module's weight store")
    array = store[name]
    _check(name, array, t, "the store")
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return "0x" + max(array.dtype.itemsize, 1).to_bytes(4, "little").hex() + data.tobytes().hex()


def _stored_shape(t: TensorType) -> tuple[int, ...]:
    """The shape of a weight's array: a laid-out weight's is in its format's byte order (an NHWC
    conv weight is OHWI)."""
    shape = tuple(t.get_shape())
    fmt = format_of(t)
    return tuple(physical_of(shape, fmt)) if len(shape) == 4 and fmt in FORMATS else shape


def _check(name: str, array: np.ndarray, t: TensorType, where: str) -> None:
    dtype, shape = numpy_dtype(t.element_type), _stored_shape(t)
    if array.dtype != dtype or array.shape != shape:
        raise EmberError(f"weight '{name}' in {where} is {array.dtype}{list(array.shape)}, but "
                         f"the IR types it {t}")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _section(kind: str, entries: dict[str, str]) -> str:
    lines = [f"      {_quote(k) if kind == 'dialect_resources' else k}: {_quote(v)}"
             for k, v in entries.items()]
    return ("\n\n{-#\n  " + kind + ": {\n    ember: {\n" + ",\n".join(lines)
            + "\n    }\n  }\n#-}")


_SECTION_START = re.compile(r"^\{-#", re.MULTILINE)
_SKIP = re.compile(r"(?:\s|//[^\n]*)*")  # blanks and comments
_TOKEN = re.compile(r'(#-\})|([{}:,])|"([^"\\]*(?:\\.[^"\\]*)*)"|([A-Za-z_][\w.$-]*)')


def _split_section(text: str) -> tuple[str, str | None]:
    starts = list(_SECTION_START.finditer(text))
    if not starts:
        return text, None
    at = starts[-1].start()
    return text[:at], text[at + 3:]


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), s)


def _parse_section(text: str, where: str) -> dict[str, dict[str, str]]:
    """`kind: {ember: {key: "value", ...}}, ...` up to `#-}` -> {kind: {key: value}}."""
    tokens: list[str] = []
    pos = _SKIP.match(text).end()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise EmberError(f"{where}: cannot read the weights section near "
                             f"{text[pos:pos + 20].strip()!r}")
        tokens.append(m[1] or m[2] or ("\0" + _unquote(m[3]) if m[3] is not None else m[4]))
        pos = _SKIP.match(text, m.end()).end()
    if tokens.count("#-}") != 1 or tokens[-1] != "#-}":
        raise EmberError(f"{where}: the weights section must end the text, with one '#-}}'")
    it = iter(tokens)

    def expect(what: str) -> str:
        token = next(it, "#-}")
        if what not in ("key", "string") and token != what:
            raise EmberError(f"{where}: weights section: expected '{what}', got '{token}'")
        if what == "string" and not token.startswith("\0"):
            raise EmberError(f"{where}: weights section: expected a string, got '{token}'")
        return token.removeprefix("\0")

    result: dict[str, dict[str, str]] = {}
    while True:
        kind = expect("key")
        if kind == "#-}":
            return result
        expect(":")
        expect("{")
        dialect = expect("key")
        if dialect != "ember":
            raise EmberError(f"{where}: {kind} of '{dialect}': only ember's weights are read")
        expect(":")
        expect("{")
        entries = result.setdefault(kind, {})
        while True:
            key = expect("key")
            expect(":")
            entries[key] = expect("string")
            sep = next(it, "")
            if sep == "}":
                break
            if sep != ",":
                raise EmberError(f"{where}: weights section: expected ',' or '}}', got '{sep}'")
        expect("}")
        sep = next(it, "#-}")
        if sep == "#-}":
            return result
        if sep != ",":
            raise EmberError(f"{where}: weights section: expected ',' or '#-}}', got '{sep}'")


def _load_section(module: ModuleOp, section: dict[str, dict[str, str]], where: str,
                  base: Path) -> None:
    unknown = (set(section) - {"dialect_resources", "external_resources"}) or (
        set(section.get("external_resources", {})) - {"weights"})
    if unknown:
        raise EmberError(f"{where}: weights section: unknown key(s) {sorted(unknown)}")
    types = weight_types(module)
    store = weights_of(module)
    blobs = section.get("dialect_resources", {})
    for name, blob in blobs.items():
        if name not in types:
            continue  # MLIR keeps only the resources the IR uses; so do we
        t = types[name]
        dtype = numpy_dtype(t.element_type).newbyteorder("<")
        try:
            if not blob.startswith("0x") or len(blob) < 10:
                raise ValueError
            data = bytes.fromhex(blob[10:])
        except ValueError:
            raise EmberError(f"{where}: weight '{name}': not a hex blob (\"0x\", a 4-byte "
                             "alignment, the bytes)") from None
        count = int(np.prod(_stored_shape(t), dtype=np.int64))
        if len(data) != count * dtype.itemsize:
            raise EmberError(f"{where}: weight '{name}' has {len(data)} bytes; its type {t} "
                             f"needs {count * dtype.itemsize}")
        array = np.frombuffer(data, dtype).reshape(_stored_shape(t))
        store._arrays[name] = array.astype(dtype.newbyteorder("="))
    reference = section.get("external_resources", {}).get("weights")
    if reference is not None:
        path = base / reference
        wanted = [n for n in types if n not in blobs]
        try:
            with np.load(path, allow_pickle=False) as saved:
                if not isinstance(saved, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz")
                absent = [n for n in wanted if n not in saved.files]
                if absent:
                    raise EmberError(f"{where}: weight(s) {', '.join(absent)} are not in "
                                     f"'{path}'")
                for name in wanted:
                    array = _as_stored(saved[name], numpy_dtype(types[name].element_type))
                    _check(name, array, types[name], f"'{path}'")
                    store._arrays[name] = array
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise EmberError(f"{where}: cannot read weights '{path}': {e}") from None
        store.file = WeightFile(reference, path, set(wanted))
