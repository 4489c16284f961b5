"""GGUF metadata, read with ggml's own `gguf` package, without llama_cpp.

The engine needs the architecture, context length and chat template before it loads a model,
and a listing of models must not pay for loading them. Model files come from downloads and
copies that can be cut short or be something else entirely, so every malformed input raises
`InvalidModelFileError` saying what is wrong.

`gguf.GGUFReader` parses everything into numpy views of a memmap, which is right for tensors but
not for an untrusted header: each of a vocabulary's 262k strings becomes two arrays (11 s and
750 MB for the 270M default model), counts and lengths are trusted (a lying array count loops
for ever), and tensor views are built for every tensor. `_HeaderReader` keeps gguf's parsing and
bounds it: every read is checked against the file's size, long arrays are skipped by their
lengths without being materialized, nesting is bounded, and tensor data is never mapped; the
tensor descriptions only tell where the data must end.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from gguf import (
    GGML_QUANT_SIZES,
    GGUF_MAGIC,
    READER_SUPPORTED_VERSIONS,
    GGUFReader,
    GGUFValueType,
    LlamaFileType,
    ReaderField,
)

from agentkit.errors import EngineError, ModelNotFoundError

__all__ = ["GgufInfo", "InvalidModelFileError", "MetadataValue", "read_gguf_info"]

MetadataValue: TypeAlias = int | float | bool | str | tuple[int | float | bool | str, ...]
"""A GGUF metadata value as `GgufInfo.metadata` holds it: a scalar, or a short array as a tuple."""


class InvalidModelFileError(EngineError):
    """A model file is not a usable GGUF file: wrong magic, unsupported version, truncated or
    corrupt. The message names the file and what is wrong with it."""


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


_MAGIC = GGUF_MAGIC.to_bytes(4, "little")
_SUPPORTED_VERSIONS = tuple(READER_SUPPORTED_VERSIONS)
_MAX_KEPT_ARRAY = 64  # longer arrays are vocabularies, scores and merges: skipped, not kept
_MAX_ARRAY_NESTING = 4
_MAX_TENSOR_DIMS = 4  # GGML_MAX_DIMS
# Smallest encodings, to reject counts that could not fit in the rest of the file up front.
_MIN_KV_BYTES = 8 + 4 + 1  # empty key, value type, one-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # empty name, n_dims, type, offset
_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, metadata count
_U64 = struct.Struct("<Q")
# What GGUFReader records in its fields besides the file's metadata.
_READER_FIELDS = frozenset({"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"})
# ggml tensor types -> (elements per block, bytes per block). Types this gguf does not know only
# weaken the truncation check for files that use them.
_BLOCKS = {int(kind): size for kind, size in GGML_QUANT_SIZES.items()}
_VALUE_TYPES = {int(kind) for kind in GGUFValueType}


class _Truncated(Exception):
    def __init__(self, what: str, end: int) -> None:
        super().__init__(what, end)
        self.what = what
        self.end = end


class _Corrupt(Exception):
    pass


def _value_type(raw: int, what: str) -> GGUFValueType:
    if raw not in _VALUE_TYPES:
        raise _Corrupt(f"{what} {raw}")
    return GGUFValueType(raw)


class _HeaderReader(GGUFReader):
    """GGUFReader with every read bounded by the file's size, long arrays skipped unread and
    tensor data left alone (see the module's docstring)."""

    tensor_fields: list[ReaderField]

    def _get(
        self,
        offset: int,
        dtype: npt.DTypeLike,
        count: int = 1,
        override_order: Literal["I", "S", "<"] | None = None,
    ) -> npt.NDArray[Any]:
        end = int(offset) + np.dtype(dtype).itemsize * int(count)
        if end > self.data.size:
            raise _Truncated("the header", end)
        return super()._get(offset, dtype, count, override_order)

    def _get_field_parts(
        self, orig_offs: int, raw_type: int
    ) -> tuple[int, list[npt.NDArray[Any]], list[int], list[GGUFValueType]]:
        if _value_type(int(raw_type), "a metadata value has unknown value type") is not (
            GGUFValueType.ARRAY
        ):
            return super()._get_field_parts(orig_offs, raw_type)
        return self._array_parts(orig_offs, depth=0)

    def _array_parts(
        self, start: int, depth: int
    ) -> tuple[int, list[npt.NDArray[Any]], list[int], list[GGUFValueType]]:
        """An array's parts, as GGUFReader lays them out: item type, count, then the items,
        which are left out when there are more than _MAX_KEPT_ARRAY of them."""
        raw_item = self._get(start, np.uint32)
        raw_count = self._get(start + 4, np.uint64)
        item_type = _value_type(int(raw_item[0]), "an array has items of unknown type")
        count = int(raw_count[0])
        parts = [raw_item, raw_count]
        types = [GGUFValueType.ARRAY, item_type]
        offs = start + 12
        scalar = self.gguf_scalar_to_np.get(item_type)
        if scalar is not None:
            items = self._get(offs, scalar, count)  # a view of the memmap: nothing is copied
            if count > _MAX_KEPT_ARRAY:
                return 12 + int(items.nbytes), parts, [], types
            return 12 + int(items.nbytes), [*parts, items], [2], types
        if item_type is GGUFValueType.STRING:
            if count > _MAX_KEPT_ARRAY:
                return self._skip_strings(offs, count) - start, parts, [], types
            data = []
            for _ in range(count):
                length, text = self._get_str(offs)
                data.append(len(parts) + 1)
                parts += [length, text]
                offs += 8 + int(text.nbytes)
            return offs - start, parts, data, types
        # Arrays of arrays are legal but unused by llama.cpp models: skipped, with nesting
        # bounded against files that nest deep enough to exhaust the Python stack.
        if depth >= _MAX_ARRAY_NESTING:
            raise _Corrupt(f"an array nests arrays more than {_MAX_ARRAY_NESTING} deep")
        self._get(offs, np.uint8, 12 * count)  # each item takes at least 12 bytes
        for _ in range(count):
            offs += self._array_parts(offs, depth + 1)[0]
        return offs - start, parts, [], types

    def _skip_strings(self, offs: int, count: int) -> int:
        # The hot loop of the reader (262k tokens in Gemma's vocabulary): only the lengths are
        # read, nothing is decoded, copied or wrapped in numpy.
        self._get(offs, np.uint8, 8 * count)  # each string takes at least its length
        unpack = _U64.unpack_from
        with self.data.data as buf:
            try:
                for _ in range(count):
                    offs += 8 + unpack(buf, offs)[0]
            except (struct.error, OverflowError):
                # A length ran past the end (struct.error) or past any offset (OverflowError).
                raise _Truncated("the header", offs + 8) from None
        if offs > self.data.size:
            raise _Truncated("the header", offs)
        return offs

    def _build_fields(self, offs: int, count: int) -> int:
        end = super()._build_fields(offs, count)
        alignment = self.fields.get("general.alignment")
        if alignment is not None:
            value = _scalar(alignment)
            if alignment.types != [GGUFValueType.UINT32] or value <= 0 or value & (value - 1):
                raise _Corrupt(f"general.alignment {value!r} is not a power of two")
        return end

    def _get_tensor_info_field(self, orig_offs: int) -> ReaderField:
        name_length = int(self._get(orig_offs, np.uint64)[0])
        dims = int(self._get(orig_offs + 8 + name_length, np.uint32)[0])
        if dims > _MAX_TENSOR_DIMS:
            raise _Corrupt(f"a tensor description has {dims} dimensions (at most 4)")
        return super()._get_tensor_info_field(orig_offs)

    def _build_tensors(self, start_offs: int, fields: list[ReaderField]) -> None:
        self.tensor_fields = fields  # described, never mapped: tensor data is not read


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
            head = handle.read(64)  # enough to tell what else the file is
        version = _check_start(file, head, size)
        return _summary(_HeaderReader(file), file, version, size)
    except FileNotFoundError as error:
        raise ModelNotFoundError(f"no model file at {file}: the file does not exist") from error
    except IsADirectoryError as error:
        raise InvalidModelFileError(f"{file} is a directory, not a GGUF model file") from error
    except OSError as error:
        raise EngineError(f"cannot read the model file {file}: {error}") from error
    except _Truncated as error:
        raise _truncated(file, error.what, error.end, size) from None
    except _Corrupt as error:
        raise _corrupt(file, str(error)) from None
    except (ValueError, KeyError, IndexError, ArithmeticError, TypeError, struct.error) as error:
        # What else gguf finds wrong: duplicate keys, undecodable names, unknown enum values.
        raise _corrupt(file, f"{type(error).__name__}: {error}") from error


def _check_start(file: Path, head: bytes, size: int) -> int:
    """The version, after the checks that deserve a specific message (empty, not GGUF, version,
    byte order, counts that cannot fit)."""
    if size == 0:
        raise InvalidModelFileError(
            f"{file} is empty (0 bytes), not a GGUF model: truncated download?"
        )
    if not head.startswith(_MAGIC):
        if _MAGIC.startswith(head) and size < 4:
            raise _truncated(file, "the GGUF magic", 4, size)
        raise InvalidModelFileError(
            f"{file} is not a GGUF file: it starts with {head[:8]!r} where a GGUF file starts "
            f"with {_MAGIC!r}{_magic_hint(head)}"
        )
    if len(head) < _HEADER.size:
        raise _truncated(file, "the GGUF header", _HEADER.size, size)
    _, version, tensor_count, kv_count = _HEADER.unpack_from(head)
    if version not in _SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        detail = (
            "it is a big-endian GGUF file, which this reader does not support"
            if swapped in _SUPPORTED_VERSIONS
            else "re-convert it with a current llama.cpp"
        )
        raise InvalidModelFileError(
            f"{file} uses GGUF version {version}; only versions "
            f"{' and '.join(map(str, _SUPPORTED_VERSIONS))} are supported ({detail})"
        )
    least = _HEADER.size + kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_INFO_BYTES
    if least > size:
        what = f"the {kv_count:,} metadata entries and {tensor_count:,} tensor descriptions"
        raise _truncated(file, what, least, size)
    return int(version)


def _summary(reader: _HeaderReader, file: Path, version: int, size: int) -> GgufInfo:
    metadata: dict[str, MetadataValue] = {}
    for key, entry in reader.fields.items():
        if key not in _READER_FIELDS:
            value = _metadata_value(entry)
            if value is not None:
                metadata[key] = value

    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise _corrupt(file, "it has no general.architecture, so llama.cpp cannot load it")
    parameter_count, data_end = _tensor_extent(reader)
    if data_end > size:
        raise _truncated(file, "the tensor data its header describes", data_end, size)

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) else None

    def integer(key: str) -> int | None:
        value = metadata.get(key)
        return value if type(value) is int else None

    file_type = integer("general.file_type")
    return GgufInfo(
        path=file,
        version=version,
        architecture=architecture,
        name=text("general.name"),
        parameters=text("general.size_label") or _human_count(parameter_count),
        parameter_count=parameter_count,
        quantization=None if file_type is None else _file_type_name(file_type),
        size_bytes=size,
        context_length=integer(f"{architecture}.context_length"),
        block_count=integer(f"{architecture}.block_count"),
        tensor_count=len(reader.tensor_fields),
        bos_token_id=integer("tokenizer.ggml.bos_token_id"),
        eos_token_id=integer("tokenizer.ggml.eos_token_id"),
        chat_template=text("tokenizer.chat_template"),
        metadata=MappingProxyType(metadata),
    )


