"""DiT training (sprites/train_dit.py): the loss learns, the data never shows held-out combinations, a run
resumes and exports weights whose metadata the loaders read back; the pixel-space "VAE"."""

import dataclasses
import json
import os

import pytest
import torch
from safetensors.torch import load_file
from videocascade.models.dit import VideoDiT
from videocascade.models.text_encoder import TextEncoder, TextEncoderConfig
from videocascade.runtime.loaders import load_dit_handle, load_text_encoder_handle, load_vae_handle
from videocascade.sprites import is_held_out
from videocascade.sprites import train_dit as td
from videocascade.sprites.train_common import StageArgs, code_revision
from videocascade.vae.pixels import PIXEL_SPACE_CHOICE, PixelSpace


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny ops: on a shared 2-core machine thread hand-offs cost more than they save.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_recipe(**changes) -> td.Recipe:
    # The text stage's pixel-space recipe, with a clip phase and its DiT exported: every part runs.
    recipe = td.recipe_for(StageArgs(stage="text", quick=True))
    recipe = dataclasses.replace(recipe, height=16, width=16, frames=3, clip_steps=3, ships_dit=True)
    recipe = dataclasses.replace(recipe, **changes)
    recipe.dit = dataclasses.replace(recipe.dit, patch_size=(1, 4, 4))
    return recipe


def _tiny_vae_file(tmp_path) -> str:
    from videocascade.runtime.checkpoints import save_checkpoint
    from videocascade.vae.autoencoder import CausalVAE, CausalVAEConfig

    config = CausalVAEConfig(
        family="sprites-test-t4", base_channels=4, channel_multipliers=(1, 2), latent_channels=4,
        temporal_downsample=(True,), middle_attention=False,
    )  # fmt: skip
    path = str(tmp_path / "vae-test.safetensors")
    save_checkpoint(path, CausalVAE(config), config, "vae", config.family)
    return path


