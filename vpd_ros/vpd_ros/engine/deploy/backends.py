# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX graph runners: ONNX Runtime (CPU), OpenVINO (CPU) and TensorRT (ONNX Runtime's EP).

Each runner takes numpy inputs by name and returns the outputs in graph order. The libraries are
optional extras; asking for a backend whose library is missing raises :class:`BackendUnavailable`
naming the extra to install.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from typing import Dict, List, Optional

import numpy as np

LOG = logging.getLogger('vpd_ros.engine.deploy')

#: backend -> (module, pip extra of vpd_ros).
LIBRARIES = {'onnxruntime': ('onnxruntime', 'onnxruntime'), 'openvino': ('openvino', 'openvino'),
             'tensorrt': ('onnxruntime', 'tensorrt')}


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


def optimized_name(path: str) -> str:
    """Return the file name of ONNX Runtime's optimised copy of the graph at ``path``.

    The first session saves the graph optimised for this CPU in the artifact folder; later ones
    load it as is (session creation then takes a fraction of a second). The name holds the
    source file's path, size and mtime, so a changed graph is optimised again. Not for graphs
    with external data (the sd15 UNets): that would be a second multi-GB copy.
    """
    st = os.stat(path)
    stamp = f'{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}'
    return f'optimized-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.onnx'


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
        saved = None
        if backend == 'onnxruntime' and not os.path.exists(path + '.data'):
            saved = os.path.join(artifacts, optimized_name(path))
            if os.path.isfile(saved):  # optimised on an earlier start: nothing left to do
                path, saved = saved, None
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            else:
                options.optimized_model_filepath = saved + f'.{os.getpid()}.tmp'
                options.log_severity_level = 3  # its warning: CPU-specific (the folder's key)
        self._session = ort.InferenceSession(path, options, providers=providers)
        if saved is not None:
            os.replace(options.optimized_model_filepath, saved)
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
        ran = str(compiled.get_property('INFERENCE_PRECISION_HINT'))
        if precision != 'fp32' and 'float32' in ran:
            LOG.warning('OpenVINO runs %s in fp32: this CPU offers %s, no %s', os.path.basename(
                os.path.dirname(path)), ', '.join(core.get_property(
                    'CPU', 'OPTIMIZATION_CAPABILITIES')), precision)
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
