import pytest

from guanxi.training.config import TrainConfig, load_config


def test_defaults_ship_in_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config == TrainConfig()


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: lightgcn\ndim: 32\n")
    config = load_config(f, ["dim=16", "use_social=false", "lr=1e-3"])
    assert (config.model, config.dim, config.use_social, config.lr) == ("lightgcn", 16, False, 0.001)
    assert config.resolved_loss == "bpr"


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key 'dimm'; valid keys: \[.*'dim'"):
        load_config(None, ["dimm=3"])
    f = tmp_path / "c.yaml"
    f.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="c.yaml: unknown config key 'learning_rate'"):
        load_config(f)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="dim must be int, got 'big'"):
        load_config(None, ["dim=big"])
    with pytest.raises(ValueError, match="model must be one of"):
        load_config(None, ["model=transformer"])
    with pytest.raises(ValueError, match="expected key=value"):
        load_config(None, ["dim"])
    with pytest.raises(ValueError, match="valid_max_per_user must be >= 0"):
        load_config(None, ["valid_max_per_user=-2"])
    with pytest.raises(ValueError, match="valid_max_users must be >= 0"):
        load_config(None, ["valid_max_users=-1"])


def test_empty_string_values_survive_a_round_trip():
    """MLflow params come back as ``key=`` for empty strings (retrain, --from-run)."""
    assert load_config(None, ["fanouts="]).fanouts == ""
    assert load_config(None, ["fanouts=15,10,5"]).fanout_list == (15, 10, 5)
    with pytest.raises(ValueError, match="dim must be int, got True"):
        load_config(None, ["dim=true"])


def test_bare_on_and_off_stay_words(tmp_path):
    """YAML 1.1 reads a bare ``on``/``off`` as a boolean; the documented words must still work."""
    assert load_config(None, ["social_score=on"]).social_score == "on"
    assert load_config(None, ["social_score=off"]).social_score == "off"
    f = tmp_path / "c.yaml"
    f.write_text("social_score: on\n")
    assert load_config(f).social_score == "on"


@pytest.mark.parametrize("value", ["0", "1,-2", "1,x"])
def test_support_scales_must_be_positive_numbers(value):
    with pytest.raises(ValueError, match="support_scales"):
        load_config(None, [f"support_scales={value}"])
    assert load_config(None, ["support_scales="]).support_scale_list == ()


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_support_kind_guard_is_a_recall_difference(value):
    with pytest.raises(ValueError, match="support_kind_guard"):
        load_config(None, [f"support_kind_guard={value}"])
