"""The typed configuration tree: one dataclass per step, presets in TOML, `--set` overrides.

Precedence is CLI > TOML > defaults. An unknown key or a value of the wrong type fails with a
`ConfigError` naming the key and where it came from (the TOML file or the command line).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.config import TrainConfig
from model.gpt import ModelConfig


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and its source."""


@dataclass
class RunConfig:
    """Where outputs go. Every step writes `<work_dir>/<step>/<fingerprint>/`."""

    work_dir: str = "runs/demo"


@dataclass
class SparkConfig:
    """The Spark cluster of the data steps: `local[*]` here, `spark://host:7077` on a cluster."""

    master: str = "local[*]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 4


@dataclass
class TrackingConfig:
    """MLflow: an empty `tracking_uri` means `sqlite:///<work_dir>/mlflow.db` (embedded)."""

    tracking_uri: str = ""
    experiment: str = "lmforge"
    model_name: str = "lmforge-gpt"


@dataclass
class CrawlConfig:
    """What to collect. No `seeds`: serve the embedded pydoc site on 127.0.0.1 and crawl it."""

    seeds: list[str] = field(default_factory=list)
    site_modules: int = 300
    max_pages: int = 400
    max_depth: int = 3
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    timeout_s: float = 10.0
    max_bytes: int = 5_000_000
    user_agent: str = "lmforge-crawler/0.1"
    books_dir: str = ""
    partitions: int = 4


@dataclass
class ExtractConfig:
    """Main-text extraction with trafilatura."""

    favor_precision: bool = False
    # Recall keeps the API tables of pydoc-style pages (~97% of their text, vs ~81% without).
    favor_recall: bool = True
    include_tables: bool = True
    min_chars: int = 50
    partitions: int = 4  # Spark partitions the pages are spread over for extraction


@dataclass
class CurateConfig:
    """Filters (in `filters` order, first drop wins), exact dedup, then MinHash LSH dedup.

    Thresholds default to the published values (C4, Gopher, FineWeb as in datatrove). Word-list
    files: one entry per line; an empty path means the bundled C4 bad-words list
    (tasks/curate/wordlists/) for word lists, and no entries for `blocked_domains_file`.
    """

    # Filter order; names: length, links, gopher_repetition, gopher_quality, c4, fineweb,
    # toxicity, pii. Leave one out to switch it off.
    filters: list[str] = field(
        default_factory=lambda: [
            "length",
            "links",
            "gopher_repetition",
            "gopher_quality",
            "c4",
            "fineweb",
            "toxicity",
            "pii",
        ]
    )
    min_chars: int = 100  # length: fewer stripped characters than this -> too_short
    # links
    blocked_domains_file: str = ""  # domains (and their subdomains) whose pages are dropped
    url_blockwords_file: str = ""  # words that drop a page when they appear in its URL
    max_url_line_fraction: float = 0.5  # a line with more URL characters than this is removed
    max_url_char_fraction: float = 0.3  # a document with more URL characters is link spam
    # gopher_repetition (Rae et al. 2021); fractions of characters unless named *_fraction
    gopher_dup_line_fraction: float = 0.3
    gopher_dup_para_fraction: float = 0.3
    gopher_dup_line_char_fraction: float = 0.2
    gopher_dup_para_char_fraction: float = 0.2
    gopher_top_ngram_fractions: list[float] = field(default_factory=lambda: [0.2, 0.18, 0.16])
    gopher_dup_ngram_fractions: list[float] = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )  # n = 2..4 above, n = 5..10 here
    # gopher_quality
    gopher_min_words: int = 50
    gopher_max_words: int = 100_000
    gopher_min_avg_word_length: float = 3.0
    gopher_max_avg_word_length: float = 10.0
    gopher_max_symbol_word_ratio: float = 0.1
    gopher_max_bullet_lines_ratio: float = 0.9
    gopher_max_ellipsis_lines_ratio: float = 0.3
    gopher_min_alpha_words_ratio: float = 0.8
    gopher_min_stop_words: int = 2
    # c4 (Raffel et al. 2020)
    c4_min_sentences: int = 5
    c4_min_words_per_line: int = 3
    c4_max_word_length: int = 1000
    c4_filter_curly_bracket: bool = True
    # fineweb (Penedo et al. 2024)
    fineweb_line_punct_threshold: float = 0.12
    fineweb_short_line_threshold: float = 0.67
    fineweb_short_line_length: int = 30
    fineweb_char_dup_threshold: float = 0.01
    fineweb_newline_ratio: float = 0.3
    # toxicity: C4 bad words in the text, and alt-profanity-check's score (max over lines)
    badwords_file: str = ""
    toxicity_threshold: float = 0.9  # > 1 switches the classifier off
    # near-duplicates: MinHash over word n-grams, LSH with bands x rows permutations (FineWeb)
    minhash_ngram: int = 5
    minhash_bands: int = 14
    minhash_rows: int = 8
    minhash_seed: int = 1
    # Candidate pairs whose signatures agree on fewer than this share of permutations are not
    # merged (0 = merge every LSH candidate, as FineWeb does).
    min_estimated_jaccard: float = 0.7
    components_max_iterations: int = 50
    # An earlier curate output folder (<work_dir>/curate/<fingerprint>) whose stored band
    # index is deduplicated against: its documents win. Empty: deduplicate within this input.
    previous_output: str = ""


