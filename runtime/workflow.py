"""Workflow files: ComfyUI's API format as is, and the UI (saved graph) format converted to it.

The conversion follows what ComfyUI's frontend does when it queues a graph (``graphToPrompt``):
- widget values map onto the node's widget inputs in ``INPUT_TYPES`` order, skipping frontend-only values
  (a seed's ``control_after_generate``, an upload button);
- a link into an input (a socket, or a widget converted to an input) replaces the widget value;
- Reroute nodes pass their input through; a PrimitiveNode writes its value into every widget it feeds;
- muted nodes (mode 2) are left out, and links from them dropped; bypassed nodes (mode 4) are left out and
  their consumers get the bypassed node's input of the matching type instead;
- Note / MarkdownNote nodes, groups and link-level reroutes carry nothing to execute.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema import ANY_TYPE, widget_inputs

MODE_ALWAYS = 0
MODE_NEVER = 2  # "muted"
MODE_BYPASS = 4

REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
# Frontend-only nodes: nothing of them reaches the server.
VIRTUAL_NODE_TYPES = frozenset({REROUTE, PRIMITIVE, "Note", "MarkdownNote"})


class WorkflowFormatError(ValueError):
    """A workflow file is neither a valid API-format nor a valid UI-format ComfyUI graph."""


@dataclass
class Workflow:
    """A runnable graph: the API-format prompt, plus the UI graph it came from (if any)."""

    prompt: dict[str, dict[str, Any]]
    ui: dict[str, Any] | None = None
    source: str = ""
    # (node id, input name) -> index in that UI node's widgets_values, so overrides can update the UI copy.
    widget_slots: dict[tuple[str, str], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # conversion remarks worth showing the user

    @property
    def format(self) -> str:
        return "ui" if self.ui is not None else "api"

    def extra_pnginfo(self) -> dict[str, Any] | None:
        """What ComfyUI's frontend sends as ``extra_pnginfo``: the UI graph, when there is one."""
        return {"workflow": self.ui} if self.ui is not None else None


def is_ui_format(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def is_api_format(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(v, dict) and "class_type" in v for v in data.values())
    )


