"""The headless runner: UI->API conversion, validation errors, execution semantics, overrides, outputs."""

from __future__ import annotations

import copy
import json
import os

import pytest
import test_runner_fixtures as fx
import torch
from videocascade.runtime.executor import NodeExecutionError, execute_prompt, execution_order, run_workflow
from videocascade.runtime.outputs import output_directory, saved_file_entry, use_output_directory
from videocascade.runtime.overrides import OverrideError, apply_overrides, parse_override
from videocascade.runtime.validation import WorkflowValidationError, check_prompt, validate_prompt
from videocascade.runtime.workflow import (
    Workflow,
    WorkflowFormatError,
    load_workflow,
    ui_to_api,
    workflow_from_data,
)

NODES, NAMES = fx.NODES, fx.DISPLAY_NAMES


def issues_of(prompt):
    _, issues = check_prompt(prompt, NODES)
    return issues


def only_issue(prompt):
    issues = issues_of(prompt)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def saved_records(result):
    records = []
    for path in result.files:
        with open(path, encoding="utf-8") as f:
            records.append(json.load(f))
    return records


# --- UI format -> API format ---------------------------------------------------------------------------------


def test_ui_graph_converts_to_its_api_twin():
    workflow = ui_to_api(fx.ui_graph(), NODES, NAMES)
    assert workflow.prompt == fx.ui_graph_api_twin()
    assert workflow.notes == []
    # The seed's control_after_generate value ("fixed") was skipped, so 'mode' got "ramp", not "fixed".
    assert workflow.prompt["1"]["inputs"]["mode"] == "ramp"


def test_ui_and_api_files_load_to_the_same_graph_and_run_the_same(tmp_path):
    ui_file, api_file = tmp_path / "flow.json", tmp_path / "flow_api.json"
    ui_file.write_text(json.dumps(fx.ui_graph()))
    api_file.write_text(json.dumps(fx.ui_graph_api_twin()))
    from_ui = load_workflow(ui_file, NODES, NAMES)
    from_api = load_workflow(api_file, NODES, NAMES)
    assert from_ui.format == "ui" and from_api.format == "api"
    assert from_ui.prompt == from_api.prompt

    ui_run = run_workflow(from_ui, NODES, output_dir=tmp_path / "a")
    api_run = run_workflow(from_api, NODES, output_dir=tmp_path / "b")
    (ui_record,) = saved_records(ui_run)
    (api_record,) = saved_records(api_run)
    # ramp(5) = 0..4 -> x2 +1 (the bypassed x100 node passes its input through); label from the namer.
    assert ui_record["nums"] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert ui_record["label"] == "CLIP"
    assert ui_record["has_workflow"] is True and api_record["has_workflow"] is False
    assert {k: v for k, v in ui_record.items() if k != "has_workflow"} == {
        k: v for k, v in api_record.items() if k != "has_workflow"
    }


def test_link_objects_of_schema_version_1_convert_like_link_arrays():
    ui = fx.ui_graph()
    ui["links"] = [
        {
            "id": k[0],
            "origin_id": k[1],
            "origin_slot": k[2],
            "target_id": k[3],
            "target_slot": k[4],
            "type": k[5],
        }
        for k in ui["links"]
    ]
    ui["version"] = 1
    ui["extra"]["reroutes"] = [
        {"id": 1, "pos": [10, 10], "linkIds": [6]}
    ]  # a link-level reroute: visual only
    assert ui_to_api(ui, NODES, NAMES).prompt == fx.ui_graph_api_twin()


def test_muted_node_feeding_an_output_leaves_its_input_missing():
    ui = fx.ui_graph()
    node_2 = next(n for n in ui["nodes"] if n["id"] == 2)
    node_2["mode"] = 2  # mute the scale node: the bypassed node after it resolves to a muted node
    workflow = ui_to_api(ui, NODES, NAMES)
    assert "2" not in workflow.prompt
    assert "nums" not in workflow.prompt["3"]["inputs"]
    issue = only_issue(workflow.prompt)
    assert (issue.type, issue.node_id, issue.input_name) == ("required_input_missing", "3", "nums")


