# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The engine's models as exportable graphs, and their export to ONNX at a fixed input size.

Each graph is a small ``nn.Module`` around the torch model with tensor inputs and outputs:

========== ====================================== ====================================
graph      inputs                                 outputs
========== ====================================== ====================================
vae        image (1, 3, H, W) in [0, 1]           latents (1, 4, Hp/8, Wp/8), padded
depth_unet latents, text (1, 1, D) scene vector   f1..f4 (the backbone's feature taps)
           (EVP: (1, L, D) caption states)
depth_head f1..f4                                 depth (1, 1, H, W) metres
depth_text input_ids (1, L) int64 (EVP only)      text (1, L, D), the caption's CLIP states
refer_unet latents (Q, ..), text (Q, L, D)        f1..f4 (f2, f3 with attention maps)
refer_head f1..f4                                 logits (Q, 2, H, W)
text       input_ids (Q, L) int64                 text (Q, L, D), CLIP last_hidden_state
========== ====================================== ====================================

Q (queries) is a dynamic axis. VPD and EVP models give the same graphs (EVP's IMAFR and bins
head are inside its head graphs; its VAE graph divides by its latent divisor). The TorchScript
tracer exports: torch.export computed something else for these models (deployment notes), and
every export is checked against torch in the tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...model.backbone import MULTIPLE

OPSET = 18
#: Graphs whose weights exceed this go to one external data file (protobuf's 2 GB limit).
EXTERNAL_DATA_BYTES = 2 ** 31 - 2 ** 24
QUERIES = 'queries'
FEATURES = ('f1', 'f2', 'f3', 'f4')


class VaeGraph(nn.Module):
    """[0, 1] image -> the backbone's VAE encode (padding to 64 and [-1, 1] included)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Return the latents of one image."""
        return self.backbone.encode_rgb(image)


class BackboneGraph(nn.Module):
    """Text adapter and one UNet pass: raw text features and latents -> feature taps.

    VPD adapts the text with its backbone's adapter; EVP with its model's (``text_context``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.text_context = getattr(model, 'text_context', None)

    def forward(self, latents: torch.Tensor, text: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return F1..F4."""
        if self.text_context is None:
            context = self.backbone.condition(text)
        else:
            context = self.text_context(latents.shape[0], text, latents.dtype)
        return tuple(self.backbone(latents, context))


class HeadGraph(nn.Module):
    """A task head (depth or referring) at a fixed valid size."""

    def __init__(self, model: nn.Module, size: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.size = (int(size[0]), int(size[1]))

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor,
                f4: torch.Tensor) -> torch.Tensor:
        """Return the head's output for F1..F4."""
        return self.model.head([f1, f2, f3, f4], self.size)


class TextGraph(nn.Module):
    """The CLIP text tower: token ids -> last hidden state."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Return (Q, L, D) text features."""
        return self.encoder(input_ids=input_ids).last_hidden_state


class GraphSpec:
    """One graph to export: module, example inputs, names, and which axes are dynamic."""

    def __init__(self, name: str, module: nn.Module, inputs: Dict[str, torch.Tensor],
                 outputs: Sequence[str], dynamic: bool) -> None:
        self.name = name
        self.module = module
        self.inputs = inputs
        self.outputs = list(outputs)
        self.dynamic = dynamic

    def dynamic_axes(self) -> Optional[Dict[str, Dict[int, str]]]:
        """Axis 0 of every input and output is the query count for the referring graphs."""
        if not self.dynamic:
            return None
        return {name: {0: QUERIES} for name in list(self.inputs) + self.outputs}


def depth_specs(model: nn.Module, size: Tuple[int, int]) -> List[GraphSpec]:
    """Return the depth model's backbone and head graphs at input size ``size``.

    VPD's text input is a scene vector (1, 1, D); EVP's the caption's CLIP states (1, L, D),
    from its text tower (the ``depth_text`` graph).
    """
    latents = _latents(model, size, 1)
    if model.takes_caption:
        dim = model.backbone.unet.config.cross_attention_dim
        text = torch.randn(1, model.token_length, dim, device=latents.device)
    else:
        text = model.scene_text(None, 1)
    feats = _features(model, latents, text)
    specs = [GraphSpec('depth_unet', BackboneGraph(model), {'latents': latents, 'text': text},
                       FEATURES, False),
             GraphSpec('depth_head', HeadGraph(model, size), dict(zip(FEATURES, feats)),
                       ['depth'], False)]
    if model.takes_caption:
        specs.append(_text_spec('depth_text', model, 1, False))
    return specs


def refer_specs(model: nn.Module, size: Tuple[int, int]) -> List[GraphSpec]:
    """Return the referring model's backbone, head and (when it has one) text graphs."""
    queries = 2  # not 1: the tracer would fold a batch of one into constants
    latents = _latents(model, size, queries)
    dim = model.backbone.unet.config.cross_attention_dim
    text = torch.randn(queries, model.token_length, dim, device=latents.device)
    feats = _features(model, latents, text)
    specs = [GraphSpec('refer_unet', BackboneGraph(model), {'latents': latents, 'text': text},
                       FEATURES, True),
             GraphSpec('refer_head', HeadGraph(model, size), dict(zip(FEATURES, feats)),
                       ['logits'], True)]
    if model.text_encoder is not None:
        specs.append(_text_spec('text', model, queries, True))
    return specs


def _text_spec(name: str, model: nn.Module, batch: int, dynamic: bool) -> GraphSpec:
    """Return the model's CLIP text tower as graph ``name`` (token ids -> last hidden state)."""
    device = next(model.parameters()).device
    ids = torch.zeros(batch, model.token_length, dtype=torch.long, device=device)
    return GraphSpec(name, TextGraph(model.text_encoder), {'input_ids': ids}, ['text'], dynamic)


def vae_spec(backbone: nn.Module, size: Tuple[int, int]) -> GraphSpec:
    """Return the VAE encoder graph of ``backbone`` for one [0, 1] image of ``size``."""
    image = torch.rand(1, 3, *size, device=next(backbone.parameters()).device)
    return GraphSpec('vae', VaeGraph(backbone), {'image': image}, ['latents'], False)


def _latents(model: nn.Module, size: Tuple[int, int], batch: int) -> torch.Tensor:
    hp, wp = (-(-s // MULTIPLE) * MULTIPLE for s in size)
    return torch.randn(batch, model.backbone.vae.config.latent_channels, hp // 8, wp // 8,
                       device=next(model.parameters()).device)


@torch.inference_mode()
def _features(model: nn.Module, latents: torch.Tensor, text: torch.Tensor) -> List[torch.Tensor]:
    return [f.contiguous() for f in BackboneGraph(model)(latents, text)]


def export_graph(spec: GraphSpec, path: str,
                 external_data_bytes: int = EXTERNAL_DATA_BYTES) -> None:
    """Export ``spec`` to ``path`` (fp32).

    Weights over ``external_data_bytes`` go to one ``<path>.data`` file beside it.
    """
    import onnx

    module = spec.module.eval()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        raw = os.path.join(tmp, 'raw.onnx')
        with torch.no_grad():
            torch.onnx.export(module, tuple(spec.inputs.values()), raw,
                              input_names=list(spec.inputs), output_names=spec.outputs,
                              dynamic_axes=spec.dynamic_axes(), opset_version=OPSET,
                              dynamo=False)
        if not _has_external_files(tmp) and os.path.getsize(raw) <= external_data_bytes:
            shutil.move(raw, path)
            return
        proto = onnx.load(raw)  # the tracer writes one file per tensor past 2 GB: gather them
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + '.data', size_threshold=1024)


def copy_graph(source: str, target: str) -> None:
    """Copy an exported graph to ``target``, its external data (if any) to ``<target>.data``.

    The graph names its data file; the copy's references are rewritten to the new name, so the
    copy loads wherever it lies (a plain file copy would still point at ``model.onnx.data``).
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    if not os.path.isfile(source + '.data'):
        shutil.copyfile(source, target)
        return
    proto = onnx.load(source, load_external_data=False)
    location = os.path.basename(target) + '.data'
    for tensor in proto.graph.initializer:
        if uses_external_data(tensor):
            for entry in tensor.external_data:
                if entry.key == 'location':
                    entry.value = location
    shutil.copyfile(source + '.data', target + '.data')
    onnx.save_model(proto, target)


def _has_external_files(folder: str) -> bool:
    return len(os.listdir(folder)) > 1
