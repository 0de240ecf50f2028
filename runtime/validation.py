"""Check an API-format graph before running it, the way ComfyUI's ``validate_prompt`` does.

Error ``type`` strings are ComfyUI's (``required_input_missing``, ``return_type_mismatch``,
``value_not_in_list``, ...), so a message here means what it means in ComfyUI; each message names the node
id, class, title and input. Unlike ComfyUI, every error of the graph is collected before reporting, a link
to a missing node or output is its own clear error, and constants are not silently coerced into garbage
(``"abc"`` for an INT, ``7.5`` for an INT, ``"false"`` for a BOOLEAN, a number for an IMAGE).
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema import (
    ANY_TYPE,
    WIDGET_TYPES,
    InputSpec,
    is_output_node,
    node_inputs,
    return_types,
    types_compatible,
)


@dataclass
class ValidationIssue:
    """One problem in a graph, shaped like ComfyUI's ``node_errors`` entries."""

    type: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    title: str | None = None
    input_name: str | None = None

    def where(self) -> str:
        if self.node_id is None:
            return "workflow"
        label = f"node {self.node_id}"
        if self.title and self.title != self.class_type:
            label += f' "{self.title}"'
        if self.class_type:
            label += f" ({self.class_type})"
        if self.input_name:
            label += f" input '{self.input_name}'"
        return label

    def __str__(self) -> str:
        return f"{self.where()}: {self.message} [{self.type}]"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "node_id": self.node_id,
            "class_type": self.class_type,
            "input_name": self.input_name,
        }


