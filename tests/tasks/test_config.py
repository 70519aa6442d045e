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
