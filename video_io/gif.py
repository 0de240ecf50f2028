"""GIF helpers: an adaptive 256-colour palette (median cut) and metadata in a GIF comment block."""

from __future__ import annotations

import json

import numpy as np

_BITS = 5  # histogram precision per channel (32768 bins) for clips with very many colours
_MAX_EXACT_COLORS = 65536


def quantize(frames: np.ndarray, colors: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One palette for the whole clip (no flicker between frames) and each pixel's palette index.

    ``frames`` uint8 [N, H, W, 3]. Clips with at most ``colors`` distinct colours keep them exactly;
    otherwise a median cut over the clip's colours (weighted by pixel count) picks the palette. Clips with
    very many distinct colours are first binned to 5 bits per channel to bound the work.
    Returns ``(indices uint8 [N, H, W], palette uint8 [K, 3])``.
    """
    flat = frames.reshape(-1, 3)
    keys = (flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64) << 8) | flat[:, 2]
    unique, pixel_entry, counts = np.unique(keys, return_inverse=True, return_counts=True)
    pixel_entry = pixel_entry.reshape(-1)
    if unique.size <= colors:
        exact = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1).astype(np.uint8)
        return pixel_entry.reshape(frames.shape[:-1]).astype(np.uint8), exact
    if unique.size <= _MAX_EXACT_COLORS:
        means = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1).astype(np.float64)
        weight = counts.astype(np.float64)
    else:
        q = (flat >> (8 - _BITS)).astype(np.int64)
        bin_keys = (q[:, 0] << (2 * _BITS)) | (q[:, 1] << _BITS) | q[:, 2]
        occupied, pixel_entry, counts = np.unique(bin_keys, return_inverse=True, return_counts=True)
        pixel_entry = pixel_entry.reshape(-1)
        weight = counts.astype(np.float64)
        sums = np.stack(
            [np.bincount(pixel_entry, weights=flat[:, c], minlength=occupied.size) for c in range(3)]
        )
        means = sums.T / weight[:, None]  # mean colour of the pixels in each bin

    def scored(box: np.ndarray) -> tuple[float, int, np.ndarray]:
        # A box's priority: its widest channel range weighted by (the root of) its pixel count.
        if box.size < 2:
            return 0.0, 0, box
        spans = means[box].max(0) - means[box].min(0)
        axis = int(spans.argmax())
        return float(spans[axis] * np.sqrt(weight[box].sum())), axis, box

    boxes = [scored(np.arange(means.shape[0]))]
    while len(boxes) < colors:
        best = max(range(len(boxes)), key=lambda i: boxes[i][0])
        score, axis, box = boxes[best]
        if score <= 0.0:
            break
        boxes.pop(best)
        order = box[np.argsort(means[box, axis], kind="stable")]
        cumulative = np.cumsum(weight[order])
        cut = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
        cut = min(max(cut, 1), order.size - 1)  # at the weighted median, never an empty half
        boxes += [scored(order[:cut]), scored(order[cut:])]
    palette = np.stack([(means[b] * weight[b, None]).sum(0) / weight[b].sum() for _, _, b in boxes])
    palette = np.clip(np.round(palette), 0, 255)

    # Map every colour (or bin) to its nearest palette colour, then every pixel through its colour.
    entry_index = np.empty(means.shape[0], dtype=np.uint8)
    for start in range(0, means.shape[0], 4096):
        distance = ((means[start : start + 4096, None, :] - palette[None, :, :]) ** 2).sum(-1)
        entry_index[start : start + 4096] = distance.argmin(1)
    return entry_index[pixel_entry].reshape(frames.shape[:-1]), palette.astype(np.uint8)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Position just after a chain of data sub-blocks starting at ``pos``."""
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _header_end(data: bytes) -> int:
    """Position after the header, logical screen descriptor, global colour table and leading application
    extensions (the looping block), where a comment block can go without disturbing old decoders."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF file (bad signature)")
    flags = data[10]
    pos = 13 + (3 * (2 ** ((flags & 7) + 1)) if flags & 0x80 else 0)
    while pos + 1 < len(data) and data[pos] == 0x21 and data[pos + 1] == 0xFF:
        pos = _skip_sub_blocks(data, pos + 2)
    return pos


def add_comment(data: bytes, text: str) -> bytes:
    """``data`` (a GIF file) with a comment extension holding ``text`` (ASCII) after the header."""
    payload = text.encode("ascii")
    chunks = [payload[i : i + 255] for i in range(0, len(payload), 255)]
    blocks = b"".join(bytes([len(chunk)]) + chunk for chunk in chunks)
    pos = _header_end(data)
    return data[:pos] + b"\x21\xfe" + blocks + b"\x00" + data[pos:]


def metadata_to_comment(metadata: dict[str, str]) -> str:
    """The comment text: the metadata as one JSON object, ASCII-escaped as GIF comments require."""
    return json.dumps(metadata, ensure_ascii=True)


def metadata_from_comment(comment: str) -> dict[str, str]:
    """Metadata written by ``metadata_to_comment``; any other comment comes back as ``{"comment": ...}``."""
    try:
        value = json.loads(comment)
    except ValueError:
        return {"comment": comment}
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return value
    return {"comment": comment}
