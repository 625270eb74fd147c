# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the shipped models can and cannot do, said once per process when one is loaded."""

from __future__ import annotations

import logging
from typing import Callable, Optional

#: Shipped model name -> the one line said when it is loaded.
NOTICES = {
    'tiny': "the shipped 'tiny' model was trained on rendered rooms only and cannot see real "
            'images: its depth and masks on photographs are meaningless. For real cameras use '
            "the official VPD checkpoints (README, 'Real weights').",
}
LOGGER = logging.getLogger('vpd_ros')
_said: set = set()


def shipped_notice(weights: str, say: Optional[Callable[[str], None]] = None) -> Optional[str]:
    """Say the notice of a shipped model the first time it is loaded; return the notice.

    ``say`` is where the line goes (the node's logger, so that /rosout carries it); by default
    the ``vpd_ros`` Python logger (stderr).
    """
    notice = NOTICES.get(weights)
    if notice is not None and weights not in _said:
        _said.add(weights)
        if say is None:
            LOGGER.warning('vpd_ros: %s', notice)
        else:
            say(notice)
    return notice
