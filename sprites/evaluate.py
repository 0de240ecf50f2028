"""Evaluate the embedded models through the example workflows, by measuring the videos they make.

``python -m videocascade.sprites.evaluate [--workflow makeavideo|sora|videoldm|all] [--prompts N]
[--split heldout|seen|both]`` renders prompts through the example workflow (in-process runner, prompt and
seed set per run as ``--set`` would), reads each saved video back from its file and measures it with
``sprites.measure``: the object's colour, shape and motion against the prompt's (``parse_caption``), and
temporal consistency (the object is there in every frame and its area does not flicker). Seen and
held-out colour x shape x motion combinations are scored separately. It prints a markdown table and
writes a JSON report with every clip's prompt, seed, measurement and score.

Prompts are the canonical wording of one-object specs ("a red circle moving left"): ``heldout`` cycles
through the 66 held-out combinations, ``seen`` draws combinations of the training split.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .captions import canonical_caption, parse_caption
from .measure import label_pixels, measure_clip
from .world import COLORS, HELD_OUT_COMBINATIONS, ClipSpec, random_clip_spec

# A clip is temporally consistent when the prompted object is found in every frame and its area changes
# smoothly: no frame's coverage departs from the geometric mean of its two neighbours' by more than this
# log-ratio (about 35%). Renders of the world, growing and shrinking ones included, stay well below it at
# 9 frames of 32x32 and above; an object that fades or blinks for a frame goes far above it.
MAX_FLICKER = 0.3
SPLIT_NAMES = ("seen", "heldout")


# ----------------------------------------------------------------------------------------------------------
# Prompts


@dataclass(frozen=True)
class EvalPrompt:
    prompt: str
    split: str  # "seen" or "heldout"
    seed: int  # the workflow's noise seed
    spec: dict  # the world spec the prompt was written from (for the report)


def evaluation_prompts(
    split: str, count: int, seed: int = 0, fps: float = 8.0, frames: int = 17
) -> list[EvalPrompt]:
    """``count`` one-object prompts of ``split``; the same arguments give the same prompts and seeds.

    ``heldout`` walks through the held-out combinations in a shuffled order (each used about equally
    often); ``seen`` draws from the training split.
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
    rng = random.Random(f"evaluate:{split}:{seed}")
    duration = max(frames / fps, 0.5)
    combos = sorted(HELD_OUT_COMBINATIONS)
    rng.shuffle(combos)
    prompts = []
    for i in range(count):
        if split == "heldout":
            wanted = combos[i % len(combos)]
            spec = _spec_with(wanted, rng, duration)
        else:
            spec = random_clip_spec(rng, "train", num_objects=1, duration=duration)
        prompts.append(EvalPrompt(canonical_caption(spec), split, rng.randrange(2**31), spec.to_dict()))
    return prompts


def _spec_with(triple: tuple[str, str, str], rng: random.Random, duration: float) -> ClipSpec:
    """A held-out spec whose object is ``triple`` (drawn from the world's own held-out distribution)."""
    for _ in range(10000):
        spec = random_clip_spec(rng, "heldout", num_objects=1, duration=duration)
        if spec.triples[0] == triple:
            return spec
    raise RuntimeError(f"no held-out spec with {triple}")


# ----------------------------------------------------------------------------------------------------------
# Scoring one clip


@dataclass
class ClipScore:
    prompt: str
    expected: list[tuple[str, str, str | None]]
    measured: list[tuple[str, str, str]]
    color: bool
    shape: bool
    motion: bool
    persistent: bool  # the prompted object is found in every frame
    flicker: float  # largest |log| ratio of a frame's coverage to its neighbours' (nan when absent)
    extra_objects: int  # measured objects beyond the prompted ones
    split: str = ""
    seed: int = 0
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def all_three(self) -> bool:
        return self.color and self.shape and self.motion

    @property
    def consistent(self) -> bool:
        return self.persistent and self.flicker <= MAX_FLICKER


def _coverage_series(labels: np.ndarray, color: str, min_interior_pixels: int = 2) -> tuple[np.ndarray, bool]:
    """Per-frame coverage of ``color`` and whether it is present (with interior pixels) in every frame."""
    from .measure import _interior

    mask = labels == list(COLORS).index(color)
    coverage = mask.mean((1, 2))
    present = _interior(mask).sum((1, 2)) >= min_interior_pixels
    return coverage, bool(present.all())