def test_bypass_passes_the_first_input_of_the_matching_type():
    ui = {
        "nodes": [
            fx._node(
                1,
                "VCTestRamp",
                outputs=[{"name": "NUMS", "type": "NUMS", "links": [1]}],
                widgets=[2, 0, "fixed", "ramp"],
            ),
            fx._node(
                2,
                "VCTestRamp",
                outputs=[{"name": "NUMS", "type": "NUMS", "links": [2]}],
                widgets=[2, 0, "fixed", "noise"],
            ),
            fx._node(
                3,
                "VCTestAdd",
                mode=4,
                inputs=[{"name": "a", "type": "NUMS", "link": 1}, {"name": "b", "type": "NUMS", "link": 2}],
                outputs=[{"name": "NUMS", "type": "NUMS", "links": [3]}],
            ),
            fx._node(4, "VCTestSave", inputs=[{"name": "nums", "type": "NUMS", "link": 3}], widgets=["x"]),
            # Bypassed label: its STRING output has no STRING input to pass, so the save's label is dropped.
            fx._node(
                5,
                "VCTestLabel",
                mode=4,
                inputs=[{"name": "nums", "type": "NUMS", "link": 5}],
                outputs=[
                    {"name": "nums", "type": "NUMS", "links": []},
                    {"name": "label", "type": "STRING", "links": [4]},
                ],
                widgets=["t", False],
            ),
            fx._node(
                6,
                "VCTestSave",
                inputs=[
                    {"name": "nums", "type": "NUMS", "link": 6},
                    {"name": "label", "type": "STRING", "link": 4},
                ],
                widgets=["y"],
            ),
        ],
        "links": [
            [1, 1, 0, 3, 0, "NUMS"],
            [2, 2, 0, 3, 1, "NUMS"],
            [3, 3, 0, 4, 0, "NUMS"],
            [4, 5, 1, 6, 1, "STRING"],
            [5, 1, 0, 5, 0, "NUMS"],
            [6, 2, 0, 6, 0, "NUMS"],
        ],
    }
    prompt = ui_to_api(ui, NODES, NAMES).prompt
    assert prompt["4"]["inputs"]["nums"] == ["1", 0]
    assert "label" not in prompt["6"]["inputs"]
    assert sorted(prompt) == ["1", "2", "4", "6"]


def test_widget_values_short_or_long_are_reported_and_list_values_are_boxed():
    ui = fx.ui_graph()
    scale = next(n for n in ui["nodes"] if n["id"] == 2)
    scale["widgets_values"] = [3.0]  # an older save without 'offset'
    save = next(n for n in ui["nodes"] if n["id"] == 4)
    save["widgets_values"] = ["ui/nums", "extra"]
    workflow = ui_to_api(ui, NODES, NAMES)
    assert workflow.prompt["2"]["inputs"]["offset"] == 0.0
    assert any("'offset'" in note and "default" in note for note in workflow.notes)
    assert any("more than the node declares" in note for note in workflow.notes)

    save["widgets_values"] = [["a", "b"]]
    assert ui_to_api(ui, NODES, NAMES).prompt["4"]["inputs"]["filename_prefix"] == {"__value__": ["a", "b"]}


def test_primitive_through_a_reroute_sets_the_widget():
    ui = fx.ui_graph()
    ui["nodes"].append(
        fx._node(
            12,
            "Reroute",
            inputs=[{"name": "", "type": "*", "link": 12}],
            outputs=[{"name": "", "type": "INT", "links": [8]}],
        )
    )
    primitive = next(n for n in ui["nodes"] if n["id"] == 10)
    primitive["outputs"][0]["links"] = [12]
    primitive["widgets_values"] = [7, "fixed"]
    ui["links"] = [k for k in ui["links"] if k[0] != 8] + [[8, 12, 0, 1, 0, "INT"], [12, 10, 0, 12, 0, "INT"]]
    assert ui_to_api(ui, NODES, NAMES).prompt["1"]["inputs"]["count"] == 7


