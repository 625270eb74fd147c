# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Full-size (SD-1.5) checkpoints in the official VPD and EVP layouts load strictly.

Each test writes and reads a file holding every tensor of a released checkpoint, with its name,
full-size shape and random values. The tensors are views into one pool of random values
(``random_official_state(shared=True)``), so the file stores the pool once (~270 MB, not 2-4
GB): the loader reads the same names, shapes and values at a fraction of the disk, memory and
time. They share one module so that parallel test workers never load two of them at once.
"""

import argparse

import pytest
import torch

from official_layout import official_keys, random_official_state, refer_extras
from vpd_ros.model import EVPDepth, EVPRefer, VPDDepth, VPDRefer

CLASSES = {'depth': VPDDepth, 'refer': VPDRefer, 'evp_depth': EVPDepth, 'evp_refer': EVPRefer}


def fingerprints(state):
    """Multiset of tensor contents, independent of names and 1x1-conv/linear reshapes.

    Each tensor is known by its size, first and last values and the sum of about 4096 values
    spread over it: random tensors that differ anywhere differ there, at a 1/1000 of the cost
    of summing all 1e9 values.
    """
    prints = []
    for t in state.values():
        flat = t.reshape(-1)
        sample = flat[::max(1, flat.numel() // 4096)]
        prints.append((flat.numel(), float(flat[0]), float(flat[-1]),
                       float(sample.sum(dtype=torch.float64))))
    return sorted(prints)


def vpd_pairs(kind):
    """Official key -> vpd_ros key of tensors that must arrive unchanged (VPD files)."""
    prefix = 'encoder.' if kind == 'depth' else ''
    u = prefix + 'unet.unet.diffusion_model.'
    return {
        u + 'time_embed.0.weight': 'backbone.unet.time_embedding.linear_1.weight',
        u + 'input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight':
            'backbone.unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight',
        u + 'output_blocks.4.1.proj_in.weight':
            'backbone.unet.up_blocks.1.attentions.1.proj_in.weight',
        u + 'output_blocks.1.0.skip_connection.weight':
            'backbone.unet.up_blocks.0.resnets.1.conv_shortcut.weight',
        u + 'middle_block.2.out_layers.3.weight': 'backbone.unet.mid_block.resnets.1.conv2.weight',
        prefix + 'encoder_vq.encoder.down.1.block.0.nin_shortcut.weight':
            'backbone.vae.encoder.down_blocks.1.resnets.0.conv_shortcut.weight',
        prefix + 'gamma': 'backbone.gamma',
    }


def evp_pairs(kind):
    """Official key -> vpd_ros key of tensors that must arrive unchanged (EVP files)."""
    prefix = 'encoder.' if kind == 'evp_depth' else ''
    clip = 'encoder.clip_model.transformer.' if kind == 'evp_depth' else 'clip_model.'
    pairs = {
        prefix + 'aggregation.layer3.conv1.0.weight': 'aggregation.layer3.conv1.0.weight',
        prefix + 'aggregation.layer6.group_norm.bias': 'aggregation.layer6.group_norm.bias',
        clip + 'text_model.encoder.layers.11.mlp.fc2.weight':
            'text_encoder.encoder.layers.11.mlp.fc2.weight',
        prefix + 'unet.unet.diffusion_model.output_blocks.4.1.proj_in.weight':
            'backbone.unet.up_blocks.1.attentions.1.proj_in.weight',
    }
    if kind == 'evp_depth':
        pairs.update({'decoder.last_layer_depth.2.weight': 'last_layer_depth.2.weight',
                      'attractors.0._net.2.weight': 'bins.attractors.0._net.2.weight',
                      'encoder.layer2.0.weight': 'neck.layer2.0.weight'})
    else:
        pairs['classifier.conv1_4.weight'] = 'classifier.conv1_4.weight'
    return pairs


@pytest.mark.slow
@pytest.mark.timeout(600)  # 1e9 values converted: a minute on busy cores
@pytest.mark.parametrize('kind', ['depth', 'refer', 'evp_depth', 'evp_refer'])
def test_full_size_official_layout_loads_strictly(tmp_path, kind):
    """Every tensor of an official-layout file lands in the model exactly once, nothing renamed."""
    state = random_official_state(kind, seed=1, shared=True)
    extra = {}
    if kind == 'refer':
        extra = {'args': argparse.Namespace(token_length=40)}
    elif kind == 'evp_refer':
        extra = refer_extras()
    pairs = vpd_pairs(kind) if kind in ('depth', 'refer') else evp_pairs(kind)
    expected = {mine: state[official].clone() for official, mine in pairs.items()}
    if kind in ('depth', 'refer'):
        prefix = 'encoder.' if kind == 'depth' else ''
        vae_q = state[prefix + 'encoder_vq.encoder.mid.attn_1.q.weight'][:, :, 0, 0].clone()
    expected_prints = fingerprints(state)
    path = str(tmp_path / f'{kind}.pth')
    torch.save({'model': state, **extra}, path)
    del state
    model = CLASSES[kind].from_official_checkpoint(path)
    ours = model.state_dict()
    assert not any(t.is_meta for t in ours.values())
    assert len(ours) == len(official_keys(kind))
    assert fingerprints(ours) == expected_prints
    for mine, value in expected.items():
        assert torch.equal(ours[mine], value), mine
    if kind in ('depth', 'refer'):
        assert torch.equal(ours['backbone.vae.encoder.mid_block.attentions.0.to_q.weight'], vae_q)
    if kind == 'refer':
        assert model.token_length == 40 and model.text_encoder is None
    elif kind == 'depth':
        assert model.class_embeddings.shape == (27, 768)
        assert model.config.class_names[3] == 'study'
    else:
        assert model.token_length == 40
        assert tuple(ours['aggregation.layer3.conv1.0.weight'].shape) == (680, 840, 1, 1)
        if kind == 'evp_depth':
            assert model.backbone.vae.post_quant_conv is None
            assert model.backbone.latent_divisor == pytest.approx(5.07543)
        else:
            assert model.backbone.latent_divisor == pytest.approx(4.7164)