def flicker_of(coverage: np.ndarray) -> float:
    """Largest ``|log(c[t] / sqrt(c[t-1] * c[t+1]))|`` over a coverage series: 0 for steady or smoothly
    (geometrically) changing area, large when one frame jumps away from its neighbours."""
    if coverage.size < 3:
        return 0.0
    if coverage.min() <= 0:
        return math.inf
    logs = np.log(coverage)
    return float(np.abs(logs[1:-1] - 0.5 * (logs[:-2] + logs[2:])).max())


def score_clip(frames: torch.Tensor | np.ndarray, prompt: str) -> ClipScore:
    """Score frames ``[N, H, W, 3]`` in [0, 1] against the prompt.

    Objects of the prompt are matched to measured ones by colour first (among as many of the largest
    measured objects as the prompt names); an object whose colour is missing is compared, for shape and
    motion, with the largest measured object left over, so each attribute is judged on its own.
    """
    expected = parse_caption(prompt)
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().float().numpy()
    measured = measure_clip(frames)
    labels = label_pixels(frames)
    candidates = list(measured[: len(expected)])
    by_color = {m[0]: m for m in candidates}
    matched: list[tuple[str, str, str] | None] = []
    for color, _, _ in expected:
        found = by_color.pop(color, None)
        if found is not None:
            candidates.remove(found)
        matched.append(found)
    for i, found in enumerate(matched):
        if found is None and candidates:
            matched[i] = candidates.pop(0)

    color_ok = shape_ok = motion_ok = persistent = True
    flickers = []
    for (color, shape, motion), got in zip(expected, matched):
        if got is None:
            color_ok = shape_ok = motion_ok = persistent = False
            flickers.append(math.nan)
            continue
        color_ok &= got[0] == color
        shape_ok &= got[1] == shape
        motion_ok &= motion is None or got[2] == motion
        coverage, present = _coverage_series(labels, got[0])
        persistent &= present and got[0] == color
        flickers.append(flicker_of(coverage))
    return ClipScore(
        prompt=prompt,
        expected=expected,
        measured=measured,
        color=bool(color_ok),
        shape=bool(shape_ok),
        motion=bool(motion_ok),
        persistent=bool(persistent),
        flicker=float(max(flickers)) if flickers else math.nan,
        extra_objects=max(0, len(measured) - len(expected)),
    )


def summarize(scores: list[ClipScore]) -> dict[str, float]:
    """Accuracies (fractions) over clips: colour, shape, motion, all three, consistency."""
    n = len(scores)
    if n == 0:
        return {"clips": 0}

    def rate(values) -> float:
        return round(sum(bool(v) for v in values) / n, 4)

    flickers = [s.flicker for s in scores if math.isfinite(s.flicker)]
    return {
        "clips": n,
        "color": rate(s.color for s in scores),
        "shape": rate(s.shape for s in scores),
        "motion": rate(s.motion for s in scores),
        "all_three": rate(s.all_three for s in scores),
        "consistent": rate(s.consistent for s in scores),
        "persistent": rate(s.persistent for s in scores),
        "mean_flicker": round(float(np.mean(flickers)), 4) if flickers else math.nan,
        "extra_objects": rate(s.extra_objects > 0 for s in scores),
    }


# ----------------------------------------------------------------------------------------------------------
# Rendering prompts through a workflow

# Evaluation name -> example workflow stem (the API twin ``api/<stem>_api.json`` is used when present).
WORKFLOWS: dict[str, str] = {
    "makeavideo": "makeavideo_cascade",
    "sora": "sora_style_t2v",
    "videoldm": "videoldm",
}
VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".mkv", ".mov")


def examples_dir() -> str:
    from ..runtime.model_paths import PACK_ROOT

    return os.path.join(PACK_ROOT, "example_workflows")


def workflow_file(name: str) -> str:
    """The example workflow file of an evaluation name (or a path to any workflow file)."""
    if os.path.isfile(name):
        return os.path.abspath(name)
    if name not in WORKFLOWS:
        raise ValueError(f"unknown workflow {name!r}; choose one of {', '.join(WORKFLOWS)} or give a file")
    stem = WORKFLOWS[name]
    for candidate in (os.path.join("api", f"{stem}_api.json"), f"{stem}.json"):
        path = os.path.join(examples_dir(), candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"example workflow {stem}(_api).json not found in {examples_dir()}")


