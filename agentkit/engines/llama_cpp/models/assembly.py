"""Writing a model file into agentkit's models dir, verified and safe against races.

A model file is written to a temporary file that is renamed into place only after its sha256
matched, so no process ever sees a partial or unverified model; a lock file makes concurrent
first uses wait for one writer instead of racing. Hashing ~100–250 MB costs a noticeable
fraction of a second, so a verified file gets a sidecar recording its size and mtime, and later
starts trust the file while those still match.

Where the bytes come from (a PyPI chunk package, a wheel) is the caller's `ByteSource`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agentkit.errors import EngineError
from agentkit.progress import progress as report_progress

if sys.platform != "win32":
    import fcntl

__all__ = ["ByteSource", "models_dir", "sha256_file", "verified_model_file"]

ByteSource = Callable[[], tuple[int, Iterable[bytes]]]
"""Called under the lock when the file must be written: (total bytes, the blocks)."""


def models_dir() -> Path:
    """agentkit's own models dir: `AGENTKIT_MODELS_DIR`, else `$AGENTKIT_CACHE_DIR/models`,
    else `~/.cache/agentkit/models` (the cache dir is shared with the engine's wheel cache)."""
    configured = os.environ.get("AGENTKIT_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("AGENTKIT_CACHE_DIR")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache" / "agentkit"
    return base / "models"


def verified_model_file(
    file_name: str,
    sha256: str,
    source: ByteSource,
    *,
    progress: bool,
    repair_hint: str,
) -> Path:
    """`models_dir() / file_name`, written from `source` unless a verified copy is there.

    An existing file is trusted without re-hashing when its sidecar `<file>.sha256` still
    matches its size and mtime; otherwise it is re-hashed, and rewritten if it does not match.
    With `progress`, writing is reported on stderr (a bar on a terminal, a line at start and
    end otherwise).

    Raises EngineError if the written bytes do not match `sha256` (the message ends with
    `repair_hint`) or the models dir cannot be written.
    """
    target = models_dir() / file_name
    if _sidecar_matches(target, sha256):
        return target
    with _exclusive_lock(target.with_name(f".{target.name}.lock"), progress) as exclusive:
        # Another process may have finished the work while this one waited for the lock.
        if _sidecar_matches(target, sha256):
            return target
        if exclusive:
            # Holding the lock, any partial file is left over from a killed process.
            for stale in target.parent.glob(f".{target.name}.*.partial"):
                stale.unlink(missing_ok=True)
        if target.is_file():
            # No valid sidecar (first run after a copy, or the file changed): hash it once.
            if sha256_file(target) == sha256:
                _write_sidecar(target, sha256)
                return target
            if progress:
                _print(f"agentkit: {target} does not match its sha256; rebuilding it")
        _write_checked(target, sha256, source, progress, repair_hint)
        _write_sidecar(target, sha256)
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
                _print(f"agentkit: waiting for another process to write {path.name[1:-5]}")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_checked(
    target: Path, sha256: str, source: ByteSource, progress: bool, repair_hint: str
) -> None:
    # A unique name per writer, created with the umask's permissions (mkstemp would force 0600).
    partial = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        total, blocks = source()
        digest = hashlib.sha256()
        label = f"agentkit: writing {target.name} ({total / 1e6:.0f} MB, once)"
        with report_progress(label, total, enabled=progress, unit="bytes") as bar:
            try:
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                with os.fdopen(fd, "wb") as out:
                    for block in blocks:
                        out.write(block)
                        digest.update(block)
                        bar.advance(len(block))
                    out.flush()
                    # Make the bytes durable before the rename publishes them.
                    os.fsync(out.fileno())
            except OSError as error:
                raise EngineError(
                    f"cannot write {target.name} to {target.parent} ({error}); it needs "
                    f"{total / 1e6:.0f} MB free, or set AGENTKIT_MODELS_DIR to another directory"
                ) from error
            actual = digest.hexdigest()
            if actual != sha256:
                raise EngineError(
                    f"{target.name} has sha256 {actual}, expected {sha256}: {repair_hint}"
                )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


BLOCK_SIZE = 4 * 1024 * 1024
"""Bytes per block a source should yield: large enough to be fast, small enough to report."""


def sha256_file(path: Path) -> str:
    """The file's sha256, hex."""
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
