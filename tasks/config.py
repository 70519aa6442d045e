"""The typed configuration tree: one dataclass per step, presets in TOML, `--set` overrides.

Precedence is CLI > TOML > defaults. Each section documents its fields (a docstring per field,
choices as `Literal` types) and checks itself (`validate()`, run by `__post_init__`: ranges
and cross-field rules, model.config.Checked). `load_config` runs every check once the layers
are applied, so a bad value fails at load, not inside a step. An unknown key, a value of the
wrong type or one a check refuses fails with a `ConfigError` naming the key and where its value
came from (the TOML file, "--set" or "default"). Each curate filter's thresholds are a nested
section, `curate.<filter>.<key>`; an old flat key (`curate.gopher_min_words`) fails naming
its new one (`RENAMED_KEYS`).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from model.config import Checked, TrainConfig
from tasks.curate.eval_sets import DecontaminateConfig
from tasks.curate.filters.c4 import C4Config
from tasks.curate.filters.fineweb import FineWebConfig
from tasks.curate.filters.gopher_quality import GopherQualityConfig
from tasks.curate.filters.gopher_repetition import GopherRepetitionConfig
from tasks.curate.filters.length import LengthConfig
from tasks.curate.filters.links import LinksConfig
from tasks.curate.filters.toxicity import ToxicityConfig
from tasks.curate.paragraphs import ParagraphDedupConfig
from tasks.curate.quality_classifier import QualityConfig
from tasks.curate.social_rules import SocialConfig

if TYPE_CHECKING:
    from model.gpt import ModelConfig


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and its source."""


FILTER_NAMES = (
    "length",
    "links",
    "gopher_repetition",
    "gopher_quality",
    "c4",
    "fineweb",
    "toxicity",
    "pii",
)


@dataclass
class RunConfig(Checked):
    """Where outputs go. Every step writes `<work_dir>/<step>/<fingerprint>/`."""

    section: ClassVar[str] = "run"

    work_dir: str = "runs/demo"
    """The folder of every step's outputs (and, by default, the MLflow database)."""

    def check(self) -> None:
        self.require(bool(self.work_dir.strip()), "work_dir", "work_dir must not be empty")


@dataclass
class SparkConfig(Checked):
    """The Spark cluster of the data steps: `local[*]` here, `spark://host:7077` on a cluster."""

    section: ClassVar[str] = "spark"

    master: str = "local[*]"
    """The Spark master URL."""
    driver_memory: str = "2g"
    """The driver's JVM heap (Spark's spark.driver.memory)."""
    shuffle_partitions: int = 4
    """spark.sql.shuffle.partitions (>= 1)."""

    def check(self) -> None:
        self.require(bool(self.master.strip()), "master", "master must not be empty")
        self.at_least(1, "shuffle_partitions")


@dataclass
class TrackingConfig(Checked):
    """MLflow: an empty `tracking_uri` means `sqlite:///<work_dir>/mlflow.db` (embedded)."""

    section: ClassVar[str] = "tracking"

    tracking_uri: str = ""
    """The MLflow tracking URI; "" = SQLite in the work directory."""
    experiment: str = "lmforge"
    """The MLflow experiment of the runs."""
    model_name: str = "lmforge-gpt"
    """The registered model's name."""
    ui_url: str = ""
    """Where the Prefect evaluation report links to; empty: an http(s) tracking_uri, else the
    address `make ui` serves (http://127.0.0.1:5000)."""

    def check(self) -> None:
        self.require(bool(self.experiment.strip()), "experiment", "experiment must not be empty")
        self.require(bool(self.model_name.strip()), "model_name", "model_name must not be empty")


