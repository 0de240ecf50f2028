"""Learned spatial super-resolution: the network, its checkpoint, the nodes, and the shipped weights."""

from __future__ import annotations

import os
import random

import pytest
import torch
import torch.nn.functional as F
from videocascade.models.ssr import (
    CHECKPOINT_KIND,
    SSRConfig,
    SSRNet,
    base_upscale,
    learned_upscale,
    load_ssr,
    plan_scales,
    stack_neighbours,
)
from videocascade.nodes import NODE_CLASS_MAPPINGS as NODES
from videocascade.runtime.checkpoints import CheckpointError, save_checkpoint
from videocascade.runtime.model_paths import EMBEDDED_DIR
from videocascade.sprites import random_clip_spec, render_clip
from videocascade.upscaling import upscale

SHIPPED = os.path.join(EMBEDDED_DIR, "upscaler-sprites-ssr.safetensors")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clip(seed=5, frames=3, size=16, fps=16.0, split="train"):
    spec = random_clip_spec(random.Random(seed), split=split, num_objects=1, duration=2.0)
    return render_clip(spec, frames, size, size, fps)


def _random_net(seed=0):
    torch.manual_seed(seed)
    net = SSRNet(SSRConfig(width=8, num_blocks=1))
    for tail in net.tails.values():  # real tails start at zero; make them do something
        torch.nn.init.normal_(tail.weight, std=0.05)
    return net.eval()


def test_fresh_network_is_bicubic_and_shapes():
    net = SSRNet(SSRConfig(width=8, num_blocks=1)).eval()
    frames = torch.rand(2, 9, 10, 12)
    for scale in (2, 4):
        out = net(frames, scale)
        assert out.shape == (2, 3, 10 * scale, 12 * scale)
        bicubic = F.interpolate(frames[:, 3:6], scale_factor=scale, mode="bicubic", align_corners=False)
        torch.testing.assert_close(out, bicubic)
    with pytest.raises(ValueError, match="not x3"):
        net(frames, 3)


def test_fresh_weight_free_network_is_the_weight_free_upscaler():
    net = SSRNet(SSRConfig(width=8, num_blocks=1, base="weight_free")).eval()
    frames = _clip()
    torch.testing.assert_close(learned_upscale(net, frames, (64, 64)), upscale(frames, scale=4))
    chw = frames.permute(0, 3, 1, 2)
    with pytest.raises(ValueError, match="pass base="):
        net(stack_neighbours(chw, [0], 1), 4)
    assert base_upscale(SSRConfig(), chw, 2) is None


def test_neighbour_stacking_repeats_the_edges():
    frames = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    stacked = stack_neighbours(frames, [0, 3], 1)
    assert stacked.shape == (2, 9, 2, 2)
    assert stacked[0, ::3, 0, 0].tolist() == [0.0, 0.0, 1.0] and stacked[1, ::3, 0, 0].tolist() == [
        2.0,
        3.0,
        3.0,
    ]


def test_plan_scales():
    assert plan_scales(4, (2, 4)) == [4]
    assert plan_scales(2, (2, 4)) == [2]
    assert plan_scales(3, (2, 4)) == [4]
    assert plan_scales(1.5, (2, 4)) == [2]
    assert plan_scales(8, (2, 4)) == [4, 2]
    assert plan_scales(16, (2,)) == [2, 2, 2, 2]
    assert plan_scales(1.0, (2, 4)) == []


@pytest.mark.parametrize("size", [(64, 64), (48, 40), (8, 8)])
def test_learned_upscale_sizes(size):
    frames = _clip()
    out = learned_upscale(_random_net(), frames, size)
    assert out.shape == (3, *size, 3) and 0.0 <= out.min() and out.max() <= 1.0


def test_checkpoint_round_trip_and_wrong_kind(tmp_path):
    net = _random_net()
    path = tmp_path / "ssr.safetensors"
    save_checkpoint(path, net, net.config, CHECKPOINT_KIND, "sprites-ssr")
    loaded, family = load_ssr(path)
    assert family == "sprites-ssr" and loaded.config == net.config
    frames = _clip()
    torch.testing.assert_close(
        learned_upscale(loaded, frames, (64, 64)), learned_upscale(net, frames, (64, 64))
    )
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, net, net.config, "interpolator", "sprites-tsr")
    with pytest.raises(CheckpointError, match="'interpolator' checkpoint, but a 'upscaler'"):
        load_ssr(other)


def test_nodes_use_the_learned_upscaler(tmp_path):
    net = _random_net()
    path = tmp_path / "ssr.safetensors"
    save_checkpoint(path, net, net.config, CHECKPOINT_KIND, "sprites-ssr")
    (handle,) = NODES["VCUpscalerLoader"]().load("(path below)", "fp32", path=str(path))
    assert handle.kind == "upscaler" and handle.family == "sprites-ssr"
    frames = _clip()
    node = NODES["VCSpatialUpscale"]()
    (out,) = node.upscale(frames, 4.0, 0, 0, "nearest", 0.0, upscaler=handle)
    torch.testing.assert_close(out, learned_upscale(net, frames, (64, 64)))
    (out,) = node.upscale(frames, 1.0, 40, 0, "lanczos", 1.0, upscaler=handle)
    assert out.shape == (3, 40, 40, 3)
    with pytest.raises(TypeError, match="'upscaler' expects an upscaler from VC Upscaler Loader"):
        node.upscale(frames, 2.0, 0, 0, "nearest", 0.0, upscaler=handle.__class__(net, None, "x", "vae"))


@pytest.mark.skipif(
    not os.path.isfile(SHIPPED), reason="weights/upscaler-sprites-ssr.safetensors not trained yet"
)
def test_shipped_upscaler_beats_the_weight_free_upscaler_on_held_out_clips():
    from videocascade.sprites.train_cascade import ssr_eval_clips

    model, family = load_ssr(SHIPPED)
    assert family == "sprites-ssr"
    learned = weight_free = 0.0
    for low, high in ssr_eval_clips(32, 4, count=3):  # the cascade's case: 32 -> 128 px
        learned += float(((learned_upscale(model, low, (128, 128)) - high) ** 2).mean())
        weight_free += float(((upscale(low, scale=4) - high) ** 2).mean())
    assert weight_free > 1.05 * learned, (weight_free, learned)  # pooled squared error
