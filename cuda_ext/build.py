"""Build and load the compiled attention extension, once per (torch, CUDA, GPU arch, source) combination.

``python -m videocascade.cuda_ext build`` compiles ahead of time; otherwise the first call that needs the
kernel compiles it (about a minute) into ``~/.cache/videocascade/cuda_ext/<key>/``, under a file lock so
that two processes never build the same directory at once. Later processes import the built library
directly (no nvcc or ninja needed then). Nothing here runs at import time, and nothing is installed.

Why the kernel cannot be used is always a one-line reason that names the fix (``unavailable_reason``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
SOURCES = ("attention_fwd.cu", "binding.cpp")
HEADERS = ("attention_fwd.h",)
CUDA_FLAGS = ("-O3", "--use_fast_math", "-lineinfo")
CXX_FLAGS = ("-O3",)
MIN_CAPABILITY = (8, 0)  # cp.async, ldmatrix and bf16 mma.sync

DISABLE_ENV = "VIDEOCASCADE_DISABLE_CUDA_EXT"  # "1": never use the compiled kernel
AUTOBUILD_ENV = "VIDEOCASCADE_CUDA_EXT_AUTOBUILD"  # "0": never compile on first use, only load
CACHE_ENV = "VIDEOCASCADE_CACHE_DIR"

READY, BUILDABLE, UNAVAILABLE = "ready", "buildable", "unavailable"
BUILD_INFO = "build_info.json"
BUILD_FAILED = "build_failed.txt"


class ExtensionUnavailable(RuntimeError):
    """The compiled kernel cannot be loaded here; the message says why and how to fix it."""


@dataclass(frozen=True)
class Toolchain:
    """What this machine offers for building and running the kernel (probed once per device)."""

    torch_version: str
    torch_cuda: str | None  # torch.version.cuda; None for CPU-only (and ROCm) builds
    hip: str | None  # torch.version.hip
    gpu_name: str | None
    capability: tuple[int, int] | None
    nvcc: str | None
    nvcc_version: str | None  # "13.0"
    ninja: bool


@dataclass(frozen=True)
class Decision:
    state: str  # READY | BUILDABLE | UNAVAILABLE
    reason: str


def decide(
    tc: Toolchain,
    *,
    built: bool,
    failed_log: Path | None = None,
    disabled: bool = False,
    autobuild: bool = True,
) -> Decision:
    """Whether the kernel can be used, will be built on first use, or cannot be used, and why."""
    if disabled:
        return Decision(UNAVAILABLE, f"disabled by {DISABLE_ENV}=1 (unset it to use the compiled kernel)")
    if tc.hip is not None:
        return Decision(UNAVAILABLE, f"PyTorch {tc.torch_version} is a ROCm build; the kernel is CUDA-only")
    if tc.torch_cuda is None:
        return Decision(
            UNAVAILABLE,
            f"PyTorch {tc.torch_version} is a CPU-only build; install a CUDA build of PyTorch to use the kernel",
        )
    if tc.capability is None:
        return Decision(
            UNAVAILABLE, "no CUDA GPU is visible to PyTorch (check the driver and CUDA_VISIBLE_DEVICES)"
        )
    if tc.capability < MIN_CAPABILITY:
        major, minor = tc.capability
        return Decision(
            UNAVAILABLE,
            f"{tc.gpu_name} is sm_{major}{minor}; the kernel needs sm_80 or newer (Ampere or later)",
        )
    if built:
        return Decision(READY, "built for this GPU")
    if failed_log is not None:
        return Decision(
            UNAVAILABLE,
            f"an earlier build failed (log: {failed_log}); fix the cause, then run "
            "`python -m videocascade.cuda_ext build --force`",
        )
    if not autobuild:
        return Decision(
            UNAVAILABLE, f"not built yet and {AUTOBUILD_ENV}=0; run `python -m videocascade.cuda_ext build`"
        )
    if tc.nvcc is None:
        return Decision(
            UNAVAILABLE,
            f"nvcc not found: install the CUDA {tc.torch_cuda} toolkit (or set CUDA_HOME), then run "
            "`python -m videocascade.cuda_ext build`",
        )
    if tc.nvcc_version is not None and tc.nvcc_version.split(".")[0] != tc.torch_cuda.split(".")[0]:
        return Decision(
            UNAVAILABLE,
            f"nvcc is CUDA {tc.nvcc_version} but PyTorch was built with CUDA {tc.torch_cuda}; install a "
            "toolkit of the same major version or point CUDA_HOME at one",
        )
    if not tc.ninja:
        return Decision(UNAVAILABLE, "ninja not found (PyTorch builds extensions with it): pip install ninja")
    return Decision(
        BUILDABLE,
        "not built yet: compiles once on first use (about a minute), or run `python -m videocascade.cuda_ext build`",
    )


# ---------------------------------------------------------------------------------------------------------
# Probing (cached: the dispatcher asks on every CUDA call)
# ---------------------------------------------------------------------------------------------------------

_TOOLCHAINS: dict[int | None, Toolchain] = {}
_NVCC: tuple[str | None, str | None] | None = None


def find_nvcc() -> str | None:
    """nvcc the way PyTorch finds it: $CUDA_HOME / $CUDA_PATH, then PATH, then /usr/local/cuda."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root:
            candidate = Path(root) / "bin" / ("nvcc.exe" if sys.platform == "win32" else "nvcc")
            if candidate.is_file():
                return str(candidate)
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.is_file() else None