@dataclass
class CrawlConfig(Checked):
    """What to collect. No `seeds`, `sitemaps` or `feeds`: serve the embedded pydoc site on
    127.0.0.1 and crawl it."""

    section: ClassVar[str] = "crawl"

    seeds: list[str] = field(default_factory=list)
    """Start URLs (http or https); empty = the embedded pydoc site."""
    sitemaps: list[str] = field(default_factory=list)
    """sitemap.xml / sitemap index URLs whose URLs are crawled too; a Google News sitemap's
    entries are news items (`source = "news"`, like `feeds`)."""
    feeds: list[str] = field(default_factory=list)
    """News feeds (RSS 2.0, RSS 1.0, Atom, JSON Feed): URLs or local paths; each new item's
    article is fetched and written to `<crawl>/news` with `meta.published_at`, `meta.feed`,
    `meta.guid`."""
    site_feed_items: int = 0
    """Embedded pydoc site only: its RSS feed (`/feed.xml`) lists this many of its pages, which
    are then crawled as news too; 0: the feed is not read (>= 0)."""
    site_modules: int = 300
    """Modules of the embedded pydoc site (>= 1)."""
    max_pages: int = 400
    """Pages fetched at most (>= 1)."""
    max_depth: int = 3
    """Link hops from the seeds (>= 0)."""
    max_pages_per_host: int = 0
    """Pages per host name at most; 0: no per-host limit."""
    time_budget_s: float = 3600.0
    """The whole crawl's time (> 0); URLs left over end with 'budget: time'."""
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    """Scope: a host matches an entry equal to it or a parent domain of it; empty: the seeds'
    hosts."""
    include_patterns: list[str] = field(default_factory=list)
    """URL regexes (re.search): a URL must match one, when any are given."""
    exclude_patterns: list[str] = field(default_factory=list)
    """URL regexes (re.search): a URL matching one is skipped."""
    allow_private_hosts: list[str] = field(default_factory=list)
    """Safety: hosts or IPs/CIDRs allowed although private, loopback, link-local or metadata."""
    timeout_s: float = 10.0
    """Total deadline of one attempt (> 0)."""
    connect_timeout_s: float = 5.0
    """Connect timeout of one attempt (> 0)."""
    read_timeout_s: float = 10.0
    """Per-read timeout of one attempt (> 0)."""
    max_retries: int = 3
    """Retries on timeouts, resets, 429 and 5xx, with exponential backoff (>= 0)."""
    backoff_s: float = 1.0
    """The first retry's wait; doubles each retry (>= 0)."""
    max_retry_after_s: float = 60.0
    """Cap on a server's Retry-After (>= 0)."""
    max_redirects: int = 5
    """Redirects followed per URL (>= 0)."""
    max_bytes: int = 5_000_000
    """A body is cut here, after gzip/deflate decoding (>= 1)."""
    content_types: list[str] = field(
        default_factory=lambda: ["text/html", "application/xhtml+xml", "text/plain"]
    )
    """Content types kept."""
    host_delay_s: float = 0.0
    """Politeness: seconds between requests to a host (robots.txt Crawl-delay wins up to
    max_crawl_delay_s) (>= 0)."""
    max_crawl_delay_s: float = 30.0
    """Cap on robots.txt's Crawl-delay (>= 0)."""
    host_concurrency: int = 1
    """Concurrent requests per host (>= 1)."""
    host_threads: int = 8
    """Hosts fetched at once per Spark task (>= 1)."""
    user_agent: str = "lmforge-crawler/0.1"
    """The User-Agent header, and the name robots.txt rules are matched against."""
    previous_output: str = ""
    """Re-crawl: an earlier crawl output folder (<work_dir>/crawl/<fingerprint>); its ETag and
    Last-Modified are sent, and a 304 keeps its page ('not_modified')."""
    books_dir: str = ""
    """A folder of Project Gutenberg .txt files; "" = none."""
    partitions: int = 4
    """Spark partitions of the URL frontier, at most one per host (>= 1)."""
    book_urls: list[str] = field(default_factory=list)
    """Books: Gutenberg-style .txt URLs (http or https), fetched politely."""
    warc_paths: list[str] = field(default_factory=list)
    """Common Crawl WARC (HTML responses, extracted like pages) and WET (text) files: local
    paths, globs or http(s) URLs; a file named `*paths.gz` (or `*.paths`) is a list of them in
    Common Crawl's `warc.paths.gz` format (one path a line, relative to `warc_base_url`)."""
    warc_base_url: str = "https://data.commoncrawl.org/"
    """What the relative entries of a `warc.paths.gz` list are resolved against: a URL or a
    local folder (a mirror)."""
    warc_max_files: int = 0
    """WARC/WET files read at most, taken in `warc_paths` order (lists expanded); 0: all (>= 0)."""
    warc_resume_dir: str = ""
    """A folder kept across runs: each WARC/WET file's Parquet part and completion marker are
    written there as the file finishes (and linked into the crawl output), so a re-run after a
    crash skips the files done with the same `max_bytes`; "": `<work_dir>/crawl/.warc-parts`
    (the crawl step's default; the crawl function alone then keeps them in its output only)."""
    dump_paths: list[str] = field(default_factory=list)
    """Existing dumps: .jsonl/.json(.gz), .parquet or .txt files (paths, globs or URLs); a
    JSONL/Parquet row's text is in `dump_text_field`, a .txt file is one document."""
    dump_text_field: str = "text"
    """The text column of a JSONL/Parquet dump."""
    social_paths: list[str] = field(default_factory=list)
    """Social-media message dumps (paths, globs or URLs; plain, .gz or .zst): Reddit API JSON
    or Pushshift-style NDJSON, Mastodon API statuses, ActivityPub outboxes (tasks/crawl/social.py);
    the format is read from the content."""
    social_assemble: Literal["message", "thread"] = "message"
    """One document per message, or per thread (its messages in reply order)."""
    social_salt: str = "lmforge-social-v1"
    """Salt of `meta.author_hash` (sha256 of salt, platform and author). The default is public,
    so set your own secret value to make hashes hard to link to accounts."""
    max_file_bytes: int = 1_000_000_000
    """A remote dump/book file is fetched whole into memory, up to this size; a remote WARC/WET
    file is streamed, and one longer than this fails as a safety limit (>= 1)."""

    def check(self) -> None:
        for key in ("seeds", "sitemaps", "book_urls"):
            for url in getattr(self, key):
                from tasks.crawl.links import normalise_url  # courlan: only when there are URLs

                self.require(
                    normalise_url(url) is not None,
                    key,
                    f"{url!r} is not an http(s) URL (e.g. https://host/path)",
                )
        for key in ("include_patterns", "exclude_patterns"):
            for pattern in getattr(self, key):
                try:
                    re.compile(pattern)
                except re.error as err:
                    self.fail(key, f"{pattern!r} is not a valid regex: {err}")
        self.at_least(1, "site_modules", "max_pages", "max_bytes", "max_file_bytes")
        self.at_least(1, "host_concurrency", "host_threads", "partitions")
        self.at_least(
            0,
            "site_feed_items",
            "max_depth",
            "max_pages_per_host",
            "max_retries",
            "max_redirects",
            "warc_max_files",
        )
        self.at_least(0, "backoff_s", "max_retry_after_s", "host_delay_s", "max_crawl_delay_s")
        self.positive("time_budget_s", "timeout_s", "connect_timeout_s", "read_timeout_s")
        self.require(bool(self.user_agent.strip()), "user_agent", "user_agent must not be empty")


