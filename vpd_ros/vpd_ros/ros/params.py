# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's parameters in one table: name, default, description, when it applies, its check.

:data:`PARAMETERS` drives declaration (:func:`declare_parameters`), runtime validation
(:func:`check_value`, used by the node's set-parameters callback), startup validation
(:func:`read_config`, used by configure) and the documentation in docs/ros-interface.md.
Values that take effect only at the next configure or activate are accepted at runtime and
say so. QoS profiles are built from the ``qos.*`` values here too. The engine's options and
per-frame settings take their choices and checks from :mod:`vpd_ros.engine.config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vpd_ros.engine.config import (BACKEND_PRECISIONS, BACKENDS, COMPILE_MODES, DEVICE_CHOICES,
                                   DTYPE_CHOICES, FRAME_DEFAULTS, EngineConfig, EngineSpec,
                                   check_option, engine_config, usable_cores)
from vpd_ros.ros.conversions import DEFAULT_MAX_PIXELS
from vpd_ros.ros.queries import check_printable, parse_queries

RUNTIME = 'applies from the next frame'
ACTIVATE = 'takes effect at next activate'
CONFIGURE = 'takes effect at next configure'
STARTUP = 'read once at start'

TASKS = {'depth': ('depth',), 'refer': ('refer',), 'both': ('depth', 'refer')}
RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE,
               'best_effort': ReliabilityPolicy.BEST_EFFORT}
TRANSPORTS = ('raw', 'compressed')


def default_threads() -> int:
    """CPU threads for ``num_threads: 0``: ``OMP_NUM_THREADS`` when set, else all cores but one.

    The free core keeps the executor, DDS and a camera driver on the same CPU prompt: on a
    2-core machine one model thread held ``~/set_query`` round trips under 20 ms at p99 while
    frames streamed, two threads did not (docs/performance.md).
    """
    try:
        return max(1, int(os.environ.get('OMP_NUM_THREADS', '')))
    except ValueError:
        return max(1, usable_cores() - 1)


#: Parameter value -> engine value where ROS parameters cannot say "none" (0, -1, [0, 0]).
TO_ENGINE: Dict[str, Callable[[Any], Any]] = {
    'num_threads': lambda v: int(v) or default_threads(),
    'scene': lambda v: None if v == -1 else int(v),
    'input_size': lambda v: None if v is None or list(v) in ([], [0, 0]) else tuple(v),
}


def _choice(*allowed: str) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if value not in allowed:
            raise ValueError(f'{name} {value!r} not in {", ".join(allowed)}')
    return check


def _at_least(low: float, unit: str = '') -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not value >= low:
            raise ValueError(f'{name} {value!r} must be >= {low}{unit}')
    return check


def _printable(name: str, value: Any) -> None:
    check_printable(value, name)


def _engine(option: str) -> Callable[[str, Any], None]:
    """Return a check of parameter values by the engine's rule for ``option``."""
    def check(name: str, value: Any) -> None:
        check_option(option, TO_ENGINE.get(option, lambda v: v)(value), name)
    return check


def engine_value(name: str, value: Any) -> Any:
    """Return a parameter's value as the engine takes it (e.g. scene -1 -> None)."""
    return TO_ENGINE.get(name, lambda v: v)(value)


def _weights(name: str, value: Any) -> None:
    EngineSpec(weights=str(value))  # raises ValueError naming ``weights`` when blank


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: ``default`` is a typed value, so every parameter has one (param dump)."""

    name: str
    default: Any
    description: str
    when: str
    check: Optional[Callable[[str, Any], None]] = None


PARAMETERS: Tuple[ParamSpec, ...] = (
    ParamSpec('weights', 'tiny', 'model to load: a shipped name (tiny), a vpd_ros model folder '
              '(save_pretrained) or random:<preset> (random weights, tests; tiny, sd15, '
              'evp-tiny, evp-sd15)', CONFIGURE,
              _weights),
    ParamSpec('official.depth_checkpoint', '', 'official VPD or EVP depth checkpoint (told '
              'apart by content); when '
              'this or official.refer_checkpoint is set, they replace weights', CONFIGURE),
    ParamSpec('official.refer_checkpoint', '', 'official VPD or EVP referring checkpoint',
              CONFIGURE),
    ParamSpec('official.sd15', '', 'Stable Diffusion 1.5 folder or file giving the CLIP text '
              'encoder for the official referring checkpoint', CONFIGURE),
    ParamSpec('device', 'auto', f'{", ".join(DEVICE_CHOICES)}: auto = CUDA when available',
              CONFIGURE, _engine('device')),
    ParamSpec('dtype', 'auto', f'{", ".join(DTYPE_CHOICES)}: auto = float16 on CUDA, float32 '
              'on CPU', CONFIGURE, _engine('dtype')),
    ParamSpec('compile', 'none', f'torch.compile of the backbones: {", ".join(COMPILE_MODES)} '
              '(reduce-overhead = CUDA graphs); compiled during configure', CONFIGURE,
              _engine('compile')),
    ParamSpec('backend', 'torch', f'who runs the models: {", ".join(BACKENDS)}; the others '
              'run graphs exported to ONNX once and kept in cache_dir (docs/performance.md)',
              CONFIGURE, _engine('backend')),
    ParamSpec('precision', 'fp32', 'precision of an exported-graph backend: ' + '; '.join(
        f'{b} {", ".join(p)}' for b, p in BACKEND_PRECISIONS.items()) + ' (the torch backend '
        'takes dtype)', CONFIGURE, _engine('precision')),
    ParamSpec('cache_dir', '', 'folder of the exported graphs; blank = $VPD_ROS_CACHE, else '
              '~/.cache/vpd_ros', CONFIGURE),
    ParamSpec('num_threads', 0, 'CPU threads for the model; 0 = OMP_NUM_THREADS when set, else '
              'all cores but one (left to the executor, DDS and the camera driver)',
              CONFIGURE, _engine('num_threads')),
    ParamSpec('input_size', [0, 0], 'model input [height, width] in pixels, multiples of 32; '
              '[0, 0] = the model\'s native size', CONFIGURE, _engine('input_size')),
    ParamSpec('tasks', 'both', 'depth, refer or both: which models to load and run',
              CONFIGURE, _choice(*TASKS)),
    ParamSpec('default_query', '', 'standing query after configure; ";" separates several; '
              'blank = depth only', CONFIGURE),
    ParamSpec('mask_threshold', FRAME_DEFAULTS['mask_threshold'], 'foreground probability '
              'above which a pixel is in the mask, (0, 1)', RUNTIME, _engine('mask_threshold')),
    ParamSpec('scene', -1, 'depth scene-class id of the checkpoint, -1 = mean of the classes',
              RUNTIME, _engine('scene')),
    ParamSpec('depth_caption', '', 'EVP depth checkpoints: scene caption the depth is '
              'conditioned on; the ~/caption topic (e.g. a captioning node) sets it too, the '
              'last writer wins; blank = the engine default "a photo of a room"; VPD ignores '
              'it', RUNTIME, _printable),
    ParamSpec('image_transport', 'raw', 'raw: sensor_msgs/Image on image; compressed: '
              'sensor_msgs/CompressedImage on <image>/compressed', ACTIVATE,
              _choice(*TRANSPORTS)),
    ParamSpec('qos.input.reliability', 'reliable', 'image and camera_info subscriptions: '
              'reliable or best_effort (best_effort loses large images on many links)',
              ACTIVATE, _choice(*RELIABILITY)),
    ParamSpec('qos.input.depth', 2, 'image subscription history depth, messages', ACTIVATE,
              _at_least(1)),
    ParamSpec('qos.output.reliability', 'reliable', 'output publishers: reliable or '
              'best_effort', CONFIGURE, _choice(*RELIABILITY)),
    ParamSpec('qos.output.depth', 2, 'output publisher history depth, messages', CONFIGURE,
              _at_least(1)),
    ParamSpec('publish.depth', True, 'publish depth and depth/camera_info', RUNTIME),
    ParamSpec('publish.mask', True, 'publish mask (first standing query)', RUNTIME),
    ParamSpec('publish.grounding', True, 'publish grounding (one per standing query)',
              RUNTIME),
    ParamSpec('publish.marker', True, 'publish grounding/marker', RUNTIME),
    ParamSpec('publish.points', True, 'publish points (only while subscribed; needs '
              'camera_info)', RUNTIME),
    ParamSpec('publish.colorized', True, 'publish depth/colorized (only while subscribed)',
              RUNTIME),
    ParamSpec('publish.overlay', True, 'publish mask/overlay (only while subscribed)',
              RUNTIME),
    ParamSpec('points_step', 4, 'points: keep every n-th row and column', RUNTIME,
              _at_least(1)),
    ParamSpec('lazy', True, 'run no inference while no output topic has a subscriber and no '
              '~/ground request waits (as image_pipeline); false runs every frame', RUNTIME),
    ParamSpec('max_rate', 0.0, 'most frames processed per second, Hz; 0 = as fast as the '
              'model runs', RUNTIME, _at_least(0.0, ' Hz')),
    ParamSpec('ground_timeout', 5.0, 'default ~/ground timeout, seconds', RUNTIME,
              _at_least(0.001, ' s')),
    ParamSpec('max_image_pixels', DEFAULT_MAX_PIXELS, 'larger input images are refused before '
              'decoding, pixels', RUNTIME, _at_least(1)),
    ParamSpec('max_query_length', 200, 'longest accepted query, characters', RUNTIME,
              _at_least(1)),
    ParamSpec('diagnostic_updater.period', 1.0, '/diagnostics publishing period, seconds '
              '(the parameter name of diagnostic_updater)', STARTUP, _at_least(0.01, ' s')),
    ParamSpec('autostart', True, 'configure and activate at start', STARTUP),
    ParamSpec('allow_download', False, 'let model loading reach the network (Hugging Face '
              'Hub); false sets HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE and HF_DATASETS_OFFLINE',
              STARTUP),
)

SPECS: Dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeConfig:
    """Validated startup values that configure acts on: what to load, how to run it."""

    spec: EngineSpec
    engine: EngineConfig
    default_queries: Tuple[str, ...]
    output_qos: QoSProfile


def declare_parameters(node: Node) -> None:
    """Declare every parameter of :data:`PARAMETERS` on ``node`` with its description."""
    for spec in PARAMETERS:
        descriptor = ParameterDescriptor(description=f'{spec.description} ({spec.when})')
        node.declare_parameter(spec.name, spec.default, descriptor)


def parameter_values(node: Node) -> Dict[str, Any]:
    """Return the node's current values of :data:`PARAMETERS` (None for an unset one)."""
    values: Dict[str, Any] = {}
    for spec in PARAMETERS:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = None
    return values


def check_value(name: str, value: Any) -> str:
    """Validate one new value; return when it applies (a reason string for the caller).

    Raises:
        ValueError: the value is out of range or not an allowed choice; the message names it.
    """
    spec = SPECS.get(name)
    if spec is None:
        return RUNTIME
    if spec.check is not None:
        spec.check(name, value)
    return spec.when


def qos_profile(reliability: str, depth: int,
                durability: DurabilityPolicy = DurabilityPolicy.VOLATILE) -> QoSProfile:
    """Return a KEEP_LAST profile from a reliability name and a history depth."""
    _choice(*RELIABILITY)('reliability', reliability)
    _at_least(1)('depth', depth)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=RELIABILITY[reliability], durability=durability)


def check_path(name: str, path: str, kinds: Tuple[str, ...]) -> None:
    """Check that parameter ``name`` names an existing, readable ``file`` or ``folder``.

    Raises:
        ValueError: the path is missing, of another kind (or not a regular file) or unreadable.
    """
    if not os.path.exists(path):
        raise ValueError(f'{name} {path!r} does not exist')
    is_file, is_dir = os.path.isfile(path), os.path.isdir(path)
    if not (('file' in kinds and is_file) or ('folder' in kinds and is_dir)):
        found = 'a folder' if is_dir else 'not a regular file'
        raise ValueError(f'{name} {path!r} is {found}; expected {" or ".join(kinds)}')
    if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
        raise ValueError(f'{name} {path!r} is not readable by this process')


def read_config(values: Mapping[str, Any]) -> NodeConfig:
    """Validate all startup values together and return them as a :class:`NodeConfig`.

    Raises:
        ValueError: any value is invalid, or a task has no official checkpoint while the
            official checkpoints are in use; the message names the parameter.
    """
    for name, value in values.items():
        check_value(name, value)
    tasks = TASKS[values['tasks']]
    checkpoints = {'depth': values['official.depth_checkpoint'],
                   'refer': values['official.refer_checkpoint']}
    if any(checkpoints.values()):
        missing = [t for t in tasks if not checkpoints[t]]
        if missing:
            raise ValueError(f'tasks {values["tasks"]!r} needs official.{missing[0]}_checkpoint '
                             'when official checkpoints are used (or set tasks to the one given)')
    for name, kinds in (('official.depth_checkpoint', ('file',)),
                        ('official.refer_checkpoint', ('file',)),
                        ('official.sd15', ('file', 'folder'))):
        if values[name]:
            check_path(name, values[name], kinds)
    queries = parse_queries(values['default_query'], int(values['max_query_length']))
    if queries and 'refer' not in tasks:
        raise ValueError(f'default_query {values["default_query"]!r} needs a referring model, '
                         f'but tasks is {values["tasks"]!r}')
    spec = EngineSpec(weights=values['weights'].strip(),
                      depth_checkpoint=checkpoints['depth'] if 'depth' in tasks else '',
                      refer_checkpoint=checkpoints['refer'] if 'refer' in tasks else '',
                      sd15=values['official.sd15'], tasks=tasks)
    engine = engine_config(values['backend'], values['precision'], values['cache_dir'],
                           **{name: engine_value(name, values[name])
                              for name in ('device', 'dtype', 'compile', 'num_threads',
                                           'input_size')})
    return NodeConfig(
        spec=spec,
        engine=engine,
        default_queries=tuple(queries),
        output_qos=qos_profile(values['qos.output.reliability'],
                               int(values['qos.output.depth'])),
    )
