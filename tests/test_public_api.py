"""The public API: every exported name resolves (lazy ones included) and is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "agentkit",
    "agentkit.tools",
    "agentkit.memory",
    "agentkit.agent",
    "agentkit.agent_events",
    "agentkit.approval",
    "agentkit.engines",
    "agentkit.engines.llama_cpp",
    "agentkit.engines.openai",
    "agentkit.engines.lmstudio",
    "agentkit.testing",
    "agentkit.tracing",
    "agentkit.untrusted",
    "agentkit.tool_threads",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_exported_name_resolves_and_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no docstring"
    exported = getattr(module, "__all__", None)
    assert exported, f"{module_name} has no __all__"
    undocumented = []
    for name in exported:
        value = getattr(module, name)  # raises for a name that does not resolve
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            undocumented.append(name)
    assert not undocumented, f"{module_name}: no docstring on {undocumented}"
