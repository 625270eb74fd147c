# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deployment backends: ONNX export round trip, each backend equal to the torch engine on the
shipped tiny model (fp32), the export cache and its invalidation, the error for a missing extra.
"""

import logging
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from deploy_checks import rebuilds, refuse_model, rel_l2
from official_layout import export_official

from vpd_ros.data import HELDOUT_SEEDS_START, render_scene
from vpd_ros.engine.deploy.backends import BackendUnavailable, Runner
from vpd_ros.engine.deploy.engine import BackendConfig, GraphEngine
from vpd_ros.engine.deploy.graphs import (QUERIES, copy_graph, depth_specs, export_graph,
                                          refer_specs, vae_spec)
from vpd_ros.engine import PACKAGE_WEIGHTS, EngineConfig, EngineSpec, load_engine
from vpd_ros.model import VPDDepth, get_preset
from vpd_ros.model.convert import DEPTH_PREFIXES

TINY = os.path.join(PACKAGE_WEIGHTS, 'tiny')
SIZE = (256, 256)
QUERY_TEXTS = ['the red box', 'the chair on the left']
# Exporting the six graphs traces two UNets; with both cores busy elsewhere it took 4.5 min.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    """One export cache shared by the module's engines (graphs are exported once)."""
    return str(tmp_path_factory.mktemp('vpd_ros_cache'))


@pytest.fixture(scope='module')
def torch_engine():
    """The shipped tiny model on the CPU in fp32, the reference."""
    return load_engine(EngineSpec(weights='tiny'), EngineConfig(device='cpu', input_size=SIZE))


@pytest.fixture(scope='module')
def frames():
    """Two rendered held-out scenes (640x480) with their referring expressions."""
    scenes = [render_scene(HELDOUT_SEEDS_START + i, width=640, height=480) for i in range(2)]
    return [(s.rgb, [r.text for r in s.expressions[:2]] or QUERY_TEXTS) for s in scenes]


@pytest.fixture(scope='module')
def ort_engine(cache_dir):
    """The shipped tiny model on ONNX Runtime; exports every graph into the module's cache."""
    pytest.importorskip('onnxruntime')
    return load_engine(EngineSpec(weights='tiny'), BackendConfig(
        backend='onnxruntime', device='cpu', input_size=SIZE, cache_dir=cache_dir))


