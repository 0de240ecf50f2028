"""cuda_ext/check_compile.sh: the kernel source compiles with plain nvcc (no torch) for sm_80 and sm_90."""

import shutil
import subprocess
from pathlib import Path

import pytest
import videocascade.cuda_ext

CHECK_SCRIPT = Path(videocascade.cuda_ext.__file__).with_name("check_compile.sh")

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")


@needs_nvcc
@pytest.mark.slow
def test_kernel_compiles_for_sm80_and_sm90():
    result = subprocess.run(["bash", str(CHECK_SCRIPT)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sm_80 ok" in result.stdout and "sm_90 ok" in result.stdout


@needs_nvcc
def test_compile_check_fails_loudly_for_an_unsupported_arch():
    result = subprocess.run(["bash", str(CHECK_SCRIPT), "75"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "sm_75 FAILED" in result.stderr
    assert "needs sm_80 or newer" in result.stdout
