# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The project's network rule as code: every ROS 2 process it starts stays on loopback.

Anything that starts DDS runs with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Kilted ignores
``ROS_LOCALHOST_ONLY``), a private ``ROS_DOMAIN_ID`` and ``ROS_LOG_DIR`` in a temporary folder.
The demo, the benchmarks, the soak run and the tests build their environments here and run
their ROS processes with :class:`RosProcess`, which always ends the whole process group.
No rclpy import: this must run before ROS is initialised.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.Self needs Python 3.11; annotations are never evaluated here.
    from typing_extensions import Self

#: Domain IDs the harness draws from: clear of the default 0 and of the usual robot setups, and
#: valid for Fast DDS's default port mapping.
DOMAIN_ID_RANGE = (100, 230)

_session_domain_id = random.SystemRandom().randint(*DOMAIN_ID_RANGE)


def session_domain_id() -> int:
    """Return the one private domain of this process and its children (each run draws its own)."""
    return _session_domain_id


def set_session_domain_id(domain_id: int) -> None:
    """Use ``domain_id`` instead of the drawn domain: parallel test workers take one each."""
    global _session_domain_id
    low, high = DOMAIN_ID_RANGE
    if not low <= domain_id <= high:
        raise ValueError(f'domain_id must be in [{low}, {high}], got {domain_id!r}')
    _session_domain_id = domain_id

#: Variables that could send DDS traffic beyond loopback or to peers outside this session.
_LEAKY_VARIABLES = (
    'ROS_STATIC_PEERS',
    'ROS_DISCOVERY_SERVER',
    'ROS_SUPER_CLIENT',
    'FASTRTPS_DEFAULT_PROFILES_FILE',
    'FASTDDS_DEFAULT_PROFILES_FILE',
    'CYCLONEDDS_URI',
    'ROS_SECURITY_ENABLE',
)