@dataclass
class ExtractConfig(Checked):
    """Main-text extraction with trafilatura."""

    section: ClassVar[str] = "extract"

    favor_precision: bool = False
    """trafilatura's favor_precision: less text, less noise."""
    favor_recall: bool = True
    """trafilatura's favor_recall: recall keeps the API tables of pydoc-style pages (~97% of
    their text, vs ~81% without)."""
    include_tables: bool = True
    """Keep the text of tables."""
    min_chars: int = 50
    """Pages (and WARC, news, book and dump records) with less extracted text are dropped as
    too_short (>= 0)."""
    social_min_chars: int = 1
    """The same floor for social messages (`source = "social"`, >= 0): a message is short, and
    1 passes every message with text to curate, whose `curate.social` stage judges it."""
    partitions: int = 8
    """Work items: each Parquet row group of the input is one Spark task (the crawl writes its
    pages and WARC records in 8 MB row groups: ~125 benchmark pages), cut in slices when it
    holds more than 1/n of all records, n = max(`partitions`, 2 x the cores): a small input is
    still shared out over the cores (>= 1)."""
    time_limit_s: float = 10.0
    """Per page (> 0); slower pages are dropped as 'extraction_timeout'."""
    allowed_langs: list[str] = field(default_factory=list)
    """Language id (py3langid): keep only these ISO 639-1 codes (empty = any). The one setting
    that decides which languages reach the corpus: curate drops no language as such; only its
    rules with a `*langs` key (curate.gopher_quality.stop_words_langs, curate.toxicity.langs)
    are limited to the languages listed there."""
    min_lang_score: float = 0.0
    """Keep only pages whose language scores at least this (a probability; >= 0, and above
    1 keeps none)."""

    def check(self) -> None:
        self.at_least(0, "min_chars", "social_min_chars")
        self.at_least(1, "partitions")
        self.positive("time_limit_s")
        self.at_least(0, "min_lang_score")
        for code in self.allowed_langs:
            self.require(
                len(code) == 2 and code.isalpha() and code.islower(),
                "allowed_langs",
                f"{code!r} is not an ISO 639-1 code (two lower-case letters, e.g. 'en')",
            )


