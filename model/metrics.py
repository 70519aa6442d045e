"""Text-level metrics: perplexity and bits per byte from summed log-loss, BLEU and chrF.

Perplexity depends on the tokenizer (a loss per token); bits per byte does not (the same loss
spread over the UTF-8 bytes of the text it predicted), so models with different tokenizers
compare on it. BLEU and chrF are sacrebleu's corpus scores (0-100) with its default settings.
"""

from __future__ import annotations

import math

import numpy as np
from tokenizers import Tokenizer


def perplexity(total_nats: float, tokens: int) -> float:
    """exp(mean negative log-likelihood per token)."""
    return math.exp(total_nats / tokens)


def bits_per_byte(total_nats: float, num_bytes: int) -> float:
    """Summed negative log-likelihood (nats) over the bytes it predicted, in bits per byte."""
    return total_nats / math.log(2) / num_bytes


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-to-printable-character map, inverted: character -> byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """Bytes of text each token id stands for (0 for special tokens such as end-of-text).

    Byte-level BPE pieces are mapped back to their bytes exactly (a piece may hold part of a
    multi-byte character); other tokenizers fall back to the UTF-8 length of the decoded piece."""
    alphabet = _byte_level_alphabet()
    special = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    lengths = np.zeros(max(vocab.values()) + 1, dtype=np.int64)
    for piece, token_id in vocab.items():
        if piece in special:
            continue
        if all(ch in alphabet for ch in piece):
            lengths[token_id] = len(piece)
        else:
            lengths[token_id] = len(tokenizer.decode([token_id]).encode("utf-8"))
    return lengths


def bleu_chrf(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu, 0-100) of hypotheses against one reference each."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no hypotheses to score: the evaluation set produced no examples")
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }
