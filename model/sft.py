"""Supervised fine-tuning data: JSONL examples as padded (x, y) rows with the loss on responses.

A line is `{"prompt": ..., "response": ...}` or a chat `{"messages": [{"role", "content"}...]}`
(roles system, user, assistant). Each message becomes `<|role|>` content `<|end|>` (the markers of
model/tokenizer.py); targets are -100, which GPT.forward's cross-entropy ignores, everywhere
except the assistant contents and their `<|end|>`, so the model learns to answer and to stop.
Rows are padded with `<|pad|>` to block_size; a longer example is cut at block_size + 1 tokens
(a warning counts them) and one whose first response token would be cut off is an error.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from model.tokenizer import END, PAD, ROLE_TOKENS, load_tokenizer

Batch = tuple[torch.Tensor, torch.Tensor]
IGNORE = -100  # F.cross_entropy's default ignore_index
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTokens:
    """Token ids of the chat markers in one tokenizer."""

    role: dict[str, int]  # role name -> id of <|role|>
    end: int
    pad: int


def chat_tokens(tokenizer: Tokenizer) -> ChatTokens:
    """The marker ids of `tokenizer`, or an error naming the markers it lacks."""
    names = {role: ROLE_TOKENS[role] for role in ROLES} | {"end": END, "pad": PAD}
    ids = {key: tokenizer.token_to_id(name) for key, name in names.items()}
    missing = [names[key] for key, value in ids.items() if value is None]
    if missing:
        raise ValueError(
            f"the tokenizer has no chat marker(s) {missing}: use a tokenizer trained by "
            "lmforge's tokenize step (tasks/tokenize/bpe.py adds them as special tokens)"
        )
    return ChatTokens({role: ids[role] for role in ROLES}, ids["end"], ids["pad"])


def format_prompt(
    tokenizer: Tokenizer, prompt: str | list[dict[str, str]], system: str = ""
) -> list[int]:
    """Token ids that ask a fine-tuned model for its answer: the messages, then `<|assistant|>`.

    `prompt` is a user message or a list of chat messages; generate until `<|end|>`."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    markers = chat_tokens(tokenizer)
    ids, _ = encode_messages(tokenizer, markers, messages)
    return ids + [markers.role["assistant"]]


def encode_messages(
    tokenizer: Tokenizer, markers: ChatTokens, messages: list[dict[str, str]]
) -> tuple[list[int], list[bool]]:
    """Token ids of the messages and, per token, whether it is a response token to learn."""
    ids: list[int] = []
    learn: list[bool] = []
    for message in messages:
        body = tokenizer.encode(message["content"]).ids + [markers.end]
        is_response = message["role"] == "assistant"
        ids += [markers.role[message["role"]], *body]
        learn += [False] + [is_response] * len(body)
    return ids, learn


def parse_example(line: str, where: str) -> list[dict[str, str]]:
    """The chat messages of one JSONL line; a ValueError naming `where` (file:line) if malformed."""
    if not line.strip():
        raise ValueError(f"{where}: empty line; every line must be one JSON example")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg})") from err
    if isinstance(record, dict) and "messages" in record:
        messages = record["messages"]
    elif isinstance(record, dict) and {"prompt", "response"} <= set(record):
        messages = [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["response"]},
        ]
    else:
        raise ValueError(
            f'{where}: expected {{"prompt": ..., "response": ...}} or {{"messages": [...]}}'
        )
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"{where}: each message needs a role in {ROLES}, got {message!r}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: message content must be a string, got {message!r}")
    if not any(m["role"] == "assistant" and m["content"] for m in messages):
        raise ValueError(f"{where}: no non-empty assistant response to learn from")
    return messages


