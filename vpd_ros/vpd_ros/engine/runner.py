# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deployment engine: RGB uint8 frames of any size in, metric depth and referred masks out.

It owns device and dtype, resizes to the model size and back, encodes each frame with the VAE
once when the depth and referring models share VAE weights (the official checkpoints do), caches
text features per query, runs all queries of a frame as one batch, and times each stage.
No ROS here.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from diffusers.models.attention_processor import Attention, AttnProcessor

from ..model import EVPDepth, EVPRefer, VPDDepth, VPDRefer, get_preset
from ..model.presets import FAMILIES, split_model_name
from ..model.evp_depth import DEFAULT_CAPTION
from ..model.official import load_official_checkpoint
from ..model.pretrained import saved_class_name
from ..model.attention import AttentionMapProcessor
from ..model.depth import check_scene_ids
from ..model.text import tokenize
from .config import FRAME_DEFAULTS, EngineConfig, check_option, check_tasks
from .stage_clock import HostEvent, StageClock
from .score_calibration import ScoreCalibration
from .tta import shift_window_flip

DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
#: torch.compile keeps one graph per (model, number of queries); the default limit of 8 is low.
COMPILE_CACHE_LIMIT = 64
#: Model attribute -> stage suffix of its forward time (``depth_unet``, ``refer_imafr``, ...).
TIMED_PARTS = {'backbone': 'unet', 'aggregation': 'imafr', 'bins': 'bins'}
#: task -> the model classes a saved folder of that task may hold (the first: no class named).
TASK_MODELS = {'depth': (VPDDepth, EVPDepth), 'refer': (VPDRefer, EVPRefer)}
#: Preset section -> (model class, whether it takes the preset's CLIP text config).
PRESET_MODELS = {'depth': (VPDDepth, False), 'refer': (VPDRefer, True),
                 'evp_depth': (EVPDepth, True), 'evp_refer': (EVPRefer, True)}


@dataclass
class Prediction:
    """One frame's results at the input resolution.

    Args:
        depth: (H, W) float32 metres, or ``None`` when depth was not requested.
        masks: (Q, H, W) bool, one per query.
        probs: (Q, H, W) float32 foreground probability.
        scores: per query, the estimated probability that its mask is the referred object
            (IoU >= 0.5) when the model has a score calibration (the shipped ``tiny`` has one,
            fitted on held-out rendered rooms), else the mean foreground probability inside
            the mask; 0 for an empty mask.
        truncated: per query, whether the text was cut to the model's token length.
        timings: milliseconds per stage (preprocess, vae, text, depth, refer, postprocess, total);
            ``depth`` and ``refer`` are further split into ``*_unet`` (the backbone forward),
            for EVP ``*_imafr`` (feature refinement) and ``depth_bins`` (metric-bins head),
            and ``*_head`` (the rest: conditioning, head, crop and upsampling to the model size).
    """

    depth: Optional[np.ndarray]
    masks: np.ndarray
    probs: np.ndarray
    scores: List[float]
    truncated: List[bool]
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class LatestFrame:
    """What ``ground_latest`` reuses of the frame last run by ``predict`` (one frame kept).

    Args:
        frame_id: the caller's id of that frame.
        x: the model input (1, 3, h, w), kept for a referring encode the frame did not need.
        refer_latents: the referring model's VAE latents, or ``None`` until one is needed.
        depth: its depth at the input resolution, or ``None`` when depth was not run.
        size: the input (H, W).
    """

    frame_id: object
    x: torch.Tensor
    refer_latents: Optional[torch.Tensor]
    depth: Optional[np.ndarray]
    size: Tuple[int, int]


def saved_model_class(folder: str, task: str) -> type:
    """Return the class that wrote a task's saved folder (VPD when its config names none)."""
    name = saved_class_name(folder)
    for model_cls in TASK_MODELS[task]:
        if name in (None, model_cls.__name__):
            return model_cls
    raise ValueError(f'{folder}: config.json names class {name!r}, not a {task} model '
                     f'({", ".join(c.__name__ for c in TASK_MODELS[task])})')


