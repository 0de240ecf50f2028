"""Small real node classes (ComfyUI classic API) the runner tests execute, and graphs that use them.

They are fixtures, not mocks: the runner imports nothing of them and they run for real, writing files.
"""

from __future__ import annotations

import json
import os

import torch
from videocascade.nodes.base import (
    HIDDEN_SAVE_INPUTS,
    bool_input,
    category,
    combo_input,
    float_input,
    int_input,
    link_input,
    node_class_problems,
    node_mappings,
    seed_input,
    string_input,
    ui_result,
)
from videocascade.runtime.outputs import output_directory, saved_file_entry
from videocascade.video_io.paths import next_free_path

CALLS: list[str] = []  # node ids in the order the fixtures ran (cleared by tests)


class VCTestRamp:
    """A source: ``count`` numbers, a ramp or noise from ``seed``."""

    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "count": int_input(3, 1, 100, "How many numbers."),
                "seed": seed_input(),
                "mode": combo_input(["ramp", "noise"], "Ramp 0..count-1, or seeded noise."),
            }
        }

    def make(self, count, seed, mode):
        CALLS.append("ramp")
        if mode == "ramp":
            return (torch.arange(count, dtype=torch.float32),)
        return (torch.randn(count, generator=torch.Generator().manual_seed(seed)),)


class VCTestScale:
    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    FUNCTION = "scale"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "nums": link_input("NUMS", "Numbers to scale."),
                "factor": float_input(1.0, 0.0, 10.0, "Multiplier."),
            },
            "optional": {"offset": float_input(0.0, -5.0, 5.0, "Added after scaling.")},
        }

    def scale(self, nums, factor, offset=0.0):
        CALLS.append("scale")
        return (nums * factor + offset,)


class VCTestAdd:
    """Two inputs of the same type, for the bypass rule (first input of the matching type passes through)."""

    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": link_input("NUMS", "First."), "b": link_input("NUMS", "Second.")}}

    def add(self, a, b):
        return (a + b,)


class VCTestLabel:
    """A STRING widget (converted to an input in the UI tests) and a BOOLEAN."""

    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS", "STRING")
    RETURN_NAMES = ("nums", "label")
    OUTPUT_TOOLTIPS = ("The numbers, unchanged.", "The label, upper-cased when shout is on.")
    FUNCTION = "label"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "nums": link_input("NUMS", "Numbers passed through."),
                "text": string_input("clip", "A label."),
                "shout": bool_input(False, "Upper-case the label."),
            }
        }

    def label(self, nums, text, shout):
        return (nums, text.upper() if shout else text)


class VCTestSave:
    """An output node writing the numbers as JSON under the output folder, with the hidden inputs."""

    CATEGORY = category("test")
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "nums": link_input("NUMS", "Numbers to save."),
                "filename_prefix": string_input("test/nums", "Output name, may contain a subfolder."),
            },
            "optional": {"label": link_input("STRING", "Optional label stored with the numbers.")},
            "hidden": HIDDEN_SAVE_INPUTS,
        }

    def save(self, nums, filename_prefix, label=None, prompt=None, extra_pnginfo=None, unique_id=None):
        CALLS.append("save")
        path = next_free_path(output_directory(), filename_prefix, "json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        record = {
            "nums": [round(float(x), 6) for x in nums],
            "label": label,
            "unique_id": unique_id,
            "prompt_nodes": sorted(prompt) if prompt else None,
            "has_workflow": bool(extra_pnginfo and "workflow" in extra_pnginfo),
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(record, f)
        return ui_result(images=[saved_file_entry(path)])


class VCTestSplit:
    """OUTPUT_IS_LIST: one list element per number."""

    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"nums": link_input("NUMS", "Numbers to split.")}}

    def split(self, nums):
        return ([n.reshape(1) for n in nums],)


class VCTestJoin:
    """INPUT_IS_LIST: receives every element at once."""

    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    INPUT_IS_LIST = True
    FUNCTION = "join"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"nums": link_input("NUMS", "Pieces to concatenate.")}}

    def join(self, nums):
        return (torch.cat(nums),)