@dataclass
class CurateConfig(Checked):
    """Filters (in `filters` order, first drop wins), paragraph dedup, exact dedup, MinHash LSH
    dedup, decontamination against the evaluation sets, then the quality classifier.

    Each filter's thresholds are its own section, `curate.<filter>.<key>` (its config
    dataclass, beside the filter in tasks/curate/filters/); they default to the published values
    (C4, Gopher, FineWeb as in datatrove)."""

    section: ClassVar[str] = "curate"

    filters: list[str] = field(default_factory=lambda: list(FILTER_NAMES))
    """Filter order; names: length, links, gopher_repetition, gopher_quality, c4, fineweb,
    toxicity, pii. Leave one out to switch it off."""
    length: LengthConfig = field(default_factory=LengthConfig)
    """The length floor."""
    links: LinksConfig = field(default_factory=LinksConfig)
    """Blocked domains and URL words, URL lines, link spam."""
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    """Gopher's repetition rules (Rae et al. 2021)."""
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    """Gopher's quality rules (Rae et al. 2021)."""
    c4: C4Config = field(default_factory=C4Config)
    """C4's line and document rules (Raffel et al. 2020)."""
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)
    """FineWeb's quality rules (Penedo et al. 2024)."""
    toxicity: ToxicityConfig = field(default_factory=ToxicityConfig)
    """C4 bad words and alt-profanity-check's score (max over lines)."""
    social: SocialConfig = field(default_factory=SocialConfig)
    """Message-level cleaning of `source = "social"` records, after the filters: which filters
    judge them, links, bot repeats, exact and character n-gram near duplicates."""
    paragraph_dedup: ParagraphDedupConfig = field(default_factory=ParagraphDedupConfig)
    """Lines (or paragraphs) in at least `min_documents` documents, removed from all of them
    (after the filters and the social stage, before exact dedup; social messages skip it)."""
    minhash_ngram: int = 5
    """Near-duplicates: MinHash over word n-grams of this n (>= 1)."""
    minhash_bands: int = 14
    """LSH bands (>= 1); bands x rows permutations (FineWeb's 14 x 8)."""
    minhash_rows: int = 8
    """LSH rows per band (>= 1)."""
    minhash_seed: int = 1
    """Seed of the MinHash permutations."""
    minhash_max_bucket: int = 1000
    """LSH buckets keep at most this many members (the smallest ids); the surplus is not
    compared in that band (counted as lsh_buckets_capped, lsh_bucket_members_skipped; >= 2)."""
    min_estimated_jaccard: float = 0.7
    """Candidate pairs whose signatures agree on fewer than this share of permutations are
    not merged (in [0, 1]; 0 = merge every LSH candidate, as FineWeb does)."""
    components_max_iterations: int = 50
    """Iterations of the connected-components search over duplicate pairs (>= 1)."""
    previous_output: str = ""
    """An earlier curate output folder (<work_dir>/curate/<fingerprint>) whose stored band
    index is deduplicated against: its documents win. Empty: deduplicate within this input."""
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    """Word n-gram overlap with every evaluation set, after near dedup: drop or redact."""
    quality: QualityConfig = field(default_factory=QualityConfig)
    """The fastText quality classifier (DCLM-style), the last stage; off by default."""

    def check(self) -> None:
        unknown = [name for name in self.filters if name not in FILTER_NAMES]
        self.require(
            not unknown,
            "filters",
            f"unknown filter(s) {unknown}; known: {', '.join(FILTER_NAMES)}",
        )
        self.require(
            len(set(self.filters)) == len(self.filters),
            "filters",
            "filters must name each filter at most once",
        )
        unknown = [name for name in self.social.filters if name not in FILTER_NAMES]
        self.require(
            not unknown,
            "social",
            f"social.filters: unknown filter(s) {unknown}; known: {', '.join(FILTER_NAMES)}",
        )
        self.at_least(1, "minhash_ngram", "minhash_bands", "minhash_rows")
        self.at_least(1, "components_max_iterations")
        self.at_least(2, "minhash_max_bucket")
        self.fraction("min_estimated_jaccard")


