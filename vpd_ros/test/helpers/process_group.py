# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Child process for the harness test: ignore SIGINT and start a grandchild.

Prints ``CHILD <pid>`` and ``GRANDCHILD <pid>``, then sleeps: only SIGKILL of the whole process
group ends both, which is what RosProcess must do.
"""

import os
import signal
import subprocess
import sys
import time


def main() -> None:
    """Start the grandchild and sleep."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    grandchild = subprocess.Popen(
        [sys.executable, '-c',
         ('import signal, time; '
          'signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)')])
    print(f'CHILD {os.getpid()}', flush=True)
    print(f'GRANDCHILD {grandchild.pid}', flush=True)
    time.sleep(600)


if __name__ == '__main__':
    main()
