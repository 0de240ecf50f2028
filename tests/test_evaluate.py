"""The evaluator (sprites/evaluate.py): rendered clips score as what they show, prompts respect the splits,
and a workflow renders, is read back from its file and is scored end to end."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from videocascade.sprites import HELD_OUT_COMBINATIONS, ClipSpec, SpriteSpec, is_held_out, render_clip
from videocascade.sprites import evaluate as ev
from videocascade.sprites import train_dit as td
from videocascade.sprites.train_common import StageArgs
from videocascade.sprites.world import BackgroundSpec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clip(color="red", shape="star", motion="right", frames=17, size=64, fps=8.0, **sprite):
    spec = ClipSpec(
        (SpriteSpec(color, shape, motion, sprite.get("x", 0.35), sprite.get("y", 0.5), 0.15, 0.2),),
        BackgroundSpec("plain"),
    )
    return render_clip(spec, frames, size, size, fps)


def test_a_correct_clip_scores_correct_and_consistent():
    score = ev.score_clip(clip(), "a red star moving right")
    assert (score.color, score.shape, score.motion, score.all_three) == (True, True, True, True)
    assert score.persistent and score.consistent and score.extra_objects == 0
    growing = ev.score_clip(clip("blue", "square", "grow", x=0.5), "a blue square growing")
    assert growing.all_three and growing.consistent


@pytest.mark.parametrize(
    "prompt, wrong",
    [
        ("a blue star moving right", "color"),
        ("a red circle moving right", "shape"),
        ("a red star moving left", "motion"),
        ("a red star moving up-right", "motion"),
    ],
)
def test_a_wrong_clip_scores_wrong_on_that_attribute_only(prompt, wrong):
    score = ev.score_clip(clip(), prompt)
    flags = {"color": score.color, "shape": score.shape, "motion": score.motion}
    assert not flags.pop(wrong) and all(flags.values()) and not score.all_three


def test_missing_and_flickering_objects_are_inconsistent():
    frames = clip()
    empty = frames.clone()
    empty[:] = frames[0, 0, 0]  # background only
    score = ev.score_clip(empty, "a red star moving right")
    assert not (score.color or score.shape or score.motion or score.persistent)
    blinking = frames.clone()
    blinking[8] = frames[0, 0, 0]  # the object vanishes for one frame
    score = ev.score_clip(blinking, "a red star moving right")
    assert score.all_three and not score.persistent and not score.consistent
    dimmed = frames.clone()
    dimmed[8, 32:] = frames[0, 0, 0]  # its lower half vanishes for one frame
    assert ev.score_clip(dimmed, "a red star moving right").flicker > ev.MAX_FLICKER


@pytest.mark.parametrize("other_size, prompted_wins", [(0.08, True), (0.2, False)])
def test_an_extra_object_counts_and_must_not_outgrow_the_prompted_one(other_size, prompted_wins):
    spec = ClipSpec(
        (
            SpriteSpec("red", "star", "right", 0.3, 0.3, 0.14, 0.2),
            SpriteSpec("white", "circle", "still", 0.7, 0.75, other_size),
        ),
        BackgroundSpec("plain"),
    )
    score = ev.score_clip(render_clip(spec, 17, 64, 64, 8.0), "a red star moving right")
    assert score.extra_objects == 1
    assert score.all_three == prompted_wins and score.color == prompted_wins


def test_flicker_of_smooth_and_jumping_series():
    assert ev.flicker_of(np.array([0.01, 0.01, 0.01])) == 0.0
    assert ev.flicker_of(0.01 * 1.1 ** np.arange(9)) < 1e-9  # steady growth
    assert math.isinf(ev.flicker_of(np.array([0.01, 0.0, 0.01])))
    assert ev.flicker_of(np.array([0.01, 0.02, 0.01])) == pytest.approx(math.log(2))


def test_evaluation_prompts_follow_the_splits_and_repeat():
    held = ev.evaluation_prompts("heldout", 70, seed=3)
    seen = ev.evaluation_prompts("seen", 30, seed=3)
    assert {p.split for p in held} == {"heldout"}
    triples = [ClipSpec.from_dict(p.spec).triples[0] for p in held]
    assert set(triples) == set(HELD_OUT_COMBINATIONS)  # 70 prompts cover all 66 combinations
    assert not any(is_held_out(*ClipSpec.from_dict(p.spec).triples[0]) for p in seen)
    assert held == ev.evaluation_prompts("heldout", 70, seed=3)
    assert held[0].prompt != ev.evaluation_prompts("heldout", 1, seed=4)[0].prompt or held[0].seed != (
        ev.evaluation_prompts("heldout", 1, seed=4)[0].seed
    )
    for p in held[:10]:  # each prompt describes its spec
        assert ev.parse_caption(p.prompt)[0] == ClipSpec.from_dict(p.spec).triples[0]
    with pytest.raises(ValueError, match="split"):
        ev.evaluation_prompts("train", 1)


def test_summary_and_table():
    scores = [ev.score_clip(clip(), "a red star moving right"), ev.score_clip(clip(), "a red star moving up")]
    summary = ev.summarize(scores)
    assert summary["clips"] == 2 and summary["color"] == 1.0 and summary["motion"] == 0.5
    assert summary["all_three"] == 0.5 and summary["consistent"] == 1.0
    report = {"workflows": {"makeavideo": {"splits": {"heldout": {**summary, "seconds_per_clip": 1.0}}}}}
    table = ev.markdown_table(report)
    assert "| makeavideo | held-out | 2 | 100% | 100% | 50% | 50% | 100% | 1.0 |" in table


def test_every_example_workflow_names_its_prompt_and_seed_inputs():
    for name in ev.WORKFLOWS:
        graph = json.load(open(ev.workflow_file(name)))
        inputs = ev.find_prompt_inputs(graph)
        assert graph[inputs.text_node]["class_type"] == "VCTextEncode"
        assert "seed" in graph[inputs.sampler_node]["inputs"]


def test_a_workflow_is_rendered_read_back_and_scored(tmp_path):
    # Tiny freshly trained files stand in for the embedded ones; the clip is shrunk to keep this fast.
    recipe = td.recipe_for(StageArgs(stage="text", quick=True))
    recipe = dataclasses.replace(recipe, height=16, width=16, frames=3, clip_steps=3, ships_dit=True)
    written = td.train(recipe, out_dir=str(tmp_path), state_dir=str(tmp_path / "state"), final_eval=0)
    overrides = (
        "1.file=(path below)",
        f"1.path={written['text_encoder']}",
        "4.file=(path below)",
        f"4.path={written['dit']}",
        "5.file=builtin/pixel-space",  # the tiny DiT is a pixel-space one
        "6.width=16",
        "6.height=16",
        "6.frames=3",
        "7.steps=2",
        "11.mode=x2",
        "13.scale=2",
    )
    result = ev.evaluate_workflow("makeavideo", ("heldout",), 2, seed=0, overrides=overrides, log=None)
    summary = result["splits"]["heldout"]
    assert summary["clips"] == 2 and 0.0 <= summary["all_three"] <= 1.0
    first = result["clips"][0]
    assert first["extras"]["frames"] == [
        5,
        32,
        32,
    ]  # (3 - 1) * 2 + 1 frames, 16 * 2 pixels, read from the file
    assert ev.parse_caption(first["prompt"])[0] in HELD_OUT_COMBINATIONS