def test_subgraphs_and_non_workflows_are_refused_clearly(tmp_path):
    ui = fx.ui_graph()
    ui["definitions"] = {"subgraphs": [{"id": "b43bb7e6", "nodes": []}]}
    with pytest.raises(WorkflowFormatError, match="Unpack Subgraph"):
        ui_to_api(ui, NODES, NAMES)
    with pytest.raises(WorkflowFormatError, match="not a ComfyUI workflow"):
        workflow_from_data({"hello": 1}, NODES)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WorkflowFormatError, match="not valid JSON"):
        load_workflow(bad, NODES)
    with pytest.raises(WorkflowFormatError, match="not found"):
        load_workflow(tmp_path / "missing.json", NODES)
    # The body of a POST /prompt request is accepted as is.
    assert workflow_from_data({"prompt": fx.api_graph(), "client_id": "x"}, NODES).prompt == fx.api_graph()


# --- validation ----------------------------------------------------------------------------------------------


def test_valid_graph_passes_and_is_coerced():
    prompt = fx.api_graph()
    prompt["1"]["inputs"]["count"] = "4"  # JSON from hand-written files: numeric strings are fine
    prompt["2"]["inputs"]["factor"] = 2
    checked = validate_prompt(prompt, NODES)
    assert checked.outputs == ["4"]
    assert checked.prompt["1"]["inputs"]["count"] == 4
    assert isinstance(checked.prompt["2"]["inputs"]["factor"], float)


def test_unknown_class_is_reported_with_a_suggestion():
    prompt = fx.api_graph()
    prompt["2"]["class_type"] = "VCTestScal"
    issue = only_issue(prompt)
    assert issue.type == "invalid_prompt"
    assert issue.node_id == "2"
    assert "VCTestScal" in issue.message and "did you mean VCTestScale" in issue.message


def test_required_input_missing():
    prompt = fx.api_graph()
    del prompt["2"]["inputs"]["factor"]
    issue = only_issue(prompt)
    assert (issue.type, issue.node_id, issue.class_type, issue.input_name) == (
        "required_input_missing",
        "2",
        "VCTestScale",
        "factor",
    )
    assert "FLOAT" in issue.message
    del prompt["2"]["inputs"]["offset"]  # optional: not an error
    assert len(issues_of(prompt)) == 1


def test_link_to_missing_node_and_output_out_of_range():
    prompt = fx.api_graph()
    prompt["2"]["inputs"]["nums"] = ["9", 0]
    issue = only_issue(prompt)
    assert issue.type == "bad_linked_input" and "node 9, which is not in the workflow" in issue.message

    prompt = fx.api_graph()
    prompt["2"]["inputs"]["nums"] = ["1", 3]
    issue = only_issue(prompt)
    assert issue.type == "bad_linked_input"
    assert "output 3 of node 1 (VCTestRamp), which has 1 output(s) (0: NUMS)" in issue.message

    prompt = fx.api_graph()
    prompt["2"]["inputs"]["nums"] = ["1", 0, 2]
    assert only_issue(prompt).type == "bad_linked_input"


def test_wrong_link_type_and_wildcard():
    prompt = fx.api_graph()
    prompt["4"]["inputs"]["label"] = ["2", 0]  # NUMS into a STRING input
    issue = only_issue(prompt)
    assert issue.type == "return_type_mismatch"
    assert issue.input_name == "label"
    assert "expects STRING" in issue.message and "which is NUMS" in issue.message

    class VCTestAnything(fx.VCTestScale):
        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {"nums": ("*", {"tooltip": "Anything."}), "factor": ("FLOAT", {"tooltip": "x"})}
            }

    nodes = {**NODES, "VCTestAnything": VCTestAnything}
    prompt = fx.api_graph()
    prompt["2"]["class_type"] = "VCTestAnything"
    assert check_prompt(prompt, nodes)[1] == []