# The `source` of a document record (docs/architecture.md, "Data flow").
SOURCES = ("web", "warc", "wet", "news", "book", "dump", "social")


@dataclass
class TokenizeConfig(Checked):
    """Byte-level BPE training and sharded binary token files."""

    section: ClassVar[str] = "tokenize"

    vocab_size: int = 4096
    """Tokens of the trained BPE vocabulary, with the 256 bytes and the special tokens (> 256)."""
    min_frequency: int = 2
    """A pair merged by BPE occurs at least this often (>= 1)."""
    train_docs: int = 20000
    """Documents BPE is trained on at most (>= 1)."""
    val_fraction: float = 0.05
    """Share of documents held out for validation (in [0, 1))."""
    shard_tokens: int = 10_000_000
    """Tokens per shard file (>= 1)."""
    partitions: int = 4
    """Hash partitions of the shard layout (>= 1): at least this many, more for a large corpus
    so that each holds about `partition_mb` MB of text (uncompressed, from the Parquet
    footers) and its sort stays in memory: memory then does not grow with the corpus
    (bench/tokenize.py)."""
    partition_mb: int = 8
    """MB of text per hash partition; 0 = exactly `partitions`."""
    tokenizer_file: str = ""
    """An existing tokenizer.json to use instead of training one."""
    shuffle: bool = False
    """A seeded global document order instead of the id order."""
    shuffle_seed: int = 0
    """The seed of that order."""
    mix: dict[str, float] = field(default_factory=dict)
    """Each source's weight in the train split: its target share of the train tokens (weights
    are normalised; 0 leaves a source out; every source in the data needs one), reached by
    repeating or sampling its documents (tasks/tokenize/mix.py). Sources: web, warc, wet,
    news, book, dump, social. Empty: the natural mix. Validation is never mixed; manifest.json
    and the model card record each source's tokens, share and epochs. In TOML a table,
    `[tokenize.mix]`; with --set `tokenize.mix={web=3,book=1}`."""
    mix_seed: int = 0
    """The seed of the order in which a fraction of an epoch takes a source's documents."""

    def check(self) -> None:
        unknown = sorted(set(self.mix) - set(SOURCES))
        self.require(
            not unknown, "mix", f"mix: unknown source(s) {unknown}; sources are {list(SOURCES)}"
        )
        self.require(
            all(w >= 0 for w in self.mix.values()) and (not self.mix or sum(self.mix.values()) > 0),
            "mix",
            "mix weights must be >= 0 and not all 0",
        )
        self.require(
            self.vocab_size > 256,
            "vocab_size",
            "vocab_size must be > 256 (the byte alphabet, plus merges and special tokens)",
        )
        self.at_least(1, "min_frequency", "train_docs", "shard_tokens", "partitions")
        self.at_least(0, "partition_mb")
        self.require(
            0.0 <= self.val_fraction < 1.0, "val_fraction", "val_fraction must be in [0, 1)"
        )


