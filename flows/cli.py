"""The `lmforge` command line: `lmforge run --config configs/demo.toml --set train.steps=50`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from flows.outputs import STEPS
from tasks.config import ConfigError, LmforgeConfig, load_config

REQUIRED_PROGRAMS = {
    "java": "Spark needs a Java 17 runtime: apt-get install openjdk-17-jre-headless",
    "g++": "DeepSpeed compiles a small C++ op on first start: apt-get install g++",
}


def missing_prerequisites() -> list[str]:
    """One line per program the pipeline needs that is not on PATH, naming what to install."""
    missing = []
    for program, hint in REQUIRED_PROGRAMS.items():
        found = shutil.which(program) or (program == "java" and os.environ.get("JAVA_HOME"))
        if not found:
            missing.append(f"'{program}' not found. {hint}")
    return missing


def use_local_prefect(config: LmforgeConfig) -> None:
    """Without a Prefect server, keep Prefect's embedded database in the work directory."""
    # The embedded server's telemetry service only fails here (no internet) and, on a first
    # start, competes with the schema migration for the SQLite lock.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Its first start migrates a new SQLite database, which takes longer than Prefect's 20 s
    # default on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        home = Path(config.run.work_dir).resolve() / "prefect"
        home.mkdir(parents=True, exist_ok=True)  # Prefect creates only the last level itself
        os.environ["PREFECT_HOME"] = str(home)


def format_summary(summary: dict[str, Any], seconds: float) -> str:
    """The closing report of `lmforge run`, with the commands to open both UIs."""
    prefect_home = os.environ.get("PREFECT_HOME", "~/.prefect")
    lines = [
        "",
        f"lmforge pipeline finished in {seconds:.0f} s",
        f"  pages fetched        {summary['pages_fetched']}",
    ]
    if summary["documents_extracted"] is not None:
        lines.append(f"  documents extracted  {summary['documents_extracted']}")
    if summary["documents_kept"] is not None:
        lines.append(f"  documents kept       {summary['documents_kept']}")
    if "tokenize" in summary["steps"]:
        lines.append(f"  tokens (train / val) {summary['tokens_train']} / {summary['tokens_val']}")
    if summary["train_final_loss"] is not None:
        lines.append(f"  final train loss     {summary['train_final_loss']:.4f}")
    if summary["val_loss"] is not None:
        lines += [
            f"  validation loss      {summary['val_loss']:.4f}",
            f"  validation perplexity {summary['val_perplexity']:.2f}",
        ]
    if summary["model_version"] is not None:
        lines.append(
            f"  registered model     {summary['model_name']} version {summary['model_version']}"
        )
    lines.append("  steps:")
    for name, step in summary["steps"].items():
        state = "skipped (already complete)" if step["skipped"] else "ran"
        lines.append(f"    {name:<9} {state:<27} {step['path']}")
    lines.append("  samples:")
    for sample in summary["samples"]:
        completion = sample["completion"].replace("\n", " ")[:100]
        lines.append(f"    [{sample['prompt']}] {completion}")
    lines += [
        "",
        "Open the results:",
        f"  MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {summary['tracking_uri']}"
        " --port 5000   # then http://127.0.0.1:5000",
        f"  Prefect UI: PREFECT_HOME={prefect_home} .venv/bin/prefect server start"
        "   # then http://127.0.0.1:4200",
    ]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    missing = missing_prerequisites()
    if missing:
        print("lmforge: missing prerequisites:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 3
    use_local_prefect(config)
    from flows.pipeline import pipeline  # imported late: PREFECT_HOME must be set first

    started = time.monotonic()
    summary = pipeline(config_path=args.config, overrides=args.set, until=args.until)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    print(format_summary(summary, time.monotonic() - started))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(load_config(args.config, args.set).to_dict(), indent=2))
    return 0


def _model_command(run: Any) -> int:
    """Run a model command; bad input (unknown model, bad file, long prompt) exits 1 with why."""
    try:
        return run()
    except (ValueError, FileNotFoundError) as err:
        print(f"lmforge: {err}", file=sys.stderr)
        return 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    config.evaluate.texts += args.text
    config.evaluate.choices = args.choices or config.evaluate.choices
    config.evaluate.sft = args.sft or config.evaluate.sft
    out = Path(
        args.out or Path(config.run.work_dir) / "evaluations" / time.strftime("%Y%m%d-%H%M%S")
    )

    def run() -> int:
        from tasks.evaluate.harness import flat_metrics, parse_task_names
        from tasks.evaluate.report import evaluate_uri

        harness = parse_task_names(args.harness) if args.harness else None
        result = evaluate_uri(config, args.model, args.data, out, harness)
        harness_metrics = flat_metrics(result["harness"]) if harness else {}
        print(json.dumps(result["metrics"] | harness_metrics, indent=2))
        print(f"report: {out / 'report.md'}")
        return 0

    return _model_command(run)