def nvcc_version(nvcc: str) -> str | None:
    try:
        text = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+\.\d+)", text)
    return match.group(1) if match else None


def _nvcc() -> tuple[str | None, str | None]:
    global _NVCC
    if _NVCC is None:
        path = find_nvcc()
        _NVCC = (path, nvcc_version(path) if path else None)
    return _NVCC


def _device_index(device: torch.device | int | str | None) -> int | None:
    if device is None:
        return torch.cuda.current_device() if torch.cuda.is_available() else None
    if isinstance(device, int):
        return device
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


def probe(device: torch.device | int | str | None = None) -> Toolchain:
    """Toolchain facts for `device` (default: the current CUDA device). nvcc is only looked for when needed."""
    index = _device_index(device) if torch.cuda.is_available() else None
    if index in _TOOLCHAINS:
        return _TOOLCHAINS[index]
    gpu_name = capability = None
    if index is not None:
        gpu_name = torch.cuda.get_device_name(index)
        capability = tuple(torch.cuda.get_device_capability(index))
    nvcc, version = _nvcc() if torch.version.cuda is not None else (None, None)
    tc = Toolchain(
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
        hip=getattr(torch.version, "hip", None),
        gpu_name=gpu_name,
        capability=capability,
        nvcc=nvcc,
        nvcc_version=version,
        ninja=shutil.which("ninja") is not None,
    )
    _TOOLCHAINS[index] = tc
    return tc


# ---------------------------------------------------------------------------------------------------------
# Where builds live
# ---------------------------------------------------------------------------------------------------------


def source_hash() -> str:
    """Hash of everything that changes the binary: sources, headers and flags."""
    digest = hashlib.sha256()
    for name in (*SOURCES, *HEADERS):
        digest.update(name.encode())
        digest.update((SOURCE_DIR / name).read_bytes())
    digest.update(repr((CUDA_FLAGS, CXX_FLAGS)).encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "cuda_ext"
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None
    )
    return Path(base or Path.home() / ".cache").expanduser() / "videocascade" / "cuda_ext"


def build_key(tc: Toolchain) -> str:
    """``torch<ver>-cu<ver>-sm<arch>-<source hash>``: a new directory whenever any of them changes."""
    arch = f"{tc.capability[0]}{tc.capability[1]}" if tc.capability else "none"
    key = f"torch{tc.torch_version}-cu{tc.torch_cuda or 'none'}-sm{arch}-{source_hash()}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def build_directory(tc: Toolchain) -> Path:
    return cache_root() / build_key(tc)


def module_name(tc: Toolchain) -> str:
    arch = f"{tc.capability[0]}{tc.capability[1]}" if tc.capability else "none"
    return f"videocascade_attention_sm{arch}_{source_hash()[:8]}"


