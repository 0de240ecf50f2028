"""Our solvers against diffusers' scheduler loops: same toy model, same noise, same steps, same result.

The toy "model" is a fixed random linear map of x plus a function of the timestep plus the conditioning,
so any difference in the states or timesteps fed to it shows up in the final latent.
"""

import math

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from videocascade.samplers import PRESETS, FlowPrediction, VPPrediction, make_schedule, sample  # noqa: E402

SHAPE = (2, 4, 3, 4, 4)  # [B, C, T, H, W]
COG_2B = dict(
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    clip_sample=False,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=3.0,
    timestep_spacing="trailing",
)
COG_5B = dict(COG_2B, snr_shift_scale=1.0)
SD = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
# Wan 2.1's scheduler as WanPipeline's docs configure it.
WAN_UNIPC = dict(prediction_type="flow_prediction", use_flow_sigmas=True, solver_order=2, solver_type="bh2")


class ToyModel:
    """``out = identity * x + W x + cos(t / 300) * b + 0.3 * cond``, recording every timestep it is fed."""

    def __init__(self, dtype, identity=0.0, seed=0):
        g = torch.Generator().manual_seed(seed)
        dim = math.prod(SHAPE[1:])
        self.w = (torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.6 / math.sqrt(dim)).to(dtype)
        self.b = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype)
        self.identity = identity  # eps models: eps ~ x at high noise keeps the toy trajectory bounded
        self.timesteps = []

    def __call__(self, x, t, cond):
        self.timesteps.append(t.double().clone())
        flat = x.flatten(1)
        out = self.identity * flat + flat @ self.w.T + torch.cos(t.to(x.dtype) / 300)[:, None] * self.b
        return (out + 0.3 * cond).view_as(x)


