"""Run a validated API-format graph headless, with ComfyUI's execution semantics.

- Only output nodes (``OUTPUT_NODE = True``) and what they depend on run, each node once, dependencies first.
- Every value travels as a list, as in ComfyUI: a node is called once per element of its longest input list
  (shorter lists repeat their last element) unless it sets ``INPUT_IS_LIST``; outputs flagged in
  ``OUTPUT_IS_LIST`` are concatenated across calls, the others collected one per call.
- Hidden inputs: ``PROMPT`` (the API graph), ``EXTRA_PNGINFO`` (``{"workflow": ui_graph}`` when run from a
  UI file, else None), ``UNIQUE_ID`` (the node id).
- A node returns a tuple of outputs, or ``{"ui": {...}, "result": (...)}``; ``ui`` dicts of one node are
  merged across calls like ComfyUI does.
- Outputs are released as soon as their last consumer has run, so a long pipeline does not hold every
  intermediate video in memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .outputs import entry_path, use_output_directory
from .overrides import apply_overrides, parse_override
from .schema import node_inputs, return_types
from .validation import ValidatedPrompt, is_link, node_sort_key, validate_prompt
from .workflow import Workflow, load_workflow, workflow_from_data


class NodeExecutionError(RuntimeError):
    """A node raised while running; carries which node it was."""

    def __init__(self, node_id: str, class_type: str, title: str | None, cause: BaseException) -> None:
        self.node_id = node_id
        self.class_type = class_type
        self.title = title
        self.cause = cause
        label = f"node {node_id}"
        if title and title != class_type:
            label += f' "{title}"'
        super().__init__(f"{label} ({class_type}) failed: {type(cause).__name__}: {cause}")


@dataclass
class NodeTiming:
    node_id: str
    class_type: str
    title: str
    seconds: float


@dataclass
class RunResult:
    """What a run produced: the output nodes' ``ui`` dicts, per-node timings and the files written."""

    ui_outputs: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    timings: list[NodeTiming] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    output_dir: str = ""
    # Output values of the output nodes (lists, one element per call), for tests and embedding callers.
    results: dict[str, list[list[Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. inputs the nodes do not declare

    @property
    def total_seconds(self) -> float:
        return sum(t.seconds for t in self.timings)


def execution_order(prompt: Mapping[str, dict[str, Any]], outputs: list[str]) -> list[str]:
    """Dependencies before dependents, reaching only what the outputs need; ties broken by node id."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node_id: str, path: tuple[str, ...]) -> None:
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "active":
            cycle = " -> ".join((*path[path.index(node_id) :], node_id))
            raise ValueError(f"the workflow has a cycle: {cycle}")
        state[node_id] = "active"
        sources = sorted(
            {str(v[0]) for v in prompt[node_id]["inputs"].values() if is_link(v)}, key=node_sort_key
        )
        for source in sources:
            visit(source, (*path, node_id))
        state[node_id] = "done"
        order.append(node_id)

    for output in sorted(outputs, key=node_sort_key):
        visit(output, ())
    return order


def _hidden_value(kind: Any, node_id: str, prompt: dict[str, Any], extra_pnginfo: Any) -> Any:
    if kind == "PROMPT":
        return prompt
    if kind == "EXTRA_PNGINFO":
        return extra_pnginfo
    if kind == "UNIQUE_ID":
        return node_id
    return None  # DYNPROMPT, auth tokens: ComfyUI-server-only


def _node_arguments(
    node_id: str,
    node: dict[str, Any],
    node_class: type,
    values: dict[str, list[list[Any]]],
    prompt: dict[str, Any],
    extra_pnginfo: Any,
) -> dict[str, list[Any]]:
    """Each argument as a list (ComfyUI's representation): a link's list of values, or ``[constant]``."""
    arguments: dict[str, list[Any]] = {}
    for spec in node_inputs(node_class):
        if spec.category == "hidden":
            arguments[spec.name] = [_hidden_value(spec.type, node_id, prompt, extra_pnginfo)]
            continue
        if spec.name not in node["inputs"]:
            continue  # optional input left out: the function's default applies
        value = node["inputs"][spec.name]
        if is_link(value) and not spec.options.get("rawLink"):
            arguments[spec.name] = values[str(value[0])][value[1]]
        else:
            arguments[spec.name] = [value]
    return arguments


def _call_node(node_class: type, instance: Any, arguments: dict[str, list[Any]]) -> list[Any]:
    """Call the node's FUNCTION over its argument lists; one return value per call."""
    function = getattr(instance, node_class.FUNCTION)
    if getattr(node_class, "INPUT_IS_LIST", False):
        return [function(**arguments)]
    longest = max((len(v) for v in arguments.values()), default=0)
    if longest == 0:
        return [function()] if not arguments else []
    calls = []
    for i in range(longest):
        calls.append(function(**{k: v[i if i < len(v) else -1] for k, v in arguments.items()}))
    return calls


def _split_returns(node_class: type, returns: list[Any]) -> tuple[list[list[Any]], dict[str, list[Any]]]:
    """ComfyUI's merge: (one list per output slot, merged ui dict)."""
    outputs_per_call: list[tuple] = []
    uis: list[dict[str, Any]] = []
    expected = return_types(node_class)
    for value in returns:
        if isinstance(value, dict):
            if "ui" in value and value["ui"] is not None:
                uis.append(value["ui"])
            if "expand" in value:
                raise TypeError(
                    f"{node_class.__name__} returned a graph expansion, which the runner does not support"
                )
            value = value.get("result")
            if value is None:
                continue
        if value is None and not expected:
            continue
        if not isinstance(value, (tuple, list)):
            raise TypeError(
                f"{node_class.__name__}.{node_class.FUNCTION} returned {type(value).__name__}; it must return a "
                f"tuple with one value per RETURN_TYPES entry ({len(expected)}), e.g. `return (images,)`"
            )
        if len(value) != len(expected):
            raise TypeError(
                f"{node_class.__name__}.{node_class.FUNCTION} returned {len(value)} value(s) but declares "
                f"{len(expected)} RETURN_TYPES {tuple(expected)}"
            )
        outputs_per_call.append(tuple(value))

    is_list = list(getattr(node_class, "OUTPUT_IS_LIST", ()) or ()) + [False] * len(expected)
    outputs: list[list[Any]] = []
    for slot in range(len(expected)):
        if is_list[slot]:
            merged: list[Any] = []
            for call in outputs_per_call:
                merged.extend(call[slot])
            outputs.append(merged)
        else:
            outputs.append([call[slot] for call in outputs_per_call])
    ui: dict[str, list[Any]] = {}
    if uis:
        ui = {key: [item for u in uis for item in _as_list(u.get(key, []))] for key in uis[0]}
    return outputs, ui


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _snapshot(folder: str) -> dict[str, float]:
    files: dict[str, float] = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                files[path] = os.path.getmtime(path)
            except OSError:
                continue
    return files


def execute_prompt(
    prompt: Mapping[str, Any],
    node_classes: Mapping[str, type],
    *,
    extra_pnginfo: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    on_node_start: Callable[[int, int, str, str], None] | None = None,
    on_node_done: Callable[[NodeTiming], None] | None = None,
) -> RunResult:
    """Validate and run ``prompt``; raise ``WorkflowValidationError`` or :class:`NodeExecutionError`.

    ``on_node_start(index, total, node_id, class_type)`` and ``on_node_done(timing)`` report progress.
    """
    validated: ValidatedPrompt = validate_prompt(prompt, node_classes)
    graph = validated.prompt
    order = execution_order(graph, validated.outputs)
    # How many nodes still need each node's outputs; an output is dropped when this reaches zero.
    consumers: dict[str, int] = {node_id: 0 for node_id in order}
    for node_id in order:
        for source in {str(v[0]) for v in graph[node_id]["inputs"].values() if is_link(v)}:
            consumers[source] += 1

    result = RunResult(warnings=list(validated.warnings))
    values: dict[str, list[list[Any]]] = {}
    with use_output_directory(output_dir) as out_dir, torch.inference_mode():
        result.output_dir = out_dir
        before = _snapshot(out_dir)
        for index, node_id in enumerate(order):
            node = graph[node_id]
            class_type = node["class_type"]
            title = node.get("_meta", {}).get("title") or class_type
            node_class = node_classes[class_type]
            if on_node_start is not None:
                on_node_start(index, len(order), node_id, class_type)
            start = time.perf_counter()
            try:
                arguments = _node_arguments(node_id, node, node_class, values, dict(prompt), extra_pnginfo)
                returns = _call_node(node_class, node_class(), arguments)
                outputs, ui = _split_returns(node_class, returns)
            except Exception as e:
                raise NodeExecutionError(node_id, class_type, title, e) from e
            timing = NodeTiming(node_id, class_type, title, time.perf_counter() - start)
            result.timings.append(timing)
            if on_node_done is not None:
                on_node_done(timing)
            values[node_id] = outputs
            if ui:
                result.ui_outputs[node_id] = ui
            if node_id in validated.outputs:
                result.results[node_id] = outputs
            for source in {str(v[0]) for v in node["inputs"].values() if is_link(v)}:
                consumers[source] -= 1
                if consumers[source] == 0 and source not in validated.outputs:
                    values.pop(source, None)
        after = _snapshot(out_dir)
        reported = [
            p
            for ui in result.ui_outputs.values()
            for entries in ui.values()
            for e in entries
            if (p := entry_path(e))
        ]
    written = {p for p, mtime in after.items() if before.get(p) != mtime}
    written |= {os.path.abspath(p) for p in reported if os.path.isfile(p) and p.startswith(out_dir)}
    result.files = sorted(written)
    return result


def run_workflow(
    workflow: str | os.PathLike | dict[str, Any] | Workflow,
    node_classes: Mapping[str, type] | None = None,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    output_dir: str | os.PathLike | None = None,
    display_names: Mapping[str, str] | None = None,
    on_node_start: Callable[[int, int, str, str], None] | None = None,
    on_node_done: Callable[[NodeTiming], None] | None = None,
) -> RunResult:
    """Load (file path or parsed JSON, API or UI format), apply ``--set``-style overrides, validate and run.

    ``node_classes`` defaults to the pack's ``NODE_CLASS_MAPPINGS``; tests pass their own mapping.
    """
    if node_classes is None:
        node_classes, display_names = pack_mappings()
    if isinstance(workflow, Workflow):
        loaded = workflow
    elif isinstance(workflow, dict):
        loaded = workflow_from_data(workflow, node_classes, display_names)
    else:
        loaded = load_workflow(workflow, node_classes, display_names)
    apply_overrides(loaded, [parse_override(o) for o in overrides], node_classes)
    return execute_prompt(
        loaded.prompt,
        node_classes,
        extra_pnginfo=loaded.extra_pnginfo(),
        output_dir=output_dir,
        on_node_start=on_node_start,
        on_node_done=on_node_done,
    )


def pack_mappings() -> tuple[dict[str, type], dict[str, str]]:
    """The pack's own ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``."""
    from ..nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    return NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS


def pack_import_errors() -> dict[str, str]:
    """Stage modules of the pack that failed to import: {stage: traceback}."""
    from ..nodes import STAGE_IMPORT_ERRORS

    return dict(STAGE_IMPORT_ERRORS)
