"""Shared training machinery for the embedded sprites models: seeding, optimiser and schedule, EMA, a
resumable loop with periodic checkpoints, and the model cards written next to the shipped weights.

A stage module (``train_vae.py``, ``train_dit.py``, ``train_cascade.py``) exports ``STAGES: dict[str,
Callable[[StageArgs], dict]]``. A stage builds its model and a ``batch_loss(step) -> {"loss": ..., ...}``
function whose data depend only on ``(seed, step)``, and hands both to :class:`Trainer`; a run that is cut
off resumes from ``.train/<stage>/state.pt`` with the same data stream, so the result matches an
uninterrupted run (up to the thread-count nondeterminism of CPU kernels, see :func:`reproducibility_note`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS_DIR = os.path.join(PACK_ROOT, "weights")
RUNS_DIR = os.path.join(PACK_ROOT, ".train")  # git-ignored scratch: resumable states and logs


@dataclass
class StageArgs:
    """What the CLI hands a stage. ``steps=None`` means the stage's own default; ``quick`` shrinks
    everything for smoke tests (the result is not meant to be shipped)."""

    stage: str
    seed: int = 0
    steps: int | None = None
    out_dir: str = WEIGHTS_DIR
    run_dir: str | None = None  # default: .train/<stage>
    resume: bool = True
    threads: int | None = None
    device: str = "cpu"  # "cuda" (or "cuda:N"): the DiT stages train there
    quick: bool = False
    options: dict[str, str] = field(default_factory=dict)  # --set key=value, stage-specific
    command: str = ""

    @property
    def state_dir(self) -> str:
        return self.run_dir or os.path.join(RUNS_DIR, self.stage)

    def option(self, name: str, default: Any) -> Any:
        """A ``--set name=value`` option converted to ``default``'s type (bool accepts 1/0/true/false)."""
        if name not in self.options:
            return default
        text = self.options[name]
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"--set {name}={text}: expected true or false")
            return text.lower() in ("1", "true", "yes")
        return type(default)(text) if default is not None else text


# -- seeding ------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation; the data stream is seeded per step instead)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A torch generator fixed by ``(seed, step, stream)``: per-step noise that survives a resume."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7919 + stream * 104_729) % 2**63)
    return g


# -- optimiser and schedule ---------------------------------------------------------------------------------
@dataclass
class LoopConfig:
    """Optimisation settings of one run (saved into the card)."""

    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float | None = 1.0
    ema_decay: float | None = None  # e.g. 0.999; None = no EMA
    checkpoint_every_s: float = 180.0
    log_every: int = 50


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup from ~0 over ``warmup`` steps, then cosine down to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params: Iterable[nn.Parameter], loop: LoopConfig) -> torch.optim.AdamW:
    """AdamW; 1-D parameters (norm gains, biases, mixing factors) are not decayed."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": loop.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=loop.lr, betas=loop.betas)


class EMA:
    """Exponential moving average of a module's floating-point state (parameters and buffers)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        # Warm start: early on the average follows the model closely instead of remembering the init.
        decay = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow.state_dict().values(), module.state_dict().values()):
            if s.is_floating_point():
                s.lerp_(p.detach(), 1.0 - decay)
            else:
                s.copy_(p)


# -- the loop -----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a finished run reports: the trained module (EMA when used), losses and timing."""

    model: nn.Module
    steps: int
    wall_time_s: float
    final_losses: dict[str, float]
    history: list[dict[str, float]]
    phases: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else ()
    return {k: float(sum(r[k] for r in rows) / len(rows)) for k in keys}