class VCTestCheck:
    """A node with its own VALIDATE_INPUTS (ComfyUI then skips its range check for that input)."""

    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "nums": link_input("NUMS", "Numbers."),
                "even": int_input(2, 0, 10, "An even number."),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, even):
        return True if even % 2 == 0 else f"even must be even, got {even}"

    def run(self, nums, even):
        return (nums + even,)


class VCTestFail:
    CATEGORY = category("test")
    RETURN_TYPES = ("NUMS",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"nums": link_input("NUMS", "Numbers.")}}

    def run(self, nums):
        raise ValueError("fixture failure: the frames are too short")


NODES, DISPLAY_NAMES = node_mappings(
    (VCTestRamp, "Test Ramp"),
    (VCTestScale, "Test Scale"),
    (VCTestAdd, "Test Add"),
    (VCTestLabel, "Test Label"),
    (VCTestSave, "Test Save"),
    (VCTestSplit, "Test Split"),
    (VCTestJoin, "Test Join"),
    (VCTestCheck, "Test Check"),
    (VCTestFail, "Test Fail"),
)


def api_graph() -> dict:
    """ramp(4) -> scale(x2, +1) -> label -> save, label's text also saved."""
    return {
        "1": {"class_type": "VCTestRamp", "inputs": {"count": 4, "seed": 5, "mode": "ramp"}},
        "2": {"class_type": "VCTestScale", "inputs": {"nums": ["1", 0], "factor": 2.0, "offset": 1.0}},
        "3": {"class_type": "VCTestLabel", "inputs": {"nums": ["2", 0], "text": "clip", "shout": False}},
        "4": {
            "class_type": "VCTestSave",
            "inputs": {"nums": ["3", 0], "filename_prefix": "test/nums", "label": ["3", 1]},
            "_meta": {"title": "Save numbers"},
        },
    }


def _node(node_id, node_type, inputs=(), outputs=(), widgets=None, mode=0, title=None):
    node = {
        "id": node_id,
        "type": node_type,
        "pos": [100 * node_id, 50],
        "size": [300, 120],
        "flags": {},
        "order": node_id,
        "mode": mode,
        "inputs": [dict(i) for i in inputs],
        "outputs": [dict(o) for o in outputs],
        "properties": {"Node name for S&R": node_type},
    }
    if widgets is not None:
        node["widgets_values"] = widgets
    if title:
        node["title"] = title
    return node