@dataclass
class EvalConfig(Checked):
    """Held-out loss and perplexity, plus sample generations from fixed prompts and seed."""

    section: ClassVar[str] = "evaluate"

    max_batches: int = 50
    """Held-out batches evaluated at most (>= 1)."""
    prompts: list[str] = field(
        default_factory=lambda: ["The module", "This function returns", "class "]
    )
    """Prompts of the sample generations."""
    max_new_tokens: int = 60
    """Tokens generated per sample (>= 0)."""
    temperature: float = 0.8
    """Sampling temperature (>= 0; 0 = greedy)."""
    top_k: int = 40
    """Sample from the k most likely tokens (>= 0; 0 = all)."""
    seed: int = 1234
    """Seed of the samples."""
    bleu_docs: int = 20
    """BLEU/chrF of greedy continuations of this many held-out documents (>= 0; 0 = off)."""
    prompt_tokens: int = 32
    """BLEU: the prompt is a document's first this many tokens (>= 1)."""
    reference_tokens: int = 32
    """BLEU: the reference is the next this many tokens (>= 1)."""
    cloze_docs: int = 50
    """Last-word cloze accuracy over this many held-out documents (>= 0; 0 = off)."""
    texts: list[str] = field(default_factory=list)
    """Text files/folders: perplexity and bits per byte on each."""
    choices: str = ""
    """JSONL {context, choices, label}: acc and acc_norm; "" = off."""
    sft: str = ""
    """JSONL {prompt, response} or {messages}: answer perplexity, BLEU, chrF; "" = off."""
    sft_max_new_tokens: int = 64
    """Tokens generated per SFT answer (>= 1)."""

    def check(self) -> None:
        self.at_least(1, "max_batches", "prompt_tokens", "reference_tokens")
        self.at_least(1, "sft_max_new_tokens")
        self.at_least(0, "max_new_tokens", "temperature", "top_k", "bleu_docs", "cloze_docs")


def _check_gate(config: Checked) -> None:
    """The promotion gate's rules, shared by `register` and `finetune`."""
    config.require(
        bool(config.promote_metrics),  # type: ignore[attr-defined]
        "promote_metrics",
        "promote_metrics must name at least one metric (e.g. ['val_bpb'])",
    )
    config.at_least(0, "promote_margin")


@dataclass
class RegisterConfig(Checked):
    """Promotion gate: a new version gets alias `candidate`; `champion` moves to it only if it
    beats the champion on every metric in `promote_metrics` by `promote_margin`. Names ending
    in loss, perplexity, bpb or nll are lower-is-better."""

    section: ClassVar[str] = "register"

    promote_metrics: list[str] = field(default_factory=lambda: ["val_bpb"])
    """The metrics a candidate must beat the champion on (at least one)."""
    promote_margin: float = 0.0
    """By how much, relative (>= 0; 0.01 = 1% better)."""

    def check(self) -> None:
        _check_gate(self)


@dataclass
class FinetuneConfig(Checked):
    """Supervised fine-tuning of a registered model on a JSONL domain set (model/sft.py format),
    through the training script with these settings over `train`'s; registered as
    `<base model name>-<domain>` with its own promotion gate."""

    section: ClassVar[str] = "finetune"

    domain: str = "domain"
    """The domain's name, the registered model's suffix."""
    val_data: str = ""
    """Held-out JSONL; empty: every `val_every`-th line of the data."""
    val_every: int = 5
    """Without val_data, every this-th line is held out (>= 2)."""
    choices: str = ""
    """The domain's JSONL {context, choices, label}: accuracy before/after; "" = off."""
    steps: int = 100
    """Optimizer steps (>= 1)."""
    lr: float = 3e-4
    """Peak learning rate (> 0)."""
    min_lr: float = 3e-5
    """The rate the schedule decays to (0 <= min_lr <= lr)."""
    warmup_steps: int = 10
    """Steps of linear warmup (>= 0)."""
    micro_batch: int = 8
    """Sequences per rank per pass (>= 1)."""
    eval_every: int = 50
    """Evaluate every N steps, and at the end (>= 1)."""
    promote_metrics: list[str] = field(default_factory=lambda: ["sft_perplexity"])
    """The metrics the fine-tuned candidate must beat its champion on (at least one)."""
    promote_margin: float = 0.0
    """By how much, relative (>= 0)."""
    # LoRA (model/lora.py): these five settings, checked together in _check_lora.
    method: Literal["full", "lora"] = "full"
    """"full": train every weight; "lora": freeze the base and train low-rank adapters only
    (checkpoints hold only the adapters; the registered model has them merged, and the adapter
    is kept beside it). LoRA needs train.zero_stage <= 2 and train.ema_decay = 0."""
    lora_rank: int = 8
    """LoRA: the adapters' rank r (>= 1); each target layer trains r x (in + out) numbers."""
    lora_alpha: float = 16.0
    """LoRA: the update is scaled by lora_alpha / lora_rank (> 0)."""
    lora_dropout: float = 0.0
    """LoRA: dropout on the adapters' input while training (in [0, 1))."""
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "kv_proj"])
    """LoRA: the block layers that get adapters, among q_proj, kv_proj, out_proj, gate_up,
    down_proj (default: attention's query and key/value projections, ~1.5 % of the demo
    shape's parameters at rank 8)."""

    def check(self) -> None:
        self.require(bool(self.domain.strip()), "domain", "domain must not be empty")
        self.at_least(2, "val_every")
        self.at_least(1, "steps", "micro_batch", "eval_every")
        self.at_least(0, "warmup_steps", "min_lr")
        self.positive("lr")
        self.require(
            self.min_lr <= self.lr,
            "min_lr",
            f"min_lr must be <= finetune.lr = {self.lr!r} (the schedule decays to it)",
            "lr",
        )
        _check_gate(self)
        _check_lora(self)


