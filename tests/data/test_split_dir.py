"""The split-directory format: round trip, and every malformed file names file, line, field."""
from pathlib import Path

import pytest

from guanxi.features.load_split import load_split_dir, write_split_dir
from guanxi.features.schema import SchemaError


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


GOOD = {
    "train.tsv": "user\titem\tts\tvalue\nu1\ti1\t10\t2\nu1\ti2\t11\t\nu2\ti1\t12\t1.5\n",
    "test.tsv": "user\titem\nu1\ti3\nu3\ti1\n",
    "social.tsv": "user\tfriend\nu1\tu2\nu2\tu1\nu3\tu4\n",
}


def test_plain_split_dir_loads_with_sizes_from_files(tmp_path):
    ds = load_split_dir(_write(tmp_path / "d", GOOD))
    assert len(ds.users) == 4          # u4 appears only in social.tsv
    assert len(ds.items) == 3          # i3 appears only in test.tsv: still in the universe
    assert set(ds.items["kind"]) == {"content"}
    assert ds.train["type"].tolist() == ["view"] * 3
    assert ds.train["ts"].tolist() == [10, 11, 12]
    assert len(ds.valid) == 0 and len(ds.test) == 2


def test_round_trip_keeps_everything(tmp_path):
    files = dict(GOOD)
    files["items.tsv"] = ("item\tkind\tcommercial\towner\tcategory\n"
                          "i1\tofficial_account\ttrue\t\t\ni2\tcontent\tfalse\ti1\tnews\n"
                          "i3\tmerchant\ttrue\t\tfood\n")
    files["valid.tsv"] = "user\titem\ttype\nu2\ti2\tpay\n"
    ds = load_split_dir(_write(tmp_path / "d", files))
    write_split_dir(ds, tmp_path / "copy")
    again = load_split_dir(tmp_path / "copy")
    for name in ("train", "valid", "test", "items", "ties", "users"):
        a, b = getattr(ds, name), getattr(again, name)
        assert a.astype(str).equals(b.astype(str)), name


@pytest.mark.parametrize("fname,text,match", [
    ("train.tsv", "usr\titem\nu1\ti1\n", r"train\.tsv, line 1, field 'user': missing column"),
    ("train.tsv", "user\titem\tcolour\nu1\ti1\tred\n", r"line 1, field 'colour': unknown column"),
    ("train.tsv", "user\titem\ttype\nu1\ti1\tview\nu1\ti2\tteleport\n",
     r"train\.tsv, line 3, field 'type': unknown value 'teleport'"),
    ("train.tsv", "user\titem\tts\nu1\ti1\t10\nu1\ti2\tyesterday\n",
     r"train\.tsv, line 3, field 'ts': not an integer: 'yesterday'"),
    ("train.tsv", "user\titem\tvalue\nu1\ti1\tabc\n", r"line 2, field 'value': not a finite number"),
    ("train.tsv", "user\titem\nu1\t\n", r"train\.tsv, line 2, field 'item': missing value"),
    ("train.tsv", "user\titem\nu1\ti1\textra\n", r"train\.tsv, line 2.*malformed row"),
    ("social.tsv", "user\tfriend\nu1\tu1\nu2\t\n", r"social\.tsv, line 3, field 'friend': missing value"),
    ("train.tsv", "user\titem\tts\nu1\ti1\t10\nu1\ti1\t10\nu1\ti2\tlater\n",
     r"train\.tsv, line 4, field 'ts': not an integer"),     # lines still count after a dropped duplicate
    ("items.tsv", "item\tkind\ni1\tcontent\ni2\tpodcast\ni3\tcontent\n",
     r"items\.tsv, line 3, field 'kind': unknown value 'podcast'"),
    ("items.tsv", "item\tkind\ni1\tcontent\ni2\tcontent\n",
     r"test\.tsv.*field 'item': dangling id 'i3'"),
])
def test_malformed_files_name_file_line_and_field(tmp_path, fname, text, match):
    files = dict(GOOD)
    files[fname] = text
    with pytest.raises(SchemaError, match=match):
        load_split_dir(_write(tmp_path / "d", files))


def test_missing_required_file(tmp_path):
    files = dict(GOOD)
    del files["social.tsv"]
    with pytest.raises(SchemaError, match=r"social\.tsv: missing file"):
        load_split_dir(_write(tmp_path / "d", files))


def test_failed_write_leaves_the_old_directory_untouched(tmp_path):
    ds = load_split_dir(_write(tmp_path / "d", GOOD))
    out = write_split_dir(ds, tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())
    broken = ds.__class__(ds.name, ds.users, None, ds.ties, ds.pair_events, ds.train, ds.valid, ds.test)
    with pytest.raises(Exception):
        write_split_dir(broken, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_self_ties_and_duplicate_rows_are_dropped_with_one_warning(tmp_path, caplog):
    files = dict(GOOD)
    files["social.tsv"] = "user\tfriend\nu1\tu2\nu1\tu1\nu2\tu1\nu1\tu2\nu3\tu3\nu3\tu4\n"
    files["train.tsv"] = GOOD["train.tsv"] + "u1\ti1\t10\t2\n"          # line 5 repeats line 2
    with caplog.at_level("WARNING", logger="guanxi.features.schema"):
        ds = load_split_dir(_write(tmp_path / "d", files))
    assert list(zip(ds.ties["user_id"], ds.ties["friend_id"])) == [("u1", "u2"), ("u2", "u1"), ("u3", "u4")]
    assert len(ds.train) == 3
    lines = [r.getMessage() for r in caplog.records]
    social = [m for m in lines if "social.tsv" in m]
    train = [m for m in lines if "train.tsv" in m]
    assert len(social) == 1 and "2 self-ties (e.g. line 3: 'u1' -> 'u1')" in social[0]
    assert "1 exact duplicate rows (e.g. line 5)" in social[0]
    assert len(train) == 1 and "1 exact duplicate rows (e.g. line 5)" in train[0]
