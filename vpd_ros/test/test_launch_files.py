# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Static checks of launch/vpd.launch.py, config/vpd.yaml, rviz/vpd.rviz and the interface doc.

launch_ros is not installable here, so the launch file is checked as source: it compiles, every
LaunchConfiguration it reads is declared (and every declared argument is used), and every
parameter it sets is one the node declares. The YAML must set exactly the node's parameters and
the rviz config may only show topics the node publishes. The launch file's decisions (rviz2
present or not, its Fixed Frame) run against stand-ins of the launch API.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
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
    for spec in PARAMETERS:
        assert values[spec.name] == spec.default, spec.name
    assert values['input_size'] == [0, 0]


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


# --- the launch file's decisions, run with stand-ins for launch and launch_ros -----------------
# launch and launch_ros cannot be installed here; these stand-ins record what the launch file asks
# them to do, and _run walks the description in order as `ros2 launch` does (arguments first,
# each OpaqueFunction evaluated where it stands), so the test sees which processes would start
# and in which order relative to the rviz2 decision.

class _Entity:
    """A launch entity that keeps its arguments."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    """Stand-in substitution: performs to the argument's value in the context."""

    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: types.SimpleNamespace) -> str:
        return context.launch_configurations[self.name]


def _stand_ins() -> dict[str, types.ModuleType]:
    """Return the launch and launch_ros modules the launch file imports, as stand-ins."""
    modules = {name: types.ModuleType(name) for name in (
        'launch', 'launch.action', 'launch.actions', 'launch.substitutions', 'launch_ros',
        'launch_ros.actions', 'launch_ros.parameter_descriptions')}
    modules['launch'].LaunchContext = types.SimpleNamespace
    modules['launch'].LaunchDescription = list
    modules['launch.action'].Action = _Entity
    for name in ('DeclareLaunchArgument', 'LogInfo', 'OpaqueFunction'):
        setattr(modules['launch.actions'], name, type(name, (_Entity,), {}))
    modules['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
    modules['launch_ros.actions'].Node = type('Node', (_Entity,), {})
    modules['launch_ros.parameter_descriptions'].ParameterValue = _Entity
    return modules


def _run(monkeypatch: pytest.MonkeyPatch, prefix: Path, packages: tuple[str, ...],
         **arguments: str) -> list[tuple[str, object]]:
    """Walk the launch description; return the events ('log', text) and ('start', Node)."""
    for package in packages:
        (prefix / 'share' / package).mkdir(parents=True, exist_ok=True)
        index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
        index.mkdir(parents=True, exist_ok=True)
        (index / package).touch()
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    for name, module in _stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('vpd_launch_under_test', LAUNCH)
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    context = types.SimpleNamespace(launch_configurations={})
    events: list[tuple[str, object]] = []

    def visit(entities: list[_Entity]) -> None:
        for entity in entities:
            kind = type(entity).__name__
            if kind == 'DeclareLaunchArgument':
                name = entity.args[0]
                context.launch_configurations[name] = arguments.get(
                    name, entity.kwargs.get('default_value'))
            elif kind == 'OpaqueFunction':
                visit(entity.kwargs['function'](context))
            elif kind == 'LogInfo':
                events.append(('log', entity.kwargs['msg']))
            elif kind == 'Node':
                events.append(('start', entity))
    visit(launch_file.generate_launch_description())
    return events


def test_launch_without_rviz2_starts_the_node_alone_after_saying_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """rviz:=true and no rviz2: a note, then vpd_node only; nothing started before the check."""
    events = _run(monkeypatch, tmp_path, ('vpd_ros',), rviz='true')
    assert [kind for kind, _ in events] == ['log', 'start']
    assert 'rviz2 is not installed' in events[0][1]
    assert events[1][1].kwargs['executable'] == 'vpd_node'


def test_launch_with_rviz2_passes_the_fixed_frame(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """rviz:=true with rviz2 installed starts it with the frame argument as Fixed Frame."""
    events = _run(monkeypatch, tmp_path, ('vpd_ros', 'rviz2'), rviz='true', namespace='robot',
                  frame='camera_color_optical_frame')
    started = {e.kwargs['executable']: e for kind, e in events if kind == 'start'}
    assert set(started) == {'vpd_node', 'rviz2'} and len(events) == 2
    arguments = started['rviz2'].kwargs['arguments']
    assert arguments[arguments.index('-f') + 1] == 'camera_color_optical_frame'
    assert arguments[arguments.index('-d') + 1] == str(tmp_path / 'share' / 'vpd_ros' / 'rviz' /
                                                        'vpd.rviz')
    assert started['rviz2'].kwargs['namespace'] == 'robot'
    events = _run(monkeypatch, tmp_path, ('vpd_ros', 'rviz2'))
    assert [e.kwargs['executable'] for _, e in events] == ['vpd_node']