class SftDataset:
    """All examples of one JSONL file as int64 inputs and targets, each (N, block_size)."""

    def __init__(self, path: Path | str, tokenizer_path: Path | str, block_size: int):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"fine-tuning data {self.path} does not exist")
        tokenizer = load_tokenizer(tokenizer_path)  # a message cannot forge <|end|>
        markers = chat_tokens(tokenizer)
        self.vocab_size = tokenizer.get_vocab_size()
        rows, truncated = [], 0
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                where = f"{self.path}:{number}"
                ids, learn = encode_messages(tokenizer, markers, parse_example(line, where))
                if len(ids) > block_size + 1:
                    ids, learn, truncated = (
                        ids[: block_size + 1],
                        learn[: block_size + 1],
                        truncated + 1,
                    )
                if not any(learn[1:]):
                    raise ValueError(
                        f"{where}: the response starts after block_size={block_size} tokens; "
                        "shorten the prompt or raise model.block_size"
                    )
                x = ids[:-1] + [markers.pad] * (block_size + 1 - len(ids))
                y = [t if keep else IGNORE for t, keep in zip(ids[1:], learn[1:], strict=True)]
                rows.append((x, y + [IGNORE] * (block_size - len(y))))
        if not rows:
            raise ValueError(f"fine-tuning data {self.path} holds no examples")
        if truncated:
            warnings.warn(
                f"{self.path}: {truncated} of {len(rows)} examples are longer than "
                f"block_size={block_size} + 1 tokens and were cut at the end",
                stacklevel=2,
            )
        self.inputs = torch.tensor([x for x, _ in rows], dtype=torch.int64)
        self.targets = torch.tensor([y for _, y in rows], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.inputs)

    def random_batches(
        self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> SftBatches:
        """Endless shuffled batches from this rank's share of the examples (epoch by epoch)."""
        return SftBatches(self, batch_size, seed, rank, world_size)

    def sequential_batches(
        self, batch_size: int, max_batches: int | None = None, rank: int = 0, world_size: int = 1
    ) -> Iterator[Batch]:
        """Examples rank, rank + W, ... in file order (validation); the last batch may be short."""
        mine = list(range(rank, len(self), world_size))
        starts = islice(range(0, len(mine), batch_size), max_batches)
        for start in starts:
            picks = mine[start : start + batch_size]
            yield self.inputs[picks], self.targets[picks]


class SftBatches:
    """Batches of this rank's examples (rank, rank + W, ...), reshuffled every epoch; resumable."""

    def __init__(
        self, dataset: SftDataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.mine = np.arange(rank, len(dataset), world_size)
        if len(self.mine) == 0:
            raise ValueError(
                f"{dataset.path} holds {len(dataset)} examples, fewer than the {world_size} ranks"
            )
        self.dataset, self.batch_size = dataset, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.position = 0  # examples taken so far, over all epochs
        self._epoch, self._perm = -1, self.mine

    def __iter__(self) -> SftBatches:
        return self

    def _order(self, epoch: int) -> np.ndarray:
        """This rank's examples in the order of `epoch`: a pure function of seed, rank, epoch."""
        if self._epoch != epoch:
            shuffle = np.random.default_rng([self.seed, self.rank, epoch])
            self._epoch, self._perm = epoch, self.mine[shuffle.permutation(len(self.mine))]
        return self._perm

    def __next__(self) -> Batch:
        picks = []
        while len(picks) < self.batch_size:
            epoch, offset = divmod(self.position, len(self.mine))
            picks.append(int(self._order(epoch)[offset]))
            self.position += 1
        return self.dataset.inputs[picks], self.dataset.targets[picks]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same sequence of batches (plain Python types)."""
        return {
            "examples": len(self.dataset),
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; refuses a state saved for other data, batch size, seed or rank."""
        for key, value in self.state_dict().items():
            if key != "position" and state.get(key) != value:
                raise ValueError(
                    f"loader state was saved with {key}={state.get(key)!r}, this loader has "
                    f"{value!r}: resume with the same data, batch size, seed and ranks"
                )
        self.position = int(state["position"])
