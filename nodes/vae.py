"""VAE stage: load a video VAE, encode frames into a LATENT, decode a LATENT into frames."""

from __future__ import annotations

import torch

from ..runtime.latents import FRAMES_KEY, check_latent_fits, make_latent
from ..runtime.loaders import load_vae_handle, model_on_device, resolve_weights
from ..vae.pixels import PIXEL_SPACE_CHOICE
from .base import category, int_input, link_input, node_mappings
from .loader_inputs import WeightsLoader, dtype_input, path_input, weights_inputs


def frames_to_video(images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[N, H, W, 3]`` in [0, 1] -> one clip ``[1, 3, N, H, W]`` in [-1, 1]."""
    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"'images' must be an IMAGE batch [N, H, W, 3], got shape {tuple(images.shape)}")
    return images[..., :3].float().permute(3, 0, 1, 2).unsqueeze(0) * 2.0 - 1.0


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """``[B, 3, T, H, W]`` in [-1, 1] -> IMAGE ``[B*T, H, W, 3]`` in [0, 1] (clips one after another)."""
    frames = (video.float() * 0.5 + 0.5).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1)
    return frames.reshape(-1, *frames.shape[2:]).contiguous()


class VCVAELoader(WeightsLoader):
    DESCRIPTION = (
        "Load a video VAE: VideoCascade's embedded VAEs, Wan 2.1 or CogVideoX (detected from the file), or "
        f"'{PIXEL_SPACE_CHOICE}', the identity for pixel-space models (the Make-A-Video base)."
    )
    CATEGORY = category("vae")
    RETURN_TYPES = ("VC_VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The VAE; its family is the latent format it reads and writes.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        files = weights_inputs("vae", "VAE")
        choices, options = files["file"]
        # The pixel-space entry sits after the embedded files (it is one of the embedded pipelines).
        at = sum(1 for c in choices if c.startswith("embedded/"))
        files["file"] = ([*choices[:at], PIXEL_SPACE_CHOICE, *choices[at:]], options)
        return {
            "required": {**files, **dtype_input()},
            "optional": path_input("VAE"),
        }

    def load(self, file, dtype, path=""):
        if file == PIXEL_SPACE_CHOICE and not (path or "").strip():
            return (load_vae_handle(PIXEL_SPACE_CHOICE, dtype),)
        return (load_vae_handle(resolve_weights("vae", file, path), dtype),)


class VCVAEEncode:
    DESCRIPTION = "Encode frames (one clip) into a video latent for the DiT sampler (video-to-video)."
    CATEGORY = category("vae")
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The clip's latent, normalised for the DiT, tagged with the VAE's family.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": link_input("VC_VAE", "The VAE from VC VAE Loader."),
                "images": link_input(
                    "IMAGE",
                    "Frames of one clip. Height and width must be multiples of the VAE's spatial factor; a "
                    "frame count other than 1 + k*temporal factor is padded by repeating the last frame.",
                ),
                "chunk_frames": int_input(
                    16, 1, 1024, "Video frames encoded at once (causal chunks); lower uses less memory."
                ),
            }
        }

    def encode(self, vae, images, chunk_frames):
        from ..vae.streaming import encode_video

        video = frames_to_video(images)
        with model_on_device(vae) as model:
            z = encode_video(model, video, chunk_frames)
            samples = model.latents_to_model(z).float().cpu()
        return (make_latent(samples, vae.family, **{FRAMES_KEY: images.shape[0]}),)


class VCVAEDecode:
    DESCRIPTION = "Decode a video latent into frames, in causal chunks and optional spatial tiles."
    CATEGORY = category("vae")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Decoded frames [N, H, W, 3] in [0, 1]; several clips come one after another.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": link_input(
                    "VC_VAE", "The VAE from VC VAE Loader (the family the latent was made for)."
                ),
                "latent": link_input("LATENT", "The video latent to decode (from VC DiT Sampler)."),
                "chunk_frames": int_input(
                    2, 1, 256, "Latent frames decoded at once; lower uses less memory, same result."
                ),
                "tile_size": int_input(
                    0,
                    0,
                    4096,
                    "Spatial tile size in pixels; 0 = no tiling. Tiles save memory at high resolution.",
                    step=8,
                ),
                "tile_overlap": int_input(
                    64,
                    0,
                    1024,
                    "Pixels neighbouring tiles overlap and blend over, so no seam shows. 0 = exact tiles where "
                    "the VAE allows it (Wan 2.1 and VideoCascade VAEs): each tile reads its neighbours' pixels, "
                    "so the frames equal an untiled decode, with less memory but more time; other VAEs then "
                    "cut hard tile edges.",
                    step=8,
                ),
            }
        }

    def decode(self, vae, latent, chunk_frames, tile_size, tile_overlap):
        from ..vae.streaming import decode_video

        model = vae.model
        fix = "decode it with the VAE of the family the latent was made with, or load the matching VAE"
        samples = check_latent_fits(latent, vae.family, model.latent_channels, f"this {vae.family} VAE", fix)
        if tile_size and tile_size <= tile_overlap:
            raise ValueError(
                f"tile_size ({tile_size}) must be larger than tile_overlap ({tile_overlap}), or 0"
            )
        with model_on_device(vae) as model:
            z = model.latents_from_model(samples.float())  # stays on the CPU: chunks move to the device
            tile = (tile_size, tile_size) if tile_size else None
            mode = "auto" if tile_overlap == 0 else "blend"  # auto: exact tiles where the family allows
            video = decode_video(
                model, z, chunk_frames, tile, tile_overlap, output_device="cpu", tile_mode=mode
            )
        frames = latent.get(FRAMES_KEY)
        if frames and 1 + -(-(frames - 1) // model.temporal_factor) == samples.shape[2]:
            video = video[:, :, :frames]  # drop the frames VAE Encode added to reach 1 + k*temporal factor
        return (video_to_frames(video),)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCVAELoader, "VC VAE Loader"),
    (VCVAEEncode, "VC VAE Encode"),
    (VCVAEDecode, "VC VAE Decode"),
)
