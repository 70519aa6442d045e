"""The typed config: defaults < TOML < --set, and errors that name the key and its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "preset.toml"
    path.write_text(text)
    return path


def test_defaults_then_toml_then_cli(tmp_path):
    preset = write(tmp_path, "[train]\nlr = 0.01\nsteps = 7\n[crawl]\nseeds = ['http://a/']\n")
    config = load_config(preset, ["train.lr=3e-4", "model.n_layer=2"])
    assert config.train.lr == 3e-4  # CLI beats TOML
    assert config.train.steps == 7  # TOML beats default
    assert config.model.n_layer == 2
    assert config.crawl.seeds == ["http://a/"]
    assert config.train.micro_batch == 16  # untouched default


def test_int_is_accepted_for_float_and_strings_stay_strings(tmp_path):
    config = load_config(None, ["train.lr=1", "run.work_dir=/tmp/x y", "spark.master=local[2]"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.run.work_dir == "/tmp/x y"
    assert config.spark.master == "local[2]"


def test_unknown_key_names_key_and_file(tmp_path):
    preset = write(tmp_path, "[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"preset.toml.*'train.learning_rate'"):
        load_config(preset)


def test_unknown_section_and_wrong_type_from_cli():
    with pytest.raises(ConfigError, match=r"--set.*unknown section 'trian'"):
        load_config(None, ["trian.lr=1"])
    with pytest.raises(ConfigError, match=r"--set.*'train.steps' must be int, got str"):
        load_config(None, ["train.steps=many"])
    with pytest.raises(ConfigError, match=r"'train.steps' must be int, got bool"):
        load_config(None, ["train.steps=true"])
    with pytest.raises(ConfigError, match=r"'crawl.seeds\[1\]' must be str"):
        load_config(None, ["crawl.seeds=['a', 3]"])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["lr=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[train\n"))


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_presets_load(preset):
    config = load_config(preset)
    assert config.to_dict()["train"]["steps"] > 0


def test_mlflow_uri_defaults_to_sqlite_in_work_dir(tmp_path):
    config = load_config(None, [f"run.work_dir={tmp_path}"])
    assert config.mlflow_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(None, ["tracking.tracking_uri=http://127.0.0.1:5000"])
    assert config.mlflow_uri() == "http://127.0.0.1:5000"


def test_a_bad_choice_fails_at_load_naming_key_and_source():
    with pytest.raises(ConfigError, match=r"^--set: train\.precision = 'bf61': must be one of"):
        load_config(None, ["train.precision=bf61"])
    with pytest.raises(ConfigError, match=r"^--set: train\.zero_stage = 4: must be one of 0, 1"):
        load_config(None, ["train.zero_stage=4"])


def test_a_bad_toml_value_names_the_file(tmp_path):
    preset = write(tmp_path, "[tokenize]\nval_fraction = 1.5\n")
    with pytest.raises(
        ConfigError, match=r"preset\.toml: tokenize\.val_fraction = 1\.5: .*\[0, 1\)"
    ):
        load_config(preset)
    with pytest.raises(ConfigError, match=r"preset\.toml: crawl\.seeds = \['ftp://a/'\]: .*http"):
        load_config(write(tmp_path, "[crawl]\nseeds = ['ftp://a/']\n"))


def test_a_cross_field_rule_names_both_keys_and_their_sources(tmp_path):
    preset = write(tmp_path, "[train]\nema_decay = 0.99\n")
    wanted = (
        r"preset\.toml: train\.ema_decay = 0\.99: ema_decay needs train\.zero_stage <= 2.*"
        r"\(train\.zero_stage = 3 from --set\)"
    )
    with pytest.raises(ConfigError, match=wanted):
        load_config(preset, ["train.zero_stage=3"])
    with pytest.raises(ConfigError, match=r"^default: model\.n_embd = 128: .*model\.n_head = 5"):
        load_config(None, ["model.n_head=5"])
    # the same settings, each valid alone, pass
    assert load_config(preset).train.ema_decay == 0.99


def test_a_filter_threshold_set_by_its_nested_key_reaches_the_filter(tmp_path):
    from tasks.curate.filters.build import build_filters

    preset = write(tmp_path, "[curate.c4]\nmin_sentences = 2\n[curate]\nfilters = ['c4']\n")
    config = load_config(preset, ["curate.gopher_quality.max_symbol_word_ratio=0.25"])
    assert config.curate.gopher_quality.max_symbol_word_ratio == 0.25
    assert config.to_dict()["curate"]["c4"]["min_sentences"] == 2
    config.curate.filters = ["gopher_quality", "c4", "length"]
    quality, c4, length = build_filters(config.curate)
    assert quality.config.max_symbol_word_ratio == 0.25
    assert c4.config.min_sentences == 2
    assert length.config.min_chars == 100  # untouched default
    with pytest.raises(ConfigError, match=r"--set: curate\.c4\.min_sentences = -1: .*>= 0"):
        load_config(None, ["curate.c4.min_sentences=-1"])
    with pytest.raises(ConfigError, match=r"unknown key 'curate\.c4\.min_sentence'"):
        load_config(None, ["curate.c4.min_sentence=1"])


def test_an_old_flat_key_names_its_new_key(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"--set: 'curate\.gopher_max_symbol_word_ratio' was renamed to "
        r"'curate\.gopher_quality\.max_symbol_word_ratio'",
    ):
        load_config(None, ["curate.gopher_max_symbol_word_ratio=0.2"])
    preset = write(tmp_path, "[curate]\ntoxicity_threshold = 0.5\n")
    with pytest.raises(
        ConfigError, match=r"preset\.toml: .*renamed to 'curate\.toxicity\.threshold'"
    ):
        load_config(preset)
    with pytest.raises(
        ConfigError, match=r"'curate\.langs' was renamed to 'extract\.allowed_langs'"
    ):
        load_config(None, ["curate.langs=['en', 'fr']"])


def test_sections_check_themselves_when_built():
    from model.config import SettingError, TrainConfig
    from tasks.config import CrawlConfig

    with pytest.raises(SettingError, match=r"train\.offload_params = True: .*zero_stage = 3"):
        TrainConfig(offload_params=True)
    with pytest.raises(ValueError, match=r"crawl\.max_pages = 0: max_pages must be >= 1"):
        CrawlConfig(max_pages=0)


def test_a_choice_must_have_its_own_type() -> None:
    with pytest.raises(ConfigError, match="train.zero_stage = 2.0"):
        load_config(None, ["train.zero_stage=2.0"])
