# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-stage milliseconds of one frame: CUDA events that never stall the device, or host clocks.

An event pair is recorded around each stage on the stream the stage runs on, and the pairs are
read once the frame is done, so timing needs no synchronisation between stages (the two UNets
keep overlapping on CUDA). On the CPU, and on CUDA when exact isolated stage times are wanted,
:class:`HostEvent` takes the host clock instead (optionally synchronising first).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


class HostEvent:
    """A host-clock event with the part of ``torch.cuda.Event``'s interface the clock uses.

    Args:
        sync: called before the time is taken (``torch.cuda.synchronize`` for exact device
            times on the host clock); ``None`` on the CPU.
    """

    def __init__(self, sync: Optional[Callable[[], None]] = None) -> None:
        self._sync = sync
        self.time = 0.0

    def record(self) -> None:
        """Take the time (after waiting for the device when synchronising)."""
        if self._sync is not None:
            self._sync()
        self.time = time.perf_counter()

    def synchronize(self) -> None:
        """Nothing to wait for: the time was taken when recorded."""

    def elapsed_time(self, end: 'HostEvent') -> float:
        """Return milliseconds from this event to ``end``."""
        return (end.time - self.time) * 1e3


class StageClock:
    """Sums the milliseconds of named stages of one frame; read with :meth:`resolve` at its end.

    Args:
        make_event: returns a new unrecorded event: ``HostEvent`` (host clock) or
            ``lambda: torch.cuda.Event(enable_timing=True)`` (device clock, no stalls).
    """

    def __init__(self, make_event: Callable[[], Any]) -> None:
        self._make_event = make_event
        self._open: Dict[str, List[Any]] = {}
        self._spans: List[Tuple[str, Any, Any]] = []

    def _record(self) -> Any:
        event = self._make_event()
        event.record()
        return event

    def begin(self, name: str) -> None:
        """Record the start of stage ``name`` (stages may nest; one left open is not counted)."""
        self._open.setdefault(name, []).append(self._record())

    def end(self, name: str) -> None:
        """Record the end of the innermost open stage ``name``."""
        self._spans.append((name, self._open[name].pop(), self._record()))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (stages of one name add up)."""
        self.begin(name)
        yield
        self.end(name)

    def resolve(self) -> Dict[str, float]:
        """Return stage -> milliseconds, waiting for each stage's end event."""
        out: Dict[str, float] = {}
        for name, start, end in self._spans:
            end.synchronize()
            out[name] = out.get(name, 0.0) + start.elapsed_time(end)
        return out
