"""``renderers/json.py`` and the records' ``to_dict`` on hand-made reports."""

from __future__ import annotations

import json

from inspectnn.records import ErrorInfo, Finding, OpCall, TensorMeta
from inspectnn.renderers.json import report_to_dict, report_to_json

from .reports import mlp, t


def test_the_whole_report() -> None:
    data = report_to_dict(mlp())
    assert list(data) == ["schema", "model", "device", "mode", "totals", "layers", "ops",
                          "findings", "error"]  # fmt: skip
    assert data["schema"] == "inspectnn/1"
    assert data["totals"] == {
        "params": 58, "trainable_params": 58, "non_trainable_params": 0, "buffers": 0,
        "param_bytes": 232, "buffer_bytes": 0, "activation_bytes": 224, "flops": 240,
    }  # fmt: skip
    assert data["layers"][2] == {
        "name": "act", "type": "ReLU", "depth": 1, "call": 0,
        "inputs": [{"shape": [3, 8], "dtype": "float32", "device": "cpu", "path": "[0]",
                    "source": "layers[1]"}],
        "outputs": [{"shape": [3, 8], "dtype": "float32", "device": "cpu"}],
        "params": 0, "trainable_params": 0, "flops": 0,
    }  # fmt: skip
    assert data["ops"] == data["findings"] == []
    assert data["error"] is None
    assert json.loads(report_to_json(mlp())) == data
    assert report_to_json(mlp(), indent=None) == json.dumps(data)


def test_optional_keys_appear_only_when_set() -> None:
    op = OpCall(0, "Tensor.view", "", 0, 2, (t(3, 8, source="layers[1]"),), (t(24),),
                args="-1", inplace=True)  # fmt: skip
    report = mlp(findings=[Finding("x", "warning", "fc1", "m", "f")], ops=[op],
                 error=ErrorInfo("E", "msg", "fc2", expected="[*, 8]", got="[3, 7]"))  # fmt: skip
    data = report_to_dict(report)
    assert data["ops"] == [{
        "name": "Tensor.view", "module": "",
        "inputs": [{"shape": [3, 8], "dtype": "float32", "device": "cpu", "source": "layers[1]"}],
        "outputs": [{"shape": [24], "dtype": "float32", "device": "cpu"}],
        "args": "-1", "inplace": True,
    }]  # fmt: skip
    assert data["findings"] == [
        {"kind": "x", "severity": "warning", "layer": "fc1", "message": "m", "fix": "f"}
    ]
    assert data["error"] == {"type": "E", "message": "msg", "layer": "fc2",
                             "expected": "[*, 8]", "got": "[3, 7]"}  # fmt: skip
    assert ErrorInfo("E", "msg", "fc2", expected="[*, 8]").to_dict() == {
        "type": "E", "message": "msg", "layer": "fc2"  # both or neither
    }


def test_non_tensor_values_keep_path_and_value() -> None:
    meta = TensorMeta(None, None, None, path="['mask']", value="None")
    assert meta.to_dict() == {"shape": None, "dtype": None, "device": None,
                              "path": "['mask']", "value": "None"}  # fmt: skip
    assert (meta.is_tensor, meta.numel, meta.short()) == (False, 0, "None")
    assert (TensorMeta((), "float32", "cpu").short(), TensorMeta((), "f", "c").numel) == (
        "scalar", 1)
