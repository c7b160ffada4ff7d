"""One definition of an id (guanxi.features.id_rules) for every endpoint and loader."""
from __future__ import annotations

import pandas as pd
import pytest

from guanxi.features.id_rules import MAX_ID_LENGTH, check_id, first_bad_id, id_problem
from guanxi.features.schema import Origin, SchemaError, make_events, validate_events, validate_ties

GOOD = ["u1", "用户 1", "a b", "x" * MAX_ID_LENGTH, "émile", "42", "user@example"]
BAD = {
    "u\x00": "U+0000",                     # PostgreSQL refuses NUL in text
    "u\x1b[31m": "U+001B",                 # a terminal escape
    "ab\u202ecd": "U+202E",                # right-to-left override: displays as "abdc"
    "ab\u2066cd": "U+2066",                # left-to-right isolate
    "a\u200db": "U+200D",                  # zero-width joiner
    "a\u2028b": "U+2028",                  # line separator
    "a\u00a0b": "U+00A0",                  # no-break space inside an id
    "": "empty",
    "   ": "whitespace only",
    " u1": "leading or trailing whitespace",
    "u1\t": "leading or trailing whitespace",
    "x" * (MAX_ID_LENGTH + 1): "above the limit",
}


@pytest.mark.parametrize("value", GOOD)
def test_valid_ids_pass(value):
    assert id_problem(value) is None and check_id(value) == value


@pytest.mark.parametrize("value, says", BAD.items())
def test_each_kind_of_bad_id_is_named(value, says):
    with pytest.raises(ValueError, match="user_id") as err:
        check_id(value, "user_id")
    assert says in str(err.value)


def test_first_bad_id_finds_the_row_and_skips_missing_values():
    values = pd.Series(["a", None, "b", "c\x00", "c\x00", "d"], dtype=object)
    row, problem = first_bad_id(values)
    assert row == 3 and "U+0000" in problem
    assert first_bad_id(pd.Series(["a", None, "b"], dtype=object)) is None


def test_loaders_refuse_an_id_with_a_control_character_naming_line_and_field():
    events = make_events(pd.Series(["u1", "u2", "u\x003"]), pd.Series(["i1", "i2", "i3"]))
    with pytest.raises(SchemaError, match=r"train.tsv, line 4, field 'user_id': id contains the non-printable"):
        validate_events(events, Origin("train.tsv"))
    ties = pd.DataFrame({"user_id": ["u1", "u2"], "friend_id": ["u2", "u1\u202e"]}, dtype=object)
    with pytest.raises(SchemaError, match=r"social.tsv, line 3, field 'friend_id'.*U\+202E"):
        validate_ties(ties, Origin("social.tsv"))
