"""The lmstudio SDK adapter: its version guard, and that no other module uses private SDK API."""

from __future__ import annotations

import ast
from pathlib import Path

import lmstudio
import pytest

from agentkit.engines import engine_for_url
from agentkit.engines.lmstudio import LMStudioEngine, sdk
from agentkit.errors import EngineError, EngineUnavailableError

ROOT = Path(__file__).parents[3]
# tools/, memory/ and tracing/ install as agentkit.* sub-packages.
PACKAGE = [ROOT / name for name in ("agentkit", "tools", "memory", "tracing")]
ADAPTER = ROOT / "agentkit" / "engines" / "lmstudio" / "sdk.py"
SDK_ROOT = Path(lmstudio.__file__).parent


# -- version guard -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6.0", "1.6.0b1", "2.0.0", "1.4.2", "dev"])
def test_unknown_sdk_version_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(lmstudio, "__version__", version)
    with pytest.raises(EngineUnavailableError) as caught:
        LMStudioEngine("127.0.0.1:1234")
    message = str(caught.value)
    assert f"lmstudio {version} is installed" in message
    assert "1.5.x" in message
    assert "pip install 'lmstudio>=1.5,<1.6'" in message


def test_client_url_reports_the_version_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lmstudio, "__version__", "2.0.0")
    with pytest.raises(EngineUnavailableError, match=r"lmstudio 2\.0\.0 is installed"):
        engine_for_url("lmstudio://127.0.0.1:1234")


@pytest.mark.parametrize("version", ["1.5.0", "1.5.7", "1.5.1rc2"])
def test_known_sdk_versions_are_accepted(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(lmstudio, "__version__", version)
    engine = LMStudioEngine("lmstudio://127.0.0.1:1234/")
    assert engine.host == "127.0.0.1:1234"


def test_installed_sdk_is_a_supported_one() -> None:
    """The pin in pyproject.toml and SUPPORTED_VERSIONS must agree with what is installed."""
    sdk.check_version()
    major, minor = (int(part) for part in lmstudio.__version__.split(".")[:2])
    assert (major, minor) in sdk.SUPPORTED_VERSIONS


def test_unknown_version_error_is_an_engine_error() -> None:
    with pytest.raises(EngineError):
        sdk.check_version("9.9.9")


# -- the auth message ---------------------------------------------------------------------------


def test_auth_message_takes_the_token_of_either_sdk_signature() -> None:
    client = sdk.TokenClient("127.0.0.1:1234", "sk-lm-AbCdEfGh:0123456789abcdefghij")
    # 1.5 calls it without arguments, 1.6 with the client's api_token argument.
    assert client._create_auth_message()["clientIdentifier"] == "sk-lm-AbCdEfGh"
    passed = client._create_auth_message("sk-lm-Other123:zzzzzzzzzzzzzzzzzzzz")
    assert (passed["clientIdentifier"], passed["clientPasskey"]) == (
        "sk-lm-Other123",
        "zzzzzzzzzzzzzzzzzzzz",
    )
    anonymous = sdk.TokenClient("127.0.0.1:1234", None)._create_auth_message()
    assert anonymous["authVersion"] == 1
    assert not anonymous["clientIdentifier"].startswith("sk-lm-")


# -- private SDK names stay in the adapter -------------------------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_names(tree: ast.AST) -> set[str]:
    """Names a module defines: functions, classes, assigned names and attributes, imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {name for name in names if _is_private(name)}


def _sdk_private_names() -> set[str]:
    names = {p.stem for p in SDK_ROOT.rglob("_*.py")} | {
        p.name for p in SDK_ROOT.rglob("_*") if p.is_dir()
    }
    for path in SDK_ROOT.rglob("*.py"):
        names |= _defined_names(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in names if _is_private(name)}


def _package_files() -> list[Path]:
    return [path for root in PACKAGE for path in sorted(root.rglob("*.py"))]


SDK_PRIVATE = _sdk_private_names()
# agentkit's own private names (outside the adapter) are not SDK uses when read off `self`.
OWN = set().union(
    *(
        _defined_names(ast.parse(path.read_text(encoding="utf-8")))
        for path in _package_files()
        if path != ADAPTER
    )
)


def _is_sdk_module(module: str) -> bool:
    return module == "lmstudio" or module.startswith("lmstudio.")


def private_sdk_uses(source: str) -> list[str]:
    """Private lmstudio API that `source` uses.

    Flags: imports of private SDK modules, and of names the SDK does not export from
    `lmstudio` itself (its public namespace); methods with SDK private names in classes built
    on SDK classes (overrides); and reading an attribute whose name is private to the SDK. In
    a module that imports the SDK, only agentkit's own attributes read off `self`/`cls` are
    exempt; elsewhere, names agentkit defines itself are (`chat._messages` is agentkit's).
    The scan cannot see an SDK object reach a module that does not import the SDK and have
    a private attribute agentkit also defines read off it.
    """
    tree = ast.parse(source)
    uses: list[str] = []
    sdk_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_sdk_module(alias.name):
                    sdk_names.add(alias.asname or alias.name.split(".")[0])
                    if any(_is_private(part) for part in alias.name.split(".")):
                        uses.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and _is_sdk_module(node.module or ""):
            module = node.module or ""
            for alias in node.names:
                sdk_names.add(alias.asname or alias.name)
                private_module = any(_is_private(part) for part in module.split("."))
                if private_module or not hasattr(lmstudio, alias.name):
                    uses.append(f"line {node.lineno}: from {module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in SDK_PRIVATE:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if node.attr not in OWN or (sdk_names and not on_self):
                uses.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ClassDef):
            bases = {base.id for base in node.bases if isinstance(base, ast.Name)}
            if bases & sdk_names:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in SDK_PRIVATE:
                        uses.append(f"line {item.lineno}: {node.name}.{item.name} overrides")
    return uses


def test_no_private_sdk_api_outside_the_adapter() -> None:
    found = {
        str(path.relative_to(ROOT)): uses
        for path in _package_files()
        if path != ADAPTER and (uses := private_sdk_uses(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_scan_finds_what_the_adapter_uses() -> None:
    """The scan is not vacuous: it sees every kind of private use in the adapter itself."""
    uses = "\n".join(private_sdk_uses(ADAPTER.read_text(encoding="utf-8")))
    for expected in (
        "from lmstudio.json_api import ChatResponseEndpoint",
        "from lmstudio.async_api import AsyncChannel",
        "._create_channel",
        "._format_auth_message",
        "TokenClient._create_auth_message overrides",
    ):
        assert expected in uses


@pytest.mark.parametrize(
    "source",
    [
        "import lmstudio._sdk_models",
        "from lmstudio._sdk_models import LlmToolUseSettingToolArray",
        "from lmstudio.json_api import PredictionEndpoint",
        "async def f(session):\n    return await session._get_context_length('x')",
        "def f(client):\n    return client.llm._tokenize_text",
        "import lmstudio\ndef f(chat):\n    return chat._messages",
        "from lmstudio import AsyncClient\nclass C(AsyncClient):\n    def _get_session(self): ...",
    ],
)
def test_the_scan_flags_each_kind_of_private_use(source: str) -> None:
    assert private_sdk_uses(source)


def test_the_scan_passes_public_api() -> None:
    source = (
        "from lmstudio import AsyncClient, AsyncLLM, LMStudioError\n"
        "class Engine:\n"
        "    def __init__(self):\n"
        "        self._client = None\n"
        "    async def f(self):\n"
        "        return await AsyncLLM('x', self._client.llm).tokenize('a')\n"
    )
    assert private_sdk_uses(source) == []
