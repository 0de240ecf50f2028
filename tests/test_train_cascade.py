"""TSR / SSR training data (exact targets, aligned crops, fixed by the seed) and the held-out comparisons."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from videocascade.models.ssr import SSRConfig, SSRNet
from videocascade.models.tsr import TSRConfig, TSRNet
from videocascade.sprites.train_cascade import (
    _tsr_pair,
    _tsr_times,
    compare_ssr,
    compare_tsr,
    ssr_batch,
    tsr_eval_clips,
)
from videocascade.sprites.train_common import psnr


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tsr_pairs_are_fixed_by_seed_and_targets_lie_between_the_pair():
    pair = _tsr_pair(0, 3)
    assert pair.shape == (10, 3, 32, 32) and torch.equal(pair, _tsr_pair(0, 3))
    times = _tsr_times(0, 3)
    assert all(0.1 < t < 0.9 for t in times) and times == sorted(times)
    f0, f1, base, target = pair[1], pair[2], pair[4:7], pair[7:10]
    # The flow frames approximate the targets far better than either end of the pair does.
    for k in range(3):
        assert psnr(base[k], target[k]) >= min(psnr(f0, target[k]), psnr(f1, target[k]))


def test_ssr_batches_are_aligned_renders():
    for scale in (2, 4):
        low, high, base = ssr_batch(0, 1, 3, scale, with_base=True)
        crop = low.shape[-1]
        assert low.shape == (3, 9, crop, crop) and high.shape == base.shape == (
            3,
            3,
            crop * scale,
            crop * scale,
        )
        # Area-downsampling the high-resolution target gives back the low-resolution middle frame, and the
        # weight-free upscaling of the whole frame, cropped, lines up with the target.
        assert psnr(F.avg_pool2d(high, scale), low[:, 3:6]) > 30.0
        assert psnr(base, high) > psnr(F.interpolate(low[:, 3:6], scale_factor=scale), high)
        again = ssr_batch(0, 1, 3, scale)
        assert torch.equal(low, again[0]) and again[2] is None


def test_eval_clips_are_held_out_and_exact():
    low, high = tsr_eval_clips(32, 4.0, 4, count=1)[0]
    assert low.shape == (9, 32, 32, 3) and high.shape == (33, 32, 32, 3)
    assert torch.equal(high[::4], low)


def test_comparisons_of_untrained_networks_equal_their_base():
    tsr = compare_tsr(TSRNet(TSRConfig(widths=(8, 12))).eval(), count=1)
    for row in tsr.values():
        assert row["learned_minus_flow_db"] == pytest.approx(0.0, abs=1e-4)
    ssr = compare_ssr(SSRNet(SSRConfig(width=8, num_blocks=1)).eval(), count=1)
    for row in ssr.values():
        assert row["learned_minus_bicubic_db"] == pytest.approx(0.0, abs=0.05)
