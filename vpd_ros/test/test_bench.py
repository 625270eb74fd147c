# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The benchmark: its report, and that its baseline is the naive engine with the same outputs."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from vpd_ros.apps import bench
from vpd_ros.engine import EngineConfig
from vpd_ros.model.attention import AttentionMapProcessor

SIZE = (64, 64)
#: The stages only EVP models have: IMAFR feature refinement, the metric-bins head.
EVP_STAGES = ('depth_imafr', 'depth_bins', 'refer_imafr')


@pytest.fixture(scope='module')
def engines():
    optimized = bench.optimized_config(device='cpu', input_size=SIZE)
    return bench.build_engines('random:tiny', ('depth', 'refer'),
                               {'baseline': bench.baseline_config(optimized),
                                'optimized': optimized})


def test_report_has_stages_percentiles_memory_and_versions():
    """A two-iteration run reports every stage, p50/p90/p99, memory, machine and versions."""
    parser = argparse.ArgumentParser()
    bench.add_bench_arguments(parser)
    args = parser.parse_args(['--weights', 'random:tiny', '--device', 'cpu', '--input-size',
                              '64x64', '--frame-size', '48x80', '--iterations', '2',
                              '--warmup', '1', '--queries', '1', '2'])
    partial = []
    report = bench.engine_report(args, partial.append)
    assert report['queries'] == [1, 2]
    # One partial report per query count, each holding the counts measured so far.
    assert [(p['partial'], sorted(p['results'])) for p in partial] == [(True, [1]),
                                                                       (False, [1, 2])]
    assert partial[-1] is report
    assert report['settings']['tf32'] == {'optimized': False}
    assert 'cudnn_benchmark' in report['settings']
    for q in (1, 2):
        result = report['results'][q]['optimized']
        assert set(result['stages_ms']) == set(bench.STAGES) - set(EVP_STAGES)
        assert result['stages_ms']['depth'] >= result['stages_ms']['depth_unet'] > 0
        assert result['stages_ms']['refer_head'] == pytest.approx(
            result['stages_ms']['refer'] - result['stages_ms']['refer_unet'], abs=1e-6)
        lat = result['latency_ms']
        assert 0 < lat['p50'] <= lat['p90'] <= lat['p99']
        assert result['host_peak_mb'] > result['weights_mb'] > 0
        assert result['device_peak_mb'] is None  # CPU
    machine = report['machine']
    assert machine['torch'] == torch.__version__ and machine['gpu'] == 'none'
    assert {'cpu', 'cores', 'python', 'diffusers', 'transformers'} <= set(machine)
    assert report['settings']['input_size'] == [64, 64]
    assert '| latency p99 ms |' in report['markdown']
    assert 'optimized, 2 q' in report['markdown']
    ground = report['ground']  # ~/ground on a new frame against use_latest
    assert 0 < ground['use_latest_ms']['p50'] and 0 < ground['new_frame_ms']['p50']
    assert '| use_latest (kept latents and depth) |' in report['markdown']


def test_evp_report_times_imafr_and_bins_next_to_vpd_stages():
    """Random EVP weights (random:evp-tiny): IMAFR and the bins head get their own rows.

    Each task's head time is what its total leaves after the UNet, IMAFR and bins.
    """
    parser = argparse.ArgumentParser()
    bench.add_bench_arguments(parser)
    args = parser.parse_args(['--weights', 'random:evp-tiny', '--device', 'cpu',
                              '--input-size', '64x64', '--frame-size', '48x80',
                              '--iterations', '1', '--warmup', '1'])
    report = bench.engine_report(args)
    stages = report['results'][1]['optimized']['stages_ms']
    assert set(stages) == set(bench.STAGES)
    assert all(stages[s] > 0 for s in EVP_STAGES + ('depth_unet', 'refer_unet'))
    assert stages['depth_head'] == pytest.approx(
        stages['depth'] - stages['depth_unet'] - stages['depth_imafr'] - stages['depth_bins'],
        abs=1e-6)
    assert stages['refer_head'] == pytest.approx(
        stages['refer'] - stages['refer_unet'] - stages['refer_imafr'], abs=1e-6)
    markdown = report['markdown']
    assert '| depth_bins ms (median) |' in markdown and '| refer_imafr ms (median) |' in markdown
    assert report['settings']['weights'] == 'random:evp-tiny'