def make_inputs(dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(SHAPE, generator=g, dtype=torch.float64).to(dtype)
    cond = torch.randn(SHAPE[0], math.prod(SHAPE[1:]), generator=g, dtype=torch.float64).to(dtype)
    uncond = torch.randn(SHAPE[0], math.prod(SHAPE[1:]), generator=g, dtype=torch.float64).to(dtype)
    latent = torch.randn(SHAPE, generator=g, dtype=torch.float64).to(dtype)
    return noise, cond, uncond, latent


def reference_loop(scheduler, model, x, steps, cond, cogvideox_dpm=False, generator=None, timesteps=None):
    """The loop the diffusers pipelines run (Wan, CogVideoX), cond-only."""
    if timesteps is None:
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps
    old_x0 = None
    for i, t in enumerate(timesteps):
        out = model(x, t.expand(x.shape[0]), cond)
        if cogvideox_dpm:
            back = timesteps[i - 1] if i > 0 else None
            x, old_x0 = scheduler.step(out, old_x0, t, back, x, generator=generator, return_dict=False)
        else:
            x = scheduler.step(out, t, x, return_dict=False)[0]
    return x


def cogvideox_dpm_noise(seed):
    """Reproduces CogVideoXDPMScheduler's draws: one on the first step, two (the first unused) after."""
    g = torch.Generator().manual_seed(seed)
    calls = []

    def draw(x):
        if calls:
            torch.randn(x.shape, generator=g, dtype=x.dtype)
        calls.append(1)
        return torch.randn(x.shape, generator=g, dtype=x.dtype)

    return draw


def assert_parity(ref, ours, ref_model, our_model, atol, t_atol=0.0):
    assert ours.dtype == ref.dtype
    err = (ref.double() - ours.double()).abs().max().item()
    assert err <= atol, f"final latents differ by {err:.3e} (allowed {atol:.0e})"
    ref_t = torch.stack(ref_model.timesteps)
    our_t = torch.stack(our_model.timesteps)
    assert ref_t.shape == our_t.shape
    assert (ref_t - our_t).abs().max().item() <= t_atol


CASES = {
    # name: (scheduler factory, prediction, solver, schedule, timestep tolerance, solver options factory)
    "flow_euler": (
        lambda: diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
        FlowPrediction(shift=3.0),
        "euler",
        "linspace",
        1e-3,  # diffusers rounds s*1000 in float32
    ),
    "wan_unipc_shift3": (
        lambda: diffusers.UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=3.0),
        PRESETS["wan2.1-480p"].prediction,
        "unipc",
        "default",
        0.0,
    ),
    "wan_unipc_shift5": (
        lambda: diffusers.UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=5.0),
        PRESETS["wan2.1-720p"].prediction,
        "unipc",
        "default",
        0.0,
    ),
    "cogvideox_2b_ddim": (
        lambda: diffusers.CogVideoXDDIMScheduler(**COG_2B),
        PRESETS["cogvideox-2b"].prediction,
        "ddim",
        "default",
        0.0,
    ),
    "cogvideox_5b_ddim": (
        lambda: diffusers.CogVideoXDDIMScheduler(**COG_5B),
        PRESETS["cogvideox-5b"].prediction,
        "ddim",
        "default",
        0.0,
    ),
    "cogvideox_5b_dpm": (
        lambda: diffusers.CogVideoXDPMScheduler(**COG_5B),
        PRESETS["cogvideox-5b"].prediction,
        "dpmpp_2m_sde",
        "default",
        0.0,
    ),
    "cogvideox_2b_dpm": (
        lambda: diffusers.CogVideoXDPMScheduler(**COG_2B),
        PRESETS["cogvideox-2b"].prediction,
        "dpmpp_2m_sde",
        "default",
        0.0,
    ),
    "ddim_eps_leading": (
        lambda: diffusers.DDIMScheduler(**SD, clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        VPPrediction(target="eps", final_alpha_one=False, steps_offset=1),
        "ddim",
        "leading",
        0.0,
    ),
    "ddim_eps_trailing": (
        lambda: diffusers.DDIMScheduler(**SD, clip_sample=False, timestep_spacing="trailing"),
        VPPrediction(target="eps"),
        "ddim",
        "trailing",
        0.0,
    ),
    "dpmsolver_pp_2m_eps": (
        lambda: diffusers.DPMSolverMultistepScheduler(**SD, timestep_spacing="trailing"),
        VPPrediction(target="eps"),
        "dpmpp_2m",
        "trailing",
        0.0,
    ),
    "unipc_eps": (
        lambda: diffusers.UniPCMultistepScheduler(**SD, timestep_spacing="trailing"),
        VPPrediction(target="eps"),
        "unipc",
        "trailing",
        0.0,
    ),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("case", list(CASES))
def test_solver_matches_diffusers_scheduler(case, steps, dtype):
    make_scheduler, prediction, solver, schedule, t_atol = CASES[case]
    scheduler = make_scheduler()
    if isinstance(prediction, VPPrediction) and isinstance(scheduler, diffusers.DDIMScheduler):
        # DDIMScheduler accumulates its alphas_cumprod in float32 (1e-6 relative off the exact product,
        # see test_vp_tables_match_diffusers); give it our float64 table so this test checks the update rule.
        scheduler.alphas_cumprod = torch.from_numpy(prediction.alphas_cumprod().copy())
    identity = 1.0 if getattr(prediction, "target", "") == "eps" else 0.0
    noise, cond, _, _ = make_inputs(dtype)
    ref_model, our_model = ToyModel(dtype, identity), ToyModel(dtype, identity)

    dpm = isinstance(scheduler, diffusers.CogVideoXDPMScheduler)
    generator = torch.Generator().manual_seed(7) if dpm else None
    ref = reference_loop(
        scheduler, ref_model, noise.clone(), steps, cond, cogvideox_dpm=dpm, generator=generator
    )
    options = {"noise_sampler": cogvideox_dpm_noise(7)} if dpm else None
    ours = sample(
        our_model,
        prediction,
        noise,
        steps=steps,
        solver=solver,
        cfg=1.0,
        cond=cond,
        schedule=schedule,
        solver_options=options,
        progress=False,
    )
    assert_parity(ref, ours, ref_model, our_model, atol=1e-5, t_atol=t_atol)


def test_ddim_eta_matches_diffusers():
    noise, cond, _, _ = make_inputs(torch.float64)
    prediction = VPPrediction(target="eps")
    scheduler = diffusers.DDIMScheduler(**SD, clip_sample=False, timestep_spacing="trailing")
    scheduler.alphas_cumprod = torch.from_numpy(prediction.alphas_cumprod().copy())
    scheduler.set_timesteps(20)
    fresh = torch.randn((20, *SHAPE), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref_model, our_model = ToyModel(torch.float64, 1.0), ToyModel(torch.float64, 1.0)
    x = noise.clone()
    for i, t in enumerate(scheduler.timesteps):
        out = ref_model(x, t.expand(SHAPE[0]), cond)
        x = scheduler.step(out, t, x, eta=0.7, variance_noise=fresh[i], return_dict=False)[0]
    draws = iter(fresh)
    options = {"eta": 0.7, "noise_sampler": lambda _: next(draws)}
    ours = sample(our_model, prediction, noise, steps=20, solver="ddim", cfg=1.0, cond=cond, schedule="trailing",
                  solver_options=options, progress=False)  # fmt: skip
    assert_parity(x, ours, ref_model, our_model, atol=1e-10)


def pipeline_loop(scheduler, model, x, steps, cond, uncond, scale, dynamic=False, timesteps=None):
    """Wan / CogVideoX pipelines' denoising loop with classifier-free guidance (uncond and cond batched)."""
    if timesteps is None:
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps
    steps = len(timesteps)
    dpm = isinstance(scheduler, diffusers.CogVideoXDPMScheduler)
    generator = torch.Generator().manual_seed(11)
    old_x0 = None
    for i, t in enumerate(timesteps):
        both = model(torch.cat([x, x]), t.expand(2 * x.shape[0]), torch.cat([uncond, cond]))
        out_uncond, out_cond = both.chunk(2)
        g = (
            1 + scale * (1 - math.cos(math.pi * ((steps - t.item()) / steps) ** 5.0)) / 2
            if dynamic
            else scale
        )
        out = out_uncond + g * (out_cond - out_uncond)
        if dpm:
            back = timesteps[i - 1] if i > 0 else None
            x, old_x0 = scheduler.step(out, old_x0, t, back, x, generator=generator, return_dict=False)
        else:
            x = scheduler.step(out, t, x, return_dict=False)[0]
    return x


@pytest.mark.parametrize(
    "preset, scheduler, dynamic",
    [
        ("wan2.1-480p", lambda: diffusers.UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=3.0), False),
        ("cogvideox-2b", lambda: diffusers.CogVideoXDDIMScheduler(**COG_2B), False),
        ("cogvideox-5b", lambda: diffusers.CogVideoXDPMScheduler(**COG_5B), True),
    ],
)
def test_presets_reproduce_reference_pipelines(preset, scheduler, dynamic):
    """A user who changes nothing (preset solver, schedule, steps, cfg) gets the reference pipeline's latents."""
    p = PRESETS[preset]
    noise, cond, uncond, _ = make_inputs(torch.float32)
    ref_model, our_model = ToyModel(torch.float32), ToyModel(torch.float32)
    ref = pipeline_loop(scheduler(), ref_model, noise.clone(), p.steps, cond, uncond, p.cfg, dynamic)
    options = {"noise_sampler": cogvideox_dpm_noise(11)} if p.solver == "dpmpp_2m_sde" else None
    ours = sample(
        our_model,
        p.prediction,
        noise,
        steps=p.steps,
        solver=p.solver,
        cfg=p.cfg,
        cond=cond,
        uncond=uncond,
        schedule=p.schedule,
        dynamic_cfg=dynamic,
        solver_options=options,
        progress=False,
    )
    assert_parity(ref, ours, ref_model, our_model, atol=1e-5)
    assert len(our_model.timesteps) == p.steps  # one batched cond+uncond call per step
    assert our_model.timesteps[0].shape == (2 * SHAPE[0],)


@pytest.mark.parametrize("strength", [0.5, 0.3])
def test_video_to_video_matches_cogvideox_pipeline(strength):
    """``denoise`` = the CogVideoX video-to-video pipeline's ``strength``: same start level, same tail."""
    p = PRESETS["cogvideox-2b"]
    noise, cond, uncond, latent = make_inputs(torch.float32)
    scheduler = diffusers.CogVideoXDDIMScheduler(**COG_2B)
    scheduler.set_timesteps(p.steps)
    keep = min(int(p.steps * strength), p.steps)  # CogVideoXVideoToVideoPipeline.get_timesteps
    timesteps = scheduler.timesteps[p.steps - keep :]
    start = scheduler.add_noise(latent, noise, timesteps[:1])
    ref_model, our_model = ToyModel(torch.float32), ToyModel(torch.float32)
    ref = pipeline_loop(scheduler, ref_model, start, p.steps, cond, uncond, p.cfg, timesteps=timesteps)
    ours = sample(our_model, p.prediction, noise, steps=p.steps, solver=p.solver, cfg=p.cfg, cond=cond,
                  uncond=uncond, denoise=strength, latent=latent, progress=False)  # fmt: skip
    assert_parity(ref, ours, ref_model, our_model, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 7, 30, 50, 999])
