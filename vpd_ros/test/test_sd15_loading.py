# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SD-1.5 weights from a local diffusers folder or a single ldm file, offline and strict.

The files are written by the tests at tiny sizes: a diffusers folder by the real diffusers and
transformers ``save_pretrained``, a single file in the ldm key layout (``model.diffusion_model.``,
``first_stage_model.``, ``cond_stage_model.transformer.``) through the official key mapping.
"""

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

from official_layout import export_official
from vpd_ros.model import CheckpointMismatchError, VPDDepth, VPDRefer, get_preset
from vpd_ros.model.convert import REFER_PREFIXES
from vpd_ros.model.text import build_text_encoder

P = get_preset('tiny')


@pytest.fixture(scope='module')
def sd15_parts():
    torch.manual_seed(3)
    return {'unet': UNet2DConditionModel(**P['unet']), 'vae': AutoencoderKL(**P['vae']),
            'text': build_text_encoder(P['text'])}


@pytest.fixture(scope='module')
def sd15_folder(tmp_path_factory, sd15_parts):
    root = tmp_path_factory.mktemp('sd15')
    for name, part in (('unet', 'unet'), ('vae', 'vae'), ('text_encoder', 'text')):
        sd15_parts[part].save_pretrained(str(root / name))
    return str(root)


def assert_backbone_equals(model, parts, depth):
    ours = model.state_dict()
    for key, value in parts['unet'].state_dict().items():
        if depth and key.startswith(('conv_norm_out.', 'conv_out.')):
            assert 'backbone.unet.' + key not in ours
            continue
        assert torch.equal(ours['backbone.unet.' + key], value), key
    for key, value in parts['vae'].state_dict().items():
        if not key.startswith('decoder.'):
            assert torch.equal(ours['backbone.vae.' + key], value), key


def test_from_sd15_diffusers_folder(sd15_folder, sd15_parts):
    """UNet, VAE encoder and CLIP text tower come from the folder; the heads stay fresh."""
    refer = VPDRefer.from_sd15(sd15_folder, preset='tiny')
    assert_backbone_equals(refer, sd15_parts, depth=False)
    for key, value in sd15_parts['text'].state_dict().items():
        assert torch.equal(refer.state_dict()['text_encoder.' + key], value), key
    depth = VPDDepth.from_sd15(sd15_folder, preset='tiny')
    assert_backbone_equals(depth, sd15_parts, depth=True)
    with torch.no_grad():
        out = refer(torch.rand(1, 3, 64, 64), text=['the red mug']).logits
    assert out.shape == (1, 2, 64, 64) and torch.isfinite(out).all()


def test_from_sd15_single_ldm_file(tmp_path, sd15_parts):
    """A single .safetensors in the ldm layout gives the same weights as the folder."""
    refer = VPDRefer(P['unet'], P['vae'], **P['refer'])
    refer.backbone.unet.load_state_dict(sd15_parts['unet'].state_dict())
    vae_state = {k: v for k, v in sd15_parts['vae'].state_dict().items()
                 if not k.startswith('decoder.')}
    refer.backbone.vae.load_state_dict(vae_state)
    official = export_official('refer', refer, REFER_PREFIXES)
    ckpt = {}
    for key, value in official.items():
        if key.startswith('unet.unet.diffusion_model.'):
            ckpt['model.' + key[len('unet.unet.'):]] = value
        elif key.startswith('encoder_vq.'):
            ckpt['first_stage_model.' + key[len('encoder_vq.'):]] = value
    for key, value in sd15_parts['text'].state_dict().items():
        ckpt['cond_stage_model.transformer.' + key] = value
    path = str(tmp_path / 'v1-5-tiny.safetensors')
    save_file({k: v.contiguous() for k, v in ckpt.items()}, path)
    loaded = VPDRefer.from_sd15(path, preset='tiny')
    assert_backbone_equals(loaded, sd15_parts, depth=False)
    for key, value in sd15_parts['text'].state_dict().items():
        assert torch.equal(loaded.state_dict()['text_encoder.' + key], value), key


def test_official_refer_with_sd15_text_tower(tmp_path, sd15_folder, sd15_parts):
    """from_official_checkpoint(text_encoder=<SD-1.5 folder>) accepts strings afterwards."""
    refer = VPDRefer(P['unet'], P['vae'], **P['refer'])
    path = str(tmp_path / 'vpd_ris_tiny.pth')
    torch.save({'model': export_official('refer', refer, REFER_PREFIXES)}, path)
    loaded = VPDRefer.from_official_checkpoint(path, text_encoder=sd15_folder, preset='tiny')
    assert loaded.text_encoder is not None
    assert loaded.config.text_config['hidden_size'] == P['text']['hidden_size']
    for key, value in sd15_parts['text'].state_dict().items():
        assert torch.equal(loaded.text_encoder.state_dict()[key], value), key
    with torch.no_grad():
        assert loaded(torch.rand(1, 3, 64, 64), text=['a chair']).logits.shape == (1, 2, 64, 64)


def test_sd15_missing_or_wrong(tmp_path):
    """A missing path says where SD-1.5 comes from; a non-SD file is refused by name."""
    with pytest.raises(FileNotFoundError, match='Stable Diffusion 1.5'):
        VPDDepth.from_sd15(str(tmp_path / 'nothing'), preset='tiny')
    bogus = str(tmp_path / 'bogus.safetensors')
    save_file({'foo.weight': torch.zeros(2)}, bogus)
    with pytest.raises(CheckpointMismatchError, match='not an SD-1.x'):
        VPDDepth.from_sd15(bogus, preset='tiny')
