"""Codes read straight from a world's Parquet files agree with codes of its tables, and the reader checks its input."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from guanxi.features import world_io
from guanxi.features.coded import coded_from_dataset, load_coded_world, read_truth_ties
from guanxi.features.datasets import load_dataset
from guanxi.features.schema import SchemaError
from guanxi.features.summary import build_features, summarize
from guanxi.features.world import WorldConfig, generate_codes


def test_streamed_world_loads_back_as_the_generated_tables(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setattr(world_io, "BLOCK_ROWS", 7_000)  # many row groups per table
    out = world_io.write_world_codes(generate_codes(WorldConfig(users=2_000, seed=7)), tmp_path / "w")
    assert pq.ParquetFile(out / "train.parquet").num_row_groups > 3
    loaded = load_dataset(out)
    for name in ("users", "items", "ties", "pair_events", "train", "valid", "test"):
        want, got = getattr(tiny_world.dataset, name), getattr(loaded, name)
        assert len(want) == len(got), name
        for col in want.columns:
            a, b = want[col].to_numpy(), got[col].to_numpy()
            if a.dtype.kind == "f":
                np.testing.assert_array_equal(a, b)
            else:
                assert [None if x is None or x != x else str(x) for x in a] == \
                       [None if x is None or x != x else str(x) for x in b], (name, col)


def test_coded_world_matches_codes_of_the_tables(tiny_world, tiny_world_dir):
    from_parquet = load_coded_world(tiny_world_dir)
    from_tables = coded_from_dataset(tiny_world.dataset)
    for field in ("item_kind", "commercial", "owner", "tie_user", "tie_friend", "pair_user",
                  "pair_friend", "pair_type", "pair_ts"):
        np.testing.assert_array_equal(getattr(from_parquet, field), getattr(from_tables, field), field)
    for split in ("train", "valid", "test"):
        for field in ("user", "item", "type", "ts"):
            np.testing.assert_array_equal(getattr(getattr(from_parquet, split), field),
                                          getattr(getattr(from_tables, split), field), (split, field))
    assert from_parquet.user_ids.equals(from_tables.user_ids)


def test_features_from_parquet_codes_equal_features_from_tables(tiny_world, tiny_world_dir):
    from_tables = coded_from_dataset(tiny_world.dataset)
    tables = build_features(from_tables)
    data = load_coded_world(tiny_world_dir)
    coded = build_features(data, truth_ties=read_truth_ties(tiny_world_dir, data))
    np.testing.assert_array_equal(coded.a, tables.a)
    np.testing.assert_array_equal(coded.strength, tables.strength)
    for want, got in zip(tables.circles, coded.circles):
        np.testing.assert_array_equal(want, got)
    want, got = summarize(from_tables, tables), summarize(data, coded)
    assert got["tie_strength"].pop("spearman_truth") > 0.5
    assert want["tie_strength"].pop("spearman_truth") is None
    assert got == want
    assert data.items_frame().astype(str).equals(tiny_world.dataset.items[
        ["item_id", "kind", "commercial", "owner_id", "category"]].astype(str))

def _corrupt(world_dir, tmp_path, table: str, column: str, row: int, value):
    import shutil
    out = tmp_path / "bad"
    shutil.copytree(world_dir, out)
    t = pq.read_table(out / f"{table}.parquet")
    values = t.column(column).to_pylist()
    values[row] = value
    t = t.set_column(t.schema.get_field_index(column), column, pa.array(values, t.schema.field(column).type))
    pq.write_table(t, out / f"{table}.parquet")
    return out


def test_coded_loader_names_file_line_and_field(tiny_world_dir, tmp_path):
    bad = _corrupt(tiny_world_dir, tmp_path, "train", "item_id", 41, "nope")
    with pytest.raises(SchemaError, match=r"train\.parquet, line 42, field 'item_id': dangling id 'nope'"):
        load_coded_world(bad)


def test_coded_loader_rejects_unknown_types_and_missing_ids(tiny_world_dir, tmp_path):
    bad = _corrupt(tiny_world_dir, tmp_path, "pair_events", "type", 3, "hug")
    with pytest.raises(SchemaError, match=r"pair_events\.parquet, line 4, field 'type': unknown value 'hug'"):
        load_coded_world(bad)
    bad = _corrupt(tiny_world_dir, tmp_path / "2", "ties", "friend_id", 0, None)
    with pytest.raises(SchemaError, match=r"ties\.parquet, line 1, field 'friend_id': missing value"):
        load_coded_world(bad)