def test_backend_report_has_deviation_and_start_from_cache(tmp_path):
    """--backend torch onnxruntime: one table with the deviation from torch, and the seconds
    the exported-graph engine takes to start again from its cache."""
    pytest.importorskip('onnxruntime')
    parser = argparse.ArgumentParser()
    bench.add_bench_arguments(parser)
    args = parser.parse_args(['--weights', 'random:tiny', '--tasks', 'depth', '--device', 'cpu',
                              '--input-size', '64x64', '--frame-size', '48x80',
                              '--iterations', '1', '--warmup', '1', '--cache-dir',
                              str(tmp_path), '--backend', 'torch', 'onnxruntime'])
    report = bench.engine_report(args)
    result = report['results'][0]['onnxruntime']
    assert result['deviation']['depth_rel_l2'] <= 1e-4 and result['weights_mb'] is None
    assert list(report['settings']['start_from_cache_s']) == ['onnxruntime']
    assert 'speed-up onnxruntime / torch' in report['markdown']
    assert 'start from cache (load_engine with the graphs cached' in report['markdown']


def test_baseline_runs_explicit_attention_everywhere(engines):
    """Baseline: explicit attention on every layer except the capture ones; fp32 contiguous."""
    base, opt = engines['baseline'], engines['optimized']
    for engine, plain in ((base, AttnProcessor), (opt, AttnProcessor2_0)):
        layers = [m for model in (engine.depth, engine.refer) for m in model.modules()
                  if isinstance(m, Attention)]
        capture = [m for m in layers if isinstance(m.processor, AttentionMapProcessor)]
        assert len(capture) == 10  # VPD's cross-attention maps (tiny keeps all ten)
        others = [m for m in layers if m not in capture]
        assert others and all(type(m.processor) is plain for m in others)
    assert base.refer.text_encoder.config._attn_implementation == 'eager'
    conv = base.depth.backbone.unet.conv_in.weight
    assert conv.dtype == torch.float32 and conv.is_contiguous()
    assert opt.depth.backbone.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def count_calls(module, counter, key):
    return module.register_forward_hook(lambda *_: counter.__setitem__(key, counter[key] + 1))


def test_baseline_encodes_per_model_and_text_every_frame(engines):
    """The baseline runs the VAE once per model and the text tower every frame."""
    rgb = bench.make_frame(48, 80)
    for name, vae_calls, text_calls in (('baseline', 2, 2), ('optimized', 1, 0)):
        engine = engines[name]
        engine.predict(rgb, ['the chair'])  # fills the optimized engine's text cache
        counter = {'vae': 0, 'text': 0}
        hooks = [count_calls(engine.depth.backbone.vae.encoder, counter, 'vae'),
                 count_calls(engine.refer.text_encoder, counter, 'text')]
        engine.predict(rgb, ['the chair'])
        engine.predict(rgb, ['the chair'])
        for hook in hooks:
            hook.remove()
        assert engine.shared_vae
        assert counter == {'vae': 2 * vae_calls, 'text': text_calls}