@dataclass
class TokenizeConfig:
    """Byte-level BPE training and sharded binary token files."""

    vocab_size: int = 4096
    min_frequency: int = 2
    train_docs: int = 20000
    val_fraction: float = 0.05
    shard_tokens: int = 10_000_000
    partitions: int = 4
    tokenizer_file: str = ""  # an existing tokenizer.json to use instead of training one
    shuffle: bool = False  # seeded global document order instead of the id order
    shuffle_seed: int = 0


@dataclass
class EvalConfig:
    """Held-out loss and perplexity, plus sample generations from fixed prompts and seed."""

    max_batches: int = 50
    prompts: list[str] = field(
        default_factory=lambda: ["The module", "This function returns", "class "]
    )
    max_new_tokens: int = 60
    temperature: float = 0.8
    top_k: int = 40
    seed: int = 1234


@dataclass
class LmforgeConfig:
    """The whole pipeline's configuration, one section per step."""

    run: RunConfig = field(default_factory=RunConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def mlflow_uri(self) -> str:
        """The tracking URI in force: the configured one, else SQLite in the work directory."""
        if self.tracking.tracking_uri:
            return self.tracking.tracking_uri
        return f"sqlite:///{Path(self.run.work_dir).resolve() / 'mlflow.db'}"


def _check_value(key: str, value: Any, hint: Any, source: str) -> Any:
    """Return `value` as type `hint`, or raise ConfigError naming `key` and `source`."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list of {item.__name__}, got {value!r}")
        return [_check_value(f"{key}[{i}]", v, item, source) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(
            f"{source}: '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _apply(section_obj: Any, section: str, values: dict[str, Any], source: str) -> None:
    hints = typing.get_type_hints(type(section_obj))
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"{source}: unknown key '{section}.{key}' (known: {known})")
        setattr(section_obj, key, _check_value(f"{section}.{key}", value, hints[key], source))


def _parse_override(text: str) -> tuple[str, str, Any]:
    """Split `section.key=value`; the value is read as a TOML literal, else as a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.lr=3e-4")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> LmforgeConfig:
    """Defaults, then the TOML preset at `path`, then `overrides` (`section.key=value`)."""
    config = LmforgeConfig()
    sections = typing.get_type_hints(LmforgeConfig)
    layers: list[tuple[str, dict[str, dict[str, Any]]]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (presets live in configs/)")
        try:
            layers.append((str(path), tomllib.loads(path.read_text())))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from err
    cli: dict[str, dict[str, Any]] = {}
    for text in overrides or []:
        section, key, value = _parse_override(text)
        cli.setdefault(section, {})[key] = value
    layers.append(("--set", cli))
    for source, tree in layers:
        for section, values in tree.items():
            if section not in sections:
                raise ConfigError(
                    f"{source}: unknown section '{section}' (known: {', '.join(sections)})"
                )
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: '{section}' must be a table of keys")
            _apply(getattr(config, section), section, values, source)
    return config
