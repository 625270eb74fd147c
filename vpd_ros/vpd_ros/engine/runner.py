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
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from diffusers.models.attention_processor import Attention, AttnProcessor

from ..model import VPDDepth, VPDRefer, get_preset
from ..model.attention import AttentionMapProcessor
from ..model.text import tokenize
from .config import FRAME_DEFAULTS, EngineConfig, check_option, check_tasks
from .tta import shift_window_flip

DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
#: torch.compile keeps one graph per (model, number of queries); the default limit of 8 is low.
COMPILE_CACHE_LIMIT = 64


@dataclass
class Prediction:
    """One frame's results at the input resolution.

    Args:
        depth: (H, W) float32 metres, or ``None`` when depth was not requested.
        masks: (Q, H, W) bool, one per query.
        probs: (Q, H, W) float32 foreground probability.
        scores: per query, mean foreground probability inside its mask (0 when empty).
        truncated: per query, whether the text was cut to the model's token length.
        timings: milliseconds per stage (preprocess, vae, text, depth, refer, postprocess, total);
            ``depth`` and ``refer`` are further split into ``*_unet`` (the backbone forward)
            and ``*_head`` (conditioning, head, crop and upsampling to the model size).
    """

    depth: Optional[np.ndarray]
    masks: np.ndarray
    probs: np.ndarray
    scores: List[float]
    truncated: List[bool]
    timings: Dict[str, float] = field(default_factory=dict)


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


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Return True when two modules hold bit-identical tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