@pytest.mark.parametrize("prediction", ["flow", "vp-v"])
def test_diffusion_loss_decreases_on_a_fixed_batch(prediction):
    recipe = tiny_recipe()
    sampler = td.SamplerSettings(prediction=prediction)
    dit = VideoDiT(dataclasses.replace(recipe.dit, text_dim=recipe.text.dim))
    encoder = TextEncoder(recipe.text)
    video, captions, _ = td.CaptionedBatches(recipe, "clip").batch(0, 4)
    optimizer = torch.optim.AdamW([*dit.parameters(), *encoder.parameters()], lr=3e-3)
    losses = []
    for _ in range(20):
        context, mask = td.encode_captions(encoder, captions)
        # The same noise levels and noise every step: only the weights change.
        loss = td.diffusion_loss(dit, sampler, video, context, mask, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_motion_loss_adds_the_frame_difference_error_of_clips_only():
    recipe = tiny_recipe()
    sampler = td.SamplerSettings()
    dit = VideoDiT(dataclasses.replace(recipe.dit, text_dim=recipe.text.dim))
    with torch.no_grad():
        dit.final_layer.linear.weight.normal_(0, 0.1)  # a non-trivial prediction
    encoder = TextEncoder(recipe.text)
    video, captions, _ = td.CaptionedBatches(recipe, "clip").batch(0, 2)
    context, mask = td.encode_captions(encoder, captions)

    def loss(x0, weight):
        return td.diffusion_loss(
            dit, sampler, x0, context, mask, torch.Generator().manual_seed(3), 1.0, weight
        )

    with torch.no_grad():
        x_t, timestep, target = td.noised_inputs(sampler, video, torch.Generator().manual_seed(3), 1.0)
        error = dit(x_t, timestep, context, mask) - target
        plain, with_motion = loss(video, 0.0), loss(video, 2.0)
        torch.testing.assert_close(plain, error.square().mean())
        # The extra term is the error's frame-to-frame change: a static error (background) costs nothing more.
        torch.testing.assert_close(
            with_motion - plain, 2.0 * (error[:, :, 1:] - error[:, :, :-1]).square().mean()
        )
        frame = video[:, :, :1]
        torch.testing.assert_close(loss(frame, 2.0), loss(frame, 0.0))  # single images: no such term


def test_high_noise_fraction_moves_that_share_of_clips_to_the_top_noise_levels():
    sampler = td.SamplerSettings()
    x0 = torch.zeros(4000, 1, 1, 1, 1)

    def timesteps(fraction, seed=5):
        return (
            td.noised_inputs(sampler, x0, torch.Generator().manual_seed(seed), 1.0, 1.0, fraction)[1] / 1000
        )

    top = td.HIGH_NOISE_START
    plain, mixed, only = timesteps(0.0), timesteps(0.25), timesteps(1.0)
    assert (plain > 0.97).float().mean() < 0.01  # the logit-normal alone barely reaches the first steps
    assert only.min() >= top and only.max() <= 1.0 and (only > 0.97).float().mean() > 0.25
    share = (mixed >= top).float().mean() - (plain >= top).float().mean() * 0.75
    assert abs(share - 0.25) < 0.03, share
    # Off, the random stream is the one recipes without the setting always drew.
    torch.testing.assert_close(
        plain, td.noised_inputs(sampler, x0, torch.Generator().manual_seed(5), 1.0, 1.0)[1] / 1000
    )


def test_caption_probe_learns_attributes_from_captions():
    recipe = tiny_recipe()
    encoder = TextEncoder(TextEncoderConfig(dim=32, depth=1, num_heads=2))
    probe = td.CaptionProbe(32)
    _, captions, specs = td.CaptionedBatches(recipe, "clip").batch(0, 16)
    targets = td.probe_targets(specs, True, [False] * 16)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *probe.parameters()], lr=3e-3)
    first = None
    for _ in range(30):
        features, mask = td.encode_captions(encoder, captions)
        loss = probe.loss(features, mask, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first or loss.item()
    assert loss.item() < 0.5 * first


def test_probe_targets_mark_missing_objects_and_dropped_captions():
    _, _, specs = td.CaptionedBatches(tiny_recipe(two_object_prob=0.0), "clip").batch(0, 2)
    targets = td.probe_targets(specs, mention_motion=False, dropped=[False, True])
    none = [c - 1 for c in td.CaptionProbe.CLASSES]
    assert targets[0, 1].tolist() == none  # one object: the second slot is "none"
    assert targets[0, 0, 2].item() == none[2]  # image captions do not mention motion
    assert (targets[1] == -1).all()


def test_clip_path_spread_centres_one_object_clips_only():
    recipe = tiny_recipe(two_object_prob=0.5, clip_path_spread=0.1)
    duration = recipe.frames / recipe.fps
    clips = td.CaptionedBatches(recipe, "clip").batch(0, 40)[2]
    images = td.CaptionedBatches(recipe, "image").batch(0, 40)[2]

    def farthest_middle(spec):
        x, y = spec.objects[0].center_at([duration / 2])
        return max(abs(x[0] - 0.5), abs(y[0] - 0.5))

    one = [farthest_middle(s) for s in clips if len(s.objects) == 1]
    two = [farthest_middle(s) for s in clips if len(s.objects) == 2]
    assert one and two and max(one) <= 0.1 + 1e-9
    assert max(two) > 0.1 and max(farthest_middle(s) for s in images) > 0.1


def test_training_batches_are_deterministic_and_never_held_out():
    recipe = tiny_recipe(two_object_prob=0.5)
    a = td.CaptionedBatches(recipe, "clip").batch(10, 6)
    b = td.CaptionedBatches(recipe, "clip").batch(10, 6)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert a[0].shape == (6, 3, 3, 16, 16) and a[0].min() >= -1 and a[0].max() <= 1
    specs = td.CaptionedBatches(recipe, "image").batch(0, 200)[2]
    assert not any(is_held_out(*t) for s in specs for t in s.triples)
    assert {len(s.objects) for s in specs} == {1, 2}


def test_phases_and_sample_counts_resume_exactly():
    recipe = tiny_recipe(text_probe_steps=2, image_steps=3, clip_steps=4, mixed_images=2)
    assert [td.phase_of(recipe, s)[0] for s in range(10)] == ["text"] * 2 + ["image"] * 3 + ["clip"] * 4 + [
        "done"
    ]
    # Images: 3 steps of image_batch (the text phase reads captions only), then mixed_images per clip step.
    assert td.samples_before(recipe, "image", 7) == 3 * recipe.image_batch + 2 * 2
    assert td.samples_before(recipe, "clip", 7) == 2 * recipe.clip_batch


def test_image_phase_leaves_the_temporal_branch_untouched():
    recipe = tiny_recipe(text_probe_steps=0, image_steps=2, clip_steps=1, uncond_prob=0.0)
    recipe.dit = dataclasses.replace(recipe.dit, text_dim=recipe.text.dim)
    trainer = td.build_trainer(recipe, TextEncoder(recipe.text))
    data = {
        kind: td.EncodedBatches(td.CaptionedBatches(recipe, kind), td.PixelLatents())
        for kind in ("image", "clip")
    }
    before = [p.detach().clone() for p in trainer.dit.temporal_parameters()]
    for _ in range(2):
        td.train_step(trainer, data)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.dit.temporal_parameters()))
    td.train_step(trainer, data)  # the clip phase opens the gate
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.dit.temporal_parameters()))