def _build_info(directory: Path) -> dict | None:
    """The record a finished build leaves, or None when there is no usable build in `directory`."""
    try:
        info = json.loads((directory / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not (directory / str(info.get("library", ""))).is_file():
        return None
    return info


def _built_library(directory: Path) -> Path | None:
    info = _build_info(directory)
    return None if info is None else directory / info["library"]


def _failed_log(directory: Path) -> Path | None:
    path = directory / BUILD_FAILED
    return path if path.is_file() else None


def status(device: torch.device | int | str | None = None) -> tuple[Decision, Toolchain, Path | None]:
    """The decision for `device`, the toolchain behind it, and the build directory (None without a GPU)."""
    tc = probe(device)
    directory = build_directory(tc) if tc.capability is not None and tc.torch_cuda is not None else None
    decision = decide(
        tc,
        built=directory is not None and _built_library(directory) is not None,
        failed_log=_failed_log(directory) if directory is not None else None,
        disabled=os.environ.get(DISABLE_ENV, "") not in ("", "0"),
        autobuild=os.environ.get(AUTOBUILD_ENV, "1") != "0",
    )
    return decision, tc, directory


_REASONS: dict[object, str | None] = {}


def unavailable_reason(device: torch.device | int | str | None = None) -> str | None:
    """None when the kernel is built or can be built on first use; else why not.

    Cached per `device` argument (the dispatcher asks on every CUDA call); never compiles.
    """
    try:
        return _REASONS[device]
    except KeyError:
        pass
    decision, _, _ = status(device)
    reason = decision.reason if decision.state == UNAVAILABLE else None
    _REASONS[device] = reason
    return reason


# ---------------------------------------------------------------------------------------------------------
# Build and load
# ---------------------------------------------------------------------------------------------------------

_MODULES: dict[str, ModuleType] = {}  # by module name (one per GPU architecture)
_MODULE_FOR_DEVICE: dict[object, ModuleType] = {}  # by the `device` argument of load_extension


@contextlib.contextmanager
def _file_lock(path: Path):
    """Exclusive lock held by this process until the block ends; released by the OS if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ~10 s; keep waiting for the other build
                    time.sleep(1.0)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _import_library(name: str, library: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, library)
    if spec is None or spec.loader is None:
        raise ExtensionUnavailable(f"cannot import the built kernel {library}; rebuild with --force")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(tc: Toolchain, directory: Path, verbose: bool) -> Path:
    """Compile into `directory` (caller holds the lock) and return the library path."""
    from torch.utils import cpp_extension  # slow import; only when actually building

    directory.mkdir(parents=True, exist_ok=True)
    # PyTorch's own build lock; one left by a killed build would make load() wait forever. Ours is held.
    (directory / "lock").unlink(missing_ok=True)
    name = module_name(tc)
    arch = f"{tc.capability[0]}.{tc.capability[1]}"
    previous = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch  # only this GPU's architecture: faster build, native code
    try:
        module = cpp_extension.load(
            name=name,
            sources=[str(SOURCE_DIR / source) for source in SOURCES],
            extra_cflags=list(CXX_FLAGS),
            extra_cuda_cflags=list(CUDA_FLAGS),
            extra_include_paths=[str(SOURCE_DIR)],
            build_directory=str(directory),
            verbose=verbose,
        )
    finally:
        if previous is None:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = previous
    library = Path(module.__file__)
    info = {
        "library": library.name,
        "module": module.__name__,  # PyTorch may add a version suffix to the name it was given
        "torch": tc.torch_version,
        "cuda": tc.torch_cuda,
        "nvcc": tc.nvcc_version,
        "arch": arch,
        "gpu": tc.gpu_name,
        "source_hash": source_hash(),
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (directory / BUILD_INFO).write_text(json.dumps(info, indent=2))
    _MODULES[name] = module
    return library


def _forget_cached_decisions() -> None:
    _REASONS.clear()


def load_extension(
    device: torch.device | int | str | None = None, *, build_if_missing: bool = True
) -> ModuleType:
    """The extension module for `device`, compiling it first if needed. Raises ExtensionUnavailable."""
    module = _MODULE_FOR_DEVICE.get(device)  # the per-call fast path: no file system access
    if module is None:
        module = _load_extension(device, build_if_missing)
        _MODULE_FOR_DEVICE[device] = module
    return module


def _load_extension(device: torch.device | int | str | None, build_if_missing: bool) -> ModuleType:
    decision, tc, directory = status(device)
    if decision.state == UNAVAILABLE or directory is None:
        raise ExtensionUnavailable(decision.reason)
    name = module_name(tc)
    if name in _MODULES:
        return _MODULES[name]
    if decision.state == BUILDABLE and not build_if_missing:
        raise ExtensionUnavailable(decision.reason)
    with _file_lock(cache_root() / f"{directory.name}.lock"):
        library = _built_library(directory)  # another process may have finished while we waited
        if library is None:
            if _failed_log(directory) is not None:
                raise ExtensionUnavailable(status(device)[0].reason)
            logger.warning(
                "videocascade: compiling the attention kernel for %s (sm_%d%d) once; this takes about a "
                "minute. Later runs load it from %s",
                tc.gpu_name,
                *tc.capability,
                directory,
            )
            try:
                library = _compile(tc, directory, verbose=False)
            except Exception as exc:
                log = directory / BUILD_FAILED
                directory.mkdir(parents=True, exist_ok=True)
                log.write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
                _forget_cached_decisions()
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ExtensionUnavailable(
                    f"building the attention kernel failed ({first_line}); full log: {log}"
                ) from exc
            _forget_cached_decisions()
            return _MODULES[name]
    info = _build_info(directory) or {}
    module = _import_library(str(info.get("module", name)), library)
    _MODULES[name] = module
    return module


def build(
    device: torch.device | int | str | None = None, *, force: bool = False, verbose: bool = True
) -> Path:
    """Compile now (ahead of time) for `device`; `force` rebuilds even when a build or a failure exists."""
    tc = probe(device)
    decision = decide(tc, built=False, disabled=False, autobuild=True)
    if decision.state == UNAVAILABLE:
        raise ExtensionUnavailable(decision.reason)
    directory = build_directory(tc)
    with _file_lock(cache_root() / f"{directory.name}.lock"):
        if force and directory.exists():
            shutil.rmtree(directory)
        (directory / BUILD_FAILED).unlink(missing_ok=True)
        library = _built_library(directory)
        if library is None:
            try:
                library = _compile(tc, directory, verbose=verbose)
            except Exception as exc:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / BUILD_FAILED).write_text(
                    f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
                )
                raise
            finally:
                _forget_cached_decisions()
    return library
