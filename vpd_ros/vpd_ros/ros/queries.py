# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Standing-query text rules shared by ``~/set_query``, the ``query`` topic and parameters.

Several referring expressions can stand at once: ``'the red mug; a chair'`` is two queries,
run as one batch on every frame (one mask and one Grounding each). Blank text means no query
(depth only). No ROS here.
"""

from __future__ import annotations

import unicodedata
from typing import List, Sequence

SEPARATOR = ';'


def check_printable(text: str, what: str = 'query') -> None:
    """Raise ValueError when ``text`` holds control characters other than whitespace.

    NUL, escape sequences and other C0/C1 controls are never part of a referring expression
    or a caption; they would reach logs and the tokenizer verbatim. Tabs and newlines are
    spacing.
    """
    bad = sorted({f'U+{ord(c):04X}' for c in text
                  if unicodedata.category(c) == 'Cc' and not c.isspace()})
    if bad:
        raise ValueError(f'{what} contains control characters ({", ".join(bad)}); only '
                         'printable text and spaces are allowed')


def parse_queries(text: str, max_length: int) -> List[str]:
    """Split ``text`` at ``;`` into stripped, non-empty, distinct queries, in order.

    Raises:
        ValueError: a query is longer than ``max_length`` characters, or the text holds
            control characters.
    """
    check_printable(text)
    queries: List[str] = []
    for part in text.split(SEPARATOR):
        query = ' '.join(part.split())
        if len(query) > max_length:
            raise ValueError(f'query {query[:40]!r}... has {len(query)} characters, more than '
                             f'max_query_length={max_length}')
        if query and query not in queries:
            queries.append(query)
    return queries


def parse_one_query(text: str, max_length: int) -> str:
    """Return one normalised query for ``~/ground`` (``;`` is kept as text).

    Raises:
        ValueError: the query is blank, longer than ``max_length`` characters or holds
            control characters.
    """
    check_printable(text)
    query = ' '.join(text.split())
    if not query:
        raise ValueError('query must not be blank')
    if len(query) > max_length:
        raise ValueError(f'query has {len(query)} characters, more than '
                         f'max_query_length={max_length}')
    return query


def join_queries(queries: List[str]) -> str:
    """Return the text form of standing queries, e.g. ``'the red mug; a chair'``."""
    return f'{SEPARATOR} '.join(queries)


def truncation_note(queries: List[str], truncated: Sequence[bool], token_length: int) -> str:
    """Return a note naming the queries cut to the model's ``token_length`` text tokens, or ``''``.

    ``truncated`` is the engine's per-query flag (Grounding.truncated is set on their results).
    """
    cut = [q for q, t in zip(queries, truncated) if t]
    if not cut:
        return ''
    return f' (truncated to the model\'s {token_length} text tokens: {join_queries(cut)})'