def test_value_not_in_list_and_out_of_range():
    prompt = fx.api_graph()
    prompt["1"]["inputs"]["mode"] = "ramps"
    issue = only_issue(prompt)
    assert issue.type == "value_not_in_list"
    assert (
        "'ramps' is not one of the choices ['ramp', 'noise']" in issue.message
        and "did you mean 'ramp'" in issue.message
    )

    prompt = fx.api_graph()
    prompt["1"]["inputs"]["count"] = 0
    issue = only_issue(prompt)
    assert issue.type == "value_smaller_than_min" and "minimum 1" in issue.message

    prompt = fx.api_graph()
    prompt["2"]["inputs"]["factor"] = 10.5
    issue = only_issue(prompt)
    assert issue.type == "value_bigger_than_max" and "maximum 10.0" in issue.message


@pytest.mark.parametrize(
    ("node", "name", "value", "expected"),
    [
        ("1", "count", "abc", "whole number"),
        ("1", "count", 2.5, "whole number"),
        ("2", "factor", None, "number"),
        ("3", "shout", "maybe", "true or false"),
        ("3", "text", {"a": 1}, "text"),
        ("2", "nums", 5, "takes a link from a node that outputs NUMS"),
    ],
)
def test_wrong_value_types(node, name, value, expected):
    prompt = fx.api_graph()
    prompt[node]["inputs"][name] = value
    issue = only_issue(prompt)
    assert (issue.type, issue.node_id, issue.input_name) == ("invalid_input_type", node, name)
    assert expected in issue.message


def test_boolean_words_are_parsed_not_truthy():
    prompt = fx.api_graph()
    prompt["3"]["inputs"]["shout"] = "false"
    assert validate_prompt(prompt, NODES).prompt["3"]["inputs"]["shout"] is False


def test_node_validate_inputs_replaces_the_range_check():
    prompt = fx.api_graph()
    prompt["5"] = {"class_type": "VCTestCheck", "inputs": {"nums": ["1", 0], "even": 3}}
    prompt["4"]["inputs"]["nums"] = ["5", 0]
    issue = only_issue(prompt)
    assert issue.type == "custom_validation_failed" and "even must be even, got 3" in issue.message
    prompt["5"]["inputs"]["even"] = 12  # above max=10, but the node validates 'even' itself (ComfyUI's rule)
    assert issues_of(prompt) == []


def test_no_output_node_and_cycles():
    prompt = fx.api_graph()
    del prompt["4"]
    assert only_issue(prompt).type == "prompt_no_outputs"

    prompt = fx.api_graph()
    prompt["1"] = {"class_type": "VCTestScale", "inputs": {"nums": ["2", 0], "factor": 1.0}}
    issue = only_issue(prompt)
    assert issue.type == "dependency_cycle"
    assert "(2 -> 1 -> 2)" in issue.message or "(1 -> 2 -> 1)" in issue.message


def test_all_errors_are_reported_together():
    prompt = fx.api_graph()
    prompt["1"]["inputs"]["mode"] = "bad"
    prompt["2"]["inputs"]["factor"] = -1.0
    prompt["3"]["inputs"]["shout"] = "maybe"
    prompt["4"]["inputs"]["label"] = ["1", 0]
    prompt["9"] = {"class_type": "VCNope", "inputs": {}}
    with pytest.raises(WorkflowValidationError) as raised:
        validate_prompt(prompt, NODES)
    types = sorted(i.type for i in raised.value.issues)
    assert types == sorted(
        [
            "value_not_in_list",
            "value_smaller_than_min",
            "invalid_input_type",
            "return_type_mismatch",
            "invalid_prompt",
        ]
    )
    text = str(raised.value)
    assert "5 error(s)" in text
    assert "node 4 \"Save numbers\" (VCTestSave) input 'label'" in text


def test_nodes_not_needed_by_an_output_are_not_validated_or_run(tmp_path):
    prompt = fx.api_graph()
    prompt["7"] = {"class_type": "VCTestFail", "inputs": {"nums": ["1", 0]}}
    prompt["8"] = {"class_type": "VCTestScale", "inputs": {"nums": ["1", 0], "factor": 99.0}}  # out of range
    result = execute_prompt(prompt, NODES, output_dir=tmp_path)
    assert [t.node_id for t in result.timings] == ["1", "2", "3", "4"]


