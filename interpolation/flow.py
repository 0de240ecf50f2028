"""Dense optical flow between two frames with OpenCV (DIS or Farneback).

Flow ``F_ab[y, x] = (dx, dy)`` in pixels maps a pixel of frame ``a`` to where it is in frame ``b``.
OpenCV is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FLOW_ALGORITHMS = ("dis", "farneback")


@dataclass
class FlowConfig:
    algorithm: str = "dis"  # "dis" (fast, robust to large motion) or "farneback"
    dis_preset: str = "medium"  # "ultrafast" | "fast" | "medium"
    # Flow runs on a resized copy whose short side is clamped into [min_side, max_side]: tiny frames are
    # upsampled (DIS patches are 8 px, too coarse for 32-64 px sprites; 128 measured best on sprites from
    # 32 to 128 px), large ones downsampled (speed; the flow is smooth enough to be upsampled back).
    min_side: int = 128
    max_side: int = 540


def _gray_uint8(frame: torch.Tensor) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> [H, W] uint8 luma (what both OpenCV estimators take)."""
    luma = frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114
    return (luma.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def flow_working_size(height: int, width: int, config: FlowConfig) -> tuple[int, int]:
    short = min(height, width)
    scale = min(max(short, config.min_side), config.max_side) / short
    return max(round(height * scale), 8), max(round(width * scale), 8)


def _dis(preset: str):
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise ValueError(f"dis_preset must be one of {', '.join(presets)}; got {preset!r}")
    return cv2.DISOpticalFlow_create(presets[preset])


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.calcOpticalFlowFarneback(
        a, b, None, pyr_scale=0.5, levels=5, winsize=15, iterations=5, poly_n=7, poly_sigma=1.5, flags=0
    )


class FlowEstimator:
    """Computes flows frame pair by frame pair, reusing one OpenCV object and the grayscale conversions."""

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        if self.config.algorithm not in FLOW_ALGORITHMS:
            raise ValueError(
                f"flow algorithm must be one of {', '.join(FLOW_ALGORITHMS)}; got {self.config.algorithm!r}"
            )
        self._dis = _dis(self.config.dis_preset) if self.config.algorithm == "dis" else None

    def prepare(self, frame: torch.Tensor) -> np.ndarray:
        """[H, W, 3] frame -> the grayscale image at flow working size."""
        import cv2

        gray = _gray_uint8(frame)
        h, w = gray.shape
        wh, ww = flow_working_size(h, w, self.config)
        if (wh, ww) != (h, w):
            interp = cv2.INTER_CUBIC if wh > h else cv2.INTER_AREA
            gray = cv2.resize(gray, (ww, wh), interpolation=interp)
        return gray

    def pair(self, gray_a: np.ndarray, gray_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flows a->b and b->a at working size, [h, w, 2] float32 in working-size pixels."""
        if self._dis is not None:
            return self._dis.calc(gray_a, gray_b, None), self._dis.calc(gray_b, gray_a, None)
        return _farneback(gray_a, gray_b), _farneback(gray_b, gray_a)


def flows_to_frame_size(
    flows: list[np.ndarray], height: int, width: int, device: torch.device
) -> torch.Tensor:
    """Working-size flows -> [K, 2, H, W] float32 tensor in frame pixels (resampled and rescaled)."""
    flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)
    fh, fw = flow.shape[-2:]
    if (fh, fw) != (height, width):
        flow = torch.nn.functional.interpolate(
            flow, size=(height, width), mode="bilinear", align_corners=False
        )
        flow[:, 0] *= width / fw
        flow[:, 1] *= height / fh
    return flow
