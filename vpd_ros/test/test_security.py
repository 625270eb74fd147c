# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Hostile or broken model files given to vpd_node: configure fails with a reason, nothing runs.

One node process serves the module (depth only, random:tiny). Each test points a file-naming
parameter at a crafted file and asks for ``configure`` over the lifecycle service: the answer
must be FAILURE, the log must name the reason, and the node must stay alive in
``unconfigured``. The pickle tests carry a payload that would create a marker file when
unpickled by full ``pickle``; the marker must not exist afterwards (no code ran).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest
import torch
from helpers.vpd_client import Client, start_node
from lifecycle_msgs.msg import Transition
from rcl_interfaces.msg import Log
from safetensors.torch import save_file

from vpd_ros.engine import VPDEngine

pytestmark = pytest.mark.ros


class Payload:
    """Unpickling this calls ``open(marker, 'w')``: the file appears iff the pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, 'w'))


class Session:
    """The node process (unconfigured between tests), the client and a scratch folder."""

    def __init__(self, tmp: Path, process: harness.RosProcess, client: Client) -> None:
        self.tmp, self.process, self.client = tmp, process, client
        self.node_name = client.name('vpd_node')
        self.namespace_part = client.namespace.strip('/')  # /rosout names: <ns>.vpd_node

    def configure_fails(self, parameters: dict, reason: str) -> None:
        """Set ``parameters``, request configure; assert FAILURE, ``reason`` logged, alive."""
        results = self.client.set_parameters(self.node_name, parameters)
        assert all(r.successful for r in results), [r.reason for r in results]
        assert not self.client.change_state(self.node_name, Transition.TRANSITION_CONFIGURE)
        self.process.wait_for_line(r'configure failed: ' + reason, timeout=30)
        assert self.process.poll() is None
        assert self.client.state(self.node_name) == 'unconfigured'


@pytest.fixture(scope='module')
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Start one depth-only vpd_node, then take it back to unconfigured."""
    tmp = tmp_path_factory.mktemp('vpd_security')
    namespace = '/' + harness.unique_name('vpd_security')
    process = start_node(tmp, harness.ros_env(tmp), namespace,
                         {'tasks': 'depth', 'device': 'cpu', 'input_size': [64, 64]})
    client = Client(namespace)
    try:
        s = Session(tmp, process, client)
        assert client.change_state(s.node_name, Transition.TRANSITION_DEACTIVATE)
        assert client.change_state(s.node_name, Transition.TRANSITION_CLEANUP)
        yield s
    finally:
        client.close()
        process.stop()