def _scalar(entry: ReaderField) -> Any:
    return entry.parts[-1].tolist()[0]


def _text(part: npt.NDArray[Any]) -> str:
    # Lenient: a stray invalid byte in a name or template should not make a model unusable.
    return part.tobytes().decode("utf-8", "replace")


def _metadata_value(entry: ReaderField) -> MetadataValue | None:
    """A field's value; None for arrays that are not kept (long or nested)."""
    kind = entry.types[0]
    if kind is GGUFValueType.STRING:
        return _text(entry.parts[-1])
    if kind is not GGUFValueType.ARRAY:
        value: int | float | bool = _scalar(entry)
        return value
    # parts: key length, key, value type, then _array_parts': item type, count, items
    item_type, count = entry.types[1], int(entry.parts[4][0])
    if item_type is GGUFValueType.ARRAY or count > _MAX_KEPT_ARRAY:
        return None
    if item_type is GGUFValueType.STRING:
        return tuple(_text(entry.parts[index]) for index in entry.data)
    items: list[int | float | bool] = entry.parts[entry.data[0]].tolist()
    return tuple(items)


def _tensor_extent(reader: _HeaderReader) -> tuple[int | None, int]:
    """(elements in all tensors, or None without tensors; the byte where tensor data ends)."""
    elements_total = 0
    data_length = 0
    for tensor in reader.tensor_fields:
        # parts: name length, name, n_dims, dims, type, offset (Python ints: no overflow)
        elements = math.prod(int(dim) for dim in tensor.parts[3].tolist())
        elements_total += elements
        block = _BLOCKS.get(int(tensor.parts[4][0]))
        nbytes = 0 if block is None else -(-elements // block[0]) * block[1]
        data_length = max(data_length, int(tensor.parts[5][0]) + nbytes)
    return (elements_total if reader.tensor_fields else None), int(reader.data_offset) + data_length


def _truncated(file: Path, what: str, end: int, size: int) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"{file} is truncated: {what} extends to byte {end:,} but the file has only "
        f"{size:,} bytes (an interrupted download or copy?); download the model again"
    )


def _corrupt(file: Path, problem: str) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"{file} is a corrupt GGUF file: {problem}; download the model again"
    )


def _file_type_name(file_type: int) -> str:
    base = file_type & ~LlamaFileType.GUESSED
    try:
        return LlamaFileType(base).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"unknown file type {file_type}"


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