class Trainer:
    """Runs ``batch_loss(step)`` for ``loop.steps`` steps with AdamW + warmup/cosine, optional EMA, gradient
    clipping, a log line every ``log_every`` steps and a resumable state every ``checkpoint_every_s``.

    ``params`` are the parameters to train (others stay frozen, e.g. VideoLDM's spatial decoder layers).
    ``batch_loss`` must return a dict with a scalar tensor ``"loss"`` (backpropagated); other entries are
    logged. Its data must depend only on the step (and the run's seed) so that a resume replays the stream.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        loop: LoopConfig,
        state_dir: str,
        params: Iterable[nn.Parameter] | None = None,
        resume: bool = True,
        log: Callable[[str], None] | None = None,
        command: str = "",
    ) -> None:
        self.name = name
        self.command = command
        self.model = model
        self.loop = loop
        self.state_dir = state_dir
        self.state_path = os.path.join(state_dir, "state.pt")
        self.params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
        self.optimizer = make_optimizer(self.params, loop)
        self.ema = EMA(model, loop.ema_decay) if loop.ema_decay else None
        self.step = 0
        self.elapsed_s = 0.0
        self.history: list[dict[str, float]] = []
        # One entry per invocation that trained: a run extended by a later, longer --steps is a warm restart
        # of the schedule, and reproducing it needs every command in order.
        self.phases: list[dict[str, Any]] = []
        self._log_file = os.path.join(state_dir, "log.txt")
        self._print = log or (lambda line: print(line, flush=True))
        os.makedirs(state_dir, exist_ok=True)
        if resume and os.path.isfile(self.state_path):
            self._load_state()
        elif not resume and os.path.isfile(self.state_path):
            os.remove(self.state_path)

    def log(self, line: str) -> None:
        self._print(line)
        with open(self._log_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    # -- resumable state ------------------------------------------------------------------------------
    def save_state(self) -> None:
        state = {
            "name": self.name,
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.shadow.state_dict() if self.ema else None,
            "history": self.history,
            "phases": self.phases,
            "loop": dataclasses.asdict(self.loop),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.state_path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)  # never leave a half-written state behind

    def _load_state(self) -> None:
        state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        if state.get("name") != self.name:
            raise RuntimeError(
                f"{self.state_path} belongs to run {state.get('name')!r}, not {self.name!r}; "
                "delete it or pass --no-resume"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.shadow.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])
        self.history = list(state["history"])
        self.phases = list(state.get("phases", []))
        torch.set_rng_state(state["torch_rng"])
        self.log(f"[{self.name}] resumed at step {self.step} ({self.elapsed_s / 60:.1f} min trained)")

    # -- training -------------------------------------------------------------------------------------
    def run(
        self, batch_loss: Callable[[int], dict[str, torch.Tensor]], stop_at: int | None = None
    ) -> TrainResult:
        """Train to ``loop.steps`` (or pause at step ``stop_at``: the state is saved, a later run resumes)."""
        loop = self.loop
        end = loop.steps if stop_at is None else min(stop_at, loop.steps)
        self.model.train()
        window: list[dict[str, float]] = []
        last_save = time.monotonic()
        start = time.monotonic() - self.elapsed_s
        if self.step < end:
            self.phases.append(
                {"command": self.command, "from_step": self.step, "to_step": end, "steps": loop.steps}
            )
        while self.step < end:
            lr = loop.lr * warmup_cosine(self.step, loop.steps, loop.warmup_steps, loop.min_lr_ratio)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            losses = batch_loss(self.step)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"[{self.name}] loss is {loss.item()} at step {self.step}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if loop.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, loop.grad_clip)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model, self.step)
            self.step += 1
            self.elapsed_s = time.monotonic() - start
            window.append(
                {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}
            )
            if self.step % loop.log_every == 0 or self.step == end:
                row = {"step": self.step, "lr": lr, "time_s": round(self.elapsed_s, 1), **_mean_dicts(window)}
                self.history.append(row)
                window = []
                parts = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("step", "time_s"))
                self.log(
                    f"[{self.name}] step {self.step}/{loop.steps} {parts} ({self.elapsed_s / 60:.1f} min)"
                )
            if time.monotonic() - last_save > loop.checkpoint_every_s and self.step < end:
                self.save_state()
                last_save = time.monotonic()
        self.save_state()
        self.model.eval()
        last = self.history[-1] if self.history else {}
        final = {k: v for k, v in last.items() if k not in ("step", "lr", "time_s")}
        trained = self.ema.shadow if self.ema is not None else self.model
        return TrainResult(trained, self.step, self.elapsed_s, final, self.history, self.phases)


# -- cards --------------------------------------------------------------------------------------------------
def machine_description(device: str | torch.device = "cpu") -> str:
    """One line naming where a run happened (cores, threads, torch, the GPU it trained on), for the card."""
    cores = os.cpu_count() or 0
    device = torch.device(device)
    cuda = f", trained on CUDA {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"{platform.machine()} {platform.processor() or 'CPU'}, {cores} cores, torch {torch.__version__} "
        f"with {torch.get_num_threads()} thread(s){cuda}, Python {platform.python_version()}"
    )


def code_revision(*paths: str) -> str:
    """The last commit touching ``paths`` (repo-relative), with ``+changes`` when they have uncommitted edits;
    the card records it because a model (e.g. TSR over the flow interpolation) depends on that code."""
    import subprocess

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", PACK_ROOT, *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        commit = git("log", "-1", "--format=%H", "--", *paths) or "unknown"
        dirty = git("status", "--porcelain", "--", *paths)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' +changes' if dirty else ''}"


def run_facts(
    args: StageArgs,
    loop: LoopConfig,
    result: TrainResult,
    config: Any,
    code_dirs: tuple[str, ...],
    storage: str,
) -> dict[str, Any]:
    """What every stage's card records about its run: seed, steps, loop, config, command, time, machine,
    code revision (of ``code_dirs``), final losses, phases, size and storage."""
    return {
        "seed": args.seed,
        "steps": result.steps,
        "loop": loop,
        "config": config,
        "command": args.command,
        "wall_time_s": round(result.wall_time_s, 1),
        "wall_time_min": round(result.wall_time_s / 60, 1),
        "machine": machine_description(),
        "code_revision": code_revision(*code_dirs),
        "final_losses": result.final_losses,
        "phases": result.phases,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "storage": storage,
    }


def command_line(argv: list[str] | None = None) -> str:
    """The command that reproduces this run, as typed into a shell."""
    args = sys.argv[1:] if argv is None else argv
    return "python -m videocascade.sprites.train " + " ".join(shlex.quote(a) for a in args)


def reproducibility_note(tolerance: str) -> str:
    return (
        "The data stream, initialisation and noise are fixed by the seed (every batch is drawn from "
        "(seed, step)), and a resumed run replays the same stream. PyTorch CPU kernels sum in an order "
        "that depends on the thread count, so the same command with the same --threads gives the same "
        "weights bit for bit, while another --threads differs in the last bits and drifts apart over "
        f"training: 'within noise' means {tolerance}."
    )


def write_card(path: str, card: dict[str, Any]) -> None:
    """Write a model card (JSON) next to the weights; floats are rounded for readability."""

    def tidy(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}")
        if isinstance(value, dict):
            return {str(k): tidy(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [tidy(v) for v in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return tidy(dataclasses.asdict(value))
        return value

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tidy(card), f, indent=2)
        f.write("\n")


def weights_paths(out_dir: str, stem: str) -> tuple[str, str]:
    """``(<out_dir>/<stem>.safetensors, <out_dir>/<stem>.card.json)``."""
    return os.path.join(out_dir, f"{stem}.safetensors"), os.path.join(out_dir, f"{stem}.card.json")


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR (dB) between two tensors of values in [0, peak], over all elements."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)
