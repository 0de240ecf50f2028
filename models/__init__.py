"""Networks as plain ``nn.Module``s with dataclass configs.

``dit.py`` (the Wan 2.1-style video DiT), ``dit_loading.py`` (``load_dit`` for every layout on disk),
``text_encoder.py`` (byte-level text encoder). Import the submodule you need; this file imports nothing.
"""
