"""Test setup: make the repo importable as ``videocascade`` even without ``pip install -e .``."""

import importlib.util
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tests run many tiny-tensor operations, which one thread does faster than two fighting over a small
# machine's cores (measured 2-10x on the 2-core CI machine). VIDEOCASCADE_TEST_THREADS overrides it.
torch.set_num_threads(int(os.environ.get("VIDEOCASCADE_TEST_THREADS", "1")))

if "videocascade" not in sys.modules:
    try:
        import videocascade  # noqa: F401  (installed with pip install -e .)
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "videocascade", os.path.join(ROOT, "__init__.py"), submodule_search_locations=[ROOT]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["videocascade"] = module
        spec.loader.exec_module(module)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