@pytest.mark.slow
def test_export_round_trip(tmp_path, cache_dir, ort_engine, torch_engine):
    """Every graph exported by the engine is valid ONNX that runs to torch's result; the
    referring graphs take any query count; external data holds the weights when asked, and a
    copied graph finds its renamed data file."""
    onnx = pytest.importorskip('onnx')
    specs = (depth_specs(torch_engine.depth, SIZE) + refer_specs(torch_engine.refer, SIZE)
             + [vae_spec(torch_engine.depth.backbone, SIZE)])
    paths = ort_engine.graph_files
    assert all(os.path.dirname(os.path.dirname(p)) == cache_dir for p in paths.values())
    assert set(paths) == {s.name for s in specs} == {
        'vae', 'depth_unet', 'depth_head', 'refer_unet', 'refer_head', 'text'}
    for spec in specs:
        path = paths[spec.name]
        if spec.name == 'depth_head':  # the >2 GB path, taken for a small graph
            os.makedirs(tmp_path / 'cache')
            export_graph(spec, str(tmp_path / 'cache' / 'model.onnx'), external_data_bytes=0)
            # as `vpd-ros export --output` copies it: the copy must find its renamed data file
            os.makedirs(tmp_path / 'out')
            path = str(tmp_path / 'out' / 'depth_head.onnx')
            copy_graph(str(tmp_path / 'cache' / 'model.onnx'), path)
            assert sorted(os.listdir(tmp_path / 'out')) == ['depth_head.onnx',
                                                             'depth_head.onnx.data']
            assert os.path.getsize(path + '.data') > os.path.getsize(path)
        onnx.checker.check_model(path)
        graph = onnx.load(path, load_external_data=False).graph
        assert [i.name for i in graph.input] == list(spec.inputs)
        assert [o.name for o in graph.output] == spec.outputs
        batch_axis = graph.input[0].type.tensor_type.shape.dim[0]
        assert (batch_axis.dim_param == QUERIES) == spec.dynamic
        inputs = spec.inputs
        if spec.dynamic:  # three queries, where the export saw two
            inputs = {k: torch.cat([v, v[:1]]) for k, v in inputs.items()}
        with torch.inference_mode():
            want = spec.module(*inputs.values())
        want = want if isinstance(want, tuple) else (want,)
        got = Runner(path, 'onnxruntime', str(tmp_path))(**{k: v.numpy()
                                                          for k, v in inputs.items()})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == tuple(w.shape), spec.name
            assert rel_l2(g, w) <= 1e-5, spec.name


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_backend_equals_torch_engine(backend, cache_dir, torch_engine, frames):
    """fp32: depth and mask logits within rel L2 1e-4, depth within 1 mm, masks within 0.05 %
    of pixels, the same timing stages as the torch engine."""
    pytest.importorskip(backend)
    engine = load_engine(EngineSpec(weights='tiny'), BackendConfig(
        backend=backend, device='cpu', input_size=SIZE, cache_dir=cache_dir))
    for rgb, queries in frames:
        want = torch_engine.predict(rgb, queries)
        got = engine.predict(rgb, queries)
        assert got.depth.shape == want.depth.shape == rgb.shape[:2]
        assert rel_l2(got.depth, want.depth) <= 1e-4
        assert np.abs(got.depth - want.depth).max() <= 1e-3
        assert got.masks.shape == want.masks.shape == (len(queries),) + rgb.shape[:2]
        assert (got.masks != want.masks).mean() <= 5e-4
        assert got.truncated == want.truncated
        assert set(got.timings) == set(want.timings)
        x = torch_engine._to_model_input(rgb)
        with torch.inference_mode():
            latents = torch_engine._encode(torch_engine.refer, x)
            text, _ = torch_engine.text_features(queries)
            batch = latents.expand(len(queries), -1, -1, -1)
            want_logits = torch_engine.refer.forward_latents(batch, text, SIZE)
        got_batch = engine._encode(engine.refer, x).expand(len(queries), -1, -1, -1)
        got_logits = engine.refer.forward_latents(got_batch, engine.text_features(queries)[0],
                                                  SIZE)
        assert rel_l2(got_logits, want_logits) <= 1e-4


def exports(caplog):
    """Names of the graphs the log says were exported, and forget the log."""
    names = [r.args[0] for r in caplog.records if r.msg.startswith('exporting %s')]
    caplog.clear()
    return sorted(names)


@pytest.mark.slow
def test_cache_is_reused_and_rebuilt_when_weights_change(tmp_path, caplog):
    """A second engine loads every graph from the cache; changed depth weights re-export only
    the graphs holding them (not the VAE); exports are logged. (A changed input size: the next
    test, through load_engine.)"""
    pytest.importorskip('onnxruntime')
    caplog.set_level(logging.INFO, logger='vpd_ros.engine.deploy')
    config = BackendConfig(device='cpu', input_size=(128, 128), cache_dir=str(tmp_path))
    depth = VPDDepth.from_pretrained(os.path.join(TINY, 'depth'))
    everything = ['depth_head', 'depth_unet', 'vae']
    rgb = render_scene(HELDOUT_SEEDS_START, width=160, height=120).rgb
    first = GraphEngine(depth, None, config).predict(rgb)
    assert exports(caplog) == everything
    again = GraphEngine(depth, None, config).predict(rgb)
    assert exports(caplog) == []
    np.testing.assert_array_equal(again.depth, first.depth)
    with torch.no_grad():
        depth.last_layer_depth[-1].bias += 0.5
    changed = GraphEngine(depth, None, config).predict(rgb)
    assert exports(caplog) == ['depth_head', 'depth_unet']
    assert not np.allclose(changed.depth, first.depth)
    entries = [n for n in os.listdir(tmp_path) if not n.startswith('.')]
    assert len(entries) == 3 + 2


