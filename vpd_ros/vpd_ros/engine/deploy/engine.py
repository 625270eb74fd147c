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
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import BackendConfig, EngineConfig, check_tasks
from ..runner import VPDEngine
from ..score_calibration import ScoreCalibration
from ...model.text import TextFeatures, tokenize
from .backends import Runner, library, version
from .cache import (LOG, MODEL_FILE, artifacts_dir, default_cache_dir, entry, entry_folder,
                    onnx_key, weights_hash)
from .sources import (describe, find_load, load_key, official_source, preset_source,
                      pretrained_source, save_load)
from .graphs import FEATURES, GraphSpec, depth_specs, export_graph, refer_specs, vae_spec


class GraphEngine(VPDEngine):
    """Run VPD through exported graphs; same arguments and constructors as :class:`VPDEngine`.

    Given torch models, it exports the graphs missing from the cache. The ``from_*``
    constructors first look for the load entry of their weight files (:mod:`.sources`): found,
    the engine opens the cached graphs without building any torch model.
    """

    def __init__(self, depth: Optional[torch.nn.Module], refer: Optional[torch.nn.Module],
                 config: Optional[EngineConfig] = None) -> None:
        super().__init__(depth, refer, backend_config(config))
        #: what :meth:`_open` runs, and what the load entry records: graph entries per task
        self.manifest, self.arrays = self._export()
        self._open()
        gc.collect()  # the torch models are gone; their memory goes back

    @classmethod
    def _cached(cls, config: Optional[EngineConfig], source: Callable[[str], Dict[str, Any]],
                build: Callable[[BackendConfig], 'GraphEngine']) -> 'GraphEngine':
        """Open the load entry of ``source(cache root)``, or ``build`` the engine and record it."""
        config = backend_config(config)
        root = config.cache_dir or default_cache_dir()
        origin = source(root)
        key = load_key(origin, config.input_size)
        found = find_load(root, key)
        if found is None:
            size = 'native' if config.input_size is None else 'x'.join(map(str, config.input_size))
            LOG.info('no cached graphs for %s at input %s (load entry %s): building the torch '
                     'models, exporting what is missing', describe(origin), size,
                     entry_folder(root, key))
            engine = build(config)
            save_load(root, key, engine.manifest, engine.arrays)
            return engine
        engine = cls.__new__(cls)
        engine._configure(config)
        engine.manifest, engine.arrays = found
        engine.input_size = tuple(engine.manifest['input_size'])
        engine.shared_vae = engine.manifest['shared_vae']
        engine._open()
        engine._init_serving()
        return engine

    @classmethod
    def from_pretrained(cls, folder: str, tasks: Sequence[str] = ('depth', 'refer'),
                        config: Optional[EngineConfig] = None) -> 'GraphEngine':
        """Open the cached graphs of a vpd_ros model folder, exporting them on the first start."""
        check_tasks(tasks)
        engine = cls._cached(config, lambda root: pretrained_source(folder, tasks, root),
                             lambda c: super(GraphEngine, cls).from_pretrained(folder, tasks, c))
        if engine.refer is not None and engine.score_calibration is None:
            engine.score_calibration = ScoreCalibration.load(os.path.join(folder, 'refer'))
        return engine

    @classmethod
    def from_official(cls, depth_checkpoint: Optional[str], refer_checkpoint: Optional[str],
                      sd15: Optional[str] = None, config: Optional[EngineConfig] = None,
                      preset: str = 'sd15') -> 'GraphEngine':
        """Open the cached graphs of official checkpoints, exporting them on the first start."""
        return cls._cached(
            config, lambda root: official_source(depth_checkpoint, refer_checkpoint, sd15,
                                                 preset, root),
            lambda c: super(GraphEngine, cls).from_official(depth_checkpoint, refer_checkpoint,
                                                            sd15, c, preset))

    @classmethod
    def from_preset(cls, preset: str, tasks: Sequence[str] = ('depth', 'refer'), seed: int = 0,
                    config: Optional[EngineConfig] = None) -> 'GraphEngine':
        """Open the cached graphs of a seeded random preset, exporting them on the first start."""
        check_tasks(tasks)
        device = backend_config(config).device
        return cls._cached(config, lambda _root: preset_source(preset, tasks, seed, device),
                           lambda c: super(GraphEngine, cls).from_preset(preset, tasks, seed, c))

    def _export(self) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        """Export the torch models' graphs missing from the cache; return what names them."""
        manifest: Dict[str, Any] = {'input_size': list(self.input_size),
                                    'shared_vae': self.shared_vae}
        arrays: Dict[str, np.ndarray] = {}
        if self.depth is not None:
            model = self.depth
            names = ('depth_unet', 'depth_head') + (('depth_text',) if model.takes_caption else ())
            folders = self._entries(names, model, depth_specs)
            manifest['depth'] = {'vae': self._vae_entry(model), 'unet': folders[0],
                                 'head': folders[1]}
            if model.takes_caption:  # EVP: the caption's text tower
                manifest['depth'].update(text=folders[2], token_length=model.token_length)
            else:
                arrays['class_embeddings'] = host(model.class_embeddings)
                arrays['default_text'] = host(model.scene_text(None, 1))
        if self.refer is not None:
            model = self.refer
            names = ('refer_unet', 'refer_head') + (('text',) if model.text_encoder else ())
            folders = self._entries(names, model, refer_specs) + [None]
            vae = manifest['depth']['vae'] if self.shared_vae else self._vae_entry(model)
            manifest['refer'] = {'vae': vae, 'unet': folders[0], 'head': folders[1],
                                 'text': folders[2], 'token_length': model.token_length}
        return manifest, arrays

    def _vae_entry(self, model: torch.nn.Module) -> str:
        """Export (or find) the VAE encoder graph of a task model; return its entry.

        The key holds the latent divisor too: EVP's two models share SD-1.5's VAE weights but
        divide its latents by different numbers, and the graph includes the division.
        """
        backbone = model.backbone
        return self._entry('vae', f'{weights_hash(backbone.vae)}/{backbone.latent_divisor!r}',
                           lambda: [vae_spec(backbone, self.input_size)])

    def _entries(self, names: Sequence[str], model: torch.nn.Module,
                 build: Callable[[torch.nn.Module, Tuple[int, int]], List[GraphSpec]]
                 ) -> List[str]:
        """One entry per graph name of a task model (the specs are built once, when needed)."""
        weights = weights_hash(model)
        specs: List[GraphSpec] = []

        def once() -> List[GraphSpec]:
            if not specs:
                specs.extend(build(model, self.input_size))
            return specs
        return [self._entry(name, weights, once) for name in names]

    def _entry(self, name: str, weights: str, specs: Callable[[], List[GraphSpec]]) -> str:
        """Return graph ``name``'s entry folder (relative to the cache), exporting it if missing."""
        key = onnx_key(name, weights, self.input_size)

        def build(folder: str) -> None:
            spec = next(s for s in specs() if s.name == name)
            export_graph(spec, os.path.join(folder, MODEL_FILE))

        return os.path.basename(entry(self._cache_root, key, build))

    def _open(self) -> None:
        """Load the manifest's graphs on the backend (one runner per entry) as task models."""
        #: graph name -> the ONNX file it runs from (in the cache); the VAE graphs are
        #: ``depth_vae`` and ``refer_vae`` when the two models encode differently (EVP)
        self.graph_files: Dict[str, str] = {}
        runners: Dict[str, Runner] = {}
        depth, refer = self.manifest.get('depth'), self.manifest.get('refer')
        two_vaes = depth is not None and refer is not None and depth['vae'] != refer['vae']

        def runners_of(task: str, entries: Dict[str, Any]) -> List[Optional[Runner]]:
            out: List[Optional[Runner]] = []
            for part in ('vae', 'unet', 'head', 'text'):
                folder = entries.get(part)
                if folder is not None and folder not in runners:
                    name = folder.rsplit('-', 1)[0]
                    runners[folder] = self._runner(
                        folder, f'{task}_vae' if name == 'vae' and two_vaes else name)
                out.append(None if folder is None else runners[folder])
            return out

        self.depth = self.refer = None
        if depth is not None:
            self.depth = DepthGraphs(self, *runners_of('depth', depth),
                                     depth.get('token_length', 0),
                                     self.arrays.get('class_embeddings'),
                                     self.arrays.get('default_text'))
        if refer is not None:
            self.refer = ReferGraphs(self, *runners_of('refer', refer), refer['token_length'])

    @property
    def _cache_root(self) -> str:
        return self.config.cache_dir or default_cache_dir()

    def _runner(self, folder: str, name: str) -> Runner:
        """Load one cached graph entry on the configured backend, as graph ``name``."""
        path = os.path.join(self._cache_root, folder, MODEL_FILE)
        self.graph_files[name] = path
        cfg = self.config
        artifacts = artifacts_dir(os.path.dirname(path), cfg.backend, version(cfg.backend),
                                  device_name(self.device), cfg.precision)
        return Runner(path, cfg.backend, artifacts, cfg.precision, cfg.num_threads,
                      self.device.index or 0)

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


