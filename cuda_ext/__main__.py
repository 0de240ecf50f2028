"""``python -m videocascade.cuda_ext build | status | check``.

build   compile the attention kernel now for this GPU (instead of on first use)
status  what ``backend="auto"`` would pick here, and why
check   compile the kernel source with plain nvcc for sm_80 and sm_90 (what CI runs)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from . import build, dispatch


def _status() -> int:
    decision, tc, directory = build.status()
    print(f"torch {tc.torch_version} (CUDA {tc.torch_cuda or 'none'})")
    if tc.capability is not None:
        print(f"GPU: {tc.gpu_name} (sm_{tc.capability[0]}{tc.capability[1]})")
    else:
        print("GPU: none visible")
    if tc.torch_cuda is not None:
        print(f"nvcc: {tc.nvcc or 'not found'}" + (f" (CUDA {tc.nvcc_version})" if tc.nvcc_version else ""))
        print(f"ninja: {'yes' if tc.ninja else 'not found'}")
    print(f"compiled kernel: {decision.state}: {decision.reason}")
    if directory is not None:
        print(f"build directory: {directory}")
    module, why_not = dispatch._sage_module()
    print(f"sageattention: {'importable' if module is not None else why_not}")
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    dtypes = (torch.bfloat16, torch.float16) if device.type == "cuda" else (torch.float32,)
    print(f"auto picks (on {device.type}):")
    for dtype in dtypes:
        for head_dim in (64, 128):
            q = torch.zeros(1, 1, 16, head_dim, device=device, dtype=dtype)
            for label, mask in (
                ("no mask", None),
                ("key mask", torch.ones(1, 1, 1, 16, dtype=torch.bool, device=device)),
            ):
                name, why = dispatch.choose_backend(q, q, q, mask)
                dtype_name = str(dtype).replace("torch.", "")
                print(f"  {dtype_name} head_dim {head_dim}, {label}: {name}" + (f" ({why})" if why else ""))
    return 0


def _build(force: bool) -> int:
    try:
        library = build.build(force=force, verbose=True)
    except build.ExtensionUnavailable as exc:
        print(f"cannot build the attention kernel: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"building the attention kernel failed: {exc}", file=sys.stderr)
        return 1
    print(f"built: {library}")
    return 0


def _check(archs: list[str]) -> int:
    script = Path(__file__).resolve().parent / "check_compile.sh"
    return subprocess.run(["bash", str(script), *archs], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m videocascade.cuda_ext", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="compile the attention kernel for this GPU now")
    build_cmd.add_argument(
        "--force", action="store_true", help="rebuild even if a build (or a failure) exists"
    )
    commands.add_parser("status", help="what backend='auto' picks here, and why")
    check_cmd = commands.add_parser("check", help="compile the kernel with plain nvcc (CI)")
    check_cmd.add_argument("archs", nargs="*", help="compute capabilities without the dot (default: 80 90)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args.force)
    if args.command == "status":
        return _status()
    return _check(args.archs)


if __name__ == "__main__":
    sys.exit(main())