def ui_graph() -> dict:
    """A saved UI graph with a primitive, reroutes, a converted widget, muted and bypassed nodes, a note, a group.

    Links: [id, origin node, origin slot, target node, target slot, type] (schema 0.4, as the frontend saves).
    """
    nums = "NUMS"
    nodes = [
        # count is a widget converted to an input and fed by primitive 10; widgets: count, seed, control, mode.
        _node(
            1,
            "VCTestRamp",
            inputs=[{"name": "count", "type": "INT", "link": 8, "widget": {"name": "count"}}],
            outputs=[{"name": nums, "type": nums, "links": [1, 10]}],
            widgets=[4, 5, "fixed", "ramp"],
        ),
        _node(
            11,
            "Reroute",
            inputs=[{"name": "", "type": "*", "link": 1}],
            outputs=[{"name": "", "type": nums, "links": [2, 9]}],
        ),
        _node(
            2,
            "VCTestScale",
            inputs=[{"name": "nums", "type": nums, "link": 2}],
            outputs=[{"name": nums, "type": nums, "links": [3]}],
            widgets=[2.0, 1.0],
        ),
        # Bypassed: its consumer gets node 2's output instead.
        _node(
            8,
            "VCTestScale",
            inputs=[{"name": "nums", "type": nums, "link": 3}],
            outputs=[{"name": nums, "type": nums, "links": [4]}],
            widgets=[100.0, 0.0],
            mode=4,
        ),
        _node(
            5,
            "VCTestLabel",
            inputs=[{"name": "nums", "type": nums, "link": 9}],
            outputs=[
                {"name": "nums", "type": nums, "links": []},
                {"name": "label", "type": "STRING", "links": [5]},
            ],
            widgets=["clip", True],
            title="Namer",
        ),
        # text converted to an input, linked from the namer: the stale widget value must not be used.
        _node(
            3,
            "VCTestLabel",
            inputs=[
                {"name": "nums", "type": nums, "link": 4},
                {"name": "text", "type": "STRING", "link": 5, "widget": {"name": "text"}},
            ],
            outputs=[
                {"name": "nums", "type": nums, "links": [6]},
                {"name": "label", "type": "STRING", "links": [7]},
            ],
            widgets=["stale", False],
        ),
        _node(
            4,
            "VCTestSave",
            inputs=[
                {"name": "nums", "type": nums, "link": 6},
                {"name": "label", "type": "STRING", "link": 7},
            ],
            widgets=["ui/nums"],
            title="Save numbers",
        ),
        # Muted branch: would raise if it ran.
        _node(
            6,
            "VCTestFail",
            inputs=[{"name": "nums", "type": nums, "link": 10}],
            outputs=[{"name": nums, "type": nums, "links": [11]}],
            mode=2,
        ),
        _node(
            7, "VCTestSave", inputs=[{"name": "nums", "type": nums, "link": 11}], widgets=["muted"], mode=2
        ),
        _node(9, "Note", widgets=["Frontend-only note."]),
        _node(
            10,
            "PrimitiveNode",
            outputs=[{"name": "INT", "type": "INT", "links": [8], "widget": {"name": "count"}}],
            widgets=[5, "fixed"],
        ),
    ]
    links = [
        [1, 1, 0, 11, 0, nums],
        [2, 11, 0, 2, 0, nums],
        [3, 2, 0, 8, 0, nums],
        [4, 8, 0, 3, 0, nums],
        [5, 5, 1, 3, 1, "STRING"],
        [6, 3, 0, 4, 0, nums],
        [7, 3, 1, 4, 1, "STRING"],
        [8, 10, 0, 1, 0, "INT"],
        [9, 11, 0, 5, 0, nums],
        [10, 1, 0, 6, 0, nums],
        [11, 6, 0, 7, 0, nums],
    ]
    return {
        "last_node_id": 11,
        "last_link_id": 11,
        "nodes": nodes,
        "links": links,
        "groups": [{"title": "Numbers", "bounding": [0, 0, 800, 400], "color": "#3f789e", "flags": {}}],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }


def ui_graph_api_twin() -> dict:
    """What ComfyUI's frontend queues for :func:`ui_graph` (Export (API))."""
    return {
        "1": {
            "inputs": {"count": 5, "seed": 5, "mode": "ramp"},
            "class_type": "VCTestRamp",
            "_meta": {"title": "Test Ramp"},
        },
        "2": {
            "inputs": {"factor": 2.0, "offset": 1.0, "nums": ["1", 0]},
            "class_type": "VCTestScale",
            "_meta": {"title": "Test Scale"},
        },
        "5": {
            "inputs": {"text": "clip", "shout": True, "nums": ["1", 0]},
            "class_type": "VCTestLabel",
            "_meta": {"title": "Namer"},
        },
        "3": {
            "inputs": {"text": ["5", 1], "shout": False, "nums": ["2", 0]},
            "class_type": "VCTestLabel",
            "_meta": {"title": "Test Label"},
        },
        "4": {
            "inputs": {"filename_prefix": "ui/nums", "nums": ["3", 0], "label": ["3", 1]},
            "class_type": "VCTestSave",
            "_meta": {"title": "Save numbers"},
        },
    }


def test_fixture_nodes_follow_the_pack_conventions():
    for node_id, node_class in NODES.items():
        assert node_class_problems(node_id, node_class) == []