def backend_config(config: Optional[EngineConfig]) -> BackendConfig:
    """Return ``config`` as a :class:`BackendConfig` for fp32 graphs on a resolved device.

    Raises :class:`~.backends.BackendUnavailable` first when the backend's library is missing.
    """
    config = config or BackendConfig()
    if not isinstance(config, BackendConfig):
        config = BackendConfig(**dataclasses.asdict(config))
    library(config.backend)  # a missing extra fails before any loading or exporting
    device = config.device
    if device == 'auto':
        device = 'cuda' if config.backend == 'tensorrt' else 'cpu'
    return dataclasses.replace(config, device=device, dtype='float32')


class DepthGraphs:
    """The depth model as graphs, with the depth models' ``forward_latents`` contract.

    VPD's is conditioned on a scene id (its scene vectors are arrays here); EVP's on a caption,
    whose CLIP states its ``text`` graph computes (``takes_caption``).
    """

    def __init__(self, engine: GraphEngine, vae: Runner, unet: Runner, head: Runner,
                 text: Optional[Runner], token_length: int,
                 class_embeddings: Optional[np.ndarray], default_text: Optional[np.ndarray]
                 ) -> None:
        self.engine, self.vae, self.unet, self.head = engine, vae, unet, head
        self.text, self.token_length = text, token_length
        self.takes_caption = text is not None
        #: (classes, D) scene vectors (VPD); the engine checks scene ids against their count
        self.class_embeddings = (None if class_embeddings is None
                                 else torch.from_numpy(class_embeddings))
        self.default_text = default_text

    def encode_text(self, texts: Sequence[str]) -> TextFeatures:
        """Return the caption's CLIP states (B, L, D) (EVP)."""
        return encode_texts(self.text, texts, self.token_length)

    def forward_latents(self, latents: torch.Tensor, size: Sequence[int],
                        condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict (1, 1, h, w) metres from latents of the padded image.

        ``condition``: VPD, a scene-id tensor or ``None`` (the mean scene vector); EVP, the
        caption's CLIP states (1, L, D).
        """
        check_size(self.engine, size)
        if self.takes_caption:
            text = host(condition)
        elif condition is not None:  # scene ids were checked by the engine (VPDEngine._scene)
            text = host(self.class_embeddings[int(condition.reshape(-1)[0])]).reshape(1, 1, -1)
        else:
            text = self.default_text
        with self.engine.timed('depth_unet'):
            feats = self.unet(latents=host(latents), text=text)
        (depth,) = self.head(**dict(zip(FEATURES, feats)))
        return torch.from_numpy(depth)


class ReferGraphs:
    """The referring model (and its text tower) as graphs, with the referring models' contract."""

    def __init__(self, engine: GraphEngine, vae: Runner, unet: Runner, head: Runner,
                 text: Optional[Runner], token_length: int) -> None:
        self.engine, self.vae, self.unet, self.head = engine, vae, unet, head
        self.text, self.token_length = text, token_length

    def encode_text(self, texts: Sequence[str]) -> TextFeatures:
        """Return CLIP ``last_hidden_state`` (Q, L, D) for texts."""
        return encode_texts(self.text, texts, self.token_length)

    def forward_latents(self, latents: torch.Tensor, text_embeddings: torch.Tensor,
                        size: Sequence[int]) -> torch.Tensor:
        """Return (Q, 2, h, w) logits for latents (Q, ...) and text features (Q, L, D)."""
        check_size(self.engine, size)
        with self.engine.timed('refer_unet'):
            feats = self.unet(latents=host(latents), text=host(text_embeddings))
        (logits,) = self.head(**dict(zip(FEATURES, feats)))
        return torch.from_numpy(logits)


def encode_texts(text: Optional[Runner], texts: Sequence[str], token_length: int
                 ) -> TextFeatures:
    """Tokenize ``texts`` and run the text graph: CLIP states (B, L, D) and truncation flags."""
    if text is None:
        raise RuntimeError('this model has no text encoder')
    tokens = tokenize(texts, token_length)
    (states,) = text(input_ids=tokens.input_ids.numpy())
    return TextFeatures(embeddings=torch.from_numpy(states), truncated=tokens.truncated)


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
