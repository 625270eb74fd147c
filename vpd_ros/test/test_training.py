# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training on rendered scenes: loss falls, exact resume, parameter groups, frozen VAE."""

import copy

import numpy as np
import pytest
import torch

from vpd_ros.model import VPDDepth, VPDRefer, get_preset
from vpd_ros.training.autoencoder import autoencoder_loss, build_autoencoder, copy_encoder
from vpd_ros.data.datasets import DepthDataset, ReferDataset, SceneCache, make_batch
from vpd_ros.training.losses import dice_loss, refer_loss, silog_loss
from vpd_ros.training.optim import (LrSchedule, build_optimizer, default_schedule, freeze_vae,
                                    param_groups)
from vpd_ros.training.trainer import (Trainer, TrainerConfig, depth_loss_fn, refer_loss_fn,
                                      save_weights)

SIZE = 64


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Train on one intra-op thread (much faster than two on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    """Four training scenes rendered small and cached at 64x64."""
    folder = tmp_path_factory.mktemp('cache')
    return SceneCache.build(str(folder), range(4), SIZE, width=96, height=72)


def tiny(task):
    """Return a fresh tiny model of a task (seeded)."""
    torch.manual_seed(0)
    p = get_preset('tiny')
    if task == 'depth':
        return VPDDepth(p['unet'], p['vae'], **p['depth'])
    return VPDRefer(p['unet'], p['vae'], text_config=p['text'], **p['refer'])


def test_cache_renders_the_same_in_worker_processes(cache, tmp_path):
    """A cache rendered by two processes holds the same arrays and expressions as one process."""
    other = SceneCache.build(str(tmp_path), range(4), SIZE, width=96, height=72, workers=2)
    for name in ('rgb', 'depth', 'instances'):
        np.testing.assert_array_equal(getattr(other, name), getattr(cache, name))
    assert other.expressions == cache.expressions and other.seeds == cache.seeds


def test_losses_by_hand():
    """SiLog of a constant log ratio is sqrt(1 - 0.5) |ln r|; CE weights favour the object."""
    gt = torch.tensor([[[1.0, 2.0, 0.0]]])
    pred = torch.tensor([[[2.0, 4.0, 5.0]]])  # the gt = 0 pixel is ignored
    assert float(silog_loss(pred, gt)) == pytest.approx(np.log(2) * np.sqrt(0.5), rel=1e-5)
    logits = torch.zeros(1, 2, 1, 2)
    mask = torch.tensor([[[0, 1]]])
    # uniform logits: CE = ln 2 whatever the weights (weighted mean of equal terms)
    assert float(refer_loss(logits, mask)) == pytest.approx(np.log(2), rel=1e-5)
    # p = 0.5 on 2 pixels, 1 object pixel: dice = (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3
    assert float(dice_loss(logits, mask)) == pytest.approx(1 / 3, rel=1e-5)
    sure = torch.tensor([[[[9.0, -9.0]], [[-9.0, 9.0]]]])
    assert float(dice_loss(sure, mask)) < 1e-3


def test_depth_schedule_shape():
    """Depth lr: min at 0, max at 12/25, back to min at 24/25, flat after; poly falls to 0."""
    s = LrSchedule('depth', 100, 5e-4, 3e-5)
    assert s(0) == pytest.approx(3e-5)
    assert s(48) == pytest.approx(5e-4)
    assert s(30) < s(48) and s(70) < s(48)
    assert s(96) == pytest.approx(3e-5) and s(99) == pytest.approx(3e-5)
    poly = default_schedule('refer', 10, 5e-5)
    assert poly(0) == pytest.approx(5e-5) and poly(5) == pytest.approx(5e-5 * 0.5 ** 0.9)
    assert poly(10) == 0.0
    with pytest.raises(ValueError, match='kind'):
        LrSchedule('cosine', 10, 1e-3)


def test_param_groups_follow_the_official_rules():
    """Depth: no decay on 1-D/bias, UNet at x0.01; refer: no decay on 'norm'; VAE in no group."""
    depth = tiny('depth')
    opt = build_optimizer(depth, 'depth', 5e-4, 0.1, unet_lr_mult=0.01)
    names = {n for n, _ in depth.named_parameters()}
    by_id = {id(p): n for n, p in depth.named_parameters()}
    seen = set()
    for g in opt.param_groups:
        for p in g['params']:
            name = by_id[id(p)]
            seen.add(name)
            no_decay = p.ndim <= 1 or name.endswith('.bias')
            assert g['weight_decay'] == (0.0 if no_decay else 0.1), name
            unet = name.startswith('backbone.unet.')
            assert g['lr'] == pytest.approx(5e-4 * (0.01 if unet else 1.0)), name
    assert seen == {n for n in names if not n.startswith('backbone.vae.')}
    assert not any(p.requires_grad for p in depth.backbone.vae.parameters())

    refer = tiny('refer')
    groups = param_groups(refer, 'refer', 1e-2, unet_lr_mult=1.0, text_lr_mult=0.0)
    for g in groups:
        for name in g['param_names']:
            assert g['weight_decay'] == (0.0 if 'norm' in name else 1e-2), name
            assert not name.startswith(('text_encoder.', 'backbone.vae.')), name
    bias_groups = [g for g in groups if 'classifier.conv1_1.bias' in g['param_names']]
    assert bias_groups[0]['weight_decay'] == 1e-2  # refer decays biases (names without norm)
    assert not any(p.requires_grad for p in refer.text_encoder.parameters())


@pytest.mark.slow
def test_depth_loss_falls_and_vae_stays_frozen(cache, tmp_path):
    """45 steps on 4 scenes at 64x64 lower the SiLog loss; the VAE weights do not move."""
    model = tiny('depth')
    vae_before = copy.deepcopy(model.backbone.vae.state_dict())
    opt = build_optimizer(model, 'depth', 2e-3, 0.1, unet_lr_mult=1.0)
    trainer = Trainer(model, depth_loss_fn, DepthDataset(cache, SIZE, augment=False), opt,
                      LrSchedule('depth', 45, 2e-3, 2e-4), str(tmp_path),
                      TrainerConfig(steps=45, batch_size=4, progress=False),
                      before_step=freeze_vae)
    losses = trainer.run()
    assert len(losses) == 45
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    after = model.backbone.vae.state_dict()
    assert all(torch.equal(vae_before[k], after[k]) for k in vae_before)


def test_resume_continues_at_the_step_with_identical_state(cache, tmp_path):
    """A checkpoint restores step, weights and AdamW state; the next step matches exactly."""
    def make():
        model = tiny('refer')
        opt = build_optimizer(model, 'refer', 5e-4, 1e-2, unet_lr_mult=1.0)
        return Trainer(model, refer_loss_fn, ReferDataset(cache, SIZE), opt,
                       default_schedule('refer', 6, 5e-4), str(tmp_path),
                       TrainerConfig(steps=6, batch_size=2, seed=3, progress=False),
                       before_step=freeze_vae)
    first = make()
    first.run(until=3)
    saved_opt = copy.deepcopy(first.optimizer.state_dict())
    second = make()
    second.load_checkpoint()
    assert second.step == 3 and second.losses == first.losses
    loaded = second.optimizer.state_dict()
    assert loaded['param_groups'] == saved_opt['param_groups']
    for k, state in saved_opt['state'].items():
        for name, value in state.items():
            assert torch.equal(loaded['state'][k][name], value), (k, name)
    assert first.train_step() == pytest.approx(second.train_step(), rel=1e-6, abs=1e-7)
    for (n, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_batches_depend_only_on_seed_and_step(cache):
    """The same (seed, step) draws the same samples and augmentation; another step differs."""
    ds = DepthDataset(cache, SIZE, augment=True)
    a, b = make_batch(ds, 3, 7, 5), make_batch(ds, 3, 7, 5)
    assert torch.equal(a['image'], b['image']) and torch.equal(a['depth'], b['depth'])
    assert not torch.equal(a['image'], make_batch(ds, 3, 7, 6)['image'])
    refer = make_batch(ReferDataset(cache, SIZE), 4, 0, 0)
    assert refer['mask'].shape == (4, SIZE, SIZE) and len(refer['text']) == 4
    assert all(int(m.sum()) > 0 for m in refer['mask'])  # every expression's object is visible


def test_autoencoder_encoder_copies_into_the_model(tmp_path):
    """The pre-trained VAE's encoder gives the model exactly the VAE's posterior mode."""
    torch.manual_seed(0)
    vae = build_autoencoder('tiny')
    images = torch.rand(2, 3, SIZE, SIZE)
    assert torch.isfinite(autoencoder_loss(vae, images))
    model = tiny('depth')
    copy_encoder(vae, model)
    with torch.no_grad():
        want = vae.encode(images * 2 - 1).latent_dist.mode()
    assert torch.equal(model.backbone.encode_image(images * 2 - 1), want)
    save_weights(vae, str(tmp_path / 'vae'))
    from vpd_ros.training.autoencoder import load_autoencoder
    again = load_autoencoder(str(tmp_path / 'vae'))
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(),
                                                  again.state_dict().values()))
