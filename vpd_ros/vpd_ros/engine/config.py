# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Engine options, per-frame settings and the load spec: choices and checks, in one place.

:class:`EngineConfig` validates itself with :func:`check_option`; the node's parameters and
the CLI's options take their choices and checks from here too, so each rule is written once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

#: The models' total downsampling (VAE x8, UNet x4): input sides are multiples of it. The same
#: as vpd_ros.model.depth.STRIDE (test_engine checks); not imported, so that this module, which
#: the node reads its parameter checks from, loads neither torch nor diffusers.
STRIDE = 32
DTYPE_CHOICES = ('auto', 'float32', 'float16', 'bfloat16')
DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
COMPILE_MODES = ('none', 'default', 'reduce-overhead', 'max-autotune')
ATTENTION_MODES = ('sdpa', 'explicit')
TASKS = ('depth', 'refer')
#: Who runs the models: the torch engine, or its exported graphs (engine/deploy/).
BACKENDS = ('torch', 'onnxruntime', 'openvino', 'tensorrt')
PRECISIONS = ('fp32', 'fp16', 'bf16')
#: Precisions each exported-graph backend runs (OpenVINO: inference precision hint of its CPU
#: plugin; TensorRT: fp16 kernels). The exported graphs are fp32 either way.
BACKEND_PRECISIONS = {'onnxruntime': ('fp32',), 'openvino': PRECISIONS,
                      'tensorrt': ('fp32', 'fp16')}
#: The per-frame settings :meth:`VPDEngine.predict` takes, with their defaults.
FRAME_DEFAULTS = {'mask_threshold': 0.5, 'scene': None}


def _choice(*allowed: str) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f'{name} {value!r} not in {", ".join(allowed)}')
        return value
    return check


def _device(name: str, value: Any) -> str:
    if not (value in ('auto', 'cpu', 'cuda') or
            (isinstance(value, str) and value.startswith('cuda:') and value[5:].isdigit())):
        raise ValueError(f'{name} {value!r} not in {", ".join(DEVICE_CHOICES)}')
    return value


def _input_size(name: str, value: Any) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) <= 0 or any(v % STRIDE for v in size):
        raise ValueError(f'{name} {list(value)!r} must be [height, width], positive multiples '
                         f'of {STRIDE} (or none for the model\'s native size)')
    return size


def _optional_at_least(low: int) -> Callable[[str, Any], Optional[int]]:
    def check(name: str, value: Any) -> Optional[int]:
        if value is not None and not int(value) >= low:
            raise ValueError(f'{name} {value!r} must be >= {low} (or none)')
        return None if value is None else int(value)
    return check


def _at_least_one(name: str, value: Any) -> int:
    if not int(value) >= 1:
        raise ValueError(f'{name} {value!r} must be >= 1')
    return int(value)


def _open_unit(name: str, value: Any) -> float:
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f'{name} {value!r} must be in (0, 1)')
    return float(value)


#: option name -> check(name used in messages, value) returning the normalised value.
CHECKS: Dict[str, Callable[[str, Any], Any]] = {
    'device': _device,
    'dtype': _choice(*DTYPE_CHOICES),
    'input_size': _input_size,
    'compile': _choice(*COMPILE_MODES),
    'attention': _choice(*ATTENTION_MODES),
    'text_cache_size': _at_least_one,
    'num_threads': _optional_at_least(1),
    'mask_threshold': _open_unit,
    'scene': _optional_at_least(0),
    'backend': _choice(*BACKENDS),
    'precision': _choice(*PRECISIONS),
}


def check_option(option: str, value: Any, name: Optional[str] = None) -> Any:
    """Validate one engine option or per-frame setting; return it normalised.

    Raises:
        ValueError: naming ``name`` (default: the option) and what would be accepted.
    """
    return CHECKS[option](name or option, value)


def check_tasks(tasks: Sequence[str]) -> Tuple[str, ...]:
    """Return tasks as a tuple; ValueError unless a non-empty subset of depth, refer."""
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f'tasks {list(tasks)} must be a non-empty subset of depth, refer')
    return tuple(tasks)


