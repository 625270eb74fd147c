# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Test harness that keeps every ROS 2 process of a test session on loopback.

The network rule of this project: anything that starts DDS runs with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Kilted ignores ``ROS_LOCALHOST_ONLY``), a private
``ROS_DOMAIN_ID`` and ``ROS_LOG_DIR`` in a temporary folder. :func:`ros_env` builds such an
environment for child processes, :func:`apply_session_env` puts the same settings into this
process, and :class:`RosProcess` runs a child with it, logs its output to a file and always
ends its whole process group.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vpd_ros.rosenv import (  # noqa: F401  (re-exported for the tests)
    DOMAIN_ID_RANGE, SESSION_DOMAIN_ID, apply_session_env, ros_env, ros_settings)

if TYPE_CHECKING:  # typing.Self needs Python 3.11; annotations are never evaluated here.
    from typing_extensions import Self



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


@dataclasses.dataclass
class RosTestContext:
    """An initialised rclpy context of the test process with one node and an executor."""

    context: Any
    node: Any
    executor: Any

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin the executor until ``predicate()`` is true or ``timeout`` seconds pass.

        Returns the predicate's last value, so callers can assert on it.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return predicate()
            self.executor.spin_once(timeout_sec=min(0.05, remaining))
        return True


def unique_name(prefix: str) -> str:
    """Return ``prefix`` with a random suffix: names that other sessions cannot share."""
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', prefix):
        raise ValueError(f'prefix must be a ROS name token [A-Za-z][A-Za-z0-9_]*, got {prefix!r}')
    return f'{prefix}_{os.getpid()}_{random.getrandbits(32):08x}'