def test_undeclared_inputs_are_ignored_with_a_warning():
    prompt = fx.api_graph()
    prompt["2"]["inputs"]["factr"] = 3.0
    checked, issues = check_prompt(prompt, NODES)
    assert issues == []
    assert any("'factr' is not declared" in w for w in checked.warnings)


# --- execution -----------------------------------------------------------------------------------------------


def test_run_writes_files_and_fills_hidden_inputs(tmp_path):
    fx.CALLS.clear()
    result = execute_prompt(fx.api_graph(), NODES, output_dir=tmp_path)
    assert result.output_dir == str(tmp_path)
    assert [os.path.relpath(p, tmp_path) for p in result.files] == [os.path.join("test", "nums_00001_.json")]
    (record,) = saved_records(result)
    assert record == {
        "nums": [1.0, 3.0, 5.0, 7.0],
        "label": "clip",
        "unique_id": "4",
        "prompt_nodes": ["1", "2", "3", "4"],
        "has_workflow": False,
    }
    assert result.ui_outputs == {
        "4": {"images": [{"filename": "nums_00001_.json", "subfolder": "test", "type": "output"}]}
    }
    assert [t.class_type for t in result.timings] == [
        "VCTestRamp",
        "VCTestScale",
        "VCTestLabel",
        "VCTestSave",
    ]
    assert fx.CALLS == ["ramp", "scale", "save"]
    # A second run continues the counter instead of overwriting.
    second = execute_prompt(fx.api_graph(), NODES, output_dir=tmp_path)
    assert [os.path.basename(p) for p in second.files] == ["nums_00002_.json"]


def test_each_node_runs_once_even_with_several_consumers(tmp_path):
    fx.CALLS.clear()
    prompt = fx.api_graph()
    prompt["5"] = {"class_type": "VCTestSave", "inputs": {"nums": ["1", 0], "filename_prefix": "raw"}}
    prompt["6"] = {"class_type": "VCTestSave", "inputs": {"nums": ["2", 0], "filename_prefix": "scaled"}}
    result = execute_prompt(prompt, NODES, output_dir=tmp_path)
    assert fx.CALLS.count("ramp") == 1 and fx.CALLS.count("scale") == 1 and fx.CALLS.count("save") == 3
    assert len(result.files) == 3
    order = execution_order(validate_prompt(prompt, NODES).prompt, ["4", "5", "6"])
    assert order.index("1") < order.index("2") < order.index("3") < order.index("4")


def test_list_outputs_and_list_inputs(tmp_path):
    prompt = {
        "1": {"class_type": "VCTestRamp", "inputs": {"count": 3, "seed": 0, "mode": "ramp"}},
        "2": {"class_type": "VCTestSplit", "inputs": {"nums": ["1", 0]}},
        # Not INPUT_IS_LIST: called once per element, its outputs collected into a list.
        "3": {"class_type": "VCTestScale", "inputs": {"nums": ["2", 0], "factor": 10.0}},
        "4": {"class_type": "VCTestJoin", "inputs": {"nums": ["3", 0]}},
        "5": {"class_type": "VCTestSave", "inputs": {"nums": ["4", 0], "filename_prefix": "joined"}},
        "6": {"class_type": "VCTestSave", "inputs": {"nums": ["3", 0], "filename_prefix": "each/n"}},
    }
    result = execute_prompt(prompt, NODES, output_dir=tmp_path)
    joined = [r for r in saved_records(result) if r["unique_id"] == "5"]
    each = [r for r in saved_records(result) if r["unique_id"] == "6"]
    assert joined == [{**joined[0], "nums": [0.0, 10.0, 20.0]}]
    assert sorted(r["nums"][0] for r in each) == [0.0, 10.0, 20.0]
    # The save node's ui entries of its three calls are merged, as ComfyUI does.
    assert len(result.ui_outputs["6"]["images"]) == 3


