"""Samplers without diffusers: exact Gaussian denoiser convergence, CFG, denoise < 1, schedules, errors."""

import math

import pytest
import torch
from videocascade.samplers import (
    PRESETS,
    SCHEDULES,
    SOLVERS,
    FlowPrediction,
    Step,
    VPPrediction,
    cogvideox_dynamic_scale,
    concat_conds,
    get_preset,
    get_solver,
    guided_prediction,
    make_schedule,
    sample,
    wan21_preset,
)

# ---------------------------------------------------------------- exact Gaussian denoiser
# Data x0 ~ N(mu, sd^2) per element: E[x0 | x] is known in closed form, and the probability-flow ODE maps a
# state at level (alpha, sigma) to mu + sd * (x - alpha mu) / sqrt(alpha^2 sd^2 + sigma^2) at clean data.
MU = torch.randn(4, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
SD = 0.5
Z = torch.randn(4, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def gaussian_denoiser(x, step):
    a, s = step.alpha, step.sigma
    return MU + a * SD**2 / (a * a * SD**2 + s * s) * (x - a * MU)


def exact_endpoint(schedule, x):
    a, s = schedule.alphas[0], schedule.sigmas[0]
    return MU + SD * (x - a * MU) / math.sqrt(a * a * SD**2 + s * s)


def ode_errors(solver, prediction, schedule_name, steps_list):
    errors = []
    for steps in steps_list:
        schedule = make_schedule(prediction, schedule_name, steps)
        out = SOLVERS[solver](gaussian_denoiser, Z.clone(), schedule)
        errors.append((out - exact_endpoint(schedule, Z)).abs().max().item())
    return errors


def test_flow_ode_from_pure_noise_maps_z_to_mu_plus_sd_z():
    schedule = make_schedule(FlowPrediction(), "linspace", 10)
    assert schedule.sigmas[0] == 1.0  # starts at pure noise, so the exact answer is mu + sd * z
    assert torch.allclose(exact_endpoint(schedule, Z), MU + SD * Z)
    out = SOLVERS["heun"](gaussian_denoiser, Z.clone(), make_schedule(FlowPrediction(), "linspace", 200))
    assert (out - (MU + SD * Z)).abs().max() < 1e-4


@pytest.mark.parametrize("schedule", ["linspace", "karras"])
def test_error_falls_with_steps_and_faster_for_higher_order(schedule):
    steps = [10, 20, 40, 80, 160]
    errors = {
        name: ode_errors(name, FlowPrediction(), schedule, steps)
        for name in ("euler", "heun", "dpmpp_2m", "unipc")
    }
    for name, errs in errors.items():
        assert all(b < a for a, b in zip(errs, errs[1:])), f"{name} error does not fall with steps: {errs}"
    order = {name: math.log2(errs[-2] / errs[-1]) for name, errs in errors.items()}
    assert 0.85 < order["euler"] < 1.2, order
    for name in ("heun", "dpmpp_2m", "unipc"):
        assert order[name] > 1.6, order
        assert errors[name][-1] < errors["euler"][-1] / 5, (name, errors)


@pytest.mark.parametrize("solver", ["euler", "heun", "dpmpp_2m", "unipc", "ddim"])
def test_vp_zero_terminal_snr_converges(solver):
    """From exact pure noise (alpha = 0) the log-SNR solvers must stay finite and converge."""
    errors = ode_errors(solver, PRESETS["cogvideox-2b"].prediction, "trailing", [10, 20, 40, 80])
    assert all(math.isfinite(e) for e in errors)
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.2


def test_euler_equals_ddim_on_every_family():
    for prediction, name in [(FlowPrediction(shift=3.0), "simple"), (PRESETS["cogvideox-5b"].prediction, "trailing"),
                             (VPPrediction(), "leading")]:  # fmt: skip
        schedule = make_schedule(prediction, name, 12)
        a = SOLVERS["euler"](gaussian_denoiser, Z.clone(), schedule)
        b = SOLVERS["ddim"](gaussian_denoiser, Z.clone(), schedule)
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("solver, eta", [("dpmpp_2m_sde", None), ("ddim", 1.0)])
def test_stochastic_solvers_sample_the_data_distribution(solver, eta):
    """An SDE does not follow the ODE path, but as steps grow its samples get the data's mean and spread."""
    mu, sd = 1.5, 0.5

    def denoiser(x, step):
        a, s = step.alpha, step.sigma
        return mu + a * sd**2 / (a * a * sd**2 + s * s) * (x - a * mu)

    spread_error = []
    for steps in (10, 200):
        g = torch.Generator().manual_seed(3)
        x = torch.randn(4000, generator=g, dtype=torch.float64)
        options = {"noise_sampler": lambda y, g=g: torch.randn(y.shape, generator=g, dtype=y.dtype)}
        if eta is not None:
            options["eta"] = eta
        out = SOLVERS[solver](
            denoiser, x, make_schedule(FlowPrediction(shift=3.0), "linspace", steps), **options
        )
        assert abs(out.mean().item() - mu) < 0.03
        spread_error.append(abs(out.std().item() - sd))
    assert spread_error[1] < 0.03 and spread_error[1] < spread_error[0] / 3, spread_error


# ---------------------------------------------------------------- sample(): model calls, CFG, denoise


class Recorder:
    """A toy model (linear in x, depends on t and cond) that logs every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, cond):
        self.calls.append((x.clone(), t.clone(), cond))
        context = cond["context"] if isinstance(cond, dict) else cond
        return (
            0.5 * x + torch.cos(t / 300).view(-1, *[1] * (x.ndim - 1)) + context.view(-1, *[1] * (x.ndim - 1))
        )


def conds(batch=2):
    return {"context": torch.full((batch,), 0.2)}, {"context": torch.full((batch,), -0.4)}


def run(model, **kw):
    args = dict(steps=6, solver="euler", cfg=1.0, progress=False)
    args.update(kw)
    prediction = args.pop("prediction", FlowPrediction(shift=2.0))
    noise = args.pop("noise", torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(5)))
    return sample(model, prediction, noise, **args)


def test_cfg_one_is_cond_only_with_one_call_per_step():
    cond, uncond = conds()
    a, b = Recorder(), Recorder()
    out = run(a, cfg=1.0, cond=cond, uncond=uncond)
    ref = run(b, cfg=1.0, cond=cond)  # no uncond at all
    assert torch.equal(out, ref)
    assert len(a.calls) == 6 and all(c[2] is cond for c in a.calls)


def test_batched_cfg_equals_separate_calls():
    cond, uncond = conds()
    batched, separate = Recorder(), Recorder()
    out_b = run(batched, cfg=4.0, cond=cond, uncond=uncond)
    out_s = run(separate, cfg=4.0, cond=cond, uncond=uncond, batch_conds=None)
    assert torch.allclose(out_b, out_s, atol=1e-6)
    assert len(batched.calls) == 6 and len(separate.calls) == 12
    x, t, c = batched.calls[0]
    assert (
        x.shape[0] == 4
        and t.shape == (4,)
        and torch.equal(c["context"], torch.tensor([-0.4, -0.4, 0.2, 0.2]))
    )


def test_guided_prediction_formula_and_fallback():
    x, t = torch.randn(2, 3), torch.full((2,), 500.0)

    def model(x, t, c):
        return x * c["w"]

    cond, uncond = {"w": torch.full((2, 1), 2.0)}, {"w": torch.full((2, 1), 0.5)}
    out = guided_prediction(model, x, t, cond, uncond, 3.0)
    assert torch.allclose(out, 0.5 * x + 3.0 * (2.0 * x - 0.5 * x))
    # contexts of different lengths cannot be concatenated: two calls, same answer
    calls = []

    def ctx_model(x, t, c):
        calls.append(c)
        return x * c["ctx"].mean(dim=1, keepdim=True)

    cond, uncond = {"ctx": torch.ones(2, 7)}, {"ctx": torch.zeros(2, 5)}
    assert concat_conds(uncond, cond, 2) is None
    out = guided_prediction(ctx_model, x, t, cond, uncond, 2.0)
    assert len(calls) == 2 and torch.allclose(out, 2.0 * x)


def test_concat_conds_nested_structures():
    from dataclasses import dataclass

    @dataclass
    class Cond:
        context: torch.Tensor
        mask: torch.Tensor
        name: str

    a = Cond(torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.bool), "x")
    b = Cond(torch.ones(1, 3, 2), torch.zeros(1, 3, dtype=torch.bool), "x")
    both = concat_conds(a, b, 1)
    assert both.context.shape == (2, 3, 2) and both.mask.tolist() == [[True] * 3, [False] * 3]
    assert concat_conds(a, Cond(b.context, b.mask, "y"), 1) is None  # differing non-tensor leaves
    pairs = concat_conds(
        [[a.context, {"m": a.mask}]], [[b.context, {"m": b.mask}]], 1
    )  # ComfyUI CONDITIONING
    assert pairs[0][0].shape == (2, 3, 2) and pairs[0][1]["m"].shape == (2, 3)
    assert concat_conds(a.context, b.context, 2) is None  # rows must be the latent's batch


def test_dynamic_cfg_scale():
    # CogVideoX's formula as its pipeline writes it (timestep in 0..999, steps = inference steps)
    assert cogvideox_dynamic_scale(6.0, 50, 50) == 1.0
    assert cogvideox_dynamic_scale(6.0, 999, 50) == pytest.approx(
        1 + 6 * (1 - math.cos(math.pi * (-949 / 50) ** 5)) / 2
    )


def test_cfg_needs_uncond():
    with pytest.raises(ValueError, match="uncond"):
        run(Recorder(), cfg=5.0, cond=conds()[0])


def test_denoise_starts_from_noised_latent_at_the_right_level():
    prediction = FlowPrediction(shift=2.0)
    noise = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(5))
    latent = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(6))
    model = Recorder()
    run(model, prediction=prediction, noise=noise, latent=latent, denoise=0.5, steps=10, cond=conds()[0])
    full = make_schedule(prediction, "default", 10)
    assert len(model.calls) == 5
    assert [c[1][0].item() for c in model.calls] == pytest.approx(full.timesteps[5:])
    s = full.sigmas[5]
    assert torch.allclose(model.calls[0][0], (1 - s) * latent + s * noise)


def test_denoise_vp_start_level():
    prediction = PRESETS["cogvideox-2b"].prediction
    noise, latent = torch.randn(1, 2, 3, 2, 2), torch.randn(1, 2, 3, 2, 2)
    model = Recorder()
    run(model, prediction=prediction, noise=noise, latent=latent, denoise=0.3, steps=10, cond=conds(1)[0])
    a = prediction.alphas_cumprod()[int(model.calls[0][1][0])]
    assert len(model.calls) == 3 and model.calls[0][1][0].item() == 299.0
    assert torch.allclose(model.calls[0][0], math.sqrt(a) * latent + math.sqrt(1 - a) * noise, atol=1e-6)


def test_denoise_zero_returns_the_input_and_denoise_one_starts_from_noise():
    latent = torch.randn(1, 2, 3, 2, 2)
    model = Recorder()
    out = run(model, noise=torch.randn(1, 2, 3, 2, 2), latent=latent, denoise=0.0, cond=conds(1)[0])
    assert torch.equal(out, latent) and out is not latent and not model.calls
    noise = torch.randn(1, 2, 3, 2, 2)
    run(model, noise=noise, latent=latent, denoise=1.0, cond=conds(1)[0])
    assert torch.equal(model.calls[0][0], noise)


def test_denoise_needs_latent():
    with pytest.raises(ValueError, match="latent"):
        run(Recorder(), denoise=0.5, cond=conds()[0])


def test_callback_reports_every_step_and_heun_calls():
    seen = []
    model = Recorder()
    out = run(
        model, solver="heun", steps=5, cond=conds()[0], callback=lambda i, x0, x, n: seen.append((i, n, x))
    )
    assert [(i, n) for i, n, _ in seen] == [(i, 5) for i in range(5)]
    assert torch.equal(seen[-1][2], out)
    assert len(model.calls) == 2 * 5 - 1  # Heun: two calls per step, one on the last


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_solver_runs_on_every_family(solver, preset):
    p = get_preset(preset)
    gen = torch.Generator().manual_seed(0)
    out = run(Recorder(), prediction=p.prediction, solver=solver, steps=4, cfg=p.cfg, cond=conds()[0],
              uncond=conds()[1], generator=gen)  # fmt: skip
    assert out.shape == (2, 4, 3, 2, 2) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_stochastic_solver_is_seeded_by_generator():
    kw = dict(solver="dpmpp_2m_sde", cond=conds()[0], prediction=PRESETS["cogvideox-5b"].prediction)
    a = run(Recorder(), generator=torch.Generator().manual_seed(1), **kw)
    b = run(Recorder(), generator=torch.Generator().manual_seed(1), **kw)
    c = run(Recorder(), generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_float64_stays_float64():
    out = run(Recorder(), noise=torch.randn(1, 2, 1, 2, 2, dtype=torch.float64), cond=conds(1)[0])
    assert out.dtype == torch.float64


# ---------------------------------------------------------------- predictions and schedules


@pytest.mark.parametrize(
    "prediction, raw",
    [
        (FlowPrediction(), lambda x0, n, a, s: n - x0),
        (VPPrediction(target="eps"), lambda x0, n, a, s: n),
        (VPPrediction(target="v", zero_terminal_snr=True), lambda x0, n, a, s: a * n - s * x0),
    ],
)
def test_denoised_inverts_noised(prediction, raw):
    x0, n = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    schedule = make_schedule(prediction, "default", 7)
    for i in range(schedule.steps):
        step = schedule.step(i)
        x = prediction.noised(x0, n, step)
        assert torch.allclose(prediction.denoised(x, raw(x0, n, step.alpha, step.sigma), step), x0, atol=1e-9)


def test_flow_shift_and_timesteps():
    schedule = make_schedule(FlowPrediction(shift=3.0), "simple", 4)
    base = [1.0, 0.75025, 0.5005, 0.25075]  # linspace(1, 1/1000, 5)[:-1]
    expected = [3 * s / (1 + 2 * s) for s in base]
    expected[0] -= 1e-6
    assert schedule.sigmas == pytest.approx([*expected, 0.0])
    assert schedule.timesteps == pytest.approx([s * 1000 for s in expected])
    assert schedule.alphas == pytest.approx([1 - s for s in schedule.sigmas])
    ints = make_schedule(FlowPrediction(shift=3.0, integer_timesteps=True), "simple", 4)
    assert ints.timesteps == tuple(float(math.floor(s * 1000)) for s in expected)
    # a shift argument overrides the prediction's
    assert make_schedule(FlowPrediction(shift=1.0), "simple", 4, shift=3.0).sigmas == schedule.sigmas


def test_karras_schedules():
    for prediction in (FlowPrediction(), VPPrediction(), PRESETS["cogvideox-2b"].prediction):
        schedule = make_schedule(prediction, "karras", 12)
        assert all(b < a for a, b in zip(schedule.sigmas, schedule.sigmas[1:]))
        assert all(b <= a for a, b in zip(schedule.timesteps, schedule.timesteps[1:]))
        assert schedule.sigmas[-1] == 0.0 and schedule.alphas[-1] == 1.0
        for a, s in zip(schedule.alphas, schedule.sigmas):
            if isinstance(prediction, VPPrediction):
                assert a * a + s * s == pytest.approx(1.0)


def test_vp_schedule_levels_and_final_level():
    p = VPPrediction(final_alpha_one=False)
    schedule = make_schedule(p, "trailing", 10)
    assert schedule.timesteps == tuple(float(t) for t in range(999, 0, -100))
    acp = p.alphas_cumprod()
    assert schedule.alphas[0] == pytest.approx(math.sqrt(acp[999]))
    assert schedule.sigmas[-1] == pytest.approx(math.sqrt(1 - acp[0]))  # set_alpha_to_one=False
    assert make_schedule(VPPrediction(), "trailing", 10).sigmas[-1] == 0.0
    assert make_schedule(VPPrediction(), "simple", 10).timesteps == schedule.timesteps  # ComfyUI simple


def test_schedule_tail_keeps_the_end():
    full = make_schedule(VPPrediction(), "trailing", 10)
    tail = make_schedule(VPPrediction(), "trailing", 10, denoise=0.25)
    assert tail.steps == 3 and tail.sigmas == full.sigmas[-4:] and tail.timesteps == full.timesteps[-3:]
    assert make_schedule(VPPrediction(), "trailing", 10, denoise=0.01).steps == 1  # denoise > 0 runs a step
    assert make_schedule(VPPrediction(), "trailing", 10, denoise=0.0).steps == 0


def test_presets():
    assert set(PRESETS) == {"wan2.1-480p", "wan2.1-720p", "cogvideox-2b", "cogvideox-5b"}
    assert wan21_preset(480, 832).prediction.shift == 3.0 and wan21_preset(720, 1280).prediction.shift == 5.0
    wan = PRESETS["wan2.1-480p"]
    assert (wan.solver, wan.steps, wan.cfg) == ("unipc", 50, 5.0)
    cog = PRESETS["cogvideox-2b"]
    assert (cog.solver, cog.steps, cog.cfg, cog.prediction.snr_shift_scale) == ("ddim", 50, 6.0, 3.0)
    assert PRESETS["cogvideox-5b"].prediction.snr_shift_scale == 1.0
    for p in PRESETS.values():
        assert p.solver in SOLVERS and p.schedule in SCHEDULES


# ---------------------------------------------------------------- errors a user can hit


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(solver="euler_a"), "unknown solver 'euler_a'"),
        (dict(schedule="cosine"), "unknown schedule 'cosine'"),
        (dict(schedule="trailing"), "not defined for flow"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(steps=2.5), "steps must be an integer"),
        (dict(denoise=1.5), r"denoise must be in \[0, 1\]"),
        (dict(shift=0.0), "shift must be > 0"),
        (dict(cfg=-1.0), "cfg must be >= 0"),
        (dict(solver_options={"eta": 0.5}), "takes options"),
        (dict(latent=torch.zeros(1, 1)), "latent shape"),
        (dict(prediction=VPPrediction(), shift=3.0), "flow-matching models only"),
    ],
)
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(Recorder(), cond=conds()[0], **kwargs)


def test_invalid_predictions_and_names():
    with pytest.raises(ValueError, match="target='v'"):
        VPPrediction(target="eps", zero_terminal_snr=True)
    with pytest.raises(ValueError, match="target must be one of"):
        VPPrediction(target="sample")
    with pytest.raises(ValueError, match="beta_schedule"):
        VPPrediction(beta_schedule="cosine")
    with pytest.raises(ValueError, match="shift"):
        FlowPrediction(shift=-1.0)
    with pytest.raises(ValueError, match="unknown solver"):
        get_solver("dpm_fast")
    with pytest.raises(ValueError, match="unknown sampler preset"):
        get_preset("wan2.2")
    with pytest.raises(ValueError, match="cannot exceed"):
        make_schedule(VPPrediction(), "trailing", 1001)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        run(Recorder(), solver="ddim", cond=conds()[0], solver_options={"eta": -1.0})


def test_step_is_plain_data():
    step = make_schedule(FlowPrediction(), "simple", 3).step(1)
    assert isinstance(step, Step) and step.index == 1 and 0 < step.sigma < 1


@pytest.mark.gpu
def test_sample_on_cuda_with_cpu_generator():
    p = PRESETS["cogvideox-5b"]
    noise = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    kw = dict(steps=8, solver="dpmpp_2m_sde", cfg=p.cfg, progress=False)

    def model(x, t, c):
        return 0.5 * x + torch.cos(t / 300).view(-1, 1, 1, 1, 1) + c.view(-1, 1, 1, 1, 1)

    cond, uncond = torch.full((1,), 0.2), torch.full((1,), -0.4)
    cpu = sample(
        model, p.prediction, noise, cond=cond, uncond=uncond, generator=torch.Generator().manual_seed(3), **kw
    )
    gpu = sample(model, p.prediction, noise.cuda(), cond=cond.cuda(), uncond=uncond.cuda(),
                 generator=torch.Generator().manual_seed(3), **kw)  # fmt: skip
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)
