"""``python -m videocascade nodes``: every node with its inputs, outputs, defaults, ranges and tooltips."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .schema import InputSpec, is_output_node, node_inputs, return_names, return_types


def describe_input(spec: InputSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": spec.name,
        "type": spec.type_name,
        "required": spec.category == "required",
        "widget": spec.is_widget,
    }
    if spec.is_widget:
        entry["default"] = spec.default
    for key in ("min", "max", "step"):
        if key in spec.options:
            entry[key] = spec.options[key]
    if spec.is_combo:
        entry["choices"] = spec.choices
    if spec.tooltip:
        entry["tooltip"] = spec.tooltip
    return entry


def describe_node(
    node_id: str, node_class: type, display_names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A JSON-ready description of one node class."""
    specs = [s for s in node_inputs(node_class) if s.category != "hidden"]
    types = return_types(node_class)
    names = return_names(node_class)
    tooltips = list(getattr(node_class, "OUTPUT_TOOLTIPS", ()) or ())
    is_list = list(getattr(node_class, "OUTPUT_IS_LIST", ()) or ())
    outputs = []
    for i, (name, kind) in enumerate(zip(names, types)):
        output: dict[str, Any] = {"name": name, "type": kind if isinstance(kind, str) else "COMBO"}
        if i < len(tooltips) and tooltips[i]:
            output["tooltip"] = tooltips[i]
        if i < len(is_list) and is_list[i]:
            output["is_list"] = True
        outputs.append(output)
    return {
        "id": node_id,
        "display_name": (display_names or {}).get(node_id, node_id),
        "category": getattr(node_class, "CATEGORY", ""),
        "description": getattr(node_class, "DESCRIPTION", ""),
        "output_node": is_output_node(node_class),
        "inputs": [describe_input(s) for s in specs],
        "outputs": outputs,
    }


def describe_nodes(
    node_classes: Mapping[str, type], display_names: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    return [describe_node(node_id, cls, display_names) for node_id, cls in node_classes.items()]


def _input_line(entry: dict[str, Any]) -> str:
    text = entry["type"]
    if not entry.get("widget"):
        text += " (link)"
    else:
        if entry["type"] == "COMBO":
            choices = entry.get("choices") or []
            shown = ", ".join(str(c) for c in choices[:8]) + (", ..." if len(choices) > 8 else "")
            text = f"COMBO {{{shown}}}"
        if entry.get("default") is not None:
            text += f" = {entry['default']!r}"
        if "min" in entry or "max" in entry:
            text += f" [{entry.get('min', '')}..{entry.get('max', '')}]"
    if not entry["required"]:
        text += " (optional)"
    return text


def format_catalog(descriptions: list[dict[str, Any]]) -> str:
    """Plain-text listing, one block per node."""
    if not descriptions:
        return "no nodes are registered (NODE_CLASS_MAPPINGS is empty)\n"
    blocks = []
    for d in descriptions:
        marker = "  [output node]" if d["output_node"] else ""
        lines = [f"{d['id']} — {d['display_name']}  ({d['category']}){marker}"]
        if d["description"]:
            lines.append(f"    {d['description']}")
        lines.append("  inputs:" if d["inputs"] else "  inputs: none")
        for entry in d["inputs"]:
            lines.append(f"    {entry['name']:<20} {_input_line(entry)}")
            if entry.get("tooltip"):
                lines.append(f"    {'':<20}   {entry['tooltip']}")
        lines.append("  outputs:" if d["outputs"] else "  outputs: none")
        for output in d["outputs"]:
            suffix = " (list)" if output.get("is_list") else ""
            lines.append(f"    {output['name']:<20} {output['type']}{suffix}")
            if output.get("tooltip"):
                lines.append(f"    {'':<20}   {output['tooltip']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def catalog_json(descriptions: list[dict[str, Any]]) -> str:
    return json.dumps(descriptions, indent=2, default=str)