def ros_settings(log_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Return the ROS variables of the network rule, with ROS logs written under ``log_dir``."""
    return {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_DOMAIN_ID': str(session_domain_id()),
        'ROS_LOG_DIR': str(Path(log_dir) / 'ros_log'),
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'PYTHONUNBUFFERED': '1',
    }


def _strip_bootstrap(env: dict[str, str]) -> None:
    """Remove what ros_wheels_bootstrapper added to this process's environment, in place.

    Its ``.pth`` re-executes Python with ``LD_LIBRARY_PATH`` pointing into this venv and marks
    the process with ``_ROS_WHEELS_BOOTSTRAP_COMPLETE``. A child running another venv would
    inherit the mark and the wrong libraries (``ImportError: librcl_action.so``); without them
    every child computes its own (about 55 ms).
    """
    if env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None) is None:
        return
    prefix = os.path.realpath(sys.prefix)
    kept = [
        part for part in env.get('LD_LIBRARY_PATH', '').split(os.pathsep)
        if part and not os.path.realpath(part).startswith(prefix + os.sep)
    ]
    if kept:
        env['LD_LIBRARY_PATH'] = os.pathsep.join(kept)
    else:
        env.pop('LD_LIBRARY_PATH', None)


def ros_env(tmpdir: str | os.PathLike[str],
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment for a child process that obeys the network rule.

    Starts from ``base`` (default: this process's environment), sets the variables of
    :func:`ros_settings` with the ROS log folder under ``tmpdir``, removes variables that could
    reach peers beyond loopback, strips the ROS wheels' bootstrap leak and, when no ROS is
    sourced, points ``AMENT_PREFIX_PATH`` at this venv as a sourced ROS would.
    """
    env = dict(os.environ if base is None else base)
    for name in _LEAKY_VARIABLES:
        env.pop(name, None)
    _strip_bootstrap(env)
    env.update(ros_settings(tmpdir))
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    Path(env['ROS_LOG_DIR']).mkdir(parents=True, exist_ok=True)
    return env


def apply_session_env(log_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Put the network-rule settings into ``os.environ`` for in-process rclpy; return them.

    The bootstrap variables stay: this process already runs with them.
    """
    settings = ros_settings(log_dir)
    for name in _LEAKY_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(settings)
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    Path(settings['ROS_LOG_DIR']).mkdir(parents=True, exist_ok=True)
    return settings


def executable(name: str) -> list[str]:
    """Return the command for a console script of this environment (``vpd_node``, ...).

    Looks beside this interpreter first (a venv need not be on PATH), then on PATH.
    """
    path = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(path):
        return [path]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f'{name} not found beside {sys.executable} or on PATH: is '
                                'vpd_ros installed (make setup / colcon build)?')
    return [found]


def python_command(target: str | os.PathLike[str], *args: str) -> list[str]:
    """Return the command that runs ``target`` with this interpreter.

    ``target`` is a path to a script when it ends in ``.py``, else a module name for ``-m``.
    """
    target = str(target)
    if target.endswith('.py'):
        return [sys.executable, target, *args]
    return [sys.executable, '-m', target, *args]


class RosProcess:
    """A child process in its own process group, its output captured to a log file.

    Use as a context manager: leaving the block always ends the whole group, first with SIGINT
    (so rclpy shuts down cleanly), then with SIGKILL after ``sigint_timeout`` seconds.
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str],
                 log_path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
                 sigint_timeout: float = 5.0) -> None:
        if not command:
            raise ValueError(f'command must not be empty, got {command!r}')
        if sigint_timeout < 0:
            raise ValueError(f'sigint_timeout must be >= 0 seconds, got {sigint_timeout!r}')
        self.command = list(command)
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.sigint_timeout = sigint_timeout
        self.returncode: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._cursor = 0

    @property
    def pid(self) -> int:
        """Return the child's process id (also its process group id)."""
        return self._require_started().pid

    def start(self) -> RosProcess:
        """Start the child; its stdout and stderr go to ``log_path``."""
        if self._popen is not None:
            raise RuntimeError(f'process already started: {self.command!r}')
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, 'wb') as log:
            self._popen = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f'process not started: {self.command!r}')
        return self._popen

    def output(self) -> str:
        """Return everything the child has written so far."""
        return self.log_path.read_text(encoding='utf-8', errors='replace')

    def poll(self) -> int | None:
        """Return the child's exit code, or None while it runs."""
        self.returncode = self._require_started().poll()
        return self.returncode

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until a complete output line matches ``pattern`` (``re.search``); return the match.

        Searching starts after the line of the previous match, so waiting twice for the same
        pattern waits for two lines. Raises TimeoutError after ``timeout`` seconds, or at once
        when the child exits without such a line; the message carries the output's tail.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.poll() is not None
            text = self.output()
            end = text.rfind('\n') + 1
            for line_match in re.finditer(r'[^\n]*\n', text[self._cursor:end]):
                found = regex.search(line_match.group(0).rstrip('\n'))
                if found is not None:
                    self._cursor += line_match.end()
                    return found
            if exited or time.monotonic() >= deadline:
                state = f'exited with {self.returncode}' if exited else f'no match in {timeout} s'
                raise TimeoutError(
                    f'{pattern!r}: {state}; command {self.command!r}; last output:\n'
                    + text[-3000:])
            time.sleep(0.02)

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the child to exit; return its exit code."""
        self.returncode = self._require_started().wait(timeout=timeout)
        return self.returncode

    def stop(self) -> int | None:
        """End the child's whole process group: SIGINT, then SIGKILL; return the exit code."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGINT)
            try:
                popen.wait(timeout=self.sigint_timeout)
            except subprocess.TimeoutExpired:
                pass
        # The group may outlive its leader (grandchildren): always make sure it is gone.
        _signal_group(popen.pid, signal.SIGKILL)
        if popen.poll() is None:
            popen.wait(timeout=10.0)
        self.returncode = popen.returncode
        return self.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; a group that no longer exists is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
