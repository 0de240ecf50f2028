"""Learned temporal super-resolution: the network, its checkpoint, the nodes, and the shipped weights."""

from __future__ import annotations

import os
import random

import pytest
import torch
from videocascade.interpolation import frames_at, interpolate
from videocascade.models.tsr import (
    CHECKPOINT_KIND,
    TSRConfig,
    TSRNet,
    learned_frames_at,
    learned_interpolate,
    load_tsr,
)
from videocascade.nodes import NODE_CLASS_MAPPINGS as NODES
from videocascade.runtime.checkpoints import CheckpointError, save_checkpoint
from videocascade.runtime.model_paths import EMBEDDED_DIR
from videocascade.sprites import random_clip_spec, render_clip

SHIPPED = os.path.join(EMBEDDED_DIR, "interpolator-sprites-tsr.safetensors")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clip(seed=3, frames=5, size=32, fps=4.0, split="train"):
    spec = random_clip_spec(random.Random(seed), split=split, num_objects=1, duration=frames / fps)
    return render_clip(spec, frames, size, size, fps)


def _random_net(seed=0, widths=(8, 12)):
    torch.manual_seed(seed)
    net = TSRNet(TSRConfig(widths=widths))
    for p in net.out.parameters():  # the real output layer starts at zero; make it do something
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def test_fresh_network_is_the_weight_free_flow_interpolation():
    frames = _clip()
    net = TSRNet(TSRConfig(widths=(8, 12, 16))).eval()
    torch.testing.assert_close(learned_interpolate(net, frames, 2), interpolate(frames, 2, "flow"))


@pytest.mark.parametrize("size", [(20, 28), (33, 17)])
def test_shapes_on_sizes_not_divisible_by_the_downsampling(size):
    net = _random_net(widths=(8, 12, 16))
    x = [torch.rand(3, 3, *size) for _ in range(5)]
    out = net(*x, torch.tensor([0.25, 0.5, 0.75]))
    assert out.shape == (3, 3, *size)


def test_source_frames_pass_through_and_positions_are_respected():
    frames = _clip(frames=4)
    net = _random_net()
    out = learned_interpolate(net, frames, 3)
    assert out.shape == (10, 32, 32, 3)
    assert torch.equal(out[::3], frames)
    assert 0.0 <= out.min() and out.max() <= 1.0
    positions = [0.0, 0.5, 1.25, 2.75, 3.0]
    at = learned_frames_at(net, frames, positions)
    base = frames_at(frames, positions, "flow")
    assert torch.equal(at[0], frames[0]) and torch.equal(at[-1], frames[-1])
    assert not torch.allclose(at[1], base[1])  # the network changed the in-between frame
    torch.testing.assert_close(at[2], learned_interpolate(net, frames, 4)[5])  # 1.25 = output 5 of x4


def test_checkpoint_round_trip_and_wrong_kind(tmp_path):
    net = _random_net()
    path = tmp_path / "tsr.safetensors"
    save_checkpoint(path, net, net.config, CHECKPOINT_KIND, "sprites-tsr")
    loaded, family = load_tsr(path)
    assert family == "sprites-tsr" and loaded.config == net.config
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, net, net.config, "upscaler", "sprites-ssr")
    with pytest.raises(CheckpointError, match="'upscaler' checkpoint, but a 'interpolator'"):
        load_tsr(other)


def test_nodes_use_the_learned_interpolator(tmp_path):
    net = _random_net()
    path = tmp_path / "tsr.safetensors"
    save_checkpoint(path, net, net.config, CHECKPOINT_KIND, "sprites-tsr")
    loader = NODES["VCInterpolatorLoader"]()
    (handle,) = loader.load("(path below)", "fp32", path=str(path))
    assert handle.kind == "interpolator" and handle.family == "sprites-tsr"
    frames = _clip(frames=3)
    node = NODES["VCTemporalInterpolate"]()
    out, fps = node.interpolate(frames, "x4", 4.0, 24.0, "blend", interpolator=handle)
    assert fps == 16.0
    torch.testing.assert_close(out, learned_interpolate(net, frames, 4))
    retimed, fps = node.interpolate(frames, "target fps", 4.0, 10.0, "flow", interpolator=handle)
    assert fps == 10.0 and retimed.shape[0] == 6  # floor(2 * 10 / 4) + 1
    torch.testing.assert_close(retimed[1], learned_frames_at(net, frames, [0.4])[0])


def test_node_errors_name_the_input():
    frames = _clip(frames=3)
    node = NODES["VCTemporalInterpolate"]()
    with pytest.raises(TypeError, match="'interpolator' expects an interpolator from VC Interpolator Loader"):
        node.interpolate(frames, "x2", 8.0, 24.0, "flow", interpolator=object())
    with pytest.raises(FileNotFoundError, match="path"):
        NODES["VCInterpolatorLoader"]().load("(path below)", "fp32", path="/nonexistent/tsr.safetensors")


@pytest.mark.skipif(
    not os.path.isfile(SHIPPED), reason="weights/interpolator-sprites-tsr.safetensors not trained yet"
)
def test_shipped_interpolator_beats_flow_on_held_out_clips():
    from videocascade.sprites.train_cascade import _in_between_mse, tsr_eval_clips

    model, family = load_tsr(SHIPPED)
    assert family == "sprites-tsr"
    learned = flow = 0.0
    for low, high in tsr_eval_clips(32, 4.0, 4, count=3):  # the cascade's case: 9 frames, 32 px, 4 fps, x4
        learned += _in_between_mse(learned_interpolate(model, low, 4), high, 4)
        flow += _in_between_mse(interpolate(low, 4, "flow"), high, 4)
    assert flow > 1.1 * learned, (flow, learned)  # pooled squared error of the in-between frames