def test_noised_inputs_match_the_samplers_parametrisation():
    x0, g = torch.rand(2, 3, 1, 4, 4), torch.Generator().manual_seed(0)
    for prediction in ("flow", "vp-v"):
        sampler = td.SamplerSettings(prediction=prediction)
        x_t, timestep, target = td.noised_inputs(sampler, x0, g, 1.0)
        # The sampler's x0 estimate from the exact target recovers x0 at the drawn level.
        p = sampler.prediction_object()
        for i in range(2):
            if prediction == "flow":
                step = td_step(p.level(timestep[i].item() / 1000.0), timestep[i].item())
            else:
                step = td_step(p.level_at(int(timestep[i])), timestep[i].item())
            assert torch.allclose(p.denoised(x_t[i], target[i], step), x0[i], atol=1e-5)


def td_step(level, timestep):
    from videocascade.samplers import Step

    return Step(0, level[0], level[1], timestep)


@pytest.mark.parametrize("prediction", ["flow", "vp-v"])
def test_quick_run_resumes_and_exports_weights_the_loaders_read(tmp_path, prediction):
    recipe = tiny_recipe(sampler=td.SamplerSettings(prediction=prediction, steps=7, cfg=3.5))
    out, state = str(tmp_path / "weights"), str(tmp_path / "state")
    written = td.train(recipe, out_dir=out, state_dir=state, final_eval=0, log_every=100)
    assert os.path.isfile(os.path.join(state, "state.pt"))
    dit = load_dit_handle(written["dit"])
    assert dit.options["latent_format"] == "pixels"
    preset = dit.options["sampler"]
    assert preset.prediction == recipe.sampler.prediction_object()
    assert (preset.solver, preset.steps, preset.cfg) == ("euler", 7, 3.5)
    encoder = load_text_encoder_handle(written["text_encoder"])
    assert encoder.options["text_dim"] == dit.options["text_dim"]
    card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
    assert card["steps"] == recipe.total_steps and card["latent_format"] == "pixels"
    # The commit of the training code (a copy without git history records "unknown", the same here).
    assert card["code_revision"] == code_revision("sprites", "models", "samplers")
    # A second run of the same command finds the finished state and only exports again.
    again = td.train(recipe, out_dir=out, state_dir=state, final_eval=0, log_every=100)
    assert again.keys() == written.keys()


def test_text_stage_ships_the_encoder_alone(tmp_path):
    recipe = td.recipe_for(StageArgs(stage="text", quick=True))
    recipe = dataclasses.replace(recipe, height=16, width=16, frames=3)
    assert recipe.train_text_encoder and not recipe.ships_dit and recipe.clip_steps == 0
    written = td.train(recipe, out_dir=str(tmp_path), state_dir=str(tmp_path / "state"), final_eval=0)
    assert list(written) == ["text_encoder"]
    assert sorted(os.listdir(tmp_path)) == [
        "state",
        "text_encoder-sprites.card.json",
        "text_encoder-sprites.safetensors",
    ]
    card = json.loads((tmp_path / "text_encoder-sprites.card.json").read_text())
    assert "not shipped" in card["trained_with"]
    # The DiT stages read this encoder, frozen: the makeavideo recipe does not train one.
    assert not td.recipe_for(StageArgs(stage="makeavideo")).train_text_encoder


