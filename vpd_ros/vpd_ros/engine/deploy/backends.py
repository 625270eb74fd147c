# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX graph runners: ONNX Runtime (CPU), OpenVINO (CPU) and TensorRT (ONNX Runtime's EP).

Each runner takes numpy inputs by name and returns the outputs in graph order. The libraries are
optional extras; asking for a backend whose library is missing raises :class:`BackendUnavailable`
naming the extra to install.
"""

from __future__ import annotations

import importlib
import os
from typing import Dict, List, Optional

import numpy as np

BACKENDS = ('torch', 'onnxruntime', 'openvino', 'tensorrt')
PRECISIONS = ('fp32', 'fp16', 'bf16')
#: backend -> (module, pip extra of vpd_ros).
LIBRARIES = {'onnxruntime': ('onnxruntime', 'onnxruntime'), 'openvino': ('openvino', 'openvino'),
             'tensorrt': ('onnxruntime', 'tensorrt')}
#: Precisions each backend runs (OpenVINO: inference precision hint of its CPU plugin).
BACKEND_PRECISIONS = {'onnxruntime': ('fp32',), 'openvino': PRECISIONS,
                      'tensorrt': ('fp32', 'fp16')}


class BackendUnavailable(RuntimeError):
    """The library a backend needs is not installed (or cannot run here)."""


def library(backend: str):
    """Import and return the backend's library, or raise :class:`BackendUnavailable`."""
    module, extra = LIBRARIES[backend]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackendUnavailable(
            f"backend {backend!r} needs the Python package {module!r}, which is not installed "
            f"({err}): pip install 'vpd_ros[{extra}]'") from err


def version(backend: str) -> str:
    """Return the installed release of the backend library (part of the cache key)."""
    lib = library(backend)
    return lib.get_version() if backend == 'openvino' else lib.__version__


def check_precision(backend: str, precision: str) -> None:
    """Raise ValueError unless the backend runs ``precision``."""
    if precision not in BACKEND_PRECISIONS[backend]:
        raise ValueError(f'backend {backend!r} runs precision '
                         f'{", ".join(BACKEND_PRECISIONS[backend])}, not {precision!r}')


class Runner:
    """One graph on one backend: ``runner(**inputs) -> [outputs]`` (numpy arrays)."""

    def __init__(self, path: str, backend: str, artifacts: str, precision: str = 'fp32',
                 threads: Optional[int] = None, device_id: int = 0) -> None:
        self.backend = backend
        if backend == 'openvino':
            self._init_openvino(path, artifacts, precision, threads)
        else:
            self._init_onnxruntime(path, backend, artifacts, precision, threads, device_id)

    def _init_onnxruntime(self, path: str, backend: str, artifacts: str, precision: str,
                          threads: Optional[int], device_id: int) -> None:
        ort = library(backend)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        # Several graphs run one after another: idle pools must not spin on the shared cores.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        providers: List = ['CPUExecutionProvider']
        if backend == 'tensorrt':
            if 'TensorrtExecutionProvider' not in ort.get_available_providers():
                raise BackendUnavailable(
                    "backend 'tensorrt' needs onnxruntime-gpu with the TensorRT execution "
                    f"provider and a CUDA GPU; this onnxruntime offers "
                    f"{', '.join(ort.get_available_providers())}")
            trt = {'device_id': device_id, 'trt_fp16_enable': precision == 'fp16',
                   'trt_engine_cache_enable': True, 'trt_engine_cache_path': artifacts,
                   'trt_timing_cache_enable': True, 'trt_timing_cache_path': artifacts}
            providers = [('TensorrtExecutionProvider', trt),
                         ('CUDAExecutionProvider', {'device_id': device_id}),
                         'CPUExecutionProvider']
        self._session = ort.InferenceSession(path, options, providers=providers)
        self.outputs = [o.name for o in self._session.get_outputs()]

    def _init_openvino(self, path: str, artifacts: str, precision: str,
                       threads: Optional[int]) -> None:
        ov = library('openvino')
        core = ov.Core()
        core.set_property({'CACHE_DIR': artifacts})  # compiled blobs: fast second start
        config = {'INFERENCE_PRECISION_HINT': {'fp32': 'f32', 'fp16': 'f16',
                                               'bf16': 'bf16'}[precision],
                  'PERFORMANCE_HINT': 'LATENCY'}
        if threads:
            config['INFERENCE_NUM_THREADS'] = int(threads)
        compiled = core.compile_model(os.fspath(path), 'CPU', config)
        self._request = compiled.create_infer_request()
        self.outputs = [o.get_any_name() for o in compiled.outputs]

    def __call__(self, **inputs: np.ndarray) -> List[np.ndarray]:
        """Run the graph on contiguous inputs; return its outputs in order."""
        feed: Dict[str, np.ndarray] = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        if self.backend == 'openvino':
            self._request.infer(feed)
            return [self._request.get_output_tensor(i).data.copy()
                    for i in range(len(self.outputs))]
        return self._session.run(self.outputs, feed)