def cmd_generate(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    settings = config.evaluate

    def run() -> int:
        from tasks.register.resolve import generate_from

        completions = generate_from(
            config,
            args.model,
            args.prompt,
            args.max_new_tokens or settings.max_new_tokens,
            settings.temperature if args.temperature is None else args.temperature,
            settings.top_k,
            settings.seed if args.seed is None else args.seed,
            chat=args.chat,
        )
        for prompt, text in zip(args.prompt, completions, strict=True):
            print(f"{prompt}\n> {text}" if args.chat else prompt + text)
        return 0

    return _model_command(run)


def cmd_finetune(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)

    def run() -> int:
        from tasks.finetune.finetune import finetune

        result = finetune(config, args.model, args.data, on_line=print)
        print(json.dumps({k: result[k] for k in ("before", "after", "registered")}, indent=2))
        return 0

    return _model_command(run)


def cmd_export(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)

    def run() -> int:
        from tasks.register.imported import export_model_as

        chat = True if args.chat else None
        result = export_model_as(config, args.model, args.format, args.out, chat, args.gguf_type)
        print(json.dumps(result, indent=2))
        return 0

    return _model_command(run)


def cmd_import(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)

    def run() -> int:
        from tasks.register.imported import import_model

        result = import_model(config, args.hf, args.name, args.champion)
        print(json.dumps(result, indent=2))
        return 0

    return _model_command(run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmforge", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    for name, func, text in [
        ("run", cmd_run, "run the whole pipeline (skips steps whose output is complete)"),
        ("config", cmd_config, "print the resolved configuration as JSON"),
        ("evaluate", cmd_evaluate, "evaluate a model: perplexity, bpb, BLEU, accuracy, samples"),
        ("generate", cmd_generate, "complete prompts with a registered model"),
        ("finetune", cmd_finetune, "fine-tune a registered model on a JSONL domain set"),
        ("export", cmd_export, "write a model as a Hugging Face folder or a GGUF file"),
        ("import", cmd_import, "register a Hugging Face LlamaForCausalLM checkpoint"),
    ]:
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("--config", default=None, help="TOML preset, e.g. configs/demo.toml")
        verb.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one setting (repeatable); wins over the TOML file",
        )
        verb.set_defaults(func=func)
    verbs.choices["run"].add_argument("--summary-json", help="also write the summary here")
    verbs.choices["run"].add_argument(
        "--until",
        choices=STEPS,
        default=STEPS[-1],
        help="stop after this step (e.g. tokenize: the data steps only, no training)",
    )
    model_help = "models:/<name>@<alias>, models:/<name>/<version> or an exported model folder"
    evaluate = verbs.choices["evaluate"]
    evaluate.add_argument("--model", required=True, help=model_help)
    evaluate.add_argument("--data", help="a tokenize output folder: its validation shards")
    evaluate.add_argument("--text", action="append", default=[], help="text file or folder")
    evaluate.add_argument("--choices", help="JSONL of {context, choices, label}")
    evaluate.add_argument("--sft", help="JSONL of {prompt, response}: held-out answers")
    evaluate.add_argument("--out", help="report folder (default <work_dir>/evaluations/<time>)")
    evaluate.add_argument(
        "--harness",
        metavar="TASK[,TASK...]",
        help="also run lm-evaluation-harness on these shipped tasks: lmforge_choices (reads "
        "--choices), lmforge_perplexity (reads --text)",
    )
    generate = verbs.choices["generate"]
    generate.add_argument("--model", required=True, help=model_help)
    generate.add_argument("--prompt", action="append", required=True, help="repeatable")
    generate.add_argument("--max-new-tokens", type=int, default=0)
    generate.add_argument("--temperature", type=float, default=None)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--chat", action="store_true", help="answer as a fine-tuned model")
    finetune = verbs.choices["finetune"]
    finetune.add_argument("--model", required=True, help=model_help)
    finetune.add_argument("--data", required=True, help="JSONL of {prompt, response} or {messages}")
    export = verbs.choices["export"]
    export.add_argument("--model", required=True, help=model_help)
    export.add_argument("--format", choices=["hf", "gguf"], default="hf")
    export.add_argument("--out", required=True, help="a new or empty folder")
    export.add_argument("--gguf-type", choices=["f32", "f16"], default="f32")
    export.add_argument(
        "--chat", action="store_true", help="add the chat template (default: for fine-tunes)"
    )
    imports = verbs.choices["import"]
    imports.add_argument("--hf", required=True, help="a LlamaForCausalLM folder (safetensors)")
    imports.add_argument("--name", required=True, help="the registered model's name")
    imports.add_argument("--champion", action="store_true", help="also make it the champion")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"lmforge: configuration error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