def read_json(path: str | os.PathLike) -> Any:
    path = str(path)
    if not os.path.isfile(path):
        raise WorkflowFormatError(f"workflow file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise WorkflowFormatError(f"{path} is not valid JSON: {e}") from e


def load_workflow(
    path: str | os.PathLike, node_classes: Mapping[str, type], display_names: Mapping[str, str] | None = None
) -> Workflow:
    """Read an API- or UI-format workflow file into a :class:`Workflow`."""
    return workflow_from_data(read_json(path), node_classes, display_names, source=str(path))


def workflow_from_data(
    data: Any,
    node_classes: Mapping[str, type],
    display_names: Mapping[str, str] | None = None,
    source: str = "",
) -> Workflow:
    """Build a :class:`Workflow` from parsed JSON (API format, UI format, or a ``POST /prompt`` body)."""
    where = source or "workflow"
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "class_type" not in data:
        data = data["prompt"]  # the body of a POST /prompt request
    if is_ui_format(data):
        workflow = ui_to_api(data, node_classes, display_names)
        workflow.source = source
        return workflow
    if is_api_format(data):
        prompt = {str(k): _copy_api_node(v) for k, v in data.items()}
        return Workflow(prompt=prompt, source=source)
    if isinstance(data, dict) and not data:
        raise WorkflowFormatError(f"{where} is empty")
    raise WorkflowFormatError(
        f"{where} is not a ComfyUI workflow: expected the UI format (a 'nodes' list, as saved by "
        f"Workflow > Save) or the API format ({{id: {{'class_type', 'inputs'}}}}, as saved by Export (API))"
    )


def _copy_api_node(node: dict[str, Any]) -> dict[str, Any]:
    copied = {"class_type": node["class_type"], "inputs": dict(node.get("inputs") or {})}
    if "_meta" in node:
        copied["_meta"] = dict(node["_meta"])
    return copied


# ---------------------------------------------------------------------------------------------------------
# UI format -> API format


@dataclass
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: Any


def _parse_links(ui: dict[str, Any]) -> dict[int, _Link]:
    links: dict[int, _Link] = {}
    for entry in ui.get("links") or []:
        if isinstance(entry, dict):  # schema version 1
            link_id = entry["id"]
            fields = (entry["origin_id"], entry["origin_slot"], entry["target_id"], entry["target_slot"])
            link_type = entry.get("type")
        elif (
            isinstance(entry, (list, tuple)) and len(entry) >= 5
        ):  # schema 0.4: [id, from, slot, to, slot, type]
            link_id, fields, link_type = entry[0], tuple(entry[1:5]), (entry[5] if len(entry) > 5 else None)
        else:
            raise WorkflowFormatError(f"malformed link entry in the UI workflow: {entry!r}")
        origin_id, origin_slot, target_id, target_slot = fields
        links[int(link_id)] = _Link(
            str(origin_id), int(origin_slot), str(target_id), int(target_slot), link_type
        )
    return links


class _UiGraph:
    """The parts of a saved UI graph needed to resolve links the way the frontend does."""

    def __init__(self, ui: dict[str, Any]) -> None:
        if (ui.get("definitions") or {}).get("subgraphs"):
            raise WorkflowFormatError(
                "this workflow contains subgraphs, which the headless runner does not expand; in ComfyUI, "
                "right-click each subgraph node > Unpack Subgraph, then save the workflow again"
            )
        self.nodes: dict[str, dict[str, Any]] = {}
        group_nodes = set((ui.get("extra") or {}).get("groupNodes") or {})
        for node in ui["nodes"]:
            if not isinstance(node, dict) or "id" not in node or "type" not in node:
                raise WorkflowFormatError(f"malformed node entry in the UI workflow: {str(node)[:120]}")
            group_name = str(node["type"]).removeprefix("workflow>").removeprefix("workflow/")
            if group_name != node["type"] and group_name in group_nodes:
                raise WorkflowFormatError(
                    f"node {node['id']} is a group node ('{node['type']}'), which the headless runner does not "
                    f"expand; in ComfyUI, right-click it > Convert to nodes, then save the workflow again"
                )
            self.nodes[str(node["id"])] = node
        self.links = _parse_links(ui)

    def input_link(self, node: dict[str, Any], slot: int) -> _Link | None:
        inputs = node.get("inputs") or []
        if slot >= len(inputs):
            return None
        link_id = inputs[slot].get("link")
        if link_id is None:
            return None
        return self.links.get(int(link_id))

    def resolve_input(
        self, node: dict[str, Any], slot: int, seen: set | None = None
    ) -> tuple[str, int] | None:
        """The (node id, output slot) of the real node feeding ``node``'s input ``slot``, or None."""
        seen = set() if seen is None else seen
        key = (str(node["id"]), "in", slot)
        if key in seen:
            raise WorkflowFormatError(f"link cycle through node {node['id']} input {slot}")
        seen.add(key)
        link = self.input_link(node, slot)
        if link is None:
            return None
        origin = self.nodes.get(link.origin_id)
        if origin is None:
            # The frontend drops links to nodes that are gone; the API graph simply lacks the input.
            return None
        wanted_type = (node.get("inputs") or [])[slot].get("type", ANY_TYPE)
        return self.resolve_output(origin, link.origin_slot, wanted_type, seen)

    def resolve_output(
        self, node: dict[str, Any], slot: int, wanted_type: Any, seen: set
    ) -> tuple[str, int] | None:
        key = (str(node["id"]), "out", slot)
        if key in seen:
            raise WorkflowFormatError(f"link cycle through node {node['id']} output {slot}")
        seen.add(key)
        if node.get("mode", MODE_ALWAYS) == MODE_BYPASS:
            index = _bypass_input_index(node, slot, wanted_type)
            return None if index < 0 else self.resolve_input(node, index, seen)
        if node["type"] in VIRTUAL_NODE_TYPES:
            # A virtual node passes input i through to output i; one without that input (a primitive) yields
            # nothing, so the consumer keeps its widget value (which applied primitives have set).
            if slot < len(node.get("inputs") or []):
                return self.resolve_input(node, slot, seen)
            return None
        return str(node["id"]), slot


def _valid_connection(a: Any, b: Any) -> bool:
    """LiteGraph's socket compatibility: '*' / empty matches anything; unions match on any member."""
    if a in ("", ANY_TYPE, 0, None) or b in ("", ANY_TYPE, 0, None) or a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    left = {t.strip().lower() for t in a.split(",")}
    right = {t.strip().lower() for t in b.split(",")}
    return bool(left & right)


def _bypass_input_index(node: dict[str, Any], slot: int, wanted_type: Any) -> int:
    """Which input a bypassed node hands through for its output ``slot`` (the frontend's rule)."""
    inputs = node.get("inputs") or []
    outputs = node.get("outputs") or []
    if wanted_type in (ANY_TYPE, ""):
        return slot if len(inputs) > slot else (0 if inputs else -1)
    output_type = outputs[slot].get("type") if slot < len(outputs) else ANY_TYPE
    if slot < len(inputs):
        same_slot = inputs[slot].get("type")
        if _valid_connection(same_slot, output_type) and _valid_connection(same_slot, wanted_type):
            return slot
    for i, entry in enumerate(inputs):
        if entry.get("type") == wanted_type:
            return i
    for i, entry in enumerate(inputs):
        if _valid_connection(entry.get("type"), output_type) and _valid_connection(
            entry.get("type"), wanted_type
        ):
            return i
    return -1


def _widget_values(
    node: dict[str, Any], node_class: type
) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """Map a UI node's ``widgets_values`` onto its widget inputs: ({name: value}, {name: index}, notes)."""
    raw = node.get("widgets_values")
    values: dict[str, Any] = {}
    slots: dict[str, int] = {}
    notes: list[str] = []
    specs = widget_inputs(node_class)
    if isinstance(raw, dict):  # some packs save widgets by name
        for spec in specs:
            if spec.name in raw:
                values[spec.name] = raw[spec.name]
        return values, slots, notes
    raw = list(raw or [])
    index = 0
    for spec in specs:
        if index < len(raw):
            values[spec.name] = raw[index]
            slots[spec.name] = index
        elif spec.default is not None:
            # The frontend keeps a widget's default when the saved graph has fewer values (an older version of
            # the node); say so, since the graph then runs with a value nobody saw.
            values[spec.name] = spec.default
            notes.append(
                f"node {node['id']} ({node['type']}): no saved value for '{spec.name}', using its default {spec.default!r}"
            )
        index += 1 + spec.frontend_extra_widgets
    if index < len(raw):
        notes.append(
            f"node {node['id']} ({node['type']}): {len(raw) - index} saved widget value(s) more than the node "
            f"declares were ignored; the graph was saved with another version of this node"
        )
    return values, slots, notes


def _primitive_targets(graph: _UiGraph, primitive: dict[str, Any]) -> list[_Link]:
    """The links a PrimitiveNode feeds, following Reroutes as the frontend does."""
    found: list[_Link] = []
    pending = [primitive]
    visited: set[str] = set()
    while pending:
        node = pending.pop()
        if str(node["id"]) in visited:
            continue
        visited.add(str(node["id"]))
        for output in node.get("outputs") or []:
            for link_id in output.get("links") or []:
                link = graph.links.get(int(link_id))
                if link is None or link.target_id not in graph.nodes:
                    continue
                target = graph.nodes[link.target_id]
                if target["type"] == REROUTE:
                    pending.append(target)
                else:
                    found.append(link)
    return found


def ui_to_api(
    ui: dict[str, Any], node_classes: Mapping[str, type], display_names: Mapping[str, str] | None = None
) -> Workflow:
    """Convert a UI-format graph into an API-format :class:`Workflow` (see the module docstring).

    ``display_names`` (NODE_DISPLAY_NAME_MAPPINGS) gives the ``_meta.title`` of nodes not renamed by the user.
    """
    if not is_ui_format(ui):
        raise WorkflowFormatError("not a UI-format workflow (no 'nodes' list)")
    ui = copy.deepcopy(ui)  # overrides edit this copy, never the caller's data
    graph = _UiGraph(ui)
    notes: list[str] = []
    prompt: dict[str, dict[str, Any]] = {}
    widget_slots: dict[tuple[str, str], int] = {}
    # Inputs set by primitives: (target node id, input name) -> value.
    primitive_values: dict[tuple[str, str], Any] = {}
    for node in graph.nodes.values():
        # The frontend applies every primitive before serialising, muted or not.
        if node["type"] != PRIMITIVE:
            continue
        saved = node.get("widgets_values") or []
        if not saved:
            continue
        for link in _primitive_targets(graph, node):
            target = graph.nodes[link.target_id]
            target_inputs = target.get("inputs") or []
            if link.target_slot >= len(target_inputs):
                continue
            slot = target_inputs[link.target_slot]
            widget_name = (slot.get("widget") or {}).get("name") or slot.get("name")
            primitive_values[(link.target_id, widget_name)] = saved[0]

    for node_id, node in graph.nodes.items():
        node_type = node["type"]
        mode = node.get("mode", MODE_ALWAYS)
        if node_type in VIRTUAL_NODE_TYPES or mode in (MODE_NEVER, MODE_BYPASS):
            continue
        node_class = node_classes.get(node_type)
        inputs: dict[str, Any] = {}
        if node_class is not None:
            values, slots, value_notes = _widget_values(node, node_class)
            notes += value_notes
            for name, index in slots.items():
                widget_slots[(node_id, name)] = index
            for name, value in values.items():
                if (node_id, name) in primitive_values:
                    value = primitive_values[(node_id, name)]
                # Lists are reserved for links in the API format; the server unwraps this box.
                inputs[name] = {"__value__": value} if isinstance(value, list) else value
        for slot, entry in enumerate(node.get("inputs") or []):
            resolved = graph.resolve_input(node, slot)
            if resolved is None:
                continue
            name = entry.get("name")
            if entry.get("widget") and isinstance(entry["widget"], dict):
                name = entry["widget"].get("name", name)
            inputs[name] = [resolved[0], resolved[1]]
        title = node.get("title") or (display_names or {}).get(node_type) or node_type
        prompt[node_id] = {"inputs": inputs, "class_type": node_type, "_meta": {"title": title}}

    # Links into nodes that were left out (muted, bypassed without a match) vanish, as in the frontend.
    for api_node in prompt.values():
        for name, value in list(api_node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in prompt:
                del api_node["inputs"][name]
    return Workflow(prompt=prompt, ui=ui, widget_slots=widget_slots, notes=notes)


def set_ui_widget_value(workflow: Workflow, node_id: str, input_name: str, value: Any) -> bool:
    """Write an overridden value into the UI graph too, so saved metadata reproduces the run."""
    if workflow.ui is None or (node_id, input_name) not in workflow.widget_slots:
        return False
    index = workflow.widget_slots[(node_id, input_name)]
    for node in workflow.ui["nodes"]:
        if str(node.get("id")) == node_id and isinstance(node.get("widgets_values"), list):
            node["widgets_values"][index] = value
            return True
    return False


def api_json(prompt: dict[str, Any]) -> str:
    return json.dumps(prompt, indent=2, ensure_ascii=False)
