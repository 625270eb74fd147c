# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Numerical tests of the VPD model pieces against the specification, on the tiny preset."""

import copy

import pytest
import torch
import torch.nn.functional as F

from vpd_ros.model import VPDDepth, VPDRefer, get_preset, tokenize
from vpd_ros.model.backbone import ATTENTION_GROUPS, TextAdapter
from vpd_ros.model.backbone import pad_to_multiple
from vpd_ros.model.depth import scene_id_from_name
from vpd_ros.model.pretrained import CheckpointMismatchError

P = get_preset('tiny')


@pytest.fixture(scope='module')
def depth_model():
    torch.manual_seed(0)
    return VPDDepth(P['unet'], P['vae'], **P['depth']).eval()


@pytest.fixture(scope='module')
def refer_model():
    torch.manual_seed(1)
    model = VPDRefer(P['unet'], P['vae'], text_config=P['text'], **P['refer']).eval()
    # Non-trivial adapter and BN statistics so that every path carries signal.
    with torch.no_grad():
        model.backbone.gamma.fill_(0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def images(b=1, h=128, w=128, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_clip_tokenizer_matches_openai_ids():
    """The shipped BPE gives CLIP's well-known ids and pads with <|endoftext|> like VPD."""
    tok = tokenize(['a photo of a cat'], max_length=10)
    assert tok.input_ids.tolist() == [[49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407,
                                       49407]]
    assert tok.truncated == [False]
    long = tokenize(['word ' * 50, '東京の赤いマグカップ'], max_length=20)
    assert long.input_ids.shape == (2, 20)
    assert long.truncated == [True, False]


def test_text_adapter_is_residual_with_gamma():
    """c + gamma * fc(c): gamma = 0 is the identity; otherwise the MLP is added per channel."""
    adapter = TextAdapter(8)
    c = torch.randn(2, 3, 8)
    assert torch.equal(adapter(c, torch.zeros(8)), c)
    gamma = torch.linspace(0, 1, 8)
    expected = c + gamma * adapter.fc[2](F.gelu(adapter.fc[0](c)))
    torch.testing.assert_close(adapter(c, gamma), expected)


@pytest.mark.parametrize('tokens', [1, 7, 20])
def test_taps_shapes_and_attention_maps(refer_model, tokens):
    """F1..F4 sit at strides 8/16/32/64 with T attention channels appended to F2 and F3."""
    backbone = refer_model.backbone
    latents = torch.randn(2, 4, 16, 24)
    context = torch.randn(2, tokens, 64)
    with torch.no_grad():
        f1, f2, f3, f4 = backbone(latents, context)
    c = backbone.feature_channels
    assert f1.shape == (2, c[0], 16, 24)
    assert f2.shape == (2, c[1] + tokens, 8, 12)
    assert f3.shape == (2, c[2] + tokens, 4, 6)
    assert f4.shape == (2, c[3], 2, 3)
    for maps in (f2[:, c[1]:], f3[:, c[2]:]):
        # head-mean and layer-mean of softmaxes over tokens still sum to one per pixel.
        torch.testing.assert_close(maps.sum(1), torch.ones_like(maps[:, 0]))
        assert (maps >= 0).all()


def test_attention_maps_equal_explicit_softmax(refer_model):
    """The captured map of a layer equals softmax(QK^T/sqrt(d)) averaged over heads."""
    backbone = refer_model.backbone
    attn = backbone.unet.get_submodule(ATTENTION_GROUPS['stride16'][0]
                                       + '.transformer_blocks.0.attn2')
    x = torch.randn(2, 12, attn.to_q.in_features)
    ctx = torch.randn(2, 5, 64)
    backbone.attention_store.reset()
    with torch.no_grad():
        out = attn(x, encoder_hidden_states=ctx)
    got = backbone.attention_store.maps['stride16'][0]
    heads = attn.heads
    q = attn.to_q(x).reshape(2, 12, heads, -1).transpose(1, 2)
    k = attn.to_k(ctx).reshape(2, 5, heads, -1).transpose(1, 2)
    v = attn.to_v(ctx).reshape(2, 5, heads, -1).transpose(1, 2)
    probs = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    torch.testing.assert_close(got, probs.mean(1))
    ref = attn.to_out[0]((probs @ v).transpose(1, 2).reshape(2, 12, -1))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    backbone.attention_store.reset()


def test_only_cross_attention_layers_capture(refer_model, depth_model):
    """Self-attention keeps the fused processor; depth captures nothing (one token)."""
    procs = refer_model.backbone.unet.attn_processors
    capturing = sorted(k for k, p in procs.items() if type(p).__name__ == 'AttentionMapProcessor')
    expected = sorted(p + '.transformer_blocks.0.attn2.processor'
                      for group in ATTENTION_GROUPS.values() for p in group)
    assert capturing == expected
    assert not any(type(p).__name__ == 'AttentionMapProcessor'
                   for p in depth_model.backbone.unet.attn_processors.values())


def test_depth_pad_and_crop_path(depth_model):
    """480-style sizes are padded to 64-multiples and cropped back; padding is zero in [-1, 1]."""
    x = images(1, 96, 160)
    padded = pad_to_multiple(x * 2 - 1)
    assert padded.shape[-2:] == (128, 192)
    assert torch.equal(padded[..., :96, :160], x * 2 - 1)
    assert (padded[..., 96:, :] == 0).all() and (padded[..., :, 160:] == 0).all()
    with torch.no_grad():
        out = depth_model(x).depth
        latents = depth_model.backbone.encode_image(padded)
        manual = depth_model.forward_latents(latents, (96, 160))
    assert out.shape == (1, 1, 96, 160)
    torch.testing.assert_close(out, manual)
    assert (out > 0).all() and (out < depth_model.config.max_depth).all()
    with pytest.raises(ValueError, match='multiple of 32'):
        depth_model(images(1, 100, 128))


def test_depth_scene_conditioning(depth_model):
    """Scene ids select class embeddings; the default is their mean; bad ids are rejected."""
    model = VPDDepth(P['unet'], P['vae'], **dict(P['depth'], num_classes=3)).eval()
    with torch.no_grad():
        model.class_embeddings.normal_()
        ctx = model.scene_context(torch.tensor([2, 0]), 2)
        torch.testing.assert_close(ctx[:, 0], model.backbone.condition(
            model.class_embeddings[[2, 0]]))
        default = model.scene_context(None, 1)
        torch.testing.assert_close(default[0, 0], model.backbone.condition(
            model.class_embeddings.mean(0)))
    with pytest.raises(ValueError, match='outside'):
        model.scene_context(torch.tensor([3]), 1)
    assert scene_id_from_name('study_room_0005_rgb_00001') == 3
    assert scene_id_from_name('office_kitchen_0001_rgb') == 6


def test_refer_text_and_embeddings_agree(refer_model):
    """Strings and their precomputed embeddings give the same logits at the input size."""
    x = images(2, 64, 96)
    texts = ['the red ball', 'the cube on the left']
    with torch.no_grad():
        a = refer_model(x, text=texts)
        emb = refer_model.encode_text(texts).embeddings
        b = refer_model(x, text_embeddings=emb)
    assert a.logits.shape == (2, 2, 64, 96)
    torch.testing.assert_close(a.logits, b.logits)
    assert not torch.allclose(a.logits[0], a.logits[1])
    with pytest.raises(ValueError, match='text_embeddings must be'):
        refer_model(x, text_embeddings=emb[:, :5])


def test_save_load_round_trip(tmp_path, refer_model, depth_model):
    """save_pretrained -> from_pretrained gives bit-identical outputs."""
    x = images(1, 64, 64, seed=3)
    for model, kwargs in ((depth_model, {}), (refer_model, {'text': ['the green cylinder']})):
        folder = tmp_path / type(model).__name__
        model.save_pretrained(str(folder))
        loaded = type(model).from_pretrained(str(folder))
        with torch.no_grad():
            a = model(x, **kwargs)[0]
            b = loaded(x, **kwargs)[0]
        assert torch.equal(a, b)


def test_deep_copy_is_independent(refer_model):
    """A deep copy taps and captures into its own buffers and gives the same outputs."""
    clone = copy.deepcopy(refer_model)
    x = images(1, 64, 64, seed=4)
    with torch.no_grad():
        a = refer_model(x, text=['the cube']).logits
        b = clone(x, text=['the cube']).logits
    torch.testing.assert_close(a, b)
    assert clone.backbone.attention_store is not refer_model.backbone.attention_store
    procs = clone.backbone.unet.attn_processors.values()
    assert all(p.store is clone.backbone.attention_store for p in procs if hasattr(p, 'store'))


def test_from_pretrained_is_strict(tmp_path, depth_model):
    """A weights file with a missing and an unexpected key is refused, and both are listed."""
    from safetensors.torch import load_file, save_file
    folder = tmp_path / 'depth'
    depth_model.save_pretrained(str(folder))
    state = load_file(str(folder / 'model.safetensors'))
    state.pop('decoder.conv_layers.0.bias')
    state['decoder.extra'] = torch.zeros(1)
    save_file(state, str(folder / 'model.safetensors'))
    with pytest.raises(CheckpointMismatchError) as err:
        VPDDepth.from_pretrained(str(folder))
    assert 'decoder.conv_layers.0.bias' in str(err.value)
    assert 'decoder.extra' in str(err.value)
    with pytest.raises(FileNotFoundError, match='config.json'):
        VPDDepth.from_pretrained(str(tmp_path / 'nowhere'))


def test_full_size_shapes_on_meta_device():
    """SD-1.5 sizes: taps 320/640+L/1280+L/1280 at 64/32/16/8, depth 480 -> 480 via 512 and 15."""
    p = get_preset('sd15')
    with torch.device('meta'):
        refer = VPDRefer(p['unet'], p['vae'], token_length=40)
        depth = VPDDepth(p['unet'], p['vae'], **p['depth'])
        latents = torch.empty(1, 4, 64, 64)
        feats = refer.backbone(latents, torch.empty(1, 40, 768))
        assert [tuple(f.shape[1:]) for f in feats] == [
            (320, 64, 64), (640 + 40, 32, 32), (1280 + 40, 16, 16), (1280, 8, 8)]
        logits = refer(torch.empty(1, 3, 512, 512), text_embeddings=torch.empty(1, 40, 768))[0]
        assert logits.shape == (1, 2, 512, 512)
        plain = depth.backbone(latents, torch.empty(1, 1, 768))
        assert [f.shape[1] for f in plain] == [320, 640, 1280, 1280]
        assert depth.neck(plain).shape == (1, 1536, 16, 16)
        out = depth(torch.empty(1, 3, 480, 480)).depth
        assert out.shape == (1, 1, 480, 480)
    n = sum(t.numel() for t in depth.state_dict().values()) / 1e6
    assert 906.0 < n < 906.8  # the spec's 906.39 M (state incl. buffers)
