import json

from guanxi.app.cli import main


def test_world_then_features_cli(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["world", "--users", "300", "--seed", "3", "--out", str(out)]) == 0
    assert (out / "world.json").is_file() and (out / "truth" / "ties.parquet").is_file()
    assert main(["features", "--data", str(out), "--json", str(tmp_path / "f.json")]) == 0
    summary = json.loads((tmp_path / "f.json").read_text())
    assert summary["users"] == 300 and summary["tie_strength"]["label"] == "later_window"
    assert "Spearman with true strength" in capsys.readouterr().out


def test_bad_data_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    (tmp_path / "train.tsv").write_text("user\titem\tts\nu1\ti1\tnoon\n")
    (tmp_path / "test.tsv").write_text("user\titem\nu1\ti1\n")
    (tmp_path / "social.tsv").write_text("user\tfriend\n")
    assert main(["features", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "train.tsv, line 2, field 'ts': not an integer: 'noon'" in err


def test_unknown_dataset_name(capsys):
    assert main(["features", "--data", "no-such-set"]) == 2
    assert "not a named set" in capsys.readouterr().err
