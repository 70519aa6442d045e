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
from typing import TYPE_CHECKING, Any

from model.config import TrainConfig

if TYPE_CHECKING:
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
    # Where the Prefect evaluation report links to; empty: an http(s) tracking_uri, else the
    # address `make ui` serves (http://127.0.0.1:5000).
    ui_url: str = ""


@dataclass
class CrawlConfig:
    """What to collect. No `seeds`: serve the embedded pydoc site on 127.0.0.1 and crawl it."""

    seeds: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # sitemap.xml / sitemap index URLs
    site_modules: int = 300
    max_pages: int = 400
    max_depth: int = 3
    max_pages_per_host: int = 0  # 0: no per-host limit
    time_budget_s: float = 3600.0  # the whole crawl; URLs left over end with 'budget: time'
    # Scope: a host matches an entry equal to it or a parent domain of it; empty: the seeds'
    # hosts. URL regexes (re.search): include (any, when given), then exclude (none).
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    include_patterns: list[str] = field(default_factory=list)
    exclude_patterns: list[str] = field(default_factory=list)
    # Safety: hosts or IPs/CIDRs allowed although private, loopback, link-local or metadata.
    allow_private_hosts: list[str] = field(default_factory=list)
    # Robustness: per attempt, connect and per-read timeouts and a total deadline (timeout_s).
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_retries: int = 3  # on timeouts, resets, 429 and 5xx, with exponential backoff
    backoff_s: float = 1.0  # first retry's wait; doubles each retry
    max_retry_after_s: float = 60.0  # cap on a server's Retry-After
    max_redirects: int = 5
    max_bytes: int = 5_000_000  # body cut here (after gzip/deflate decoding)
    content_types: list[str] = field(
        default_factory=lambda: ["text/html", "application/xhtml+xml", "text/plain"]
    )
    # Politeness, per host: seconds between requests (robots.txt Crawl-delay wins up to
    # max_crawl_delay_s), concurrent requests, and hosts fetched at once per Spark task.
    host_delay_s: float = 0.0
    max_crawl_delay_s: float = 30.0
    host_concurrency: int = 1
    host_threads: int = 8
    user_agent: str = "lmforge-crawler/0.1"
    # Re-crawl: an earlier crawl output folder (<work_dir>/crawl/<fingerprint>); its ETag and
    # Last-Modified are sent, and a 304 keeps its page ('not_modified').
    previous_output: str = ""
    books_dir: str = ""
    partitions: int = 4
    # Other sources (each empty = none). Books: Gutenberg-style .txt URLs, fetched politely.
    book_urls: list[str] = field(default_factory=list)
    # Common Crawl WARC (HTML responses, extracted like pages) and WET (text) files: local
    # paths, globs or http(s) URLs.
    warc_paths: list[str] = field(default_factory=list)
    # Existing dumps: .jsonl/.json(.gz), .parquet or .txt files (paths, globs or URLs); a
    # JSONL/Parquet row's text is in `dump_text_field`, a .txt file is one document.
    dump_paths: list[str] = field(default_factory=list)
    dump_text_field: str = "text"
    # A remote WARC/dump/book file is fetched whole into memory, up to this size.
    max_file_bytes: int = 1_000_000_000


@dataclass
class ExtractConfig:
    """Main-text extraction with trafilatura."""

    favor_precision: bool = False
    # Recall keeps the API tables of pydoc-style pages (~97% of their text, vs ~81% without).
    favor_recall: bool = True
    include_tables: bool = True
    min_chars: int = 50
    # Work items: each Parquet row group of the input is one Spark task (the crawl writes its
    # pages and WARC records in 8 MB row groups: ~125 benchmark pages), cut in slices when it holds
    # more than 1/n of all records, n = max(`partitions`, 2 x the cores): a small input is still
    # shared out over the cores.
    partitions: int = 8
    time_limit_s: float = 10.0  # per page; slower pages are dropped as 'extraction_timeout'
    # Language id (py3langid): keep only these ISO 639-1 codes (empty = any) scored at least
    # `min_lang_score` (probability in [0, 1]).
    allowed_langs: list[str] = field(default_factory=list)
    min_lang_score: float = 0.0


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
    # Hash partitions of the shard layout: at least `partitions`, more for a large corpus so that
    # each holds about `partition_mb` MB of text (uncompressed, from the Parquet footers) and its
    # sort stays in memory: memory then does not grow with the corpus (bench/tokenize.py).
    partitions: int = 4
    partition_mb: int = 8
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
    # Beyond held-out loss, perplexity and bits per byte (0 or "" switches a part off):
    # BLEU/chrF of greedy continuations of held-out documents (prompt: the first
    # `prompt_tokens`, reference: the next `reference_tokens`), last-word cloze accuracy.
    bleu_docs: int = 20
    prompt_tokens: int = 32
    reference_tokens: int = 32
    cloze_docs: int = 50
    texts: list[str] = field(default_factory=list)  # text files/folders: perplexity, bpb
    choices: str = ""  # JSONL {context, choices, label}: acc and acc_norm
    sft: str = ""  # JSONL {prompt, response} or {messages}: answer perplexity, BLEU, chrF
    sft_max_new_tokens: int = 64


@dataclass
class RegisterConfig:
    """Promotion gate: a new version gets alias `candidate`; `champion` moves to it only if it
    beats the champion on every metric in `promote_metrics` by `promote_margin` (relative:
    0.01 = 1% better). Names ending in loss, perplexity, bpb or nll are lower-is-better."""

    promote_metrics: list[str] = field(default_factory=lambda: ["val_bpb"])
    promote_margin: float = 0.0


@dataclass
class FinetuneConfig:
    """Supervised fine-tuning of a registered model on a JSONL domain set (model/sft.py format),
    through the training script with these settings over `train`'s; registered as
    `<base model name>-<domain>` with its own promotion gate."""

    domain: str = "domain"
    val_data: str = ""  # held-out JSONL; empty: every `val_every`-th line of the data
    val_every: int = 5
    choices: str = ""  # the domain's JSONL {context, choices, label}: accuracy before/after
    steps: int = 100
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_steps: int = 10
    micro_batch: int = 8
    eval_every: int = 50
    promote_metrics: list[str] = field(default_factory=lambda: ["sft_perplexity"])
    promote_margin: float = 0.0


def _model_config_class() -> type[ModelConfig]:
    """`ModelConfig`, imported only when a whole config is built: model/gpt.py imports torch,
    and Spark executors, which unpickle one section of this module, should not pay for it."""
    from model.gpt import ModelConfig

    return ModelConfig


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
    model: ModelConfig = field(default_factory=lambda: _model_config_class()())
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

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
    sections = typing.get_type_hints(LmforgeConfig, localns={"ModelConfig": _model_config_class()})
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