def test_resume_refuses_a_state_of_another_recipe(tmp_path):
    recipe = tiny_recipe(clip_steps=1, image_steps=1, text_probe_steps=1)
    state = str(tmp_path / "state")
    td.train(recipe, out_dir=str(tmp_path), state_dir=state, final_eval=0)
    with pytest.raises(RuntimeError, match="different recipe"):
        td.train(dataclasses.replace(recipe, lr=0.5), out_dir=str(tmp_path), state_dir=state, final_eval=0)


def test_a_state_saved_before_an_option_existed_resumes_while_the_option_is_off(tmp_path):
    recipe = tiny_recipe(clip_steps=1, image_steps=1, text_probe_steps=1)
    recipe.dit = dataclasses.replace(recipe.dit, absolute_positions=True)
    state_dir = str(tmp_path / "state")
    td.train(recipe, out_dir=str(tmp_path), state_dir=state_dir, final_eval=0)
    # What older code wrote: no size focus in the recipe, no radial positions in its DiT config.
    path = os.path.join(state_dir, "state.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    del state["recipe"]["clip_focus_steps"], state["recipe"]["dit"]["position_radial"]
    torch.save(state, path)
    trainer = td.build_trainer(recipe, td.TextEncoder(recipe.text))
    assert td.load_state(trainer, path) and trainer.step == recipe.total_steps
    radial = dataclasses.replace(recipe, dit=dataclasses.replace(recipe.dit, position_radial=True))
    with pytest.raises(RuntimeError, match="different recipe"):
        td.load_state(td.build_trainer(radial, td.TextEncoder(radial.text)), path)


def test_recipe_options_from_the_command_line():
    args = StageArgs(stage="makeavideo", steps=30, options={"lr": "0.002", "two_object_prob": "0"})
    recipe = td.recipe_for(args)
    assert recipe.lr == 0.002 and recipe.two_object_prob == 0.0
    assert abs(recipe.total_steps - 30) <= 2
    half = td.recipe_for(StageArgs(stage="makeavideo", steps=td.makeavideo_recipe().total_steps // 2))
    # The focus and the first learning-rate cycle keep their shares of the clip phase.
    scaled = (half.image_steps, half.clip_steps, half.clip_focus_steps, half.clip_first_cycle)
    assert scaled == (1500, 5600, 600, 4400)
    with pytest.raises(ValueError, match="not a recipe or DiT config field"):
        td.recipe_for(StageArgs(stage="makeavideo", options={"nonsense": "1"}))
    with pytest.raises(ValueError, match="not a recipe or DiT config field"):
        td.recipe_for(StageArgs(stage="makeavideo", options={"dit.nonsense": "1"}))


def test_dit_config_options_reach_the_exported_checkpoint(tmp_path):
    args = StageArgs(stage="text", quick=True, options={"dit.absolute_positions": "true", "dit.depth": "2"})
    recipe = td.recipe_for(args)
    assert recipe.dit.absolute_positions and recipe.dit.depth == 2
    assert recipe.dit.hidden_size == 32  # --quick still shrinks the rest
    with pytest.raises(ValueError, match="expected true or false"):
        td.recipe_for(StageArgs(stage="makeavideo", options={"dit.position_radial": "maybe"}))
    # A radial-position DiT trains, exports, and loads back with its radial features.
    recipe = tiny_recipe(clip_steps=2)
    recipe.dit = dataclasses.replace(recipe.dit, absolute_positions=True, position_radial=True)
    written = td.train(recipe, out_dir=str(tmp_path), state_dir=str(tmp_path / "state"), final_eval=0)
    model = load_dit_handle(written["dit"]).model
    assert model.config.position_radial and model.position_embed.radial
    card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
    assert card["config"]["position_radial"] is True


def test_pixel_space_vae_round_trip_and_loader():
    video = torch.rand(1, 3, 5, 8, 12) * 2 - 1
    vae = PixelSpace()
    assert torch.equal(vae.decode(vae.encode(video)), video)
    assert vae.decode(video * 3).abs().max() <= 1.0
    handle = load_vae_handle(PIXEL_SPACE_CHOICE)
    assert handle.family == "pixels" and handle.model.latent_channels == 3
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        vae.encode(torch.zeros(1, 4, 2, 8, 8))


def test_latent_stage_caches_encoded_clips_and_records_the_vae_family(tmp_path):
    vae_path = _tiny_vae_file(tmp_path)
    # The frozen shared encoder comes from the output folder, as in the real stages.
    joint = tiny_recipe()
    td.train(joint, out_dir=str(tmp_path), state_dir=str(tmp_path / "joint"), final_eval=0)
    recipe = dataclasses.replace(
        td.recipe_for(StageArgs(stage="sora", quick=True)),
        latent=vae_path, height=16, width=16, frames=5, cached_clips=3, cached_images=4,
    )  # fmt: skip
    recipe.dit = dataclasses.replace(recipe.dit, in_channels=4, out_channels=4, patch_size=(1, 2, 2))
    state = tmp_path / "sora"
    written = td.train(recipe, out_dir=str(tmp_path), state_dir=str(state), final_eval=2)
    assert sorted(os.listdir(state)) == ["latents-clip-3.pt", "latents-image-4.pt", "state.pt"]
    cached = torch.load(state / "latents-clip-3.pt", weights_only=True)
    assert cached["latents"].shape == (3, 4, 3, 8, 8)  # temporal factor 2: 5 frames -> 3; 16 px -> 8
    handle = load_dit_handle(written["dit"])
    assert handle.options["latent_format"] == "sprites-test-t4"
    assert written.keys() == {"dit"}  # the encoder is shared, not rewritten
    card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
    assert card["quick_evaluation_at_training_resolution"]["clips"] == 2


def test_sampler_preset_can_be_retuned_without_touching_weights(tmp_path):
    written = td.train(tiny_recipe(), out_dir=str(tmp_path), state_dir=str(tmp_path / "s"), final_eval=0)
    before = load_dit_handle(written["dit"]).model.state_dict()
    td.set_sampler_preset(written["dit"], td.SamplerSettings(shift=2.0, solver="unipc", steps=12, cfg=6.0))
    handle = load_dit_handle(written["dit"])
    preset = handle.options["sampler"]
    assert (preset.prediction.shift, preset.solver, preset.steps, preset.cfg) == (2.0, "unipc", 12, 6.0)
    assert all(torch.equal(before[k], v) for k, v in handle.model.state_dict().items())
    card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
    assert card["sampler"]["steps"] == 12


def test_a_finished_run_continues_with_a_longer_clip_phase(tmp_path):
    recipe = tiny_recipe(text_probe_steps=1, image_steps=1, clip_steps=2)
    state = str(tmp_path / "s")
    td.train(recipe, out_dir=str(tmp_path), state_dir=state, final_eval=0)
    longer = dataclasses.replace(recipe, clip_steps=4)
    written = td.train(longer, out_dir=str(tmp_path), state_dir=state, final_eval=0)
    assert torch.load(os.path.join(state, "state.pt"), weights_only=True)["step"] == 6
    card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
    assert card["continued_from_clip_steps"] == 2 and card["steps"] == 6


def test_a_first_cycle_in_one_run_equals_a_finished_run_continued(tmp_path):
    recipe = tiny_recipe(text_probe_steps=1, image_steps=1, clip_steps=2, warmup_steps=2, decay_fraction=0.5)
    two_runs = str(tmp_path / "two")
    td.train(recipe, out_dir=str(tmp_path / "a"), state_dir=two_runs, final_eval=0)
    td.train(
        dataclasses.replace(recipe, clip_steps=5),
        out_dir=str(tmp_path / "a"),
        state_dir=two_runs,
        final_eval=0,
    )
    one_run = str(tmp_path / "one")
    cycles = dataclasses.replace(recipe, clip_steps=5, clip_first_cycle=2)
    td.train(cycles, out_dir=str(tmp_path / "b"), state_dir=one_run, final_eval=0)
    continued, single = (
        torch.load(os.path.join(d, "state.pt"), weights_only=True) for d in (two_runs, one_run)
    )
    assert continued["step"] == single["step"] == 7  # 1 text + 1 image + 5 clip steps
    for name, value in continued["dit"].items():
        assert torch.equal(single["dit"][name], value), name
    # The schedule itself: a 2-step run's rate for the first cycle, then the 5-step run's for the rest.
    lengths = [td.scheduled_length(cycles, "clip", local, 5) for local in range(5)]
    assert lengths == [2, 2, 5, 5, 5]
    assert td.scheduled_length(cycles, "image", 0, 1) == 1


def test_open_temporal_gates_keep_the_image_function_and_let_gradients_through():
    recipe = tiny_recipe()
    config = dataclasses.replace(recipe.dit, text_dim=recipe.text.dim)
    torch.manual_seed(0)
    zero_gated = VideoDiT(config)
    torch.nn.init.normal_(zero_gated.final_layer.linear.weight, std=0.1)  # as after the image phase
    opened = VideoDiT(config)
    opened.load_state_dict(zero_gated.state_dict())
    td.open_temporal_gates(opened)
    x, t, ctx = torch.randn(2, 3, 3, 16, 16), torch.tensor([500.0, 20.0]), torch.randn(2, 5, recipe.text.dim)
    with torch.no_grad():
        assert torch.allclose(opened(x, t, ctx), zero_gated(x, t, ctx), atol=1e-6)
    opened(x, t, ctx).square().mean().backward()
    assert all(b.temporal_attn.out.weight.grad.abs().sum() > 0 for b in opened.blocks)


def test_focused_batches_swap_in_cached_clips_of_the_focus_motions(tmp_path):
    from videocascade.sprites.captions import parse_caption

    recipe = dataclasses.replace(
        td.recipe_for(StageArgs(stage="sora", quick=True)),
        latent=_tiny_vae_file(tmp_path), height=16, width=16, frames=5,
    )  # fmt: skip
    cache = td.LatentCache(
        td.CaptionedBatches(recipe, "clip"), td.VAELatents(recipe.latent), 40, str(tmp_path / "clips.pt")
    )
    motions = ("grow", "shrink", "still")
    pool = [i for i, s in enumerate(cache.specs) if len(s.objects) == 1 and s.objects[0].motion in motions]
    assert 0 < len(pool) < 40

    plain = cache.batch(50, 16)
    unchanged = cache.focused_batch(50, 16, motions, 0.0)
    assert torch.equal(unchanged[0], plain[0]) and unchanged[1:] == plain[1:]

    x0, captions, specs = cache.focused_batch(50, 16, motions, 1.0)
    for latent, text, spec in zip(x0, captions, specs):
        assert len(spec.objects) == 1 and spec.objects[0].motion in motions
        assert parse_caption(text)[0][2] == spec.objects[0].motion  # the caption describes the swapped clip
        assert any(torch.equal(latent, cache.latents[i].float()) for i in pool)

    half = cache.focused_batch(50, 16, motions, 0.5)
    again = cache.focused_batch(50, 16, motions, 0.5)
    assert torch.equal(half[0], again[0]) and half[1] == again[1]  # drawn from the seed and the index
    swapped = [not torch.equal(a, b) for a, b in zip(half[0], plain[0])]
    assert 0 < sum(swapped) < 16


def test_focus_applies_to_the_last_clip_steps_only():
    recipe = dataclasses.replace(
        td.makeavideo_recipe(), clip_focus_motions=("grow",), clip_focus_fraction=0.5, clip_focus_steps=100
    )
    assert not td.focuses_now(recipe, 899, 1000) and td.focuses_now(recipe, 900, 1000)
    assert not td.focuses_now(dataclasses.replace(recipe, clip_focus_fraction=0.0), 999, 1000)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"clip_focus_fraction": 1.5}, "clip_focus_fraction must be in"),
        ({"clip_focus_motions": ("sideways",)}, "clip_focus_motions must name"),
        ({"clip_focus_motions": ()}, "clip_focus_motions must name"),
        ({"cached_clips": 0}, "set cached_clips"),
        ({"latent": td.PIXEL_FORMAT}, "set cached_clips"),
    ],
)
def test_focus_settings_that_cannot_work_fail_before_training(changes, message):
    recipe = dataclasses.replace(td.makeavideo_recipe(), **changes)
    with pytest.raises(ValueError, match=message):
        td.check_focus(recipe)


