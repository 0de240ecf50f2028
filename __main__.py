"""``python -m videocascade <command>``: a thin argparse front; the work happens in ``runtime/commands.py``.

run WORKFLOW.json [--set NODE.input=value ...] [--output-dir DIR] [--models-dir DIR] [--verbose]
validate WORKFLOW.json [--set ...] [--models-dir DIR]
api WORKFLOW.json [-o API.json] [--set ...]
nodes [--json]
"""

from __future__ import annotations

import argparse
import os
import sys

from .runtime import commands
from .runtime.model_paths import MODELS_DIR_ENV


def _add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE.input=value",
        help="override a widget value; NODE is a node id, a node title or a class id when unique "
        "(e.g. --set 12.seed=7 --set VCDiTSampler.steps=20); repeatable",
    )


def _add_models_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        dest="models_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="a ComfyUI models folder (holding vae/, diffusion_models/, text_encoders/, videocascade_*/) "
        "whose files the loaders list and find by name, as inside ComfyUI; repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m videocascade",
        description="VideoCascade: run ComfyUI workflows of this node pack headless, and inspect its nodes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a workflow (ComfyUI API or UI format)")
    run.add_argument(
        "workflow", help="workflow JSON: UI format (Workflow > Save) or API format (Export (API))"
    )
    _add_set_option(run)
    run.add_argument("--output-dir", default=None, help="where save nodes write (default: ./output)")
    _add_models_dir_option(run)
    run.add_argument("--verbose", action="store_true", help="print the traceback when a node fails")

    validate = sub.add_parser("validate", help="check a workflow without running it")
    validate.add_argument("workflow")
    _add_set_option(validate)
    _add_models_dir_option(validate)

    api = sub.add_parser("api", help="print (or write) the API-format twin of a workflow")
    api.add_argument("workflow")
    api.add_argument("-o", "--output", default=None, help="write to this file instead of stdout")
    _add_set_option(api)

    nodes = sub.add_parser("nodes", help="list every node: inputs, defaults, ranges, tooltips, outputs")
    nodes.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(
    argv: list[str] | None = None,
    node_classes: dict[str, type] | None = None,
    display_names: dict[str, str] | None = None,
) -> int:
    """Parse ``argv`` and run the command; ``node_classes`` defaults to the pack's own nodes."""
    args = build_parser().parse_args(argv)
    missing = [d for d in getattr(args, "models_dirs", []) if not os.path.isdir(os.path.expanduser(d))]
    if missing:
        print(f"error: --models-dir {missing[0]!r} is not a folder", file=sys.stderr)
        return commands.EXIT_INVALID
    if getattr(args, "models_dirs", None):
        os.environ[MODELS_DIR_ENV] = os.pathsep.join(args.models_dirs)
    nodes = {"node_classes": node_classes, "display_names": display_names}
    if args.command == "run":
        return commands.run_command(
            args.workflow, args.overrides, args.output_dir, verbose=args.verbose, **nodes
        )
    if args.command == "validate":
        return commands.validate_command(args.workflow, args.overrides, **nodes)
    if args.command == "api":
        return commands.export_api_command(args.workflow, args.output, args.overrides, **nodes)
    if args.command == "nodes":
        return commands.nodes_command(as_json=args.json, **nodes)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
