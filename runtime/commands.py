"""The command-line subcommands behind ``python -m videocascade``: they print, and return an exit code.

Exit codes: 0 success; 1 a node failed while running; 2 the workflow cannot run as given (unreadable
file, validation errors, a bad ``--set``); 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping
from typing import TextIO

from .catalog import catalog_json, describe_nodes, format_catalog
from .executor import (
    NodeExecutionError,
    NodeTiming,
    RunResult,
    execute_prompt,
    pack_import_errors,
    pack_mappings,
)
from .overrides import OverrideError, apply_overrides, parse_override
from .validation import WorkflowValidationError, check_prompt
from .workflow import Workflow, WorkflowFormatError, api_json, load_workflow

EXIT_OK = 0
EXIT_NODE_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it


def _mappings(
    node_classes: Mapping[str, type] | None,
    display_names: Mapping[str, str] | None,
    err: TextIO | None = None,
) -> tuple[Mapping[str, type], Mapping[str, str]]:
    if node_classes is None:
        for stage, error in pack_import_errors().items():
            print(
                f"warning: nodes/{stage}.py failed to import, its nodes are missing:\n{error}",
                file=err or sys.stderr,
            )
        return pack_mappings()
    return node_classes, display_names or {}


def _load(
    path: str,
    overrides: list[str],
    node_classes: Mapping[str, type],
    display_names: Mapping[str, str],
    err: TextIO,
) -> Workflow | None:
    try:
        workflow = load_workflow(path, node_classes, display_names)
        changes = apply_overrides(workflow, [parse_override(o) for o in overrides], node_classes)
    except (WorkflowFormatError, OverrideError) as e:
        print(f"error: {e}", file=err)
        return None
    for note in workflow.notes:
        print(f"note: {note}", file=err)
    for change in changes:
        print(f"set {change}", file=err)
    return workflow


def run_command(
    workflow_path: str,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
    *,
    node_classes: Mapping[str, type] | None = None,
    display_names: Mapping[str, str] | None = None,
    verbose: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``run WORKFLOW.json [--set NODE.input=value ...] [--output-dir DIR]``."""
    out = out or sys.stdout
    err = err or sys.stderr
    node_classes, display_names = _mappings(node_classes, display_names, err)
    workflow = _load(workflow_path, overrides or [], node_classes, display_names, err)
    if workflow is None:
        return EXIT_INVALID
    print(f"workflow {workflow_path} ({workflow.format} format, {len(workflow.prompt)} nodes)", file=err)

    def started(index: int, total: int, node_id: str, class_type: str) -> None:
        print(f"[{index + 1}/{total}] node {node_id} {class_type}", file=err, flush=True)

    try:
        result = execute_prompt(
            workflow.prompt,
            node_classes,
            extra_pnginfo=workflow.extra_pnginfo(),
            output_dir=output_dir,
            on_node_start=started,
        )
    except WorkflowValidationError as e:
        print(f"error: {e}", file=err)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    except NodeExecutionError as e:
        print(f"error: {e}", file=err)
        if verbose:
            traceback.print_exception(e.cause, file=err)
        else:
            print("(run with --verbose for the traceback)", file=err)
        return EXIT_NODE_FAILED
    for warning in result.warnings:
        print(f"warning: {warning}", file=err)
    print(format_summary(result), file=out, end="")
    return EXIT_OK


def format_summary(result: RunResult) -> str:
    """Per-node timing table, then the files written (the last line lists them)."""
    lines = ["node timings:"]
    width = max((len(_timing_label(t)) for t in result.timings), default=10)
    for timing in result.timings:
        lines.append(f"  {_timing_label(timing):<{width}}  {timing.seconds:8.2f} s")
    lines.append(f"  {'total':<{width}}  {result.total_seconds:8.2f} s")
    if result.files:
        lines.append(f"files written ({len(result.files)}) in {result.output_dir}:")
        lines += [f"  {path}" for path in result.files]
        lines.append("wrote: " + " ".join(result.files))
    else:
        lines.append(f"wrote: nothing (output folder {result.output_dir})")
    return "\n".join(lines) + "\n"


def _timing_label(timing: NodeTiming) -> str:
    label = f"{timing.node_id} {timing.class_type}"
    if timing.title and timing.title != timing.class_type:
        label += f' "{timing.title}"'
    return label


def validate_command(
    workflow_path: str,
    overrides: list[str] | None = None,
    *,
    node_classes: Mapping[str, type] | None = None,
    display_names: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``validate WORKFLOW.json``: load, convert and check without running anything."""
    out = out or sys.stdout
    err = err or sys.stderr
    node_classes, display_names = _mappings(node_classes, display_names, err)
    workflow = _load(workflow_path, overrides or [], node_classes, display_names, err)
    if workflow is None:
        return EXIT_INVALID
    checked, issues = check_prompt(workflow.prompt, node_classes)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=err)
    if issues:
        print(f"error: {WorkflowValidationError(issues)}", file=err)
        return EXIT_INVALID
    print(f"ok: {len(workflow.prompt)} nodes, output nodes {', '.join(checked.outputs)}", file=out)
    return EXIT_OK


def export_api_command(
    workflow_path: str,
    output_path: str | None = None,
    overrides: list[str] | None = None,
    *,
    node_classes: Mapping[str, type] | None = None,
    display_names: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``api WORKFLOW.json [-o API.json]``: write the API-format twin of a workflow (as ComfyUI would queue it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    node_classes, display_names = _mappings(node_classes, display_names, err)
    workflow = _load(workflow_path, overrides or [], node_classes, display_names, err)
    if workflow is None:
        return EXIT_INVALID
    text = api_json(workflow.prompt) + "\n"
    if output_path:
        os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
        with open(output_path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {output_path}", file=err)
    else:
        out.write(text)
    return EXIT_OK


def nodes_command(
    as_json: bool = False,
    *,
    node_classes: Mapping[str, type] | None = None,
    display_names: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``nodes [--json]``: list every node with inputs (type, default, range/choices, tooltip) and outputs."""
    out = out or sys.stdout
    node_classes, display_names = _mappings(node_classes, display_names, err)
    descriptions = describe_nodes(node_classes, display_names)
    out.write(catalog_json(descriptions) + "\n" if as_json else format_catalog(descriptions))
    return EXIT_OK
