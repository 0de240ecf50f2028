"""``--set NODE.input=value`` overrides of a workflow's widget values.

NODE is a node id ("12"), a node title ("Sampler"), or a class id ("VCDiTSampler") when exactly one node
matches. The value is parsed by the input's declared type: INT / FLOAT numbers, BOOLEAN true/false, combos
by their choices, STRING as given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .schema import ANY_TYPE, WIDGET_TYPES, InputSpec, node_inputs
from .validation import node_sort_key
from .workflow import Workflow, set_ui_widget_value


class OverrideError(ValueError):
    """An override names no node, several nodes, an unknown input, or a value of the wrong type."""


@dataclass(frozen=True)
class Override:
    selector: str
    input_name: str
    raw_value: str

    def __str__(self) -> str:
        return f"{self.selector}.{self.input_name}={self.raw_value}"


def parse_override(text: str) -> Override:
    """Parse ``NODE.input=value`` (NODE may itself contain dots: the last dot before '=' splits)."""
    key, sep, value = text.partition("=")
    selector, dot, input_name = key.strip().rpartition(".")
    if not sep or not dot or not selector or not input_name:
        raise OverrideError(
            f"--set {text!r}: expected NODE.input=value, e.g. --set 12.seed=7 or --set KSampler.steps=20"
        )
    return Override(selector.strip(), input_name.strip(), value)


def find_node(prompt: Mapping[str, dict[str, Any]], selector: str) -> str:
    """The id of the single node that ``selector`` names (id, then title, then class id)."""
    if selector in prompt:
        return selector
    by_title = [nid for nid, node in prompt.items() if (node.get("_meta") or {}).get("title") == selector]
    if len(by_title) == 1:
        return by_title[0]
    by_class = [nid for nid, node in prompt.items() if node.get("class_type") == selector]
    if not by_title and len(by_class) == 1:
        return by_class[0]
    matches = sorted(by_title or by_class, key=node_sort_key)
    if matches:
        listing = ", ".join(_label(prompt, nid) for nid in matches)
        raise OverrideError(f"'{selector}' matches {len(matches)} nodes ({listing}); use the node id instead")
    listing = ", ".join(_label(prompt, nid) for nid in sorted(prompt, key=node_sort_key))
    raise OverrideError(f"no node has id, title or class '{selector}'; the workflow has: {listing}")


def _label(prompt: Mapping[str, dict[str, Any]], node_id: str) -> str:
    node = prompt[node_id]
    title = (node.get("_meta") or {}).get("title")
    if title and title != node.get("class_type"):
        return f'{node_id} "{title}" ({node.get("class_type")})'
    return f"{node_id} ({node.get('class_type')})"


def parse_value(spec: InputSpec, raw: str) -> Any:
    """Turn the command-line text into a value of the input's declared type."""
    kind = spec.type_name
    text = raw.strip()
    try:
        if kind == "INT":
            return int(text)
        if kind == "FLOAT":
            return float(text)
    except ValueError:
        raise OverrideError(f"'{spec.name}' is {kind}; {raw!r} is not a number") from None
    if kind == "BOOLEAN":
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise OverrideError(f"'{spec.name}' is BOOLEAN; use true or false, not {raw!r}")
    if kind == "COMBO":
        for choice in spec.choices or []:
            if str(choice) == raw or str(choice) == text:
                return choice
        return raw  # validation reports it with the list of choices
    if kind == "STRING":
        return raw
    if kind == ANY_TYPE:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    raise OverrideError(
        f"'{spec.name}' takes a link from a node that outputs {kind}; it cannot be set to a value"
    )


def apply_overrides(
    workflow: Workflow, overrides: list[Override], node_classes: Mapping[str, type]
) -> list[str]:
    """Apply overrides to ``workflow`` in place; return one line per change. Raises :class:`OverrideError`."""
    changes: list[str] = []
    errors: list[str] = []
    for override in overrides:
        try:
            changes.append(_apply_one(workflow, override, node_classes))
        except OverrideError as e:
            errors.append(f"--set {override}: {e}")
    if errors:
        raise OverrideError("\n".join(errors))
    return changes


def _apply_one(workflow: Workflow, override: Override, node_classes: Mapping[str, type]) -> str:
    node_id = find_node(workflow.prompt, override.selector)
    node = workflow.prompt[node_id]
    node_class = node_classes.get(node["class_type"])
    if node_class is None:
        raise OverrideError(f"node {node_id} has the unknown class '{node['class_type']}'")
    specs = {s.name: s for s in node_inputs(node_class) if s.category != "hidden"}
    spec = specs.get(override.input_name)
    if spec is None:
        settable = [s.name for s in specs.values() if s.is_widget or s.type_name in WIDGET_TYPES]
        raise OverrideError(
            f"node {node_id} ({node['class_type']}) has no input '{override.input_name}'; "
            f"its value inputs are: {', '.join(settable) or 'none'}"
        )
    value = parse_value(spec, override.raw_value)
    old = node["inputs"].get(spec.name, "<unset>")
    node["inputs"][spec.name] = value
    set_ui_widget_value(workflow, node_id, spec.name, value)
    return f"node {node_id} ({node['class_type']}) {spec.name}: {old!r} -> {value!r}"
