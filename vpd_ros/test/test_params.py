# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's parameter table (vpd_ros.ros.params) as pure functions, no node process."""

import os
from typing import Any, Dict

import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from vpd_ros.engine.config import BackendConfig, EngineConfig, EngineSpec, usable_cores
from vpd_ros.ros.caption import engine_caption
from vpd_ros.ros.params import (ACTIVATE, CONFIGURE, PARAMETERS, RUNTIME, STARTUP, check_path,
                                check_value, default_threads, engine_value, qos_profile,
                                read_config)


def defaults(**changes: Any) -> Dict[str, Any]:
    """Return every parameter at its default (None when unset by default), with changes."""
    values = {spec.name: None if isinstance(spec.default, Parameter.Type) else spec.default
              for spec in PARAMETERS}
    values.update({k.replace('__', '.'): v for k, v in changes.items()})
    return values


def test_defaults_give_the_shipped_engine_and_pass_every_check() -> None:
    """The table's defaults are valid: tiny weights, both tasks, no query, the engine's defaults
    but for the threads (the node leaves a core to ROS)."""
    config = read_config(defaults())
    assert config.spec == EngineSpec(weights='tiny', tasks=('depth', 'refer'))
    assert config.engine == EngineConfig(num_threads=default_threads())
    assert config.default_queries == ()
    assert config.output_qos.reliability == ReliabilityPolicy.RELIABLE
    assert {spec.when for spec in PARAMETERS} <= {RUNTIME, ACTIVATE, CONFIGURE, STARTUP}


def test_engine_options_map_to_the_engine_and_use_its_rules() -> None:
    """Scene -1 and [] input size mean "none", 0 threads the node's default; bad values fail by
    the engine's rule."""
    config = read_config(defaults(num_threads=2, input_size=[64, 96], device='cpu',
                                  dtype='bfloat16', tasks='refer', default_query='a; b'))
    assert config.engine == EngineConfig(device='cpu', dtype='bfloat16', num_threads=2,
                                         input_size=(64, 96))
    assert config.spec.tasks == ('refer',) and config.default_queries == ('a', 'b')
    assert engine_value('scene', -1) is None and engine_value('scene', 3) == 3
    assert engine_value('num_threads', 0) == default_threads()
    assert engine_value('input_size', []) is None
    for name, value, message in (('input_size', [64, 60], 'multiples of 32'),
                                 ('mask_threshold', 1.0, r'\(0, 1\)'),
                                 ('scene', -2, 'scene'), ('device', 'gpu', 'cuda:N'),
                                 ('dtype', 'float8', 'bfloat16'), ('compile', 'fast', 'none'),
                                 ('num_threads', -1, 'num_threads'), ('weights', ' ', 'blank')):
        with pytest.raises(ValueError, match=message):
            check_value(name, value)


def test_backend_parameters_give_the_backend_config_by_the_engine_rules() -> None:
    """backend, precision and cache_dir become a BackendConfig; the engine's rules refuse
    unknown names and combinations the backend cannot run (naming them)."""
    config = read_config(defaults(backend='openvino', precision='bf16', cache_dir='/tmp/c',
                                  device='cpu', num_threads=1))
    assert config.engine == BackendConfig(backend='openvino', precision='bf16',
                                          cache_dir='/tmp/c', device='cpu', num_threads=1)
    assert read_config(defaults(backend='onnxruntime')).engine.cache_dir is None
    for name, value in (('backend', 'tflite'), ('precision', 'int4')):
        with pytest.raises(ValueError, match=name):
            check_value(name, value)
    for changes, message in (({'backend': 'onnxruntime', 'precision': 'fp16'}, 'runs precision'),
                             ({'precision': 'fp16'}, 'takes dtype'),
                             ({'backend': 'onnxruntime', 'device': 'cuda'}, 'device cpu'),
                             ({'backend': 'openvino', 'compile': 'default'}, 'compile')):
        with pytest.raises(ValueError, match=message):
            read_config(defaults(**changes))


def test_check_value_says_when_a_value_applies() -> None:
    """Runtime values apply from the next frame; others name the transition they wait for."""
    assert check_value('mask_threshold', 0.3) == RUNTIME
    assert check_value('image_transport', 'compressed') == ACTIVATE
    assert check_value('weights', 'random:tiny') == CONFIGURE
    assert check_value('autostart', False) == STARTUP
    assert check_value('not_a_parameter', 1) == RUNTIME
    with pytest.raises(ValueError, match='max_rate'):
        check_value('max_rate', -1.0)


def test_depth_caption_is_printable_text_and_blank_means_the_default() -> None:
    """A caption (parameter or ~/caption) refuses control characters; spacing is normalised."""
    assert check_value('depth_caption', 'a kitchen\twith two windows') == RUNTIME
    with pytest.raises(ValueError, match=r'depth_caption contains control characters \(U\+001B\)'):
        check_value('depth_caption', 'a hall\x1b[31m')
    assert engine_caption(' a  kitchen\n') == 'a kitchen'
    assert engine_caption(' \t') is None


def test_startup_combinations_are_checked_together(tmp_path) -> None:
    """Queries need a referring model; official checkpoints must cover the tasks and exist."""
    with pytest.raises(ValueError, match='needs a referring model'):
        read_config(defaults(tasks='depth', default_query='the mug'))
    checkpoint = tmp_path / 'depth.pth'
    checkpoint.write_bytes(b'x')
    with pytest.raises(ValueError, match='official.refer_checkpoint'):
        read_config(defaults(official__depth_checkpoint=str(checkpoint)))
    config = read_config(defaults(official__depth_checkpoint=str(checkpoint), tasks='depth'))
    assert config.spec.official and config.spec.depth_checkpoint == str(checkpoint)
    with pytest.raises(ValueError, match='does not exist'):
        read_config(defaults(official__depth_checkpoint=str(tmp_path / 'missing.pth'),
                             tasks='depth'))


def test_check_path_names_the_kind_and_access() -> None:
    """A folder where a file is expected, and a missing path, are refused by name."""
    here = os.path.dirname(__file__)
    check_path('official.sd15', here, ('file', 'folder'))
    check_path('official.depth_checkpoint', __file__, ('file',))
    with pytest.raises(ValueError, match='is a folder; expected file'):
        check_path('official.depth_checkpoint', here, ('file',))


def test_qos_profile_from_names() -> None:
    """Reliability by name, history depth and durability; bad names are refused."""
    profile = qos_profile('best_effort', 3, DurabilityPolicy.TRANSIENT_LOCAL)
    assert profile.reliability == ReliabilityPolicy.BEST_EFFORT and profile.depth == 3
    assert profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    with pytest.raises(ValueError, match='reliability'):
        qos_profile('sometimes', 3)
    with pytest.raises(ValueError, match='depth'):
        qos_profile('reliable', 0)


def test_default_threads_leave_a_core_unless_omp_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """num_threads 0: OMP_NUM_THREADS when it is a number, else all cores but one (>= 1)."""
    cores = usable_cores()
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert default_threads() == 3
    for unusable in ('4,2', ''):
        monkeypatch.setenv('OMP_NUM_THREADS', unusable)
        assert default_threads() == max(1, cores - 1)
    monkeypatch.delenv('OMP_NUM_THREADS')
    assert default_threads() == max(1, cores - 1)
