"""``python -m videocascade.sprites.train STAGE [--seed N] [--steps N] [--out DIR] ...``: train an embedded
model on the sprites world and write ``weights/<stem>.safetensors`` plus its card.

Stages come from the modules in ``STAGE_MODULES`` (each exports ``STAGES: dict[str, Callable[[StageArgs],
dict]]``); a module that does not exist yet is reported, not fatal. ``python -m videocascade.sprites.train
list`` prints the stages. A run saves a resumable state under ``.train/<stage>/`` every few minutes; running
the same command again continues from it (``--no-resume`` starts over).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

import torch

from .train_common import WEIGHTS_DIR, StageArgs, command_line

STAGE_MODULES = ("train_vae", "train_dit", "train_cascade")


def discover_stages() -> tuple[dict[str, Callable[[StageArgs], dict]], dict[str, str], set[str]]:
    """``(stages, unavailable, on_device)``: every stage name -> function, module -> why it could not be
    imported, and the stages that can train on a GPU (a module's ``DEVICE_STAGES``)."""
    stages: dict[str, Callable[[StageArgs], dict]] = {}
    unavailable: dict[str, str] = {}
    on_device: set[str] = set()
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{name}":
                raise  # the module exists but one of its imports is missing: a real error
            unavailable[name] = f"sprites/{name}.py does not exist yet"
            continue
        for stage, fn in module.STAGES.items():
            if stage in stages:
                raise RuntimeError(f"stage {stage!r} is defined twice (again in sprites/{name}.py)")
            stages[stage] = fn
        on_device |= set(getattr(module, "DEVICE_STAGES", ()))
    return stages, unavailable, on_device


def _parse_set(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        options[key.strip()] = value.strip()
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m videocascade.sprites.train",
        description="Train an embedded sprites-world model; writes weights/<stem>.safetensors and its card.",
    )
    parser.add_argument("stage", help="what to train ('list' prints the stages)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and data stream")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the stage's)")
    parser.add_argument(
        "--out", default=WEIGHTS_DIR, help="folder for the weights and card (default weights/)"
    )
    parser.add_argument("--run-dir", default=None, help="resumable state and log (default .train/<stage>/)")
    parser.add_argument("--no-resume", action="store_true", help="ignore a saved state and start over")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: where a DiT stage trains")
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test run (not for shipping)")
    parser.add_argument(
        "--set", dest="options", action="append", default=[], metavar="KEY=VALUE", help="stage option"
    )
    return parser


def check_device(device: str, stage: str, on_device: set[str]) -> None:
    """Clear errors for a ``--device`` this run cannot use, before any data is made."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise SystemExit(f"--device {device!r}: expected cpu, cuda or cuda:N") from None
    if kind == "cpu":
        return
    if kind != "cuda":
        raise SystemExit(f"--device {device!r}: the training scripts run on cpu or cuda")
    if stage not in on_device:
        raise SystemExit(
            f"--device {device}: stage {stage!r} trains on the CPU only; the DiT stages "
            f"({', '.join(sorted(on_device))}) take --device cuda"
        )
    if not torch.cuda.is_available():
        raise SystemExit(
            f"--device {device}: torch {torch.__version__} sees no CUDA GPU here; leave --device out to train "
            "on the CPU"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    stages, unavailable, on_device = discover_stages()
    if args.stage == "list":
        for name in sorted(stages):
            print(name)
        for module, why in unavailable.items():
            print(f"({module}: {why})")
        return 0
    if args.stage not in stages:
        missing = "".join(f"; {why}, so its stages are unavailable" for why in unavailable.values())
        raise SystemExit(f"unknown stage {args.stage!r}; known stages: {', '.join(sorted(stages))}{missing}")
    check_device(args.device, args.stage, on_device)
    os.environ.setdefault("TQDM_DISABLE", "1")  # library progress bars would flood the training logs
    if args.threads:
        torch.set_num_threads(args.threads)
        try:  # OpenCV (optical flow in the TSR data) has its own thread pool
            import cv2

            cv2.setNumThreads(args.threads)
        except ImportError:
            pass
    stage_args = StageArgs(
        stage=args.stage,
        seed=args.seed,
        steps=args.steps,
        out_dir=args.out,
        run_dir=args.run_dir,
        resume=not args.no_resume,
        threads=args.threads,
        device=args.device,
        quick=args.quick,
        options=_parse_set(args.options),
        command=command_line(argv),
    )
    summary = stages[args.stage](stage_args)
    for key, value in (summary or {}).items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