@dataclass
class EngineConfig:
    """How the engine runs the models (fixed for the engine's life).

    Args:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``auto`` (float16 on CUDA, float32 on CPU), ``float32``, ``float16``, ``bfloat16``.
        input_size: (height, width) the frame is resized to, multiples of 32; ``None`` = the
            models' native square size (512 for sd15).
        tta: official depth test-time augmentation (shifted windows + flip; slower).
        channels_last: NHWC memory format for the convolutions.
        text_cache_size: number of queries whose text features are kept.
        profile: on CUDA, synchronise the device around every stage so that stage times are
            isolated host-clock times (this also keeps the two UNets from overlapping); off,
            stage times come from CUDA events and the device is never stalled.
        compile: ``torch.compile`` mode for the UNets and the VAE encoder: ``none``,
            ``default``, ``reduce-overhead`` or ``max-autotune`` (both with CUDA graphs on
            CUDA); compilation happens on the first frames, so call :meth:`VPDEngine.warmup`
            before serving.
        attention: ``sdpa`` (fused scaled-dot-product attention wherever VPD needs no
            probabilities) or ``explicit`` (materialised softmax on every attention layer, as
            the official code runs; a baseline for benchmarks).
        shared_encode: encode each frame once with the shared VAE; ``False`` encodes it per
            model, as the official code does (baseline).
        text_cache: keep text features per query; ``False`` encodes every query every frame.
        overlap: on CUDA with ``profile`` off, run the depth UNet on a side stream so that it
            overlaps the referring UNet.
        pinned_memory: on CUDA, upload frames from and download results to page-locked host
            memory (asynchronous copies).
        num_threads: CPU intra-op threads (``torch.set_num_threads``, process-wide);
            ``None`` leaves torch's choice.
        tf32: on CUDA, let float32 matmuls and convolutions round to TF32. The flags are
            process-wide, so the engine sets both on every frame: each engine runs as it says.

    Per-frame settings (mask threshold, scene class) are arguments of
    :meth:`VPDEngine.predict`, not options here.
    """

    device: str = 'auto'
    dtype: str = 'auto'
    input_size: Optional[Tuple[int, int]] = None
    tta: bool = False
    channels_last: bool = True
    text_cache_size: int = 64
    profile: bool = False
    compile: str = 'none'
    attention: str = 'sdpa'
    shared_encode: bool = True
    text_cache: bool = True
    overlap: bool = True
    pinned_memory: bool = True
    num_threads: Optional[int] = None
    tf32: bool = False

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming them; normalise the rest."""
        for f in fields(self):
            if f.name in CHECKS:
                setattr(self, f.name, check_option(f.name, getattr(self, f.name)))


@dataclass
class BackendConfig(EngineConfig):
    """:class:`EngineConfig` plus the deployment backend that runs the exported graphs.

    Args:
        backend: ``onnxruntime``, ``openvino`` (CPU) or ``tensorrt`` (CUDA, through ONNX
            Runtime's TensorRT execution provider).
        precision: ``fp32``; OpenVINO also ``fp16``/``bf16`` (its inference precision hint),
            TensorRT ``fp16``. The exported graphs are fp32 either way.
        cache_dir: where exported graphs and compiled artifacts live (``None``:
            :func:`~vpd_ros.engine.deploy.cache.default_cache_dir`).
    """

    backend: str = 'onnxruntime'
    precision: str = 'fp32'
    cache_dir: Optional[str] = None

    def __post_init__(self) -> None:
        """Reject combinations the exported graphs cannot run, naming them."""
        super().__post_init__()
        if self.backend == 'torch':
            raise ValueError(f'backend torch is the torch engine (EngineConfig); '
                             f'exported graphs run on {", ".join(BACKENDS[1:])}')
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            raise ValueError(f'backend {self.backend!r} runs precision '
                             f'{", ".join(BACKEND_PRECISIONS[self.backend])}, '
                             f'not {self.precision!r}')
        if self.dtype not in ('auto', 'float32'):
            raise ValueError(f'dtype {self.dtype!r}: exported graphs are fp32; choose a reduced '
                             'precision with precision=')
        if self.tta or self.compile != 'none':
            raise ValueError('tta and compile are torch-engine options; the exported graphs '
                             'run neither')
        on_cuda = self.device.startswith('cuda')
        if self.backend == 'tensorrt' and not on_cuda:
            raise ValueError("backend 'tensorrt' runs on a CUDA device: set device cuda")
        if self.backend != 'tensorrt' and on_cuda:
            raise ValueError(f'backend {self.backend!r} runs on the CPU: set device cpu')


def engine_config(backend: str = 'torch', precision: str = 'fp32',
                  cache_dir: Optional[str] = None, **options: Any) -> EngineConfig:
    """Return ``backend``'s config: :class:`EngineConfig` (torch) or :class:`BackendConfig`.

    ``options`` are :class:`EngineConfig` fields.
    """
    backend = check_option('backend', backend)
    if backend == 'torch':
        if check_option('precision', precision) != 'fp32':
            raise ValueError(f'precision {precision!r} applies to the exported-graph backends; '
                             'the torch engine takes dtype')
        return EngineConfig(**options)
    return BackendConfig(backend=backend, precision=precision, cache_dir=cache_dir or None,
                         **options)


@dataclass(frozen=True)
class EngineSpec:
    """Which models to load.

    Args:
        weights: a shipped model (``tiny``), a vpd_ros model folder or ``random:<name>``
            (random weights: ``tiny``/``sd15`` VPD, ``evp-tiny``/``evp-sd15`` EVP).
        depth_checkpoint: official VPD depth checkpoint (.pth); with ``refer_checkpoint``,
            when either is set they replace ``weights``.
        refer_checkpoint: official VPD referring checkpoint (.pth).
        sd15: SD-1.5 folder or file giving the CLIP text tower of the referring checkpoint.
        tasks: a non-empty subset of depth, refer.
    """

    weights: str = 'tiny'
    depth_checkpoint: str = ''
    refer_checkpoint: str = ''
    sd15: str = ''
    tasks: Tuple[str, ...] = TASKS

    def __post_init__(self) -> None:
        """Reject an empty or unknown task list and blank weights, naming them."""
        object.__setattr__(self, 'tasks', check_tasks(self.tasks))
        if not self.official and not self.weights.strip():
            raise ValueError('weights must name shipped weights (tiny), a model folder or '
                             'random:<name>, got a blank string')

    @property
    def official(self) -> bool:
        """Whether the official VPD checkpoints replace ``weights``."""
        return bool(self.depth_checkpoint or self.refer_checkpoint)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it), at least 1."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