@pytest.mark.slow
def test_start_from_cache_builds_no_model_and_rebuilds_when_files_or_size_change(
        tmp_path, caplog, monkeypatch):
    """load_engine keys the cache on the weight files' hashes: a second start opens the graphs
    without building a torch model; a rewritten weights file or another input size builds
    the models again, with a log line, and re-exports only the graphs that changed."""
    pytest.importorskip('onnxruntime')
    caplog.set_level(logging.INFO, logger='vpd_ros.engine.deploy')
    folder = tmp_path / 'model'
    shutil.copytree(os.path.join(TINY, 'depth'), folder / 'depth')
    spec = EngineSpec(weights=str(folder), tasks=('depth',))
    config = BackendConfig(device='cpu', input_size=(128, 128), cache_dir=str(tmp_path / 'c'))
    rgb = render_scene(HELDOUT_SEEDS_START + 1, width=160, height=120).rgb
    first = load_engine(spec, config).predict(rgb)
    assert (rebuilds(caplog), exports(caplog)) == (1, ['depth_head', 'depth_unet', 'vae'])

    with monkeypatch.context() as patch:
        patch.setattr(VPDDepth, '__init__', refuse_model)
        cached = load_engine(spec, config)
        np.testing.assert_array_equal(cached.predict(rgb).depth, first.depth)
        # tiny has one scene class: scene 0 is the default (their mean); 1 is refused
        np.testing.assert_array_equal(cached.predict(rgb, scene=0).depth, first.depth)
        with pytest.raises(ValueError, match='scene'):
            cached.predict(rgb, scene=1)
    assert (rebuilds(caplog), exports(caplog)) == (0, [])

    depth = VPDDepth.from_pretrained(str(folder / 'depth'))
    with torch.no_grad():
        depth.last_layer_depth[-1].bias += 0.5
    depth.save_pretrained(str(folder / 'depth'))
    changed = load_engine(spec, config).predict(rgb)
    assert (rebuilds(caplog), exports(caplog)) == (1, ['depth_head', 'depth_unet'])
    assert not np.allclose(changed.depth, first.depth)
    config.input_size = (64, 128)
    assert load_engine(spec, config).predict(rgb).depth.shape == rgb.shape[:2]
    assert (rebuilds(caplog), exports(caplog)) == (1, ['depth_head', 'depth_unet', 'vae'])


@pytest.mark.slow
def test_official_checkpoint_is_keyed_by_its_file(tmp_path, caplog, monkeypatch):
    """An official-layout checkpoint starts from the cache without building a model; the same
    file rewritten with other weights builds and exports again."""
    pytest.importorskip('onnxruntime')
    caplog.set_level(logging.INFO, logger='vpd_ros.engine.deploy')
    p = get_preset('tiny')
    torch.manual_seed(5)
    model = VPDDepth(p['unet'], p['vae'], **p['depth']).eval()
    path = str(tmp_path / 'depth.pth')
    torch.save({'model': export_official('depth', model, DEPTH_PREFIXES)}, path)
    config = BackendConfig(device='cpu', input_size=(64, 64), cache_dir=str(tmp_path / 'c'))
    rgb = render_scene(HELDOUT_SEEDS_START + 2, width=80, height=64).rgb

    def start():
        return GraphEngine.from_official(path, None, config=config, preset='tiny')
    first = start().predict(rgb)
    assert rebuilds(caplog) == 1
    caplog.clear()
    with monkeypatch.context() as patch:
        patch.setattr(VPDDepth, '__init__', refuse_model)
        np.testing.assert_array_equal(start().predict(rgb).depth, first.depth)
    assert rebuilds(caplog) == 0
    with torch.no_grad():
        model.last_layer_depth[-1].bias += 0.5
    torch.save({'model': export_official('depth', model, DEPTH_PREFIXES)}, path)
    assert not np.allclose(start().predict(rgb).depth, first.depth)
    assert rebuilds(caplog) == 1


def test_missing_backend_names_the_extra(monkeypatch, tmp_path):
    """Without the backend's package the engine refuses before exporting, naming the extra."""
    monkeypatch.setitem(sys.modules, 'openvino', None)  # what `import openvino` sees uninstalled
    with pytest.raises(BackendUnavailable, match=r"pip install 'vpd_ros\[openvino\]'"):
        load_engine(EngineSpec(weights='tiny'), BackendConfig(backend='openvino',
                                                      cache_dir=str(tmp_path)))
    assert os.listdir(tmp_path) == []


def test_config_rejects_what_graphs_cannot_run():
    """Unknown backends, unsupported precisions, torch-only options and wrong devices."""
    for bad in ({'backend': 'tflite'}, {'backend': 'onnxruntime', 'precision': 'fp16'},
                {'tta': True}, {'dtype': 'float16'}, {'backend': 'openvino', 'device': 'cuda'},
                {'backend': 'tensorrt', 'device': 'cpu'}):
        with pytest.raises(ValueError):
            BackendConfig(**bad)