def resolve_device(device: str) -> torch.device:
    """Turn ``auto`` into CUDA when available; refuse CUDA when there is none."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Turn ``auto`` into float16 on CUDA and float32 on CPU."""
    if dtype == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    return DTYPES[dtype]


def compile_uses_cuda_graphs(mode: str) -> bool:
    """Return whether ``torch.compile`` in ``mode`` captures CUDA graphs (on CUDA tensors)."""
    if mode == 'none':
        return False
    from torch._inductor import list_mode_options

    return bool(list_mode_options(None if mode == 'default' else mode).get('triton.cudagraphs'))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Return True when two modules hold bit-identical tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


class VPDEngine:
    """Run VPD depth and/or referring segmentation on camera frames.

    Args:
        depth: a :class:`VPDDepth` or :class:`EVPDepth`, or ``None`` (refer-only).
        refer: a :class:`VPDRefer` or :class:`EVPRefer`, or ``None`` (depth-only).
        config: an :class:`EngineConfig`.

    EVP depth is conditioned on a scene caption (:meth:`set_caption`, default
    ``DEFAULT_CAPTION``) or on EVP's aggregated caption embedding (:meth:`set_caption_embedding`).
    """

    def __init__(self, depth: Optional[VPDDepth], refer: Optional[VPDRefer],
                 config: Optional[EngineConfig] = None) -> None:
        if depth is None and refer is None:
            raise ValueError('the engine needs a depth model, a referring model, or both')
        self._configure(config or EngineConfig())
        self.shared_vae = (depth is not None and refer is not None
                           and depth.backbone.latent_divisor == refer.backbone.latent_divisor
                           and same_weights(depth.backbone.vae, refer.backbone.vae))
        if self.shared_vae:
            refer.backbone.vae = depth.backbone.vae  # one copy in device memory
        fmt = torch.channels_last if self.config.channels_last else torch.contiguous_format
        self.depth = self._prepare(depth, fmt, 'depth')
        self.refer = self._prepare(refer, fmt, 'refer')
        native = (depth or refer).backbone.vae.config.sample_size
        self.input_size = self.config.input_size or (int(native), int(native))
        self._init_serving()
        if self.config.compile != 'none':
            self._compile()

    def _configure(self, config: EngineConfig) -> None:
        """Take the config: device, dtype and (on the CPU) the process's thread count."""
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        if config.num_threads is not None and self.device.type == 'cpu':
            torch.set_num_threads(config.num_threads)

    def _init_serving(self) -> None:
        """Set the serving state (caches, lock, side stream) once the models are in place."""
        self._clock: Optional[StageClock] = None  # the running frame's, for the hooks
        self._text_cache: 'OrderedDict[str, Tuple[torch.Tensor, bool]]' = OrderedDict()
        self._scene_cache: Optional[Tuple[int, torch.Tensor]] = None
        #: Turns mask statistics into calibrated scores; set by from_pretrained when present.
        self.score_calibration: Optional[ScoreCalibration] = None
        self._lock = threading.Lock()
        #: torch.compile captures CUDA graphs: one graph step per frame, no second stream.
        self.uses_cuda_graphs = (self.device.type == 'cuda'
                                 and compile_uses_cuda_graphs(self.config.compile))
        self._side_stream = None
        if (self.device.type == 'cuda' and self.config.overlap and self.depth is not None
                and self.refer is not None):
            self._side_stream = torch.cuda.Stream(self.device)
        self._caption_states: Optional[torch.Tensor] = None
        self.caption = DEFAULT_CAPTION
        self._latest: Optional[LatestFrame] = None

    def _prepare(self, model: Optional[torch.nn.Module], fmt: torch.memory_format, task: str):
        if model is None:
            return None
        model = model.eval().requires_grad_(False)
        torch.nn.Module.to(model, self.device, self.dtype)  # ModelMixin.to warns needlessly
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.weight.ndim == 4:
                module.to(memory_format=fmt)
        if self.config.attention == 'explicit':
            set_explicit_attention(model)
        for attribute, stage in TIMED_PARTS.items():
            if isinstance(getattr(model, attribute, None), torch.nn.Module):
                self._time_module(getattr(model, attribute), f'{task}_{stage}')
        return model

    def _new_clock(self) -> StageClock:
        """Return a frame's clock: CUDA events, or the host clock (synchronised if profiling)."""
        if self.device.type != 'cuda':
            return StageClock(HostEvent)
        if self.config.profile:
            return StageClock(lambda: HostEvent(lambda: torch.cuda.synchronize(self.device)))
        return StageClock(lambda: torch.cuda.Event(enable_timing=True))

    def _time_module(self, module: torch.nn.Module, name: str) -> None:
        """Add the module's forward time to the running frame's timings under ``name``."""
        def before(_module: torch.nn.Module, _args: object) -> None:
            if self._clock is not None:
                self._clock.begin(name)

        def after(_module: torch.nn.Module, _args: object, _out: object) -> None:
            if self._clock is not None:
                self._clock.end(name)

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    def _compile(self) -> None:
        """Wrap each backbone forward and the VAE encoder in ``torch.compile`` (lazy)."""
        import torch._dynamo  # noqa: F401  (makes torch._dynamo.config importable)

        limit = max(torch._dynamo.config.cache_size_limit, COMPILE_CACHE_LIMIT)
        torch._dynamo.config.cache_size_limit = limit
        mode = None if self.config.compile == 'default' else self.config.compile
        vaes: List[torch.nn.Module] = []
        for model in (self.depth, self.refer):
            if model is None:
                continue
            backbone = model.backbone
            # An instance attribute: the module's hooks (stage timing) and the forward's
            # clean-up of its taps stay outside the graph.
            backbone.unet_features = torch.compile(backbone.unet_features, mode=mode,
                                                   dynamic=False)
            if not any(backbone.vae is v for v in vaes):
                vaes.append(backbone.vae)
                backbone.vae.encoder.compile(mode=mode, dynamic=False)

    def warmup(self, queries: int = 1, iterations: int = 2) -> float:
        """Run blank frames through every task so that lazy set-up happens now; return seconds.

        CUDA context and kernel selection, and with ``compile`` the compilation (minutes)
        and CUDA-graph capture, happen on the first frames. ``queries`` is the number of
        queries per frame to prepare for (compiled graphs are specialised on it); the
        warm-up texts are dropped from the text cache afterwards.
        """
        if queries < 0 or iterations < 1:
            raise ValueError(f'warmup needs queries >= 0 and iterations >= 1, got {queries}, '
                             f'{iterations}')
        start = time.perf_counter()
        texts = [f'warm-up query {i}' for i in range(queries)] if self.refer is not None else []
        frame = np.zeros(self.input_size + (3,), np.uint8)
        for _ in range(iterations):
            self.predict(frame, texts, depth=self.depth is not None)
        with self._lock:
            for text in texts:
                self._text_cache.pop(text, None)
        return time.perf_counter() - start

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: str, tasks: Sequence[str] = ('depth', 'refer'),
                        config: Optional[EngineConfig] = None) -> 'VPDEngine':
        """Load a vpd_ros model folder holding ``depth/`` and/or ``refer/`` (save_pretrained).

        Each sub-folder's ``config.json`` names its class, VPD's or EVP's (as diffusers does).
        """
        check_tasks(tasks)
        models = {}
        for task in tasks:
            sub = os.path.join(folder, task)
            if not os.path.isdir(sub):
                raise FileNotFoundError(f'{sub} not found: task {task!r} needs a {task}/ '
                                        f'folder in {folder}')
            models[task] = saved_model_class(sub, task).from_pretrained(sub)
        engine = cls(models.get('depth'), models.get('refer'), config)
        if engine.refer is not None:
            engine.score_calibration = ScoreCalibration.load(os.path.join(folder, 'refer'))
        return engine

    @classmethod
    def from_official(cls, depth_checkpoint: Optional[str], refer_checkpoint: Optional[str],
                      sd15: Optional[str] = None, config: Optional[EngineConfig] = None,
                      preset: Optional[str] = None) -> 'VPDEngine':
        """Load official VPD or EVP checkpoints, each recognised by its content.

        ``sd15`` provides the CLIP text tower for VPD's referring file (EVP files hold theirs);
        ``preset`` the sizes, by default read from each file (``sd15`` for the released ones).
        """
        depth = (load_official_checkpoint(depth_checkpoint, 'depth', preset)[1]
                 if depth_checkpoint else None)
        refer = (load_official_checkpoint(refer_checkpoint, 'refer', preset, text_encoder=sd15)[1]
                 if refer_checkpoint else None)
        return cls(depth, refer, config)

    @classmethod
    def from_preset(cls, preset: str, tasks: Sequence[str] = ('depth', 'refer'), seed: int = 0,
                    config: Optional[EngineConfig] = None) -> 'VPDEngine':
        """Randomly initialised models of a preset (benchmarks and tests; outputs are noise).

        ``preset`` is a model name (:func:`~vpd_ros.model.presets.split_model_name`): ``tiny``
        and ``sd15`` build VPD, ``evp-tiny`` and ``evp-sd15`` EVP. VPD's two models share one
        VAE, as its official checkpoints do; EVP's have their own (as its checkpoints). The
        weights are drawn on the engine's device (on CUDA: seconds for sd15 instead of a minute
        on the host CPU and a copy); the same seed gives the same weights on the same device.
        """
        check_tasks(tasks)
        config = config or EngineConfig()
        family, size = split_model_name(preset)
        p = get_preset(size)
        torch.manual_seed(seed)
        models = {}
        with torch.device(resolve_device(config.device)):
            for task, section in zip(('depth', 'refer'), FAMILIES[family]):
                if task in tasks:
                    model_cls, takes_text = PRESET_MODELS[section]
                    text = {'text_config': p['text']} if takes_text else {}
                    models[task] = model_cls(p['unet'], p['vae'], **text, **p[section])
        depth, refer = models.get('depth'), models.get('refer')
        if family == 'vpd' and depth is not None and refer is not None:
            refer.backbone.vae.load_state_dict(depth.backbone.vae.state_dict())
        return cls(depth, refer, config)

    # --- running ------------------------------------------------------------------------------

    @property
    def tasks(self) -> Tuple[str, ...]:
        """The tasks this engine can run."""
        return tuple(t for t, m in (('depth', self.depth), ('refer', self.refer)) if m is not None)

    @property
    def takes_caption(self) -> bool:
        """Whether depth is conditioned on a caption (EVP), not on a scene class (VPD)."""
        return bool(getattr(self.depth, 'takes_caption', False))

    @property
    def token_length(self) -> int:
        """Text tokens per query (0 without a referring model)."""
        return self.refer.token_length if self.refer is not None else 0

    def truncated(self, queries: Sequence[str]) -> List[bool]:
        """Return, per query, whether it is longer than the model's text tokens (and so cut)."""
        if self.refer is None:
            return [False] * len(queries)
        return list(tokenize(list(queries), self.token_length).truncated)

    def text_features(self, queries: Sequence[str]) -> Tuple[torch.Tensor, List[bool]]:
        """Return (Q, L, D) text features for queries, computing only those not cached."""
        if self.refer is None:
            raise RuntimeError('this engine has no referring model')
        if not self.config.text_cache:
            encoded = self.refer.encode_text(list(queries))
            return encoded.embeddings, list(encoded.truncated)
        missing = list(dict.fromkeys(q for q in queries if q not in self._text_cache))
        if missing:
            encoded = self.refer.encode_text(missing)
            for q, emb, cut in zip(missing, encoded.embeddings, encoded.truncated):
                self._text_cache[q] = (emb, cut)
        for q in queries:
            self._text_cache.move_to_end(q)
        feats = [self._text_cache[q] for q in queries]
        while len(self._text_cache) > max(self.config.text_cache_size, len(queries)):
            self._text_cache.popitem(last=False)
        return torch.stack([f[0] for f in feats]), [f[1] for f in feats]

    def _upload(self, rgb: np.ndarray) -> torch.Tensor:
        """Return the frame as a uint8 tensor on the device (through pinned memory on CUDA)."""
        src = torch.from_numpy(np.ascontiguousarray(rgb))
        if self.device.type != 'cuda':
            return src
        if self.config.pinned_memory:
            # torch's caching host allocator recycles the block once the copy has finished.
            src = torch.empty(src.shape, dtype=src.dtype, pin_memory=True).copy_(src)
        return src.to(self.device, non_blocking=True)

    def _to_host(self, x: torch.Tensor) -> np.ndarray:
        """Return a device tensor as a numpy array (through pinned memory on CUDA)."""
        if self.device.type == 'cuda' and self.config.pinned_memory:
            out = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
            out.copy_(x, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return out.numpy()
        return x.cpu().numpy()

    def _to_model_input(self, rgb: np.ndarray) -> torch.Tensor:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
                or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise ValueError('expected an (H, W, 3) uint8 RGB array, got '
                             f'{getattr(rgb, "dtype", type(rgb))} {getattr(rgb, "shape", "")}')
        # Resized in float32: antialiased resizing has no bfloat16/float16 CPU kernel.
        x = self._upload(rgb).permute(2, 0, 1)[None].float().div_(255.0)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode='bilinear', align_corners=False,
                              antialias=True)
        x = x.to(self.dtype)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.clamp_(0.0, 1.0)

    def _encode(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model.backbone.encode_rgb(x)

    def _scene(self, scene: Optional[int]) -> Optional[torch.Tensor]:
        """Return a VPD scene id as a device tensor, checked on the host once per id (no sync).

        EVP depth has no scene classes (it is conditioned on a caption): ``None``.
        """
        if scene is None or self.takes_caption:
            return None
        if self._scene_cache is None or self._scene_cache[0] != scene:
            check_scene_ids([scene], self.depth.class_embeddings.shape[0])
            self._scene_cache = (scene, torch.tensor([scene], device=self.device))
        return self._scene_cache[1]

    def set_caption(self, caption: Optional[str]) -> None:
        """Set the scene caption EVP depth is conditioned on; ``None`` = ``DEFAULT_CAPTION``.

        VPD depth ignores it. Setting the current caption again changes nothing.
        """
        caption = DEFAULT_CAPTION if caption is None else caption
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f'caption must be a non-empty string, got {caption!r}')
        with self._lock:
            if caption != self.caption:
                self.caption, self._caption_states = caption, None

    def set_caption_embedding(self, states: torch.Tensor) -> None:
        """Condition EVP depth on ready CLIP states (1, L, D), e.g. EVP's aggregated embedding."""
        if not self.takes_caption:
            raise RuntimeError('only an EVP depth model takes a caption embedding')
        if states.ndim != 3 or states.shape[0] != 1 or states.shape[1] != self.depth.token_length:
            raise ValueError(f'caption embedding must be (1, {self.depth.token_length}, D), got '
                             f'{tuple(states.shape)}')
        with self._lock:
            self.caption, self._caption_states = '', states.to(self.device, self.dtype)

    def _depth_forward(self, latents: torch.Tensor, size: Sequence[int],
                       scene: Optional[torch.Tensor]) -> torch.Tensor:
        """VPD depth is conditioned on a scene-class id, EVP depth on the caption's CLIP states."""
        if self.takes_caption:
            if self._caption_states is None:
                self._caption_states = self.depth.encode_text([self.caption]).embeddings
            return self.depth.forward_latents(latents, size, self._caption_states)
        scenes = None if scene is None else scene.expand(latents.shape[0])
        return self.depth.forward_latents(latents, size, scenes)

    def _depth_tta(self, x: torch.Tensor, scene: Optional[torch.Tensor]) -> torch.Tensor:
        def predict(batch: torch.Tensor) -> torch.Tensor:
            return self._depth_forward(self._encode(self.depth, batch), batch.shape[-2:], scene)
        if self.takes_caption:  # EVP's NYUv2 test: 8 windows every 22 px + flips
            return shift_window_flip(predict, x, shift_size=8, official_spacing=True)
        return shift_window_flip(predict, x)

    @contextmanager
    def _side_stream_if(self, active: bool) -> Iterator[None]:
        """Run the block on the side stream, ordered after the work queued so far."""
        if not active:
            yield
            return
        self._side_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._side_stream):
            yield

    @torch.inference_mode()
    def predict(self, rgb: np.ndarray, queries: Sequence[str] = (), depth: bool = True,
                mask_threshold: float = FRAME_DEFAULTS['mask_threshold'],
                scene: Optional[int] = FRAME_DEFAULTS['scene'],
                frame_id: object = None) -> Prediction:
        """Run one frame.

        Args:
            rgb: (H, W, 3) uint8 RGB image of any size.
            queries: referring expressions; each gets a mask (needs a referring model).
            depth: predict depth (needs a depth model).
            mask_threshold: foreground probability above which a pixel is in the mask, (0, 1)
                (0.5 = argmax).
            scene: depth scene-class id of the checkpoint, ``None`` for the mean of the class
                embeddings.
            frame_id: when given, keep this frame's model input, latents and depth under that
                id for :meth:`ground_latest` (the previous frame's are dropped).
        """
        queries = list(queries)
        mask_threshold = check_option('mask_threshold', mask_threshold)
        scene = check_option('scene', scene)
        if depth and self.depth is None:
            raise RuntimeError('depth requested but this engine has no depth model')
        if queries and self.refer is None:
            raise RuntimeError('queries given but this engine has no referring model')
        with self._running() as clock:
            return self._predict(rgb, queries, depth, mask_threshold, scene, clock, frame_id)

    @torch.inference_mode()
    def ground_latest(self, queries: Sequence[str], frame_id: object,
                      mask_threshold: float = FRAME_DEFAULTS['mask_threshold']
                      ) -> Optional[Prediction]:
        """Run ``queries`` on the kept frame ``frame_id``, reusing its latents and depth.

        Only the text and the referring pass run (and the referring VAE encode when that frame
        had none). The result equals ``predict`` on that frame with these queries. Returns
        ``None`` when the engine does not hold ``frame_id`` (the caller runs ``predict``).
        """
        queries = list(queries)
        mask_threshold = check_option('mask_threshold', mask_threshold)
        if not queries or self.refer is None:
            raise RuntimeError('ground_latest needs queries and a referring model')
        with self._running() as clock:
            latest = self._latest
            if latest is None or latest.frame_id != frame_id:
                return None
            start = time.perf_counter()
            if latest.refer_latents is None:
                with clock.stage('vae'):
                    latest.refer_latents = self._keep(self._encode(self.refer, latest.x))
            with clock.stage('text'):
                text, truncated = self.text_features(queries)
            with clock.stage('refer'):
                batch = latest.refer_latents.expand(len(queries), -1, -1, -1)
                logits = self.refer.forward_latents(batch, text, latest.x.shape[-2:])
            return self._prediction(None, logits, latest.size, mask_threshold, truncated, clock,
                                    start, depth=latest.depth)

    @contextmanager
    def _running(self) -> Iterator[StageClock]:
        """Hold the engine for one call with a fresh stage clock; free memory after CUDA OOM."""
        with self._lock:
            if self.device.type == 'cuda':
                torch.backends.cuda.matmul.allow_tf32 = self.config.tf32
                torch.backends.cudnn.allow_tf32 = self.config.tf32
            self._clock = self._new_clock()
            try:
                yield self._clock
            except torch.OutOfMemoryError as error:
                self._free_after_oom(error)
                raise
            finally:
                self._clock = None

    def _keep(self, latents: torch.Tensor) -> torch.Tensor:
        """Return latents that outlive the frame (CUDA-graph outputs are overwritten)."""
        return latents.clone() if self.uses_cuda_graphs else latents

    def _free_after_oom(self, error: BaseException) -> None:
        """Drop the failed frame's tensors (held by its traceback) and return them to CUDA."""
        traceback.clear_frames(error.__traceback__)
        gc.collect()
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()

    def _overlaps(self, depth: bool, queries: Sequence[str]) -> bool:
        """Whether this frame runs the depth UNet on the side stream.

        Not with profiling (it synchronises every stage), TTA, or CUDA graphs (graphs of one
        private memory pool replayed on two streams).
        """
        return (self._side_stream is not None and depth and bool(queries)
                and not self.config.profile and not self.config.tta
                and not self.uses_cuda_graphs)

    def _predict(self, rgb: np.ndarray, queries: List[str], depth: bool, mask_threshold: float,
                 scene: Optional[int], clock: StageClock, frame_id: object) -> Prediction:
        start = time.perf_counter()
        h, w = rgb.shape[:2] if isinstance(rgb, np.ndarray) and rgb.ndim == 3 else (0, 0)
        if self.uses_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with clock.stage('preprocess'):
            x = self._to_model_input(rgb)
        size = x.shape[-2:]
        latents = None
        if queries or (depth and not self.config.tta):
            with clock.stage('vae'):
                latents = self._encode(self.depth if depth else self.refer, x)
        text, truncated = None, []
        if queries:
            with clock.stage('text'):
                text, truncated = self.text_features(queries)
        overlap = self._overlaps(depth, queries)
        depth_out, logits = None, None
        if depth:
            # Events of the overlapped stage are recorded on the side stream it runs on.
            with self._side_stream_if(overlap), clock.stage('depth'):
                if self.config.tta:
                    depth_out = self._depth_tta(x, self._scene(scene))
                else:
                    depth_out = self._depth_forward(latents, size, self._scene(scene))
        refer_latents = None  # the referring model's latents, when this frame has them
        if not depth or (self.shared_vae and self.config.shared_encode):
            refer_latents = latents
        if queries:
            if refer_latents is None:
                with clock.stage('vae'):
                    refer_latents = self._encode(self.refer, x)
            with clock.stage('refer'):
                batch = refer_latents.expand(len(queries), -1, -1, -1)
                logits = self.refer.forward_latents(batch, text, size)
        if overlap:
            main = torch.cuda.current_stream(self.device)
            main.wait_stream(self._side_stream)
            depth_out.record_stream(main)
        prediction = self._prediction(depth_out, logits, (h, w), mask_threshold, truncated,
                                      clock, start)
        if frame_id is not None:
            keep = None if refer_latents is None or self.refer is None else self._keep(
                refer_latents)
            self._latest = LatestFrame(frame_id, x, keep, prediction.depth, (h, w))
        return prediction

    def _prediction(self, depth_out: Optional[torch.Tensor], logits: Optional[torch.Tensor],
                    size: Tuple[int, int], mask_threshold: float, truncated: List[bool],
                    clock: StageClock, start: float,
                    depth: Optional[np.ndarray] = None) -> Prediction:
        """Resize to the input ``size``, threshold and score; ``depth`` is one already resized."""
        with clock.stage('postprocess'):
            out_depth, probs = self._postprocess(depth_out, logits, size)
            masks = probs > mask_threshold
            if self.score_calibration is not None:
                scores = self.score_calibration.score(probs, masks)
            else:
                scores = [float(p[m].mean()) if m.any() else 0.0 for p, m in zip(probs, masks)]
        t = clock.resolve()
        for task in ('depth', 'refer'):
            if task in t:
                t[f'{task}_head'] = t[task] - sum(t.get(f'{task}_{stage}', 0.0)
                                                  for stage in TIMED_PARTS.values())
        t['total'] = (time.perf_counter() - start) * 1e3
        return Prediction(depth=depth if out_depth is None else out_depth, masks=masks,
                          probs=probs, scores=scores, truncated=truncated, timings=t)

    def _postprocess(self, depth: Optional[torch.Tensor], logits: Optional[torch.Tensor],
                     size: Tuple[int, int]) -> Tuple[Optional[np.ndarray], np.ndarray]:
        out_depth = None
        if depth is not None:
            d = F.interpolate(depth.float(), size=size, mode='bilinear', align_corners=False)
            out_depth = self._to_host(d[0, 0])
        probs = np.zeros((0,) + tuple(size), np.float32)
        if logits is not None:
            # softmax(l)[1] = sigmoid(l1 - l0), and bilinear interpolation is linear: upsample
            # one channel instead of two.
            logits = logits.float()
            diff = logits[:, 1:] - logits[:, :1]
            up = F.interpolate(diff, size=size, mode='bilinear', align_corners=True)
            probs = self._to_host(torch.sigmoid(up[:, 0]))
        return out_depth, probs

    def release_thread_graphs(self) -> None:
        """Free the CUDA graphs the calling thread recorded (CUDA-graph trees are per thread).

        A thread that warmed the engine up but will not serve it calls this, and so does a
        serving thread before it ends; without CUDA graphs it does nothing.
        """
        if self.uses_cuda_graphs:
            from torch._inductor.cudagraph_trees import reset_cudagraph_trees

            with self._lock:
                reset_cudagraph_trees()

    @contextmanager
    def serving(self, queries: int = 1) -> Iterator[None]:
        """Bracket the thread that runs the frames (CUDA graphs are recorded per thread).

        With CUDA graphs, record them on this thread first (``queries`` per frame) and free
        them when the block ends; otherwise do nothing.
        """
        if self.uses_cuda_graphs:
            self.warmup(queries, iterations=3)  # warm-up run, recording, one replay
        try:
            yield
        finally:
            self.release_thread_graphs()

    def device_memory_mb(self) -> Dict[str, float]:
        """Return the CUDA memory this process has allocated and reserved, in MiB ({} off CUDA)."""
        if self.device.type != 'cuda':
            return {}
        return {'allocated': torch.cuda.memory_allocated(self.device) / 2 ** 20,
                'reserved': torch.cuda.memory_reserved(self.device) / 2 ** 20}

    def release(self) -> None:
        """Drop the models and free device memory (lifecycle cleanup).

        With ``compile`` this also resets torch.compile (process-wide: its compiled code, and
        the calling thread's CUDA graphs), which would otherwise keep the models alive.
        """
        with self._lock:
            self.depth = self.refer = None
            self._latest = None
            self._text_cache.clear()
            self._scene_cache = None
            if self.config.compile != 'none':
                torch._dynamo.reset()
            gc.collect()
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()


def set_explicit_attention(model: torch.nn.Module) -> None:
    """Give every attention layer the explicit (materialised softmax) processor, as VPD ran it.

    Layers that capture VPD's attention maps keep their :class:`AttentionMapProcessor` (already
    explicit); a CLIP text tower switches to transformers' eager attention.
    """
    for module in model.modules():
        if isinstance(module, Attention) and not isinstance(module.processor,
                                                            AttentionMapProcessor):
            module.set_processor(AttnProcessor())
    text_encoder = getattr(model, 'text_encoder', None)
    if text_encoder is not None:
        text_encoder.set_attn_implementation('eager')