class WorkflowValidationError(ValueError):
    """The graph cannot run; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"workflow failed validation ({len(issues)} error(s)):\n{lines}")


@dataclass
class ValidatedPrompt:
    """A graph that passed validation: values coerced to their declared types, and what to run."""

    prompt: dict[str, dict[str, Any]]
    outputs: list[str]
    warnings: list[str] = field(default_factory=list)


def node_sort_key(node_id: str) -> tuple:
    """Numeric ids in numeric order ("2" before "10"), then anything else."""
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def is_link(value: Any) -> bool:
    return isinstance(value, list)


def validate_prompt(prompt: Mapping[str, Any], node_classes: Mapping[str, type]) -> ValidatedPrompt:
    """Validate ``prompt`` against ``node_classes``; raise :class:`WorkflowValidationError` listing all errors."""
    result, issues = check_prompt(prompt, node_classes)
    if issues:
        raise WorkflowValidationError(issues)
    return result


def check_prompt(
    prompt: Mapping[str, Any], node_classes: Mapping[str, type]
) -> tuple[ValidatedPrompt, list[ValidationIssue]]:
    """Validate without raising: the coerced graph and the list of issues (empty when it can run)."""
    issues: list[ValidationIssue] = []
    warnings: list[str] = []
    checked: dict[str, dict[str, Any]] = {}
    if not isinstance(prompt, Mapping) or not prompt:
        issues.append(ValidationIssue("invalid_prompt", "the workflow has no nodes"))
        return ValidatedPrompt({}, [], warnings), issues

    for node_id in sorted(prompt, key=node_sort_key):
        node = prompt[node_id]
        if not isinstance(node, Mapping) or "class_type" not in node:
            issues.append(
                ValidationIssue(
                    "invalid_prompt", "the node has no 'class_type' property", node_id=str(node_id)
                )
            )
            continue
        class_type = node["class_type"]
        title = (node.get("_meta") or {}).get("title")
        if class_type not in node_classes:
            hint = difflib.get_close_matches(str(class_type), list(node_classes), n=3)
            suggestion = f"; did you mean {', '.join(hint)}?" if hint else ""
            issues.append(
                ValidationIssue(
                    "invalid_prompt",
                    f"node class '{class_type}' does not exist in this node pack{suggestion}",
                    node_id=str(node_id),
                    class_type=str(class_type),
                    title=title,
                )
            )
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            issues.append(
                ValidationIssue(
                    "invalid_prompt",
                    "'inputs' must be an object",
                    node_id=str(node_id),
                    class_type=class_type,
                )
            )
            inputs = {}
        checked[str(node_id)] = {
            "class_type": class_type,
            "inputs": dict(inputs),
            "_meta": dict(node.get("_meta") or {}),
        }

    outputs = sorted(
        (
            nid
            for nid, n in checked.items()
            if n["class_type"] in node_classes and is_output_node(node_classes[n["class_type"]])
        ),
        key=node_sort_key,
    )
    if not outputs:
        issues.append(
            ValidationIssue(
                "prompt_no_outputs",
                "the workflow has no output node (a node with OUTPUT_NODE = True, e.g. a save or preview node), "
                "so nothing would run",
            )
        )

    cycle = find_cycle(checked, outputs)
    if cycle:
        issues.append(
            ValidationIssue(
                "dependency_cycle",
                f"the links form a cycle ({' -> '.join(cycle)}); a node cannot depend on its own output",
                node_id=cycle[0],
                class_type=checked[cycle[0]]["class_type"],
            )
        )

    for node_id in sorted(_needed_nodes(checked, outputs), key=node_sort_key):
        node = checked[node_id]
        node_class = node_classes.get(node["class_type"])
        if node_class is None:
            continue
        issues += _check_node(node_id, node, node_class, checked, node_classes, warnings)
    return ValidatedPrompt(checked, outputs, warnings), issues


def _needed_nodes(prompt: Mapping[str, dict[str, Any]], outputs: list[str]) -> set[str]:
    """The output nodes and everything they (transitively) take links from."""
    needed: set[str] = set()
    pending = list(outputs)
    while pending:
        node_id = pending.pop()
        if node_id in needed or node_id not in prompt:
            continue
        needed.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if is_link(value) and len(value) == 2:
                pending.append(str(value[0]))
    return needed


def find_cycle(prompt: Mapping[str, dict[str, Any]], outputs: list[str]) -> list[str] | None:
    """A dependency cycle reachable from ``outputs`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node_id: str) -> list[str] | None:
        state[node_id] = 1
        path.append(node_id)
        for value in prompt[node_id]["inputs"].values():
            if not (is_link(value) and len(value) == 2 and str(value[0]) in prompt):
                continue
            source = str(value[0])
            if state.get(source) == 1:
                return [*path[path.index(source) :], source]
            if source not in state:
                found = visit(source)
                if found:
                    return found
        path.pop()
        state[node_id] = 2
        return None

    for output in outputs:
        if output not in state:
            found = visit(output)
            if found:
                return list(reversed(found))  # in data-flow order: producer -> consumer
    return None


def _validate_function_args(node_class: type) -> tuple[list[str], bool]:
    """The argument names of ``VALIDATE_INPUTS`` (ComfyUI skips its own range/choice checks for them)."""
    function = getattr(node_class, "VALIDATE_INPUTS", None)
    if function is None:
        return [], False
    spec = inspect.getfullargspec(function)
    return list(spec.args), spec.varkw is not None


def _check_node(
    node_id: str,
    node: dict[str, Any],
    node_class: type,
    prompt: Mapping[str, dict[str, Any]],
    node_classes: Mapping[str, type],
    warnings: list[str],
) -> list[ValidationIssue]:
    class_type = node["class_type"]
    title = node["_meta"].get("title")

    def issue(kind: str, message: str, input_name: str | None = None) -> ValidationIssue:
        return ValidationIssue(
            kind, message, node_id=node_id, class_type=class_type, title=title, input_name=input_name
        )

    try:
        specs = [s for s in node_inputs(node_class) if s.category != "hidden"]
    except Exception as e:  # a broken INPUT_TYPES is the node author's bug; report it, don't crash
        return [issue("exception_during_validation", f"INPUT_TYPES() raised {type(e).__name__}: {e}")]

    inputs = node["inputs"]
    issues: list[ValidationIssue] = []
    validate_args, validate_kwargs = _validate_function_args(node_class)
    received_types: dict[str, Any] = {}
    declared = {s.name for s in specs}
    for extra in sorted(set(inputs) - declared):
        warnings.append(
            f"node {node_id} ({class_type}): input '{extra}' is not declared by the node and is ignored"
        )

    for spec in specs:
        name = spec.name
        if name not in inputs:
            if spec.category == "required":
                kind = "a link from a node" if not spec.is_widget else "a value"
                issues.append(
                    issue(
                        "required_input_missing",
                        f"required input is missing: it needs {kind} of type {spec.type_name}",
                        name,
                    )
                )
            continue
        value = inputs[name]
        if is_link(value):
            received, problem = _check_link(value, prompt, node_classes)
            if problem is not None:
                issues.append(issue(problem[0], problem[1], name))
                continue
            received_types[name] = received
            if "input_types" not in validate_args and not types_compatible(received, spec.type):
                source_id, source_slot = str(value[0]), value[1]
                source = prompt[source_id]["class_type"]
                issues.append(
                    issue(
                        "return_type_mismatch",
                        f"expects {spec.type_name} but is linked to output {source_slot} of node {source_id} "
                        f"({source}), which is {received}",
                        name,
                    )
                )
            continue
        coerced = _coerce_constant(spec, value)
        if isinstance(coerced, _Invalid):
            issues.append(issue("invalid_input_type", coerced.message, name))
            continue
        inputs[name] = coerced
        if name in validate_args or validate_kwargs:
            continue  # the node validates this input itself
        range_problem = _check_range(spec, coerced)
        if range_problem:
            issues.append(issue(range_problem[0], range_problem[1], name))

    if (validate_args or validate_kwargs) and not issues:
        issues += _run_validate_inputs(
            node_class, specs, inputs, received_types, validate_args, validate_kwargs, issue
        )
    return issues


def _check_link(
    value: list, prompt: Mapping[str, dict[str, Any]], node_classes: Mapping[str, type]
) -> tuple[Any, tuple[str, str] | None]:
    """``(the linked output's type, None)``, or ``(None, (error type, message))`` when the link is broken."""
    if len(value) != 2 or not isinstance(value[1], int) or isinstance(value[1], bool):
        return None, (
            "bad_linked_input",
            f"bad link {value!r}: a link must be [source node id, output index]; to give a list as a value, "
            f'wrap it as {{"__value__": [...]}}',
        )
    source_id, source_slot = str(value[0]), value[1]
    if source_id not in prompt:
        return None, ("bad_linked_input", f"is linked to node {source_id}, which is not in the workflow")
    source_class = node_classes.get(prompt[source_id]["class_type"])
    if source_class is None:
        return ANY_TYPE, None  # the unknown class is reported on its own
    outputs = return_types(source_class)
    if not 0 <= source_slot < len(outputs):
        listing = ", ".join(f"{i}: {t}" for i, t in enumerate(outputs)) or "none"
        return None, (
            "bad_linked_input",
            f"is linked to output {source_slot} of node {source_id} ({prompt[source_id]['class_type']}), "
            f"which has {len(outputs)} output(s) ({listing})",
        )
    return outputs[source_slot], None


class _Invalid:
    def __init__(self, message: str) -> None:
        self.message = message


_TRUE_WORDS = {"true", "1", "yes", "on"}
_FALSE_WORDS = {"false", "0", "no", "off"}


def _coerce_constant(spec: InputSpec, value: Any) -> Any:
    """Convert a constant to the input's declared type, or return an :class:`_Invalid` saying why not."""
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]  # the frontend's box for list values (lists are links)
    kind = spec.type_name
    if kind == "INT":
        return _to_int(value)
    if kind == "FLOAT":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        return _Invalid(f"expects a number (FLOAT), got {value!r}")
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        return _Invalid(f"expects true or false (BOOLEAN), got {value!r}")
    if kind == "STRING":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return _Invalid(f"expects text (STRING), got {type(value).__name__} {value!r}")
    if kind == "COMBO" or kind == ANY_TYPE or kind.strip() == "":
        return value
    if kind not in WIDGET_TYPES:
        # Links carry tensors, models and other objects; a JSON constant can never be one.
        return _Invalid(f"takes a link from a node that outputs {kind}, not a value ({value!r})")
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number) and number == int(number):
                return int(number)
    return _Invalid(f"expects a whole number (INT), got {value!r}")


def _check_range(spec: InputSpec, value: Any) -> tuple[str, str] | None:
    options = spec.options
    if spec.type_name in ("INT", "FLOAT"):
        if "min" in options and value < options["min"]:
            return ("value_smaller_than_min", f"value {value} is smaller than the minimum {options['min']}")
        if "max" in options and value > options["max"]:
            return ("value_bigger_than_max", f"value {value} is bigger than the maximum {options['max']}")
    choices = spec.choices
    if spec.is_combo and choices is not None and value not in choices:
        return ("value_not_in_list", _not_in_list_message(value, choices))
    return None


def _not_in_list_message(value: Any, choices: list[Any]) -> str:
    if not choices:
        return f"{value!r} is not available: the list of choices is empty (no matching files were found?)"
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if len(choices) > 20:
        shown = ", ".join(repr(c) for c in choices[:10])
        return f"{value!r} is not one of the {len(choices)} choices ({shown}, ...){hint}"
    return f"{value!r} is not one of the choices [{', '.join(repr(c) for c in choices)}]{hint}"


def _run_validate_inputs(
    node_class, specs, inputs, received_types, args, has_kwargs, issue
) -> list[ValidationIssue]:
    """Call the node's own ``VALIDATE_INPUTS`` like ComfyUI: constants given, linked inputs as None."""
    kwargs: dict[str, Any] = {}
    for spec in specs:
        if spec.name in inputs and (spec.name in args or has_kwargs):
            value = inputs[spec.name]
            kwargs[spec.name] = None if is_link(value) else value
    if "input_types" in args:
        kwargs["input_types"] = dict(received_types)
    try:
        result = node_class.VALIDATE_INPUTS(**kwargs)
    except Exception as e:
        return [issue("exception_during_validation", f"VALIDATE_INPUTS raised {type(e).__name__}: {e}")]
    if result is True:
        return []
    reason = "" if result is False else f": {result}"
    return [issue("custom_validation_failed", f"the node rejected its inputs{reason}")]
