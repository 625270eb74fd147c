# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The VPD engine with its models run as exported ONNX graphs by a deployment backend.

:class:`GraphEngine` keeps :class:`~vpd_ros.engine.runner.VPDEngine`'s ``predict`` contract, timings
included (``depth_unet``/``refer_unet`` time the backbone graphs): preprocessing and
postprocessing stay in torch, the VAE, the backbones, the heads and the text tower run as graphs
exported once per cache key (:mod:`.cache`) and loaded by the backend (:mod:`.backends`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import EngineConfig
from ..runner import VPDEngine
from ...model.text import TextFeatures, tokenize
from .backends import BACKENDS, Runner, check_precision, library, version
from .cache import MODEL_FILE, artifacts_dir, default_cache_dir, entry, onnx_key, weights_hash
from .graphs import FEATURES, GraphSpec, depth_specs, export_graph, refer_specs, vae_spec


@dataclass
class BackendConfig(EngineConfig):
    """:class:`EngineConfig` plus the deployment backend.

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
        if self.backend not in BACKENDS[1:]:
            raise ValueError(f'backend {self.backend!r} not in {", ".join(BACKENDS[1:])}')
        check_precision(self.backend, self.precision)
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


class GraphEngine(VPDEngine):
    """Run VPD through exported graphs; same arguments as :class:`VPDEngine`."""

    def __init__(self, depth: Optional[torch.nn.Module], refer: Optional[torch.nn.Module],
                 config: Optional[EngineConfig] = None) -> None:
        config = config or BackendConfig()
        if not isinstance(config, BackendConfig):
            config = BackendConfig(**dataclasses.asdict(config))
        library(config.backend)  # a missing extra fails before any loading or exporting
        if config.device == 'auto':
            config = dataclasses.replace(
                config, device='cuda' if config.backend == 'tensorrt' else 'cpu')
        super().__init__(depth, refer, dataclasses.replace(config, dtype='float32'))
        self._cache_root = config.cache_dir or default_cache_dir()
        #: graph name -> the ONNX file it runs from (in the cache)
        self.graph_files: Dict[str, str] = {}
        vae_model = self.depth or self.refer
        vae = self._runner('vae', weights_hash(vae_model.backbone.vae),
                           lambda: [vae_spec(vae_model.backbone, self.input_size)])
        other_vae = vae
        if self.depth is not None and self.refer is not None and not self.shared_vae:
            other_vae = self._runner('vae', weights_hash(self.refer.backbone.vae),
                                     lambda: [vae_spec(self.refer.backbone, self.input_size)])
        if self.depth is not None:
            self.depth = DepthGraphs(self, self.depth, vae)
        if self.refer is not None:
            self.refer = ReferGraphs(self, self.refer, other_vae)
        gc.collect()  # the torch models are gone; their memory goes back

    def _runner(self, name: str, weights: str,
                specs: Callable[[], List[GraphSpec]]) -> Runner:
        """Load graph ``name`` from the cache, exporting it first when its entry is missing."""
        key = onnx_key(name, weights, self.input_size)

        def build(folder: str) -> None:
            spec = next(s for s in specs() if s.name == name)
            export_graph(spec, os.path.join(folder, MODEL_FILE))

        folder = entry(self._cache_root, key, build)
        self.graph_files[name] = os.path.join(folder, MODEL_FILE)
        cfg = self.config
        artifacts = artifacts_dir(folder, cfg.backend, version(cfg.backend), device_name(
            self.device), cfg.precision)
        return Runner(os.path.join(folder, MODEL_FILE), cfg.backend, artifacts, cfg.precision,
                      cfg.num_threads, self.device.index or 0)

    def _runners(self, names: Sequence[str], model: torch.nn.Module,
                 build: Callable[[torch.nn.Module, Tuple[int, int]], List[GraphSpec]]
                 ) -> List[Runner]:
        """One runner per graph name of a task model (the specs are built once, when needed)."""
        weights = weights_hash(model)
        specs: List[GraphSpec] = []

        def once() -> List[GraphSpec]:
            if not specs:
                specs.extend(build(model, self.input_size))
            return specs
        return [self._runner(name, weights, once) for name in names]

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` of the running frame's clock (no frame: untimed)."""
        clock = self._clock
        if clock is None:
            yield
        else:
            with clock.stage(name):
                yield

    def _encode(self, model: 'DepthGraphs | ReferGraphs', x: torch.Tensor) -> torch.Tensor:
        (latents,) = model.vae(image=host(x))
        return torch.from_numpy(latents)


class DepthGraphs:
    """The depth model as graphs, with :class:`VPDDepth`'s ``forward_latents`` contract."""

    def __init__(self, engine: GraphEngine, model: torch.nn.Module, vae: Runner) -> None:
        self.engine, self.vae = engine, vae
        n = model.class_embeddings.shape[0]
        self.texts = {None: host(model.scene_text(None, 1))}
        self.texts.update({i: host(model.scene_text(torch.tensor([i]), 1)) for i in range(n)})
        self.unet, self.head = engine._runners(('depth_unet', 'depth_head'), model, depth_specs)

    def forward_latents(self, latents: torch.Tensor, size: Sequence[int],
                        scene: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict (1, 1, h, w) metres from latents of the padded image."""
        check_size(self.engine, size)
        key = None if scene is None else int(scene.reshape(-1)[0])
        if key not in self.texts:
            raise ValueError(f'scene id {key} outside [0, {len(self.texts) - 1})')
        with self.engine.timed('depth_unet'):
            feats = self.unet(latents=host(latents), text=self.texts[key])
        (depth,) = self.head(**dict(zip(FEATURES, feats)))
        return torch.from_numpy(depth)


class ReferGraphs:
    """The referring model (and its text tower) as graphs, with :class:`VPDRefer`'s contract."""

    def __init__(self, engine: GraphEngine, model: torch.nn.Module, vae: Runner) -> None:
        self.engine, self.vae = engine, vae
        self.token_length = model.token_length
        names = ('refer_unet', 'refer_head') + (('text',) if model.text_encoder else ())
        runners = engine._runners(names, model, refer_specs)
        self.unet, self.head = runners[:2]
        self.text = runners[2] if len(runners) > 2 else None

    def encode_text(self, texts: Sequence[str]) -> TextFeatures:
        """Return CLIP ``last_hidden_state`` (Q, L, D) for texts."""
        if self.text is None:
            raise RuntimeError('this referring model has no text encoder')
        tokens = tokenize(texts, self.token_length)
        (states,) = self.text(input_ids=tokens.input_ids.numpy())
        return TextFeatures(embeddings=torch.from_numpy(states), truncated=tokens.truncated)

    def forward_latents(self, latents: torch.Tensor, text_embeddings: torch.Tensor,
                        size: Sequence[int]) -> torch.Tensor:
        """Return (Q, 2, h, w) logits for latents (Q, ...) and text features (Q, L, D)."""
        check_size(self.engine, size)
        with self.engine.timed('refer_unet'):
            feats = self.unet(latents=host(latents), text=host(text_embeddings))
        (logits,) = self.head(**dict(zip(FEATURES, feats)))
        return torch.from_numpy(logits)


def check_size(engine: VPDEngine, size: Sequence[int]) -> None:
    """Raise ValueError unless ``size`` is the size the graphs were exported for."""
    if tuple(int(s) for s in size) != tuple(engine.input_size):
        raise ValueError(f'the graphs were exported for {engine.input_size}, not {tuple(size)}')


def host(x: torch.Tensor) -> np.ndarray:
    """Return a tensor as a contiguous fp32 numpy array (a view where it can)."""
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def device_name(device: torch.device) -> str:
    """Return the device as the cache key names it: the CPU model or the GPU name."""
    if device.type == 'cuda':
        return f'cuda:{torch.cuda.get_device_name(device)}'
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            model = next((line.split(':', 1)[1].strip() for line in f
                          if line.startswith('model name')), '')
    except OSError:
        model = ''
    return f'cpu:{model or platform.processor() or platform.machine()}'
