"""Building the attention kernel: the decisions (no GPU needed), cache layout, lock and CLI."""

import threading
import time
from dataclasses import replace

import pytest
import torch
from videocascade.cuda_ext import __main__ as cli
from videocascade.cuda_ext import build

# A machine that has everything: CUDA torch, an H100, matching nvcc, ninja.
READY_MACHINE = build.Toolchain(
    torch_version="2.11.0+cu130",
    torch_cuda="13.0",
    hip=None,
    gpu_name="NVIDIA H100 80GB HBM3",
    capability=(9, 0),
    nvcc="/usr/local/cuda/bin/nvcc",
    nvcc_version="13.0",
    ninja=True,
)


def test_everything_present_builds_on_first_use():
    decision = build.decide(READY_MACHINE, built=False)
    assert decision.state == build.BUILDABLE
    assert "python -m videocascade.cuda_ext build" in decision.reason


def test_an_existing_build_is_used_even_without_nvcc():
    decision = build.decide(replace(READY_MACHINE, nvcc=None, nvcc_version=None, ninja=False), built=True)
    assert decision.state == build.READY


@pytest.mark.parametrize(
    ("machine", "built", "expected"),
    [
        (replace(READY_MACHINE, torch_version="2.13.0+cpu", torch_cuda=None), True, "CPU-only build"),
        (replace(READY_MACHINE, hip="6.2", torch_cuda=None), True, "ROCm"),
        (replace(READY_MACHINE, gpu_name=None, capability=None), True, "no CUDA GPU is visible"),
        (
            replace(READY_MACHINE, gpu_name="Tesla T4", capability=(7, 5)),
            True,
            "Tesla T4 is sm_75; the kernel needs sm_80",
        ),
        (
            replace(READY_MACHINE, nvcc=None, nvcc_version=None),
            False,
            "nvcc not found: install the CUDA 13.0 toolkit",
        ),
        (
            replace(READY_MACHINE, nvcc_version="12.4"),
            False,
            "nvcc is CUDA 12.4 but PyTorch was built with CUDA 13.0",
        ),
        (replace(READY_MACHINE, ninja=False), False, "pip install ninja"),
    ],
)
def test_reasons_name_the_cause_and_the_fix(machine, built, expected):
    decision = build.decide(machine, built=built)
    assert decision.state == build.UNAVAILABLE
    assert expected in decision.reason


def test_a_failed_build_is_not_retried_on_every_run(tmp_path):
    log = tmp_path / build.BUILD_FAILED
    decision = build.decide(READY_MACHINE, built=False, failed_log=log)
    assert decision.state == build.UNAVAILABLE
    assert str(log) in decision.reason and "build --force" in decision.reason


def test_switches_to_disable_the_kernel_or_its_automatic_build():
    assert "VIDEOCASCADE_DISABLE_CUDA_EXT=1" in build.decide(READY_MACHINE, built=True, disabled=True).reason
    no_autobuild = build.decide(READY_MACHINE, built=False, autobuild=False)
    assert (
        no_autobuild.state == build.UNAVAILABLE and "VIDEOCASCADE_CUDA_EXT_AUTOBUILD=0" in no_autobuild.reason
    )
    assert build.decide(READY_MACHINE, built=True, autobuild=False).state == build.READY


def test_this_machine_without_a_gpu_falls_back_with_a_reason():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    decision, toolchain, directory = build.status()
    assert decision.state == build.UNAVAILABLE and directory is None
    assert toolchain.capability is None
    assert build.unavailable_reason() == decision.reason
    with pytest.raises(build.ExtensionUnavailable, match="CPU-only|no CUDA GPU"):
        build.load_extension()


def test_cache_directory_depends_on_torch_cuda_arch_and_sources(tmp_path, monkeypatch):
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path))
    directory = build.build_directory(READY_MACHINE)
    assert directory.parent == tmp_path / "cuda_ext"
    name = directory.name
    assert "torch2.11.0_cu130" in name and "cu13.0" in name and "sm90" in name
    assert name.endswith(build.source_hash()) and len(build.source_hash()) == 16
    assert build.build_directory(replace(READY_MACHINE, capability=(8, 6))) != directory
    assert build.build_directory(replace(READY_MACHINE, torch_version="2.12.0+cu130")) != directory
    assert build.module_name(READY_MACHINE).startswith("videocascade_attention_sm90_")


def test_default_cache_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(build.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.cache_root() == tmp_path / "videocascade" / "cuda_ext"


def test_build_lock_serialises_two_builders(tmp_path):
    lock = tmp_path / "key.lock"
    events = []

    def builder(name):
        with build._file_lock(lock):
            events.append(f"{name} start")
            time.sleep(0.2)
            events.append(f"{name} end")

    threads = [threading.Thread(target=builder, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Whoever went first finished before the other started.
    assert events[0].split()[0] == events[1].split()[0]
    assert events[2].split()[0] == events[3].split()[0]


def test_status_command_prints_the_decision(capsys):
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "compiled kernel:" in out and "auto picks" in out
    if not torch.cuda.is_available():
        assert "sdpa (tensors are on the CPU)" in out


def test_build_command_without_a_gpu_explains_and_fails(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cli.main(["build"]) == 1
    assert "cannot build the attention kernel:" in capsys.readouterr().err
