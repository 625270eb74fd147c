# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Static checks of launch/vpd.launch.py, config/vpd.yaml, rviz/vpd.rviz and the interface doc.

launch_ros is not installable here, so the launch file is checked as source: it compiles, every
LaunchConfiguration it reads is declared (and every declared argument is used), and every
parameter it sets is one the node declares. The YAML must set exactly the node's parameters and
the rviz config may only show topics the node publishes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from vpd_ros.ros.node import INPUTS, OUTPUTS
from vpd_ros.ros.params import PARAMETERS

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LAUNCH = PACKAGE_DIR / 'launch' / 'vpd.launch.py'
CONFIG = PACKAGE_DIR / 'config' / 'vpd.yaml'
RVIZ = PACKAGE_DIR / 'rviz' / 'vpd.rviz'
DOC = PACKAGE_DIR.parent / 'docs' / 'ros-interface.md'
NODE_PARAMETERS = {spec.name for spec in PARAMETERS}
BUILT_IN_PARAMETERS = {'use_sim_time'}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Return the calls of ``name`` (a plain name or an attribute) in ``tree``."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _first_string(call: ast.Call) -> str:
    """Return the constant string first argument of ``call``."""
    assert call.args and isinstance(call.args[0], ast.Constant), ast.dump(call)
    return call.args[0].value


@pytest.fixture(scope='module')
def launch_tree() -> ast.Module:
    """Parse and compile the launch file."""
    source = LAUNCH.read_text(encoding='utf-8')
    compile(source, str(LAUNCH), 'exec')
    return ast.parse(source, filename=str(LAUNCH))


def test_launch_arguments_are_declared_and_used(launch_tree: ast.Module) -> None:
    """Every LaunchConfiguration has a DeclareLaunchArgument with a description, and back."""
    declared = [_first_string(c) for c in _calls(launch_tree, 'DeclareLaunchArgument')]
    used = {_first_string(c) for c in _calls(launch_tree, 'LaunchConfiguration')}
    assert len(declared) == len(set(declared))
    assert set(declared) == used
    assert {'namespace', 'params_file', 'use_sim_time', 'autostart', 'log_level',
            'image_topic', 'camera_info_topic', 'rviz'} <= used
    for call in _calls(launch_tree, 'DeclareLaunchArgument'):
        assert 'description' in {k.arg for k in call.keywords}, _first_string(call)
    assert 'generate_launch_description' in {
        f.name for f in launch_tree.body if isinstance(f, ast.FunctionDef)}


def test_launch_sets_only_node_parameters_and_remaps_its_inputs(launch_tree: ast.Module) -> None:
    """Parameter names in the launch file exist in the node and (but built-ins) in the YAML."""
    yaml_names = set(yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters'])
    nodes = _calls(launch_tree, 'Node')
    vpd = [n for n in nodes if any(k.arg == 'executable' and k.value.value == 'vpd_node'
                                   for k in n.keywords)]
    assert len(vpd) == 1
    keywords = {k.arg: k.value for k in vpd[0].keywords}
    names = {key.value for d in ast.walk(keywords['parameters']) if isinstance(d, ast.Dict)
             for key in d.keys}
    assert names
    assert names <= NODE_PARAMETERS | BUILT_IN_PARAMETERS
    assert names - BUILT_IN_PARAMETERS <= yaml_names
    remapped = {t.elts[0].value for t in keywords['remappings'].elts}
    assert remapped and remapped <= set(INPUTS)


def test_config_sets_exactly_the_node_parameters() -> None:
    """config/vpd.yaml uses /** and sets every declared parameter, nothing else."""
    document = yaml.safe_load(CONFIG.read_text())
    assert list(document) == ['/**']
    values = document['/**']['ros__parameters']
    assert set(values) == NODE_PARAMETERS
    defaults = {spec.name: spec.default for spec in PARAMETERS
                if not type(spec.default).__name__ == 'Type'}
    for name, default in defaults.items():
        assert values[name] == default, name
    assert values['input_size'] == []


def test_rviz_config_shows_node_topics() -> None:
    """rviz/vpd.rviz parses as YAML and each display's topic is one the node publishes."""
    document = yaml.safe_load(RVIZ.read_text())
    displays = document['Visualization Manager']['Displays']
    topics = {d['Topic']['Value'] for d in displays}
    assert topics == {'depth/colorized', 'mask/overlay', 'points', 'grounding/marker'}
    assert topics <= set(OUTPUTS)


def test_interface_doc_lists_every_parameter_and_topic() -> None:
    """docs/ros-interface.md names every parameter, output topic and input topic."""
    text = DOC.read_text(encoding='utf-8')
    missing = [n for n in sorted(NODE_PARAMETERS | set(OUTPUTS) | set(INPUTS))
               if f'`{n}`' not in text]
    assert not missing, missing