class VPDEngine:
    """Run VPD depth and/or referring segmentation on camera frames.

    Args:
        depth: a :class:`VPDDepth` or ``None`` (refer-only).
        refer: a :class:`VPDRefer` or ``None`` (depth-only).
        config: an :class:`EngineConfig`.
    """

    def __init__(self, depth: Optional[VPDDepth], refer: Optional[VPDRefer],
                 config: Optional[EngineConfig] = None) -> None:
        if depth is None and refer is None:
            raise ValueError('the engine needs a depth model, a referring model, or both')
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        if self.config.num_threads is not None and self.device.type == 'cpu':
            torch.set_num_threads(self.config.num_threads)
        self.shared_vae = (depth is not None and refer is not None
                           and same_weights(depth.backbone.vae, refer.backbone.vae))
        if self.shared_vae:
            refer.backbone.vae = depth.backbone.vae  # one copy in device memory
        self._timings: Optional[Dict[str, float]] = None  # the running frame's, for the hooks
        fmt = torch.channels_last if self.config.channels_last else torch.contiguous_format
        self.depth = self._prepare(depth, fmt, 'depth')
        self.refer = self._prepare(refer, fmt, 'refer')
        native = (depth or refer).backbone.vae.config.sample_size
        self.input_size = self.config.input_size or (int(native), int(native))
        self._text_cache: 'OrderedDict[str, Tuple[torch.Tensor, bool]]' = OrderedDict()
        self._lock = threading.Lock()
        self._side_stream = None
        if (self.device.type == 'cuda' and self.config.overlap and self.depth is not None
                and self.refer is not None):
            self._side_stream = torch.cuda.Stream(self.device)
        if self.config.compile != 'none':
            self._compile()

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
        self._time_backbone(model.backbone, f'{task}_unet')
        return model

    def _sync(self) -> None:
        """Wait for the device when profiling, so that host clocks measure device work."""
        if self.config.profile and self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def _time_backbone(self, backbone: torch.nn.Module, name: str) -> None:
        """Add the backbone's forward time to the running frame's timings under ``name``."""
        starts: List[float] = []

        def before(_module: torch.nn.Module, _args: object) -> None:
            self._sync()
            starts.append(time.perf_counter())

        def after(_module: torch.nn.Module, _args: object, _out: object) -> None:
            self._sync()
            elapsed = (time.perf_counter() - starts.pop()) * 1e3
            if self._timings is not None:
                self._timings[name] = self._timings.get(name, 0.0) + elapsed

        backbone.register_forward_pre_hook(before)
        backbone.register_forward_hook(after)

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
            # An instance attribute: the module's hooks (stage timing) stay outside the graph.
            backbone.forward = torch.compile(backbone.forward, mode=mode, dynamic=False)
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
        """Load a vpd_ros model folder holding ``depth/`` and/or ``refer/`` (save_pretrained)."""
        check_tasks(tasks)
        models = {}
        for task, model_cls in (('depth', VPDDepth), ('refer', VPDRefer)):
            sub = os.path.join(folder, task)
            if task in tasks:
                if not os.path.isdir(sub):
                    raise FileNotFoundError(f'{sub} not found: task {task!r} needs a {task}/ '
                                            f'folder in {folder}')
                models[task] = model_cls.from_pretrained(sub)
        return cls(models.get('depth'), models.get('refer'), config)

    @classmethod
    def from_official(cls, depth_checkpoint: Optional[str], refer_checkpoint: Optional[str],
                      sd15: Optional[str] = None,
                      config: Optional[EngineConfig] = None) -> 'VPDEngine':
        """Load the official VPD checkpoints; ``sd15`` provides the CLIP text tower for queries."""
        depth = VPDDepth.from_official_checkpoint(depth_checkpoint) if depth_checkpoint else None
        refer = (VPDRefer.from_official_checkpoint(refer_checkpoint, text_encoder=sd15)
                 if refer_checkpoint else None)
        return cls(depth, refer, config)

    @classmethod
    def from_preset(cls, preset: str, tasks: Sequence[str] = ('depth', 'refer'), seed: int = 0,
                    config: Optional[EngineConfig] = None) -> 'VPDEngine':
        """Randomly initialised models of a preset (benchmarks and tests; outputs are noise).

        Both models share one VAE, as the official checkpoints do.
        """
        check_tasks(tasks)
        p = get_preset(preset)
        torch.manual_seed(seed)
        depth = VPDDepth(p['unet'], p['vae'], **p['depth']) if 'depth' in tasks else None
        refer = (VPDRefer(p['unet'], p['vae'], text_config=p['text'], **p['refer'])
                 if 'refer' in tasks else None)
        if depth is not None and refer is not None:
            refer.backbone.vae.load_state_dict(depth.backbone.vae.state_dict())
        return cls(depth, refer, config)

    # --- running ------------------------------------------------------------------------------

    @property
    def tasks(self) -> Tuple[str, ...]:
        """The tasks this engine can run."""
        return tuple(t for t, m in (('depth', self.depth), ('refer', self.refer)) if m is not None)

    @property
    def token_length(self) -> int:
        """Text tokens per query (0 without a referring model)."""
        return self.refer.token_length if self.refer is not None else 0

    @contextmanager
    def _stage(self, timings: Dict[str, float], name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self._sync()
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1e3

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

    def _depth_tta(self, x: torch.Tensor, scene: Optional[int]) -> torch.Tensor:
        def predict(batch: torch.Tensor) -> torch.Tensor:
            latents = self._encode(self.depth, batch)
            scenes = None if scene is None else torch.tensor([scene]).expand(batch.shape[0])
            return self.depth.forward_latents(latents, batch.shape[-2:], scenes)
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
                scene: Optional[int] = FRAME_DEFAULTS['scene']) -> Prediction:
        """Run one frame.

        Args:
            rgb: (H, W, 3) uint8 RGB image of any size.
            queries: referring expressions; each gets a mask (needs a referring model).
            depth: predict depth (needs a depth model).
            mask_threshold: foreground probability above which a pixel is in the mask, (0, 1)
                (0.5 = argmax).
            scene: depth scene-class id of the checkpoint, ``None`` for the mean of the class
                embeddings.
        """
        queries = list(queries)
        mask_threshold = check_option('mask_threshold', mask_threshold)
        scene = check_option('scene', scene)
        if depth and self.depth is None:
            raise RuntimeError('depth requested but this engine has no depth model')
        if queries and self.refer is None:
            raise RuntimeError('queries given but this engine has no referring model')
        with self._lock:
            self._timings = {}
            try:
                return self._predict(rgb, queries, depth, mask_threshold, scene,
                                     self._timings)
            finally:
                self._timings = None

    def _predict(self, rgb: np.ndarray, queries: List[str], depth: bool, mask_threshold: float,
                 scene: Optional[int], t: Dict[str, float]) -> Prediction:
        start = time.perf_counter()
        h, w = rgb.shape[:2] if isinstance(rgb, np.ndarray) and rgb.ndim == 3 else (0, 0)
        if self.config.compile == 'reduce-overhead':
            torch.compiler.cudagraph_mark_step_begin()
        with self._stage(t, 'preprocess'):
            x = self._to_model_input(rgb)
        size = x.shape[-2:]
        latents = None
        if queries or (depth and not self.config.tta):
            with self._stage(t, 'vae'):
                latents = self._encode(self.depth if depth else self.refer, x)
        text, truncated = None, []
        if queries:
            with self._stage(t, 'text'):
                text, truncated = self.text_features(queries)
        # Not with CUDA graphs (reduce-overhead): their replay on a second stream is untested.
        overlap = (self._side_stream is not None and depth and bool(queries)
                   and not self.config.profile and not self.config.tta
                   and self.config.compile != 'reduce-overhead')
        depth_out, logits = None, None
        if depth:
            with self._stage(t, 'depth'), self._side_stream_if(overlap):
                if self.config.tta:
                    depth_out = self._depth_tta(x, scene)
                else:
                    scenes = None if scene is None else torch.tensor([scene])
                    depth_out = self.depth.forward_latents(latents, size, scenes)
        if queries:
            refer_latents = latents
            if depth and not (self.shared_vae and self.config.shared_encode):
                with self._stage(t, 'vae'):
                    refer_latents = self._encode(self.refer, x)
            with self._stage(t, 'refer'):
                batch = refer_latents.expand(len(queries), -1, -1, -1)
                logits = self.refer.forward_latents(batch, text, size)
        if overlap:
            main = torch.cuda.current_stream(self.device)
            main.wait_stream(self._side_stream)
            depth_out.record_stream(main)
        for task in ('depth', 'refer'):
            if task in t:
                t[f'{task}_head'] = t[task] - t.get(f'{task}_unet', 0.0)
        with self._stage(t, 'postprocess'):
            out_depth, probs = self._postprocess(depth_out, logits, (h, w))
            masks = probs > mask_threshold
            scores = [float(p[m].mean()) if m.any() else 0.0 for p, m in zip(probs, masks)]
        t['total'] = (time.perf_counter() - start) * 1e3
        return Prediction(depth=out_depth, masks=masks, probs=probs, scores=scores,
                          truncated=truncated, timings=t)

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

    def release(self) -> None:
        """Drop the models and free device memory (lifecycle cleanup)."""
        with self._lock:
            self.depth = self.refer = None
            self._text_cache.clear()
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