def test_node_failure_names_the_node(tmp_path):
    prompt = fx.api_graph()
    prompt["2"] = {"class_type": "VCTestFail", "inputs": {"nums": ["1", 0]}, "_meta": {"title": "Broken"}}
    with pytest.raises(NodeExecutionError) as raised:
        execute_prompt(prompt, NODES, output_dir=tmp_path)
    assert raised.value.node_id == "2"
    assert (
        str(raised.value)
        == 'node 2 "Broken" (VCTestFail) failed: ValueError: fixture failure: the frames are too short'
    )


def test_bad_return_value_is_a_clear_error(tmp_path):
    class VCTestBadReturn(fx.VCTestScale):
        def scale(self, nums, factor, offset=0.0):
            return nums * factor  # forgot the tuple

    prompt = fx.api_graph()
    prompt["2"]["class_type"] = "VCTestBadReturn"
    with pytest.raises(NodeExecutionError, match=r"must return a tuple .* `return \(images,\)`"):
        execute_prompt(prompt, {**NODES, "VCTestBadReturn": VCTestBadReturn}, output_dir=tmp_path)


def test_runs_under_inference_mode(tmp_path):
    class VCTestGradCheck(fx.VCTestScale):
        def scale(self, nums, factor, offset=0.0):
            assert torch.is_inference_mode_enabled()
            return (nums,)

    prompt = fx.api_graph()
    prompt["2"]["class_type"] = "VCTestGradCheck"
    execute_prompt(prompt, {**NODES, "VCTestGradCheck": VCTestGradCheck}, output_dir=tmp_path)


# --- overrides -----------------------------------------------------------------------------------------------


def test_overrides_by_id_title_and_class_are_typed(tmp_path):
    workflow = Workflow(prompt=fx.api_graph())
    changes = apply_overrides(
        workflow,
        [
            parse_override("1.count=2"),
            parse_override("VCTestScale.factor=3"),
            parse_override("Save numbers.filename_prefix=over/x"),
            parse_override("VCTestLabel.shout=true"),
            parse_override("1.mode=noise"),
        ],
        NODES,
    )
    inputs = {k: v["inputs"] for k, v in workflow.prompt.items()}
    assert inputs["1"]["count"] == 2 and inputs["1"]["mode"] == "noise"
    assert inputs["2"]["factor"] == 3.0 and isinstance(inputs["2"]["factor"], float)
    assert inputs["4"]["filename_prefix"] == "over/x"
    assert inputs["3"]["shout"] is True
    assert changes[0] == "node 1 (VCTestRamp) count: 4 -> 2"
    result = execute_prompt(workflow.prompt, NODES, output_dir=tmp_path)
    assert os.path.relpath(result.files[0], tmp_path).startswith(os.path.join("over", "x_"))


def test_override_errors_are_collected():
    workflow = Workflow(prompt=fx.api_graph())
    workflow.prompt["5"] = {"class_type": "VCTestScale", "inputs": {"nums": ["1", 0], "factor": 1.0}}
    bad = ["9.count=1", "VCTestScale.factor=2", "1.cnt=1", "1.count=many", "3.shout=perhaps", "2.nums=3"]
    with pytest.raises(OverrideError) as raised:
        apply_overrides(workflow, [parse_override(b) for b in bad], NODES)
    text = str(raised.value)
    assert "no node has id, title or class '9'" in text
    assert "'VCTestScale' matches 2 nodes (2 (VCTestScale), 5 (VCTestScale)); use the node id" in text
    assert "has no input 'cnt'; its value inputs are: count, seed, mode" in text
    assert "'count' is INT; 'many' is not a number" in text
    assert "use true or false" in text
    assert "takes a link from a node that outputs NUMS" in text
    with pytest.raises(OverrideError, match="expected NODE.input=value"):
        parse_override("seed7")


def test_override_updates_the_ui_copy_for_metadata():
    original = fx.ui_graph()
    workflow = ui_to_api(original, NODES, NAMES)
    apply_overrides(workflow, [parse_override("2.factor=4"), parse_override("1.seed=11")], NODES)
    ui_nodes = {n["id"]: n for n in workflow.ui["nodes"]}
    assert ui_nodes[2]["widgets_values"] == [4.0, 1.0]
    assert ui_nodes[1]["widgets_values"] == [4, 11, "fixed", "ramp"]
    assert original == fx.ui_graph()  # the caller's data is untouched
    assert workflow.extra_pnginfo() == {"workflow": workflow.ui}