def test_training_refuses_a_focus_without_a_latent_cache(tmp_path):
    recipe = tiny_recipe(clip_focus_motions=("grow",), clip_focus_fraction=0.5, clip_focus_steps=2)
    with pytest.raises(ValueError, match="clip focus draws from the latent cache"):
        td.train(recipe, out_dir=str(tmp_path), state_dir=str(tmp_path / "s"), final_eval=0)
    assert not os.path.exists(tmp_path / "s" / "state.pt")


@pytest.mark.gpu
def test_a_latent_stage_trains_on_cuda_from_the_cpu_runs_start(tmp_path):
    """Same seed, same data and noise stream on both devices: the losses agree, the weights stay close after
    a few steps, and the exported file is an ordinary CPU checkpoint."""
    vae_path = _tiny_vae_file(tmp_path)
    td.train(tiny_recipe(), out_dir=str(tmp_path), state_dir=str(tmp_path / "joint"), final_eval=0)
    recipe = dataclasses.replace(
        td.recipe_for(StageArgs(stage="makeavideo", quick=True)),
        latent=vae_path, height=16, width=16, frames=5, cached_clips=6, cached_images=4,
        clip_focus_fraction=0.0, image_steps=2, clip_steps=2,
    )  # fmt: skip
    recipe.dit = dataclasses.replace(recipe.dit, in_channels=4, out_channels=4, patch_size=(1, 2, 2))
    runs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        out.mkdir()
        for name in os.listdir(tmp_path):
            if name.startswith("text_encoder-sprites"):
                os.link(tmp_path / name, out / name)
        written = td.train(
            recipe, out_dir=str(out), state_dir=str(tmp_path / f"run-{device}"), final_eval=2, log_every=1,
            device=device,
        )  # fmt: skip
        card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
        runs[device] = (load_file(written["dit"]), card)
    (cpu, cpu_card), (cuda, cuda_card) = runs["cpu"], runs["cuda"]
    assert "trained on CUDA" in cuda_card["machine"] and "trained on CUDA" not in cpu_card["machine"]
    assert cuda_card["quick_evaluation_at_training_resolution"]["clips"] == 2
    # The last step's losses: within float noise of each other after 4 steps (warm-up keeps them small).
    assert cuda_card["final_losses"]["loss_clip"] == pytest.approx(
        cpu_card["final_losses"]["loss_clip"], rel=1e-2
    )
    assert cuda.keys() == cpu.keys()
    for name, value in cpu.items():
        assert cuda[name].dtype == value.dtype == torch.float16
        torch.testing.assert_close(cuda[name].float(), value.float(), atol=2e-3, rtol=1e-2, msg=name)


@pytest.mark.parametrize("attention", ["sdpa", "auto"])
def test_training_attention_follows_the_recipe(tmp_path, monkeypatch, attention):
    from videocascade.cuda_ext import dispatch

    calls = []
    real = dispatch.math_attention
    monkeypatch.setattr(dispatch, "math_attention", lambda *a: calls.append(1) or real(*a))
    recipe = tiny_recipe(text_probe_steps=0, image_steps=1, clip_steps=1, attention=attention)
    written = td.train(recipe, out_dir=str(tmp_path), state_dir=str(tmp_path / "s"), final_eval=0)
    # "sdpa" (every shipped DiT's) never writes the attention out; "auto" does for these few keys.
    assert (len(calls) > 0) == (attention == "auto")
    card = json.loads(open(written["dit"].replace(".safetensors", ".card.json")).read())
    assert card["recipe"]["attention"] == attention
    assert td.recipe_for(StageArgs(stage="makeavideo", options={"attention": "auto"})).attention == "auto"
    with pytest.raises(ValueError, match="attention must be one of"):
        td.build_trainer(dataclasses.replace(recipe, attention="flash"), TextEncoder(recipe.text))