def test_baseline_and_optimized_outputs_are_equal(engines):
    """Same weights, same frame: depth and probabilities agree to fp32 tolerance."""
    for name in ('baseline', 'optimized'):
        assert engines[name].dtype == torch.float32
    a, b = engines['baseline'].depth, engines['optimized'].depth
    for (ka, ta), (kb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(ta, tb)
    with torch.no_grad():  # a strong adapter: queries then change the features
        for engine in engines.values():
            engine.refer.backbone.gamma.fill_(1.0)
    rgb = bench.make_frame(48, 80, seed=3)
    queries = ['the chair', 'the red mug on the left']
    base = engines['baseline'].predict(rgb, queries)
    opt = engines['optimized'].predict(rgb, queries)
    np.testing.assert_allclose(opt.depth, base.depth, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(opt.probs, base.probs, atol=1e-4)
    assert not np.allclose(base.probs[0], base.probs[1], atol=1e-4)


def test_config_options_are_checked():
    """Unknown compile and attention modes are refused by name."""
    with pytest.raises(ValueError, match='compile'):
        EngineConfig(compile='fast')
    with pytest.raises(ValueError, match='attention'):
        EngineConfig(attention='flash')
    with pytest.raises(ValueError, match='num_threads'):
        EngineConfig(num_threads=0)


def test_warmup_runs_every_task_and_leaves_no_warmup_text(engines):
    """warmup() runs frames through both models and drops its own texts from the cache."""
    engine = engines['optimized']
    engine.text_features(['kept query'])
    counter = {'depth': 0, 'refer': 0}
    hooks = [count_calls(engine.depth.backbone, counter, 'depth'),
             count_calls(engine.refer.backbone, counter, 'refer')]
    seconds = engine.warmup(queries=2, iterations=1)
    for hook in hooks:
        hook.remove()
    assert seconds > 0 and counter == {'depth': 1, 'refer': 1}
    assert 'kept query' in engine._text_cache
    assert not [q for q in engine._text_cache if q.startswith('warm-up')]
    with pytest.raises(ValueError, match='iterations'):
        engine.warmup(iterations=0)


def test_device_peak_is_the_engines_own_share(engines):
    """A device peak taken while one engine ran loses the other engines' weights, not its own."""
    others = bench.model_mb(engines['baseline'])
    assert others > 0
    assert bench.own_device_peak_mb(1000.0, 'optimized', engines) == pytest.approx(
        1000.0 - others)
    assert bench.own_device_peak_mb(1000.0, 'alone', {'alone': engines['optimized']}) == 1000.0


def test_variants_change_only_their_own_field():
    """``contiguous`` is the optimized configuration with channels-last off, run after it."""
    optimized = bench.optimized_config(device='cpu', input_size=SIZE)
    configs = bench.bench_configs(optimized, True, ['contiguous'])
    assert list(configs) == ['baseline', 'optimized', 'contiguous']
    assert configs['contiguous'] == dataclasses.replace(optimized, channels_last=False)
    assert configs['baseline'].tf32 is False and configs['baseline'].dtype == 'float32'


GPU_SCRIPT = Path(__file__).resolve().parents[2] / 'bench' / 'gpu_bench.sh'


def run_gpu_script(tmp_path, *args, **env):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), **env)
    return subprocess.run(['bash', str(GPU_SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=280)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a host without CUDA')
def test_gpu_script_checks_its_interpreter_before_benchmarking(tmp_path):
    """Without CUDA, bench/gpu_bench.sh stops with exit code 2 and says why, in its log too.

    The import check before it must pass (diffusers, transformers, the engine, the models and
    the benchmark importable from the source tree).
    """
    done = run_gpu_script(tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'torch.cuda is not available' in done.stdout
    assert 'imports: torch' in done.stdout and 'cannot import' not in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ['gpu_bench.log']
    assert 'torch.cuda is not available' in (tmp_path / 'gpu_bench.log').read_text()


@pytest.mark.slow
def test_gpu_script_dry_run_leaves_log_progress_and_reports(tmp_path):
    """The dry run (CPU, tiny) goes through every phase and leaves the log and each report."""
    done = run_gpu_script(tmp_path, '--dry-run', PHASES='eager reduce-overhead')
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / 'gpu_bench.log').read_text()
    assert log == done.stdout
    for phase in ('eager', 'reduce-overhead'):
        assert f'phase {phase}: done' in log
    assert 'dry run compiles nothing' in log
    # Timed progress lines for the build, each warm-up and each query count.
    for line in ('] built contiguous on cpu', '] 1 q: baseline warm-up frame 1/1 done',
                 '] 4 q: 2 timed frames per engine done'):
        assert line in log
    eager = json.loads((tmp_path / 'gpu_bench_eager.json').read_text())
    assert eager['partial'] is False and sorted(eager['results']) == ['1', '4']
    assert set(eager['results']['4']) == {'baseline', 'optimized', 'contiguous'}
    compiled = json.loads((tmp_path / 'gpu_bench_reduce-overhead.json').read_text())
    assert compiled['queries'] == [1] and compiled['settings']['compile'] == 'none'
    assert (tmp_path / 'gpu_bench_eager.md').read_text().startswith('machine: ')


def test_gpu_training_script_checks_its_interpreter_before_training(tmp_path):
    """bench/gpu_train.sh stops with exit code 2 and says why when torch has no CUDA.

    Its CPU rehearsal (``DRY_RUN=1``, a few steps on a few scenes, minutes) is in the model card.
    """
    script = Path(__file__).resolve().parents[2] / 'bench' / 'gpu_train.sh'
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / 'out'))
    done = subprocess.run(['bash', str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'torch.cuda is not available' in done.stderr
    assert 'cannot import' not in done.stderr
    assert not (tmp_path / 'out').exists()
