"""Raw public dumps with the mess real ones carry (self-ties, exact duplicate rows): the loaded
tables are clean and each file's drops are counted in one warning line; other damage is an error."""
from __future__ import annotations

import pytest

from guanxi.features.load_raw import load_lastfm_hetrec, load_yelp_hin
from guanxi.features.schema import SchemaError


def test_yelp_with_self_ties_and_duplicates_loads(tmp_path, caplog):
    (tmp_path / "user_business.dat").write_text("1\t10\t5\n2\t10\t4\n1\t10\t5\n2\t11\t3\n")
    (tmp_path / "user_user.dat").write_text("1\t2\t1\n2\t1\t1\n2\t2\t1\n1\t2\t1\n3\t3\t1\n")
    (tmp_path / "business_category.dat").write_text("10\t7\t1\n11\t8\t1\n")
    (tmp_path / "business_city.dat").write_text("10\t1\t1\n11\t2\t1\n")
    with caplog.at_level("WARNING", logger="guanxi.features.schema"):
        tables = load_yelp_hin(tmp_path)
    assert len(tables.events) == 3 and list(zip(tables.ties["user_id"], tables.ties["friend_id"])) == [
        ("1", "2"), ("2", "1")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("user_business.dat: dropped 1 exact duplicate rows (e.g. line 3)" in m for m in messages)
    ties = [m for m in messages if "user_user.dat" in m]
    assert len(ties) == 1 and "2 self-ties (e.g. line 3: '2' -> '2')" in ties[0] and "1 exact duplicate" in ties[0]


def test_lastfm_with_a_self_tie_loads_and_a_bad_count_is_still_an_error(tmp_path, caplog):
    (tmp_path / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n4\t51\t7\n")
    (tmp_path / "user_friends.dat").write_text("userID\tfriendID\n2\t4\n4\t2\n4\t4\n")
    with caplog.at_level("WARNING", logger="guanxi.features.schema"):
        tables = load_lastfm_hetrec(tmp_path)
    assert len(tables.ties) == 2 and "1 self-ties" in caplog.text
    (tmp_path / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\tlots\n")
    with pytest.raises(SchemaError, match=r"user_artists\.dat, line 2, field 'weight'"):
        load_lastfm_hetrec(tmp_path)