# --- outputs -------------------------------------------------------------------------------------------------


def test_output_directory_setting_and_file_entries(tmp_path):
    with use_output_directory(tmp_path / "out") as folder:
        assert folder == output_directory() == str(tmp_path / "out")
        entry = saved_file_entry(tmp_path / "out" / "clips" / "run_00001_.mp4")
        assert entry == {"filename": "run_00001_.mp4", "subfolder": "clips", "type": "output"}
        with pytest.raises(ValueError, match="not inside the output folder"):
            saved_file_entry(tmp_path / "elsewhere.mp4")
        with use_output_directory(tmp_path / "inner"):
            assert output_directory() == str(tmp_path / "inner")
        assert output_directory() == str(tmp_path / "out")
    assert output_directory() != str(tmp_path / "out")


def test_deep_copy_of_prompt_is_not_mutated_by_validation():
    prompt = fx.api_graph()
    prompt["1"]["inputs"]["count"] = "4"
    before = copy.deepcopy(prompt)
    validate_prompt(prompt, NODES)
    assert prompt == before


def test_group_nodes_are_refused_clearly():
    ui = fx.ui_graph()
    ui["extra"]["groupNodes"] = {"Pair": {"nodes": []}}
    ui["nodes"].append(fx._node(20, "workflow>Pair"))
    with pytest.raises(WorkflowFormatError, match="Convert to nodes"):
        ui_to_api(ui, NODES, NAMES)


# --- node helpers (nodes/base.py) ----------------------------------------------------------------------------


def test_input_builders_match_what_the_frontend_expects():
    from videocascade.nodes import base
    from videocascade.runtime.schema import InputSpec

    kind, options = base.seed_input()
    spec = InputSpec("noise", kind, "required", options)
    assert spec.has_value_control and spec.frontend_extra_widgets == 1  # one extra widgets_values entry
    kind, options = base.link_input("STRING", "Text from another node.")
    assert options["forceInput"] is True and not InputSpec("t", kind, "required", options).is_widget
    kind, options = base.combo_input(["a", "b"], "Pick.", default="b")
    assert kind == ["a", "b"] and options == {"default": "b", "tooltip": "Pick."}
    with pytest.raises(ValueError, match="not one of"):
        base.combo_input(["a"], "Pick.", default="z")
    with pytest.raises(ValueError, match="needs a tooltip"):
        base.int_input(1, 0, 2, "")
    assert base.category("vae", "advanced") == "VideoCascade/vae/advanced"
    # AnyType satisfies ComfyUI's own `!=` comparison of link types.
    assert not (base.ANY != "IMAGE")


def test_node_class_problems_and_mappings_enforce_conventions():
    from videocascade.nodes import base

    class Sloppy:
        CATEGORY = "misc"
        RETURN_TYPES = ["IMAGE"]
        FUNCTION = "missing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"x": ("INT", {"default": 1})}}

    problems = base.node_class_problems("Sloppy", Sloppy)
    assert len(problems) == 5, problems
    assert any("start with 'VC'" in p for p in problems) and any("no tooltip" in p for p in problems)
    with pytest.raises(TypeError, match="breaks the pack's conventions"):
        base.node_mappings((Sloppy, "Sloppy"))
    assert base.node_mappings((fx.VCTestSave, "Save"))[0] == {"VCTestSave": fx.VCTestSave}


def test_ui_preview_entries_point_into_the_output_folder(tmp_path):
    from videocascade.nodes import base

    with use_output_directory(tmp_path):
        result = base.ui_result((1,), **base.video_preview([str(tmp_path / "vids" / "clip_00001_.mp4")]))
    assert result == {
        "ui": {
            "images": [{"filename": "clip_00001_.mp4", "subfolder": "vids", "type": "output"}],
            "animated": [True],
        },
        "result": (1,),
    }
