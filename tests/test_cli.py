"""``python -m videocascade``: run / validate / api / nodes, their output and exit codes."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
import test_runner_fixtures as fx
from videocascade.__main__ import main
from videocascade.runtime.commands import EXIT_INVALID, EXIT_NODE_FAILED, EXIT_OK


def cli(*argv):
    return main(list(argv), fx.NODES, fx.DISPLAY_NAMES)


@pytest.fixture
def api_file(tmp_path):
    path = tmp_path / "graph_api.json"
    path.write_text(json.dumps(fx.api_graph()))
    return path


@pytest.fixture
def ui_file(tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(fx.ui_graph()))
    return path


def test_run_prints_timings_and_the_files_written(api_file, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert cli("run", str(api_file), "--output-dir", str(out_dir)) == EXIT_OK
    captured = capsys.readouterr()
    saved = out_dir / "test" / "nums_00001_.json"
    assert json.loads(saved.read_text())["nums"] == [1.0, 3.0, 5.0, 7.0]
    lines = captured.out.strip().splitlines()
    assert lines[0] == "node timings:"
    assert any(line.strip().startswith('4 VCTestSave "Save numbers"') for line in lines)
    assert any(line.strip().startswith("total") for line in lines)
    assert lines[-1] == f"wrote: {saved}"
    assert "[1/4] node 1 VCTestRamp" in captured.err and "[4/4] node 4 VCTestSave" in captured.err


def test_run_ui_file_with_overrides(ui_file, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = cli(
        "run", str(ui_file), "--output-dir", str(out_dir),
        "--set", "1.count=2", "--set", "Namer.text=hello", "--set", "Save numbers.filename_prefix=sub/run",
    )  # fmt: skip
    assert code == EXIT_OK
    err = capsys.readouterr().err
    assert "workflow" in err and "(ui format, 5 nodes)" in err
    assert "set node 1 (VCTestRamp) count: 5 -> 2" in err
    record = json.loads((out_dir / "sub" / "run_00001_.json").read_text())
    assert record == {
        "nums": [1.0, 3.0],
        "label": "HELLO",
        "unique_id": "4",
        "prompt_nodes": ["1", "2", "3", "4", "5"],
        "has_workflow": True,
    }


def test_invalid_workflow_exits_2_listing_every_error(api_file, tmp_path, capsys):
    graph = fx.api_graph()
    graph["1"]["inputs"]["mode"] = "sideways"
    graph["2"]["inputs"]["factor"] = 50
    graph["4"]["inputs"]["nums"] = ["7", 0]
    api_file.write_text(json.dumps(graph))
    assert cli("run", str(api_file), "--output-dir", str(tmp_path / "out")) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "workflow failed validation (3 error(s))" in err
    assert "node 1 (VCTestRamp) input 'mode': 'sideways' is not one of the choices" in err
    assert (
        "node 2 (VCTestScale) input 'factor': value 50.0 is bigger than the maximum 10.0 [value_bigger_than_max]"
        in err
    )
    assert "input 'nums': is linked to node 7, which is not in the workflow [bad_linked_input]" in err
    assert not (tmp_path / "out" / "test").exists()
    assert cli("validate", str(api_file)) == EXIT_INVALID


def test_failing_node_exits_1(api_file, tmp_path, capsys):
    graph = fx.api_graph()
    graph["3"] = {"class_type": "VCTestFail", "inputs": {"nums": ["2", 0]}}
    graph["4"]["inputs"] = {"nums": ["3", 0], "filename_prefix": "x"}
    api_file.write_text(json.dumps(graph))
    assert cli("run", str(api_file), "--output-dir", str(tmp_path)) == EXIT_NODE_FAILED
    err = capsys.readouterr().err
    assert "error: node 3 (VCTestFail) failed: ValueError: fixture failure" in err
    assert "--verbose" in err and "Traceback" not in err
    assert cli("run", str(api_file), "--output-dir", str(tmp_path), "--verbose") == EXIT_NODE_FAILED
    assert "Traceback" in capsys.readouterr().err


def test_bad_overrides_and_missing_files_exit_2(api_file, tmp_path, capsys):
    assert cli("run", str(api_file), "--set", "VCTestRamp.count=lots", "--set", "8.x=1") == EXIT_INVALID
    err = capsys.readouterr().err
    assert "--set VCTestRamp.count=lots: 'count' is INT; 'lots' is not a number" in err
    assert "--set 8.x=1: no node has id, title or class '8'" in err
    assert cli("run", str(tmp_path / "nope.json")) == EXIT_INVALID
    assert "workflow file not found" in capsys.readouterr().err


def test_validate_and_api_export(ui_file, tmp_path, capsys):
    assert cli("validate", str(ui_file)) == EXIT_OK
    assert capsys.readouterr().out.strip() == "ok: 5 nodes, output nodes 4"
    assert cli("api", str(ui_file)) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == fx.ui_graph_api_twin()
    target = tmp_path / "twin" / "graph_api.json"
    assert cli("api", str(ui_file), "-o", str(target), "--set", "2.factor=3") == EXIT_OK
    twin = json.loads(target.read_text())
    assert twin["2"]["inputs"]["factor"] == 3.0
    # The exported twin runs like the UI file.
    assert cli("validate", str(target)) == EXIT_OK


def test_nodes_listing_text_and_json(capsys):
    assert cli("nodes") == EXIT_OK
    text = capsys.readouterr().out
    assert "VCTestRamp — Test Ramp  (VideoCascade/test)" in text
    assert "count                INT = 3 [1..100]" in text
    assert "How many numbers." in text
    assert "mode                 COMBO {ramp, noise} = 'ramp'" in text
    assert "nums                 NUMS (link)" in text
    assert "VCTestSave — Test Save  (VideoCascade/test)  [output node]" in text
    assert "label                STRING" in text and "The label, upper-cased when shout is on." in text

    assert cli("nodes", "--json") == EXIT_OK
    listing = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert list(listing) == list(fx.NODES)
    ramp = listing["VCTestRamp"]
    assert ramp["display_name"] == "Test Ramp" and ramp["category"] == "VideoCascade/test"
    count = ramp["inputs"][0]
    assert count == {
        "name": "count",
        "type": "INT",
        "required": True,
        "widget": True,
        "default": 3,
        "min": 1,
        "max": 100,
        "step": 1,
        "tooltip": "How many numbers.",
    }
    assert ramp["inputs"][2]["choices"] == ["ramp", "noise"]
    assert listing["VCTestSplit"]["outputs"] == [{"name": "NUMS", "type": "NUMS", "is_list": True}]
    assert listing["VCTestSave"]["output_node"] is True


def test_module_entry_point_uses_the_pack_nodes(tmp_path, capsys):
    """The real ``python -m videocascade`` process, on the pack's own mapping."""
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"1": {"class_type": "VCNoSuchNode", "inputs": {}}}))
    try:
        importlib.metadata.distribution("comfyui-videocascade")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the package is not installed (pip install -e .), so `python -m videocascade` cannot start"
        )
    run = subprocess.run(
        [sys.executable, "-m", "videocascade", "run", str(graph), "--output-dir", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == EXIT_INVALID, run.stderr
    assert "node class 'VCNoSuchNode' does not exist" in run.stderr

    from videocascade import NODE_CLASS_MAPPINGS
    from videocascade.nodes import STAGE_IMPORT_ERRORS

    assert main(["nodes", "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in listing] == list(NODE_CLASS_MAPPINGS)
    assert STAGE_IMPORT_ERRORS == {}


def test_models_dir_lists_and_finds_files_by_their_comfyui_names(tmp_path, monkeypatch, capsys):
    # A ComfyUI-style models folder holding a real (embedded) interpolator under a subfolder.
    import shutil

    from videocascade.runtime.model_paths import EMBEDDED_DIR, MODELS_DIR_ENV, available_files, resolve_file

    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    models = tmp_path / "models"
    target = models / "videocascade_interpolators" / "mine" / "tsr.safetensors"
    target.parent.mkdir(parents=True)
    shutil.copy(f"{EMBEDDED_DIR}/interpolator-sprites-tsr.safetensors", target)
    assert "mine/tsr.safetensors" not in available_files("interpolator")
    with pytest.raises(FileNotFoundError, match="--models-dir"):
        resolve_file("interpolator", "mine/tsr.safetensors")

    # The weight-free interpolate-and-upscale example, its TSR switched to the learned interpolator.
    with open(f"{EMBEDDED_DIR}/../example_workflows/api/interpolate_upscale_api.json") as f:
        graph = json.load(f)
    graph["1"]["inputs"].update(frames=5, width=32, height=32)
    graph["9"] = {
        "class_type": "VCInterpolatorLoader",
        "inputs": {"file": "mine/tsr.safetensors", "dtype": "auto"},
    }
    graph["3"]["inputs"]["interpolator"] = ["9", 0]
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    assert main(["validate", str(path)]) == EXIT_INVALID
    assert "mine/tsr.safetensors" in capsys.readouterr().err
    monkeypatch.setenv(MODELS_DIR_ENV, "")  # main() sets it for the process; monkeypatch restores it
    assert main(["validate", str(path), "--models-dir", str(models)]) == EXIT_OK
    assert "mine/tsr.safetensors" in available_files("interpolator")
    assert resolve_file("interpolator", "mine/tsr.safetensors") == str(target)
    assert (
        main(["run", str(path), "--models-dir", str(models), "--output-dir", str(tmp_path / "o")]) == EXIT_OK
    )
    assert main(["validate", str(path), "--models-dir", str(tmp_path / "nowhere")]) == EXIT_INVALID
    assert "is not a folder" in capsys.readouterr().err
