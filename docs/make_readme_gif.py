"""Rebuild ``docs/makeavideo_cascade.gif``, the README's picture of the Make-A-Video workflow's real output.

Runs ``example_workflows/makeavideo_cascade.json`` headless once per prompt (the workflow's own seed and
settings, only the prompt changed), reads each saved video back and puts the clips side by side in one
looping GIF at the videos' frame rate. Needs the pack installed (``pip install -e .``), as the README's
main command does. Run it after the embedded base changes:

    python docs/make_readme_gif.py [--out docs/makeavideo_cascade.gif] [--threads 2]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "example_workflows" / "makeavideo_cascade.json"
PROMPTS = (
    "a red star moves to the right",
    "a green triangle moves up",
    "a blue square moves down-left",
    "a white circle grows",
)
PROMPT_NODE = 2  # the workflow's positive VCTextEncode


def render(prompt: str, out_dir: str, threads: int) -> str:
    """One headless run of the workflow for ``prompt``; the path of the video it saved."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    command = [sys.executable, "-m", "videocascade", "run", str(WORKFLOW), "--output-dir", out_dir]
    command += ["--set", f"{PROMPT_NODE}.text={prompt}"]
    subprocess.run(command, check=True, env=env)
    saved = sorted(glob.glob(os.path.join(out_dir, "**", "*.mp4"), recursive=True), key=os.path.getmtime)
    if not saved:
        raise RuntimeError(f"the workflow saved no mp4 under {out_dir} for {prompt!r}")
    return saved[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "makeavideo_cascade.gif"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from videocascade.video_io.reader import read_video
    from videocascade.video_io.writer import write_video

    with tempfile.TemporaryDirectory() as tmp:
        clips, fps = [], None
        for prompt in PROMPTS:
            frames, fps, _ = read_video(render(prompt, os.path.join(tmp, str(len(clips))), args.threads))
            clips.append(frames)
            print(f"{prompt!r}: {tuple(frames.shape)} at {fps:g} fps", flush=True)
        length = min(clip.shape[0] for clip in clips)
        strip = torch.cat([clip[:length] for clip in clips], dim=2)  # side by side: [N, H, 4 W, 3]
        staged = os.path.join(tmp, "strip.gif")
        write_video(staged, strip, fps, format="gif", metadata={"prompts": list(PROMPTS)})
        shutil.copyfile(staged, args.out)
    print(f"wrote {args.out}: {length} frames of {tuple(strip.shape[1:3])}")


if __name__ == "__main__":
    main()
