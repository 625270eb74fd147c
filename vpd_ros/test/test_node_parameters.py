# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""vpd_node's parameters as ``ros2 param dump/get/set`` see them, with the shipped config/vpd.yaml.

The node object is created in this process (no engine is loaded before configure) with the YAML
given as ``--params-file``, exactly as ``ros2 launch`` passes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter

from vpd_ros.ros.node import VPDNode
from vpd_ros.ros.params import PARAMETERS

pytestmark = pytest.mark.ros

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'vpd.yaml'


@pytest.fixture(scope='module')
def node() -> Iterator[VPDNode]:
    """A VPDNode (unconfigured) with the shipped YAML as its parameter file."""
    context = Context()
    rclpy.init(args=['--ros-args', '--params-file', str(CONFIG)], context=context)
    vpd_node = VPDNode(context=context)
    yield vpd_node
    vpd_node.destroy_node()
    rclpy.shutdown(context=context)


def test_dump_matches_the_yaml(node: VPDNode) -> None:
    """Every parameter has a typed value equal to the YAML's (what ``ros2 param dump`` prints)."""
    values = yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters']
    assert set(values) == {spec.name for spec in PARAMETERS}
    for param in node.get_parameters(sorted(values)):  # one batch, as param dump asks
        assert param.type_ != Parameter.Type.NOT_SET, param.name
        value = list(param.value) if param.type_ == Parameter.Type.INTEGER_ARRAY else param.value
        assert value == values[param.name], param.name


def test_input_size_goes_back_to_native(node: VPDNode) -> None:
    """input_size can be set to a size and back to native ([0, 0]); bad sizes are refused."""
    def set_size(size: list[int]) -> bool:
        return node.set_parameters([Parameter('input_size', value=size)])[0].successful
    assert set_size([64, 96])
    assert set_size([0, 0])
    assert list(node.get_parameter('input_size').value) == [0, 0]
    assert not set_size([64, 0])
    assert not set_size([65, 64])