@pytest.fixture(scope='module')
def tiny_depth_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a valid saved tiny model folder (depth only) to corrupt copies of."""
    folder = tmp_path_factory.mktemp('tiny_model')
    VPDEngine.from_preset('tiny', ('depth',)).depth.save_pretrained(str(folder / 'depth'))
    return folder


@pytest.mark.parametrize('form', ['torch.save', 'raw pickle'])
def test_pickle_checkpoint_with_code_is_refused_and_never_runs(session: Session,
                                                               form: str) -> None:
    """An official checkpoint whose pickle would run code fails configure; no code ran.

    ``torch.save`` gives the zip form an attacker would ship as .pth; a bare pickle is the
    legacy form. ``weights_only=True`` must refuse both before calling anything.
    """
    marker = session.tmp / f'pwned_{form.replace(" ", "_").replace(".", "_")}'
    checkpoint = session.tmp / f'evil_{marker.name}.pth'
    payload = {'state_dict': {'x': Payload(marker)}}
    if form == 'torch.save':
        torch.save(payload, checkpoint)
    else:
        checkpoint.write_bytes(pickle.dumps(payload))
    assert not marker.exists()
    session.configure_fails({'weights': 'random:tiny',
                             'official.depth_checkpoint': str(checkpoint)},
                            r'.*(Weights only load failed|UnpicklingError)')
    assert not marker.exists(), 'the checkpoint pickle ran code inside vpd_node'
    session.client.set_parameters(session.node_name, {'official.depth_checkpoint': ''})


def test_official_checkpoint_of_the_wrong_layout_is_refused(session: Session) -> None:
    """A safe .pth holding tensors under foreign keys fails configure naming the mismatch."""
    checkpoint = session.tmp / 'foreign.pth'
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(2, 2)}}, checkpoint)
    session.configure_fails({'official.depth_checkpoint': str(checkpoint)},
                            r'CheckpointMismatchError: .*foreign\.pth')
    session.client.set_parameters(session.node_name, {'official.depth_checkpoint': ''})


def test_missing_files_are_refused_by_name(session: Session) -> None:
    """A missing official checkpoint or weights folder fails configure naming the path."""
    session.configure_fails({'official.depth_checkpoint': str(session.tmp / 'absent.pth')},
                            r'.*absent\.pth')
    session.configure_fails({'official.depth_checkpoint': '',
                             'weights': str(session.tmp / 'absent_model')},
                            r'.*absent_model')


def test_truncated_safetensors_is_refused(session: Session, tiny_depth_folder: Path) -> None:
    """A model folder whose model.safetensors was cut short fails configure, node alive."""
    folder = session.tmp / 'truncated_model'
    (folder / 'depth').mkdir(parents=True)
    for name in ('config.json', 'model.safetensors'):
        data = (tiny_depth_folder / 'depth' / name).read_bytes()
        if name == 'model.safetensors':
            data = data[:len(data) // 2]
        (folder / 'depth' / name).write_bytes(data)
    session.configure_fails({'weights': str(folder)},
                            r'CheckpointMismatchError: .*truncated_model/depth/model\.safetensors '
                            r'is not a readable safetensors file.*incomplete metadata')


def test_safetensors_of_the_wrong_layout_is_refused(session: Session,
                                                     tiny_depth_folder: Path) -> None:
    """Valid safetensors with foreign keys fails configure listing missing/unexpected keys."""
    folder = session.tmp / 'foreign_model'
    (folder / 'depth').mkdir(parents=True)
    (folder / 'depth' / 'config.json').write_bytes(
        (tiny_depth_folder / 'depth' / 'config.json').read_bytes())
    save_file({'not.a.vpd.key': torch.zeros(3)}, str(folder / 'depth' / 'model.safetensors'))
    session.configure_fails({'weights': str(folder)},
                            r'CheckpointMismatchError: .*foreign_model.* does not fit VPDDepth')
    session.process.wait_for_line(r'1 unexpected keys: not\.a\.vpd\.key', timeout=5)


def test_a_file_parameter_naming_a_folder_is_refused(session: Session) -> None:
    """official.depth_checkpoint naming a folder fails configure with a clear reason."""
    session.configure_fails({'weights': 'random:tiny',
                             'official.depth_checkpoint': str(session.tmp)},
                            r"ValueError: official\.depth_checkpoint '.*' is a folder; expected")
    session.client.set_parameters(session.node_name, {'official.depth_checkpoint': ''})


def test_the_shipped_model_notice_reaches_rosout(session: Session) -> None:
    """Configured with the shipped tiny model, the node says on /rosout what it cannot do."""
    client, name = session.client, session.node_name
    rosout = client.collect(Log, '/rosout')
    client.set_parameters(name, {'weights': 'tiny', 'official.depth_checkpoint': ''})
    assert client.change_state(name, Transition.TRANSITION_CONFIGURE)

    def notices() -> list:
        return [m for m in rosout if m.name.endswith('vpd_node') and m.level == Log.WARN
                and 'rendered rooms only' in m.msg and session.namespace_part in m.name]
    assert client.spin_until(lambda: bool(notices()), 10), [m.msg for m in rosout][-5:]
    assert 'official VPD checkpoints' in notices()[0].msg
    assert client.change_state(name, Transition.TRANSITION_CLEANUP)  # back to unconfigured
    client.set_parameters(name, {'weights': 'random:tiny'})


def test_the_node_recovers_with_good_weights(session: Session) -> None:
    """After every refusal a good configure and activate still succeed in the same process."""
    client, name = session.client, session.node_name
    client.set_parameters(name, {'weights': 'random:tiny', 'official.depth_checkpoint': ''})
    assert client.change_state(name, Transition.TRANSITION_CONFIGURE)
    assert client.change_state(name, Transition.TRANSITION_ACTIVATE)
    assert client.state(name) == 'active'
