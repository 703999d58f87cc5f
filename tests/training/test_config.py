from dataclasses import dataclass, field

import pytest

from training.config import ConfigError, default_values, load_config, save_config, untunable_keys


@dataclass
class Config:
    model: str
    learning_rate: float = 1e-5  # the paper's reward-model max lr
    epochs: int = 1
    bf16: bool | None = None
    margin_table: str = "small"
    data: list[dict] = field(default_factory=list)


def test_yaml_then_overrides_replace_the_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: ckpt/chat\nepochs: 2\ndata:\n  - {path: exports/2026-W48}\n")

    config = load_config(Config, path, ["learning_rate=2e-5", "bf16=false", "data=[{path: a}, {path: b, share: 0.1}]"])

    assert config.model == "ckpt/chat"
    assert config.epochs == 2
    assert config.learning_rate == 2e-5
    assert config.bf16 is False
    assert config.data == [{"path": "a"}, {"path": "b", "share": 0.1}]


def test_an_int_is_accepted_where_a_float_goes(tmp_path):
    config = load_config(Config, None, ["model=m", "learning_rate=1"])
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)


def test_unknown_key_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nlearning_rat: 1e-5\n")
    with pytest.raises(ConfigError, match="unknown key.*learning_rat"):
        load_config(Config, path)


def test_wrong_type_is_an_error_that_names_the_key():
    with pytest.raises(ConfigError, match="epochs must be int, got 'two'"):
        load_config(Config, None, ["model=m", "epochs=two"])


def test_missing_required_key_and_malformed_override_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="required key.*model"):
        load_config(Config, None, [])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(Config, None, ["model"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Config, tmp_path / "missing.yaml")


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config(Config, None, ["model=m", "data=[{path: x, weight: 2.0}]"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(Config, tmp_path / "config.yaml") == config


def test_values_are_plain_yaml_anchors_aliases_tags_and_deep_nesting_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"data: YAML anchors and aliases \(&name, \*name\) are not allowed"):
        load_config(Config, None, ["model=m", "data=[&a {path: x}, *a]"])
    with pytest.raises(ConfigError, match="YAML tags .*python/object/apply:os.system.* are not allowed"):
        load_config(Config, None, ["model=!!python/object/apply:os.system [id]"])
    with pytest.raises(ConfigError, match="nested deeper than 20 levels"):
        load_config(Config, None, ["model=m", "data=" + "[" * 25 + "]" * 25])
    with pytest.raises(ConfigError, match="epochs is not valid YAML: .* at line 1, column 4"):
        load_config(Config, None, ["model=m", "epochs=[1,"])
    path = tmp_path / "run.yaml"
    path.write_text("model: &m chat\nlearning_rate: 1.0e-5\nbf16: *m\n")
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_config(Config, path)


def test_every_badly_typed_value_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        load_config(Config, None, ["model=m", "epochs=two", "learning_rate=fast"])
    assert error.value.errors == [
        "overrides: epochs must be int, got 'two'", "overrides: learning_rate must be float, got 'fast'",
    ]


def test_untunable_keys_names_nested_keys_outside_the_list():
    tunable = {"learning_rate", "sft.epochs"}
    assert untunable_keys({"learning_rate": 1, "sft": {"epochs": 2}}, tunable) == []
    assert untunable_keys({"sft": {"epochs": 2, "out": "/etc"}, "out": "x"}, tunable) == ["sft.out", "out"]
    assert untunable_keys({"sft": "not a mapping"}, tunable) == ["sft"]


def test_default_values_are_the_dataclass_defaults_then_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nepochs: 3\n")
    assert default_values(Config) == {"learning_rate": 1e-5, "epochs": 1, "bf16": None, "margin_table": "small", "data": []}
    assert default_values(Config, path)["epochs"] == 3 and default_values(Config, path)["model"] == "m"


def test_a_dotted_override_changes_one_field_of_one_list_entry_and_keeps_the_rest(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\ndata:\n  - {path: exports/2026-W48, guidelines: [helpfulness]}\n  - exports/anthropic\n")

    config = load_config(Config, path, ["data.0.guidelines=[safety]", "data.1.share=0.1"])

    assert config.data == [
        {"path": "exports/2026-W48", "guidelines": ["safety"]},
        {"path": "exports/anthropic", "share": 0.1},
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.2.guidelines=[safety]", "data has 1 entries, numbered from 0; '2' is not one"),
        ("data.first.guidelines=[safety]", "'first' is not one"),
        ("dat.0.guidelines=[safety]", "unknown key dat"),
        ("model.x=1", "model is 'm', not a list or mapping"),
    ],
)
def test_a_dotted_override_that_points_nowhere_is_an_error_that_says_where(tmp_path, override, message):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\ndata:\n  - {path: a}\n")
    with pytest.raises(ConfigError, match="override") as refused:
        load_config(Config, path, [override])
    assert message in str(refused.value)


def test_the_shipped_cpu_reward_model_config_trains_a_safety_model_with_one_override():
    from training import reward_model
    from training.data import parse_sources

    config = load_config(reward_model.Config, "training/configs/reward_model_smollm2_cpu.yaml", ["data.0.guidelines=[safety]"])

    (source,) = parse_sources(config.data)
    assert source.guidelines == ["safety"] and source.path == "var/exports/2026-W48"
    with pytest.raises(ConfigError, match="unknown key"):
        parse_sources(load_config(reward_model.Config, "training/configs/reward_model_smollm2_cpu.yaml", ["data.0.guidlines=[safety]"]).data)