def _check_lora(config: FinetuneConfig) -> None:
    """The LoRA settings' rules (checked whatever the method, so a preset is right up front)."""
    # model.lora imports torch; a whole config (which builds a GPT's ModelConfig) does anyway
    from model.lora import LORA_TARGETS

    config.require(
        config.lora_rank >= 1,
        "lora_rank",
        "lora_rank must be >= 1 (the adapters' rank; 8 is a common choice)",
    )
    config.positive("lora_alpha")
    config.require(
        0.0 <= config.lora_dropout < 1.0, "lora_dropout", "lora_dropout must be in [0, 1)"
    )
    unknown = [name for name in config.lora_targets if name not in LORA_TARGETS]
    config.require(
        bool(config.lora_targets) and not unknown,
        "lora_targets",
        f"lora_targets must name at least one layer, each one of {', '.join(LORA_TARGETS)}"
        + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
    )
    config.require(
        len(set(config.lora_targets)) == len(config.lora_targets),
        "lora_targets",
        "lora_targets names a layer twice",
    )


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


# Keys that moved: the old flat key -> its new place. Setting an old key fails, naming the new.
RENAMED_KEYS = {
    # the languages kept are chosen once, where they are identified
    "curate.langs": "extract.allowed_langs",
    "curate.min_chars": "curate.length.min_chars",
    "curate.blocked_domains_file": "curate.links.blocked_domains_file",
    "curate.url_blockwords_file": "curate.links.url_blockwords_file",
    "curate.max_url_line_fraction": "curate.links.max_url_line_fraction",
    "curate.max_url_char_fraction": "curate.links.max_url_char_fraction",
    **{
        f"curate.gopher_{key}": f"curate.gopher_repetition.{key}"
        for key in (
            "dup_line_fraction",
            "dup_para_fraction",
            "dup_line_char_fraction",
            "dup_para_char_fraction",
            "top_ngram_fractions",
            "dup_ngram_fractions",
        )
    },
    **{
        f"curate.gopher_{key}": f"curate.gopher_quality.{key}"
        for key in (
            "min_words",
            "max_words",
            "min_avg_word_length",
            "max_avg_word_length",
            "max_symbol_word_ratio",
            "max_bullet_lines_ratio",
            "max_ellipsis_lines_ratio",
            "min_alpha_words_ratio",
            "min_stop_words",
        )
    },
    **{
        f"curate.c4_{key}": f"curate.c4.{key}"
        for key in (
            "min_sentences",
            "min_words_per_line",
            "max_word_length",
            "filter_curly_bracket",
        )
    },
    **{
        f"curate.fineweb_{key}": f"curate.fineweb.{key}"
        for key in (
            "line_punct_threshold",
            "short_line_threshold",
            "short_line_length",
            "char_dup_threshold",
            "newline_ratio",
        )
    },
    "curate.badwords_file": "curate.toxicity.badwords_file",
    "curate.decontaminate_against": "curate.decontaminate.against",
    "curate.toxicity_threshold": "curate.toxicity.threshold",
}


