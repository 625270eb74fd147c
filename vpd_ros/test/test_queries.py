# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The standing-query text rules (vpd_ros.ros.queries) as pure functions, no node process."""

import pytest

from vpd_ros.ros.queries import join_queries, parse_one_query, parse_queries, truncation_note


def test_parse_queries_splits_normalises_and_limits() -> None:
    """';' separates queries; whitespace is normalised, blanks and repeats dropped."""
    assert parse_queries(' the  red mug ; a chair;;the red mug ', 50) == ['the red mug',
                                                                          'a chair']
    assert parse_queries('   ', 50) == []
    with pytest.raises(ValueError, match='max_query_length=5'):
        parse_queries('a long query', 5)


def test_join_is_the_inverse_of_parse() -> None:
    """The text form of standing queries parses back to the same list."""
    queries = ['the red mug', 'a chair', 'the ball on the left']
    assert join_queries(queries) == 'the red mug; a chair; the ball on the left'
    assert parse_queries(join_queries(queries), 50) == queries
    assert join_queries([]) == ''


def test_parse_one_query_keeps_separators_and_refuses_blank_and_long() -> None:
    """~/ground takes one query: ';' is text, spacing is normalised, limits are named."""
    assert parse_one_query('  mug;\tchair ', 50) == 'mug; chair'
    with pytest.raises(ValueError, match='must not be blank'):
        parse_one_query(' \n ', 50)
    with pytest.raises(ValueError, match='max_query_length=3'):
        parse_one_query('a mug', 3)


@pytest.mark.parametrize('text', ['mug\x00', 'a \x1b[31mred\x1b[0m mug', 'cup\x7f', 'x\x9by'])
def test_control_characters_are_refused_by_both_parsers(text: str) -> None:
    """NUL, escapes and C1 controls never pass; the message names the code point."""
    for parse in (parse_queries, parse_one_query):
        with pytest.raises(ValueError, match='U\\+00'):
            parse(text, 50)
    assert parse_queries('tab\tand\nnewline are spacing', 50) == ['tab and newline are spacing']


def test_truncation_note_names_only_the_cut_queries():
    """Nothing when no query was cut; otherwise the token length and the cut queries."""
    assert truncation_note(['a', 'b'], [False, False], 77) == ''
    note = truncation_note(['a mug', 'a very long text', 'x'], [False, True, True], 77)
    assert note == " (truncated to the model's 77 text tokens: a very long text; x)"
