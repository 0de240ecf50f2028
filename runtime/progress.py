"""Progress for long loops: ComfyUI's progress bar inside ComfyUI, tqdm otherwise."""

from __future__ import annotations

from .comfy import comfy_module
from .devices import interrupt_requested


class Progress:
    """``with Progress(total, "decode") as p: ... p.update()`` — also checks for a user interrupt each step."""

    def __init__(self, total: int, desc: str = "") -> None:
        self.total = max(int(total), 1)
        self._comfy_bar = None
        self._tqdm = None
        utils = comfy_module("comfy.utils")
        if utils is not None and hasattr(utils, "ProgressBar"):
            self._comfy_bar = utils.ProgressBar(self.total)
        else:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=self.total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        interrupt_requested()
        if self._comfy_bar is not None:
            self._comfy_bar.update(n)
        if self._tqdm is not None:
            self._tqdm.update(n)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