def _check_value(key: str, value: Any, hint: Any, source: str) -> Any:
    """Return `value` as type `hint`, or raise ConfigError naming `key` and `source`."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        # the choice's own type too: 2.0 == 2, but zero_stage 2.0 is not a stage
        if not any(type(value) is type(c) and value == c for c in choices):
            listed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{source}: {key} = {value!r}: must be one of {listed}")
        return value
    if origin is dict:
        key_type, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: '{key}' must be a table of {item.__name__}, got {value!r}"
            )
        return {
            _check_value(f"{key} key", k, key_type, source): _check_value(
                f"{key}.{k}", v, item, source
            )
            for k, v in value.items()
        }
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


def _apply(
    section_obj: Any, section: str, values: dict[str, Any], source: str, sources: dict[str, str]
) -> None:
    """Set `values` on `section_obj` (the section at dotted path `section`), recording each
    key's `source` in `sources`; a nested section (a filter's config) takes a table."""
    hints = typing.get_type_hints(type(section_obj))
    names = [f.name for f in dataclasses.fields(section_obj)]
    for key, value in values.items():
        dotted = f"{section}.{key}"
        if dotted in RENAMED_KEYS:
            new = RENAMED_KEYS[dotted]
            table, leaf = new.rsplit(".", 1)
            raise ConfigError(
                f"{source}: '{dotted}' was renamed to '{new}': write `{leaf} = {value!r}` under "
                f"[{table}] in TOML, or --set {new}={value!r}"
            )
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{source}: unknown key '{dotted}' (known: {known})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{source}: '{dotted}' is a table of keys ([{dotted}] in TOML, "
                    f"--set {dotted}.<key>=<value>), got {value!r}"
                )
            _apply(getattr(section_obj, key), dotted, value, source, sources)
            continue
        setattr(section_obj, key, _check_value(dotted, value, hint, source))
        sources[dotted] = source


def _validate(section_obj: Any, section: str, sources: dict[str, str]) -> None:
    """Run the `validate()` of `section_obj` (nested sections first); a failure becomes a
    ConfigError that starts with the source of the key at fault and names the sources of the
    other keys its rule reads."""
    for f in dataclasses.fields(section_obj):
        child = getattr(section_obj, f.name)
        if dataclasses.is_dataclass(child):
            _validate(child, f"{section}.{f.name}", sources)
    try:
        section_obj.validate()
    except ValueError as err:
        key = getattr(err, "key", None)
        if key is None:
            raise ConfigError(f"{section}: {err}") from err
        message = f"{sources.get(f'{section}.{key}', 'default')}: {err}"
        related = [
            f"{section}.{k} = {getattr(section_obj, k)!r} from "
            f"{sources.get(f'{section}.{k}', 'default')}"
            for k in getattr(err, "related", ())
        ]
        if related:
            message += f" ({'; '.join(related)})"
        raise ConfigError(message) from err


def _parse_override(text: str) -> tuple[str, str, Any]:
    """Split `section.key=value` (`key` may be dotted: `curate.c4.min_sentences=3`); the value
    is read as a TOML literal, else as a bare string."""
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
    """Defaults, then the TOML preset at `path`, then `overrides` (`section.key=value`); then
    every section's `validate()` (choices, ranges, cross-field rules). A failure is a
    ConfigError `<source>: <section>.<key> = <value>: <what is wrong>`, where source is the
    TOML file, "--set" or "default"."""
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
        node = cli.setdefault(section, {})
        *tables, leaf = key.split(".")
        for table in tables:
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {section}.{table} was set to a value before")
        node[leaf] = value
    layers.append(("--set", cli))
    sources: dict[str, str] = {}
    for source, tree in layers:
        for section, values in tree.items():
            if section not in sections:
                raise ConfigError(
                    f"{source}: unknown section '{section}' (known: {', '.join(sections)})"
                )
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: '{section}' must be a table of keys")
            _apply(getattr(config, section), section, values, source, sources)
    for section in sections:
        _validate(getattr(config, section), section, sources)
    return config
