import numpy as np
import pandas as pd
import pytest

from guanxi.features.schema import (
    Origin, SchemaError, make_events, make_items, validate_events, validate_items, validate_ties,
)


def test_make_events_has_canonical_columns_and_dtypes():
    ev = make_events(np.array([1, 2]), np.array(["a", "b"]), "read", ts=np.array([5, 6]))
    assert list(ev.columns) == ["user_id", "item_id", "type", "ts", "value", "event_id"]
    assert ev["user_id"].tolist() == ["1", "2"]
    assert str(ev["ts"].dtype) == "Int64"
    assert ev["value"].isna().all()
    assert ev["event_id"].isna().all()


def test_make_items_defaults_commercial_to_merchants():
    items = make_items(["m1", "c1"], np.array(["merchant", "content"]))
    assert items["commercial"].tolist() == [True, False]


def test_unknown_event_type_names_line_and_field():
    ev = make_events(["u1", "u2", "u3"], ["a", "b", "c"], np.array(["view", "read", "teleport"]))
    with pytest.raises(SchemaError, match=r"f\.tsv, line 4, field 'type'.*'teleport'"):
        validate_events(ev, Origin("f.tsv"))


def test_unknown_kind_is_an_error():
    items = make_items(["a", "b"], np.array(["content", "podcast"]))
    with pytest.raises(SchemaError, match=r"line 3, field 'kind'.*'podcast'"):
        validate_items(items, Origin("items.tsv"))


def test_owner_must_be_an_official_account():
    items = make_items(["oa", "c"], np.array(["official_account", "content"]),
                       owner_id=np.array([None, "nobody"], dtype=object))
    with pytest.raises(SchemaError, match=r"line 3, field 'owner'.*'nobody'"):
        validate_items(items, Origin("items.tsv"))


def test_self_tie_and_dangling_user_are_errors():
    ties = pd.DataFrame({"user_id": ["a", "b"], "friend_id": ["b", "b"]})
    with pytest.raises(SchemaError, match="line 3, field 'friend_id': self-tie"):
        validate_ties(ties, Origin("social.tsv"))
    ties = pd.DataFrame({"user_id": ["a"], "friend_id": ["zz"]})
    with pytest.raises(SchemaError, match="dangling id 'zz'"):
        validate_ties(ties, Origin("social.tsv"), pd.Series(["a", "b"]))


def test_dangling_item_in_events():
    ev = make_events(["u"], ["ghost"])
    with pytest.raises(SchemaError, match="field 'item_id': dangling id 'ghost'"):
        validate_events(ev, Origin("train.parquet", first_line=1), items_known=pd.Series(["a"]))
