"""Training machinery: schedule, EMA, resumable loop (a resumed run equals an uninterrupted one), cards, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from videocascade.sprites import train
from videocascade.sprites.train_common import (
    EMA,
    LoopConfig,
    StageArgs,
    Trainer,
    psnr,
    step_generator,
    warmup_cosine,
    write_card,
)


def test_warmup_cosine_shape():
    assert warmup_cosine(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
    values = [warmup_cosine(s, 100, 10, 0.1) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


TARGET = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def _regression(init_seed: int, data_seed: int = 0):
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))

    def batch_loss(step):
        x = torch.randn(16, 4, generator=step_generator(data_seed, step))
        return {"loss": ((model(x) - x @ TARGET) ** 2).mean()}

    return model, batch_loss


def test_trainer_learns_and_resume_matches_uninterrupted(tmp_path):
    loop = LoopConfig(steps=60, lr=3e-2, warmup_steps=5, log_every=10, ema_decay=0.9)
    model, batch_loss = _regression(0)
    full = Trainer("toy", model, loop, str(tmp_path / "full"), log=lambda _: None).run(batch_loss)
    assert full.final_losses["loss"] < full.history[0]["loss"] * 0.2

    # The same run cut off after 25 steps (its state saved), then resumed into a differently initialised
    # model: the resume must restore weights, optimiser, EMA and step, and replay the same data.
    model, batch_loss = _regression(0)
    cut = Trainer("toy", model, loop, str(tmp_path / "cut"), log=lambda _: None)
    cut.run(batch_loss, stop_at=25)
    model2, batch_loss2 = _regression(123)
    resumed_trainer = Trainer("toy", model2, loop, str(tmp_path / "cut"), log=lambda _: None)
    assert resumed_trainer.step == 25
    resumed = resumed_trainer.run(batch_loss2)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_trainer_refuses_state_of_another_run(tmp_path):
    model, batch_loss = _regression(0)
    Trainer("one", model, LoopConfig(steps=2, log_every=1), str(tmp_path), log=lambda _: None).run(batch_loss)
    with pytest.raises(RuntimeError, match="no-resume"):
        Trainer("two", model, LoopConfig(steps=2), str(tmp_path), log=lambda _: None)


def test_trainer_only_trains_given_params(tmp_path):
    model, batch_loss = _regression(0)
    frozen = model[0].weight.detach().clone()
    model[0].requires_grad_(False)
    Trainer(
        "part", model, LoopConfig(steps=3, log_every=1), str(tmp_path), params=model[1].parameters(),
        log=lambda _: None,
    ).run(batch_loss)  # fmt: skip
    torch.testing.assert_close(model[0].weight, frozen)


def test_ema_tracks_model():
    model = nn.Linear(2, 2)
    ema = EMA(model, 0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    for step in range(50):
        ema.update(model, step)
    torch.testing.assert_close(ema.shadow.weight, model.weight)


def test_write_card_and_psnr(tmp_path):
    path = tmp_path / "card.json"
    write_card(str(path), {"psnr": 31.123456789, "config": LoopConfig(steps=3)})
    card = json.loads(path.read_text())
    assert card["psnr"] == 31.1235 and card["config"]["steps"] == 3
    a = torch.zeros(10)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)


def test_stage_args_options():
    args = StageArgs(stage="x", options={"width": "64", "flag": "true"})
    assert args.option("width", 32) == 64 and args.option("flag", False) is True
    assert args.option("missing", 1.5) == 1.5
    with pytest.raises(ValueError, match="true or false"):
        StageArgs(stage="x", options={"flag": "maybe"}).option("flag", False)


def test_cli_unknown_stage_is_clear(capsys):
    assert train.main(["list"]) == 0
    with pytest.raises(SystemExit, match="unknown stage 'nope'"):
        train.main(["nope"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tsr", "--device", "cuda"], "stage 'tsr' trains on the CPU only; the DiT stages"),
        (["makeavideo", "--device", "mps"], "run on cpu or cuda"),
        (["makeavideo", "--device", "gpu0"], "expected cpu, cuda or cuda:N"),
    ],
)
def test_cli_device_errors_name_the_fix(argv, message):
    with pytest.raises(SystemExit, match=message):
        train.main(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cli_cuda_without_a_gpu_says_to_train_on_the_cpu():
    with pytest.raises(SystemExit, match="sees no CUDA GPU here; leave --device out"):
        train.main(["makeavideo", "--device", "cuda"])
