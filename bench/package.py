"""Makes the repository importable as ``videocascade`` for a bench run from a clone that is not
pip-installed (``python bench/NAME.py``): the repo root is the package, under whatever folder name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def ensure_package() -> None:
    try:
        import videocascade  # noqa: F401
    except ImportError:
        root = Path(__file__).resolve().parent.parent
        spec = importlib.util.spec_from_file_location(
            "videocascade", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["videocascade"] = module
        spec.loader.exec_module(module)
