"""`lmforge import` and `lmforge export`: models in and out of the registry.

An import converts a Hugging Face LlamaForCausalLM folder (model/hf.py) into an exported model
folder under `<work_dir>/imports/<name>-<time>/model`, opens an MLflow run for it (the source
as tags) and registers it as a version of `<name>` with its tokenizer: alias `candidate`, and
`champion` only when asked (an imported model has no evaluation of ours for the promotion gate
to compare). Nothing is registered when the conversion fails. An export writes a registered
version or a model folder as an HF folder or a GGUF file into a new or empty folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from model.hf import export_hf, import_hf
from tasks.common import tracking
from tasks.config import LmforgeConfig
from tasks.register.promotion import Decision
from tasks.register.registry import register_version
from tasks.register.resolve import registry_version, resolve_model

SOURCE_TAG = "lmforge.source"


def import_card(name: str, imported: dict[str, Any], decision: dict[str, Any]) -> str:
    """The model card of an imported version: where it came from, its shape and its files."""
    shape = "\n".join(f"| {k} | {v} |" for k, v in imported["model"].items())
    files = "\n".join(f"| {f} | `{h}` |" for f, h in imported["files"].items())
    return (
        f"# {name} (imported)\n\n"
        f"Imported from the Hugging Face {imported['architecture']} folder "
        f"`{imported['path']}`; {imported['num_params']:,} parameters, a "
        f"{imported['tokenizer_vocab_size']}-token tokenizer.\n\n"
        f"{decision['decision']}: {decision['reason']}\n\n"
        f"## Shape\n\n| setting | value |\n|---|---|\n{shape}\n\n"
        f"## Source files (sha256)\n\n| file | sha256 |\n|---|---|\n{files}\n"
    )


def import_model(
    config: LmforgeConfig, hf_dir: str, name: str, champion: bool = False
) -> dict[str, Any]:
    """Convert and register the HF checkpoint `hf_dir` as a new version of `name`."""
    out = (
        Path(config.run.work_dir).resolve() / "imports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    imported = import_hf(hf_dir, out / "model")
    tags = {
        SOURCE_TAG: "hf",
        f"{SOURCE_TAG}.path": imported["path"],
        f"{SOURCE_TAG}.architecture": imported["architecture"],
    }
    run_id = tracking.start_run(config, run_name=f"import-{name}", tags=tags)
    with tracking.finishing(config, run_id):
        tracking.log_metrics(config, run_id, {"num_params": float(imported["num_params"])})
        if champion:
            reason = "imported and made champion by hand (lmforge import --champion)"
        else:
            reason = "imported: no evaluation yet; `lmforge import --champion` promotes on import"
        decision = Decision(champion, reason, {})
        registered = register_version(
            config,
            name,
            out / "model",
            run_id,
            tags,
            {},
            lambda d: import_card(name, imported, d),
            out,
            decision=decision,
        )
    return {**registered, "model_dir": imported["model_dir"], "model": imported["model"]}


ExportFormat = Literal["hf", "gguf"]


def export_model_as(
    config: LmforgeConfig,
    uri: str,
    fmt: ExportFormat,
    out_dir: str,
    chat: bool | None = None,
    gguf_type: str = "f32",
) -> dict[str, Any]:
    """Write the model behind `uri` (a registry URI or a model folder) as `fmt` into `out_dir`
    (new or empty). `chat` None: with the chat template when the version is a fine-tune."""
    resolved = resolve_model(config, uri)
    if chat is None:
        chat = False
        if uri.startswith("models:/"):
            chat = "lmforge.finetune.data" in registry_version(config, uri).tags
    if fmt == "hf":
        written = export_hf(resolved.model_dir, out_dir, chat=chat)
        files = sorted(p.name for p in Path(written).iterdir())
    elif fmt == "gguf":
        from model.gguf_file import export_gguf

        if gguf_type not in ("f32", "f16"):
            raise ValueError(f"--gguf-type {gguf_type!r}: use f32 or f16")
        written = export_gguf(resolved.model_dir, out_dir, gguf_type)  # type: ignore[arg-type]
        files = [Path(written).name]
    else:
        raise ValueError(f"--format {fmt!r}: use hf or gguf")
    result = {"model": resolved.label, "format": fmt, "out": str(out_dir), "files": files}
    if fmt == "hf":
        result["chat_template"] = chat
    return result