@dataclass(frozen=True)
class PromptInputs:
    """Where a text-to-video workflow takes its prompt and seed: node ids of the sampler's positive text
    node and of the sampler."""

    text_node: str
    sampler_node: str


def find_prompt_inputs(prompt_graph: dict[str, dict]) -> PromptInputs:
    """The single VC DiT Sampler and the VC Text Encode node feeding its ``positive`` input."""
    samplers = [nid for nid, node in prompt_graph.items() if node.get("class_type") == "VCDiTSampler"]
    if len(samplers) != 1:
        raise ValueError(
            f"the workflow must have exactly one VCDiTSampler to evaluate, found {len(samplers)}"
        )
    positive = prompt_graph[samplers[0]]["inputs"].get("positive")
    if not (isinstance(positive, list) and len(positive) == 2):
        raise ValueError("the sampler's 'positive' input is not linked to a text node")
    text_node = str(positive[0])
    if prompt_graph[text_node].get("class_type") != "VCTextEncode":
        raise ValueError(f"the sampler's positive input comes from node {text_node}, not a VCTextEncode")
    return PromptInputs(text_node, samplers[0])


def _read_output_video(files: list[str]) -> tuple[torch.Tensor, float, str]:
    """The final video a run saved: of the video files written, the one with the most pixels."""
    from ..video_io.reader import read_video

    videos = [f for f in files if f.lower().endswith(VIDEO_EXTENSIONS)]
    if not videos:
        raise RuntimeError("the workflow saved no video file; it needs a VC Save Video node")
    best = None
    for path in videos:
        frames, fps, _ = read_video(path)
        if best is None or frames.numel() > best[0].numel():
            best = (frames, fps, path)
    return best


class WorkflowRenderer:
    """Renders prompts through one workflow in this process (the runner with ``--set``-style overrides)."""

    def __init__(self, path: str, output_dir: str, overrides: tuple[str, ...] = ()):
        from ..runtime.executor import pack_mappings
        from ..runtime.workflow import load_workflow

        self.path = path
        self.node_classes, self.display_names = pack_mappings()
        workflow = load_workflow(path, self.node_classes, self.display_names)
        self.inputs = find_prompt_inputs(workflow.prompt)
        self.output_dir = output_dir
        self.overrides = tuple(overrides)

    def render(self, prompt: str, seed: int) -> tuple[torch.Tensor, float, dict[str, float]]:
        """``(frames [N, H, W, 3], fps, seconds per node class)`` of the workflow's video for ``prompt``."""
        from ..runtime.executor import run_workflow
        from ..runtime.outputs import use_output_directory

        overrides = [
            *self.overrides,
            f"{self.inputs.text_node}.text={prompt}",
            f"{self.inputs.sampler_node}.seed={seed}",
        ]
        with use_output_directory(None, temp_dir=self.output_dir):  # previews land here too
            result = run_workflow(
                self.path, self.node_classes, overrides=overrides, output_dir=self.output_dir,
                display_names=self.display_names,
            )  # fmt: skip
        frames, fps, _ = _read_output_video(result.files)
        for root, _, names in os.walk(self.output_dir):  # keep the evaluation folder small
            for file in names:
                os.remove(os.path.join(root, file))
        timings: dict[str, float] = {}
        for t in result.timings:
            timings[t.class_type] = timings.get(t.class_type, 0.0) + t.seconds
        return frames, fps, timings


def evaluate_workflow(
    name: str,
    splits: tuple[str, ...],
    count: int,
    seed: int = 0,
    overrides: tuple[str, ...] = (),
    log=print,
) -> dict[str, Any]:
    """Render and score ``count`` prompts per split through the named workflow."""
    import tempfile

    path = workflow_file(name)
    results: dict[str, Any] = {
        "workflow": os.path.relpath(path, examples_dir()),
        "overrides": list(overrides),
    }
    clips = []
    with tempfile.TemporaryDirectory(prefix="videocascade-eval-") as out_dir:
        renderer = WorkflowRenderer(path, out_dir, overrides)
        for split in splits:
            scores = []
            for i, item in enumerate(evaluation_prompts(split, count, seed)):
                start = time.perf_counter()
                frames, fps, timings = renderer.render(item.prompt, item.seed)
                score = score_clip(frames, item.prompt)
                score.split, score.seed = split, item.seed
                score.seconds = time.perf_counter() - start
                score.extras = {"frames": list(frames.shape[:3]), "fps": fps, "node_seconds": timings}
                scores.append(score)
                clips.append(_clip_record(score))
                if log is not None:
                    mark = "ok" if score.all_three and score.consistent else "x "
                    log(f"[{name} {split} {i + 1}/{count}] {mark} {item.prompt!r} -> {score.measured} "
                        f"({score.seconds:.1f}s)")  # fmt: skip
            results.setdefault("splits", {})[split] = {
                **summarize(scores),
                "seconds_per_clip": round(sum(s.seconds for s in scores) / max(1, len(scores)), 2),
            }
    results["clips"] = clips
    return results


def _clip_record(score: ClipScore) -> dict[str, Any]:
    record = asdict(score)
    record.update(all_three=score.all_three, consistent=score.consistent)
    return record


def markdown_table(report: dict[str, Any]) -> str:
    """The README table: one row per workflow and split."""
    lines = [
        "| workflow | split | clips | colour | shape | motion | all three | consistent | s / clip |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in report["workflows"].items():
        for split, s in result.get("splits", {}).items():
            label = "held-out" if split == "heldout" else split
            lines.append(
                f"| {name} | {label} | {s['clips']} | {s['color']:.0%} | {s['shape']:.0%} | {s['motion']:.0%} "
                f"| {s['all_three']:.0%} | {s['consistent']:.0%} | {s['seconds_per_clip']:.1f} |"
            )
    return "\n".join(lines)


def write_card_figures(result: dict[str, Any], command: str) -> str:
    """Add the figures to the card of the DiT the workflow loads (``weights/dit-*.card.json``)."""
    from ..runtime.model_paths import EMBEDDED_DIR

    with open(os.path.join(examples_dir(), result["workflow"]), encoding="utf-8") as f:
        graph = json.load(f)
    files = [n["inputs"].get("file", "") for n in graph.values() if n.get("class_type") == "VCDiTLoader"]
    embedded = [f.removeprefix("embedded/") for f in files if f.startswith("embedded/")]
    if len(embedded) != 1:
        raise ValueError(f"the workflow does not load exactly one embedded DiT ({files})")
    path = os.path.join(EMBEDDED_DIR, embedded[0].removesuffix(".safetensors") + ".card.json")
    with open(path, encoding="utf-8") as f:
        card = json.load(f)
    card["evaluation"] = {
        "command": command,
        "workflow": result["workflow"],
        "overrides": result["overrides"],
        "prompts": "canonical one-object prompts; held-out: the 66 held-out colour x shape x motion combinations",
        "measured_on": "the saved video file, read back and measured by sprites.measure",
        "max_flicker": MAX_FLICKER,
        "splits": result["splits"],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m videocascade.sprites.evaluate",
        description="Render prompts through the example workflows and score the videos by measuring them.",
    )
    parser.add_argument("--workflow", default="all", help=f"{'|'.join(WORKFLOWS)}|all, or a workflow file")
    parser.add_argument("--prompts", type=int, default=100, help="prompts per split (default 100)")
    parser.add_argument("--split", default="both", choices=[*SPLIT_NAMES, "both"])
    parser.add_argument("--seed", type=int, default=0, help="chooses the prompts and their noise seeds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.input=value",
                        help="extra override for every run (e.g. a sampler's steps)")  # fmt: skip
    parser.add_argument("--report", default="", help="JSON report path (default: evaluation-<workflow>.json)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--quiet", action="store_true", help="no line per clip")
    parser.add_argument(
        "--write-cards",
        action="store_true",
        help="put the figures into the evaluated DiTs' cards in weights/",
    )
    args = parser.parse_args(argv)
    if args.prompts < 1:
        parser.error("--prompts must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(WORKFLOWS) if args.workflow == "all" else [args.workflow]
    splits = SPLIT_NAMES if args.split == "both" else (args.split,)
    report: dict[str, Any] = {
        "prompts_per_split": args.prompts,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "max_flicker": MAX_FLICKER,
        "workflows": {},
    }
    command = "python -m videocascade.sprites.evaluate " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    for name in names:
        result = evaluate_workflow(
            name, splits, args.prompts, args.seed, tuple(args.overrides), None if args.quiet else print
        )
        report["workflows"][name] = result
        if args.write_cards:
            card = write_card_figures(result, command)
            print(f"figures written into {card}", file=sys.stderr)
    table = markdown_table(report)
    report["table"] = table
    path = args.report or f"evaluation-{args.workflow if args.workflow in WORKFLOWS else 'all'}.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(table)
    print(f"report: {os.path.abspath(path)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
