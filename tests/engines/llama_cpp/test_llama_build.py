"""Building llama-cpp-python for the CPU at hand: flags from cpuinfo, never AMX, cached by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentkit.engines.llama_cpp.build import (
    LLAMA_CPP_VERSION,
    cmake_args,
    cpu_flags,
    installed_from,
    wheel_dir,
)

AVX512_AMX = (
    "flags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2 "
    "avx512f avx512vbmi avx512_vnni amx_tile amx_int8\n"
)
AVX2_ONLY = "processor: 0\nflags : fpu sse4_2 avx avx2 fma f16c\n"


def test_flags_are_read_from_cpuinfo() -> None:
    assert {"avx2", "amx_tile"} <= cpu_flags(AVX512_AMX)
    assert cpu_flags("no flags line here") == frozenset()


def test_avx512_machine_gets_avx512_and_never_amx() -> None:
    args = cmake_args(cpu_flags(AVX512_AMX), machine="x86_64")
    assert "-DGGML_NATIVE=OFF" in args and "-DGGML_AVX512=ON" in args
    assert "-DGGML_AVX512_VNNI=ON" in args and "-DGGML_AVX512_BF16=OFF" in args
    assert all(f"-DGGML_AMX_{kind}=OFF" in args for kind in ("TILE", "INT8", "BF16"))
    assert not any("AMX" in arg and arg.endswith("=ON") for arg in args)


def test_avx2_machine_turns_avx512_off() -> None:
    args = cmake_args(cpu_flags(AVX2_ONLY), machine="x86_64")
    assert "-DGGML_AVX2=ON" in args and "-DGGML_FMA=ON" in args
    assert "-DGGML_AVX512=OFF" in args and "-DGGML_AVX_VNNI=OFF" in args


def test_other_architectures_build_natively() -> None:
    assert "-DGGML_NATIVE=ON" in cmake_args([], machine="aarch64")


def test_wheel_cache_is_keyed_by_version_and_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTKIT_CACHE_DIR", str(tmp_path))
    avx512 = wheel_dir(cmake_args(cpu_flags(AVX512_AMX), machine="x86_64"))
    avx2 = wheel_dir(cmake_args(cpu_flags(AVX2_ONLY), machine="x86_64"))
    assert avx512 != avx2 and avx512.parent == tmp_path / "wheels"
    assert avx512.name.startswith(f"llama_cpp_python-{LLAMA_CPP_VERSION}-")
    assert wheel_dir(cmake_args(cpu_flags(AVX2_ONLY)), version="0.0.1") != wheel_dir(
        cmake_args(cpu_flags(AVX2_ONLY))
    )


def test_installed_engine_came_from_a_cached_wheel() -> None:
    source = installed_from()
    assert source is not None and "/wheels/llama_cpp_python-" in source and source.endswith(".whl")
