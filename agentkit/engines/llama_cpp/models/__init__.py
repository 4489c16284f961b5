"""Model files for the local llama.cpp engine.

`packaged` installs models from PyPI (the default, SmolLM2-135M-Instruct, and Gemma 3 270M),
`assembly` writes them into the models dir verified; `default` names the default; `metadata`
reads GGUF headers
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
from agentkit.engines.llama_cpp.models.packaged import (
    GEMMA_270M,
    PACKAGED_MODELS,
    SMOLLM2_135M,
    PackagedModel,
    packaged_model_path,
)

__all__ = [
    "DEFAULT_MODEL_KEY",
    "DEFAULT_MODEL_PACKAGE",
    "GEMMA_270M",
    "PACKAGED_MODELS",
    "SMOLLM2_135M",
    "DownloadedModel",
    "GgufInfo",
    "InvalidModelFileError",
    "MetadataValue",
    "PackagedModel",
    "default_model_path",
    "list_downloaded_models",
    "lmstudio_models_dirs",
    "models_dir",
    "packaged_model_path",
    "read_gguf_info",
    "resolve_model",
]
