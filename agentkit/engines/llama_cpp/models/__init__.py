"""Model files for the local llama.cpp engine.

`default` assembles the default model from its PyPI package; `metadata` reads GGUF headers
(with the `gguf` package, bounded for untrusted files); `discovery` finds models in agentkit's
models dir and LM Studio's folders.
"""

from agentkit.engines.llama_cpp.models.default import (
    DEFAULT_MODEL_KEY,
    DEFAULT_MODEL_PACKAGE,
    default_model_path,
    models_dir,
)
from agentkit.engines.llama_cpp.models.discovery import (
    DownloadedModel,
    list_downloaded_models,
    lmstudio_models_dirs,
    resolve_model,
)
from agentkit.engines.llama_cpp.models.metadata import (
    GgufInfo,
    InvalidModelFileError,
    MetadataValue,
    read_gguf_info,
)

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