@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_vp_timesteps_match_diffusers(spacing, steps):
    scheduler = diffusers.DDIMScheduler(
        **SD, timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0
    )
    scheduler.set_timesteps(steps)
    prediction = VPPrediction(steps_offset=1 if spacing == "leading" else 0)
    ours = make_schedule(prediction, spacing, steps)
    assert list(ours.timesteps) == scheduler.timesteps.tolist()


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
@pytest.mark.parametrize("steps", [1, 10, 50])
def test_flow_levels_match_diffusers(shift, steps):
    euler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    euler.set_timesteps(steps)
    ours = make_schedule(FlowPrediction(shift=shift), "linspace", steps)
    np.testing.assert_allclose(ours.sigmas, euler.sigmas.double().numpy(), rtol=1e-6, atol=1e-7)

    unipc = diffusers.UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=shift)
    unipc.set_timesteps(steps)
    ours = make_schedule(FlowPrediction(shift=shift, integer_timesteps=True), "simple", steps)
    np.testing.assert_allclose(ours.sigmas, unipc.sigmas.double().numpy(), rtol=1e-6, atol=1e-7)
    assert list(ours.timesteps) == unipc.timesteps.tolist()


def test_vp_tables_match_diffusers():
    for config, prediction in [
        (COG_2B, PRESETS["cogvideox-2b"].prediction),
        (COG_5B, PRESETS["cogvideox-5b"].prediction),
    ]:
        ref = diffusers.CogVideoXDDIMScheduler(**config).alphas_cumprod.numpy()
        np.testing.assert_allclose(prediction.alphas_cumprod(), ref, rtol=1e-13)  # both float64
    ref = diffusers.DDIMScheduler(**SD).alphas_cumprod.double().numpy()  # float32 cumprod in diffusers
    np.testing.assert_allclose(VPPrediction().alphas_cumprod(), ref, rtol=2e-6)
    ref = (
        diffusers.DDIMScheduler(beta_schedule="linear", rescale_betas_zero_snr=True)
        .alphas_cumprod.double()
        .numpy()
    )
    ours = VPPrediction(
        target="v", beta_schedule="linear", beta_start=1e-4, beta_end=0.02, zero_terminal_snr=True
    )
    np.testing.assert_allclose(ours.alphas_cumprod(), ref, rtol=2e-5, atol=1e-9)
    assert ours.alphas_cumprod()[-1] == 0.0
    ref = diffusers.DDIMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod.double().numpy()
    np.testing.assert_allclose(
        VPPrediction(beta_schedule="squaredcos_cap_v2").alphas_cumprod(), ref, rtol=2e-5
    )
