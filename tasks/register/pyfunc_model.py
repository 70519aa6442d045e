"""The registered model as an MLflow pyfunc, logged as code (models-from-code: no pickle).

`mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"model_dir": ...})` stores this
file, the `model` package and the exported folder (`model.safetensors`, `config.json`,
`tokenizer.json`). Input: a `prompt` column; output: one completion per prompt; generation
settings come as params (`max_new_tokens`, `temperature`, `top_k`, `top_p` (0 = off), `seed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel
from tokenizers import Tokenizer

from model.checkpoint import load_model
from model.generate import complete

DEFAULTS = {"max_new_tokens": 64, "temperature": 0.8, "top_k": 40, "top_p": 0.0, "seed": 0}


class GPTTextGenerator(PythonModel):
    """Loads the exported GPT and its tokenizer; completes prompts."""

    def load_context(self, context: Any) -> None:
        model_dir = Path(context.artifacts["model_dir"])
        self.model, _ = load_model(model_dir)
        self.model.eval()
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    def predict(
        self, context: Any, model_input: Any, params: dict[str, Any] | None = None
    ) -> list[str]:
        settings = {**DEFAULTS, **(params or {})}
        prompts = model_input["prompt"] if hasattr(model_input, "columns") else model_input
        return [
            complete(
                self.model,
                self.tokenizer,
                str(prompt),
                int(settings["max_new_tokens"]),
                float(settings["temperature"]),
                int(settings["top_k"]) or None,
                int(settings["seed"]),
                float(settings["top_p"]) or None,
            )
            for prompt in prompts
        ]


mlflow.models.set_model(GPTTextGenerator())
