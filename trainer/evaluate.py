"""Zero-shot scoring: token streams and windows in, negative log-likelihoods and metrics out.

Every task reduces to *score requests*: a token sequence whose last ``n`` tokens are targets,
each predicted from everything before it. Requests are run in batches (right-padded: the model
is causal, so padding after a row's last token changes nothing before it), and only the scored
positions go through the output projection. That projection is the largest matrix of a small
GPT-2 (50257 x C), so skipping the context positions of a sliding window is most of the
speed-up over a plain ``GPT2LMHeadModel`` loop (``bench/eval_speed.py``).

Language modelling: a document is ``<|endoftext|>`` followed by its tokens (GPT-2 saw every
training document after the separator, so the first token is predicted from it). Sliding
windows of at most ``block_size`` positions advance by ``stride`` targets; every token is scored
exactly once, the first window's tokens with the context before them, later windows' with at
least ``block_size - stride`` tokens of context. A smaller stride gives more context and a
lower (better) perplexity at a higher cost: the stride is part of the figure and is reported
with it; ``stride == block_size`` is plain non-overlapping chunks.

LAMBADA is one request per example (teacher forcing: the greedy prediction of every token of
the last word is right iff each argmax given the true prefix is right, so no generation is
needed). The key/value cache does not help these: no two requests share a prefix at the same
positions. It does help the cloze task, where the candidates share context and question: the
prefix is run once and its cache copied to every candidate (:func:`score_cloze`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from trainer.eval_tasks import ClozeExample, EvalInputError, LambadaExample, LMDocument
from trainer.model import GPT, KVCache
from trainer.precision import autocast, compute_dtype

LN2 = math.log(2)


@dataclass(frozen=True)
class Request:
    """Score the last ``n`` tokens of ``ids``, each given the tokens before it."""

    ids: Sequence[int]
    n: int


@dataclass(frozen=True)
class Scores:
    nll: np.ndarray
    """Negative log-likelihood (nats, float64) of each scored token."""
    greedy: np.ndarray
    """Whether each scored token is the model's argmax prediction."""


def windows(n_targets: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """Sliding windows over a sequence of ``n_targets + 1`` tokens (the first is context only).

    Returns ``(start, end, first)``: the window's input is ``seq[start:end]`` (at most
    ``block_size`` tokens), and it scores targets ``seq[first:end + 1]``, which no other window
    scores. ``first`` is 1 for the first window, then the previous window's ``end + 1``; windows
    after the first start ``block_size - stride`` tokens before their first target (as the
    usual stride loop over ``GPT2LMHeadModel`` does, the last window included).
    """
    if not 0 < stride <= block_size:
        raise ValueError(f"stride={stride}: must be in [1, block_size={block_size}]")
    out = []
    done = 0
    while done < n_targets:
        end = min(done + stride if done else block_size, n_targets)
        # The first new target gets block_size - stride tokens of context, the last window
        # included: it is shorter rather than reaching back (stride == block_size: chunks).
        start = 0 if not done else done - (block_size - stride)
        out.append((max(0, start), end, done + 1))
        done = end
    return out


def lm_requests(ids: Sequence[int], eot_id: int, block_size: int, stride: int) -> list[Request]:
    """The score requests of one document: ``<|endoftext|>`` + ``ids`` in sliding windows."""
    seq = [eot_id, *ids]
    return [
        Request(seq[a : b + 1], b + 1 - first)
        for a, b, first in windows(len(ids), block_size, stride)
    ]


def hidden_states(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The final LayerNorm's output (B, T, C): ``GPT.forward`` without the output projection,
    so the caller projects only the positions it scores."""
    t = model.transformer
    pos = torch.arange(idx.size(1), dtype=torch.long, device=idx.device)  # (T,)
    x = t.drop(t.wte(idx) + t.wpe(pos))  # (B, T, C)
    for i, block in enumerate(t.h):
        x = block(x, None, i)
    return t.ln_f(x)


def _batches(requests: Sequence[Request], batch_size: int) -> Iterator[list[int]]:
    """Request indices in batches of similar length (longest first: least padding)."""
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].ids))
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]


@torch.inference_mode()
def score(
    model: GPT,
    requests: Sequence[Request],
    batch_size: int = 8,
    dtype: str = "auto",
    progress: Any = None,
    greedy: bool = False,
) -> list[Scores]:
    """Scores of every request, in order. ``progress`` is a tqdm bar (updated per request).
    ``greedy`` also checks each target against the argmax (another pass over the logits, so
    only LAMBADA asks for it; otherwise ``Scores.greedy`` is all False)."""
    device = model.transformer.wte.weight.device
    block = model.config.block_size
    out: list[Scores | None] = [None] * len(requests)
    for batch in _batches(requests, batch_size):
        reqs = [requests[i] for i in batch]
        for i, r in zip(batch, reqs, strict=True):
            if not 0 < r.n < len(r.ids) or len(r.ids) - 1 > block:
                raise ValueError(
                    f"request {i}: {len(r.ids)} tokens, {r.n} scored; needs 1 <= n < tokens "
                    f"<= block_size + 1 = {block + 1}"
                )
        width = max(len(r.ids) - 1 for r in reqs)
        x = torch.zeros((len(reqs), width), dtype=torch.long)  # (B, T), right-padded
        rows, cols, targets = [], [], []
        for row, r in enumerate(reqs):
            x[row, : len(r.ids) - 1] = torch.as_tensor(r.ids[:-1])
            start = len(r.ids) - 1 - r.n
            rows.extend([row] * r.n)
            cols.extend(range(start, len(r.ids) - 1))
            targets.extend(r.ids[-r.n :])
        x = x.to(device)
        with autocast(device, compute_dtype(dtype, device)):
            h = hidden_states(model, x)  # (B, T, C)
            at_rows = torch.as_tensor(rows, device=device)
            at_cols = torch.as_tensor(cols, device=device)
            logits = model.lm_head(h[at_rows, at_cols])  # (K, V): scored positions only
        logits = logits.float()
        y = torch.as_tensor(targets, device=device)  # (K,)
        nll = F.cross_entropy(logits, y, reduction="none").double().cpu().numpy()
        hit = (logits.argmax(dim=-1) == y).cpu().numpy() if greedy else np.zeros(len(y), bool)
        at = 0
        for i, r in zip(batch, reqs, strict=True):
            out[i] = Scores(nll[at : at + r.n], hit[at : at + r.n])
            at += r.n
        if progress is not None:
            progress.update(len(reqs))
    return out  # type: ignore[return-value]


# --- tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExampleScore:
    """What one example contributes to its task's sums."""

    id: str
    text: str
    """What the contamination check reads (the example as scored, after de-tokenisation)."""
    values: dict[str, float]


def _byte_offsets(tokenizer: Any, ids: Sequence[int]) -> np.ndarray:
    """Byte offset at which each token starts in the decoded text."""
    lengths: dict[int, int] = {}
    sizes = [lengths.setdefault(i, len(tokenizer.decode_bytes([i]))) for i in ids]
    return np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)


def lm_document_scores(
    doc: LMDocument, ids: Sequence[int], tokenizer: Any, nll: np.ndarray
) -> list[ExampleScore]:
    """Split a document's per-token NLL over its examples (a token belongs to the example its
    first byte is in)."""
    starts_b = np.array([len(doc.text[:a].encode()) for a, _ in doc.spans], dtype=np.int64)
    of_tok = np.searchsorted(starts_b, _byte_offsets(tokenizer, ids), side="right") - 1
    sums = np.bincount(of_tok, weights=nll, minlength=len(doc.spans))
    counts = np.bincount(of_tok, minlength=len(doc.spans))
    out = []
    for k, (a, b) in enumerate(doc.spans):
        piece = doc.text[a:b]
        out.append(
            ExampleScore(
                doc.example_ids[k],
                piece,
                {
                    "nll": float(sums[k]),
                    "tokens": int(counts[k]),
                    "words": doc.words[k],
                    "bytes": len(piece.encode()),
                    "chars": len(piece),
                },
            )
        )
    return out


def score_lm(
    model: GPT,
    tokenizer: Any,
    docs: Sequence[LMDocument],
    stride: int,
    batch_size: int = 8,
    dtype: str = "auto",
    progress: Any = None,
) -> list[ExampleScore]:
    """Per example: summed NLL, tokens, original words, bytes and characters."""
    block = model.config.block_size
    encoded = tokenizer.encode_batch([d.text for d in docs])
    requests, owner = [], []
    for k, ids in enumerate(encoded):
        if not ids:
            raise EvalInputError(f"{docs[k].source}: no tokens to score")
        reqs = lm_requests(ids, tokenizer.eot_id, block, stride)
        requests.extend(reqs)
        owner.extend([k] * len(reqs))
    if progress is not None:
        progress.reset(total=len(requests))
    scores = score(model, requests, batch_size, dtype, progress)
    per_doc: list[list[np.ndarray]] = [[] for _ in docs]
    for k, s in zip(owner, scores, strict=True):
        per_doc[k].append(s.nll)
    out = []
    for doc, ids, parts in zip(docs, encoded, per_doc, strict=True):
        out.extend(lm_document_scores(doc, ids, tokenizer, np.concatenate(parts)))
    return out


def lambada_requests(
    tokenizer: Any, examples: Sequence[LambadaExample], block: int
) -> list[Request]:
    """``<|endoftext|>`` + context + last word, cropped on the left to the model's context."""
    out = []
    for ex in examples:
        target = tokenizer.encode(ex.target)
        if len(target) > block:
            raise EvalInputError(f"{ex.id}: last word of {len(target)} tokens > block_size")
        ids = [tokenizer.eot_id, *tokenizer.encode(ex.context), *target]
        out.append(Request(ids[-(block + 1) :], len(target)))
    return out


def score_lambada(
    model: GPT,
    tokenizer: Any,
    examples: Sequence[LambadaExample],
    batch_size: int = 8,
    dtype: str = "auto",
    progress: Any = None,
) -> list[ExampleScore]:
    """Per example: the last word's NLL, its tokens and whether greedy decoding gets it all."""
    requests = lambada_requests(tokenizer, examples, model.config.block_size)
    if progress is not None:
        progress.reset(total=len(requests))
    scores = score(model, requests, batch_size, dtype, progress, greedy=True)
    return [
        ExampleScore(
            ex.id,
            ex.text,
            {"nll": float(s.nll.sum()), "tokens": len(s.nll), "correct": float(s.greedy.all())},
        )
        for ex, s in zip(examples, scores, strict=True)
    ]


def cloze_ids(tokenizer: Any, ex: ClozeExample, block: int) -> tuple[list[int], list[list[int]]]:
    """The shared prefix (``<|endoftext|>`` + context + question head, cropped on the left so
    the longest candidate fits) and each candidate's continuation."""
    suffixes = [tokenizer.encode(s) for s in ex.suffixes]
    longest = max(len(s) for s in suffixes)
    if longest >= block:
        raise EvalInputError(f"{ex.id}: a completed question of {longest} tokens >= block_size")
    prefix = [tokenizer.eot_id, *tokenizer.encode(ex.prefix)]
    return prefix[-(block + 1 - longest) :], suffixes


@torch.inference_mode()
def cloze_logprobs(
    model: GPT, prefix: list[int], suffixes: list[list[int]], dtype: str = "auto"
) -> list[float]:
    """Total log-probability of each continuation after ``prefix``: the prefix runs once, and
    its key/value cache is copied to one row per candidate."""
    device = model.transformer.wte.weight.device
    cfg = model.config
    cache_dtype = compute_dtype(dtype, device)
    with autocast(device, cache_dtype):
        one = KVCache(cfg, 1, cfg.block_size, device, cache_dtype)
        logits, _ = model(torch.as_tensor([prefix], device=device), cache=one)
        first = F.log_softmax(logits[0, -1].float(), dim=-1)  # (V,)
        total = [float(first[s[0]]) for s in suffixes]
        width = max(len(s) for s in suffixes) - 1
        if width == 0:
            return total
        cache = KVCache(cfg, len(suffixes), cfg.block_size, device, cache_dtype)
        p = one.pos
        cache.k[:, :, :, :p] = one.k[:, :, :, :p]  # broadcast over the candidate rows
        cache.v[:, :, :, :p] = one.v[:, :, :, :p]
        cache.pos = p
        x = torch.zeros((len(suffixes), width), dtype=torch.long)  # (C, S), right-padded
        for row, s in enumerate(suffixes):
            x[row, : len(s) - 1] = torch.as_tensor(s[:-1])
        logits, _ = model(x.to(device), cache=cache)  # (C, S, V)
    logp = F.log_softmax(logits.float(), dim=-1)
    for row, s in enumerate(suffixes):
        if len(s) > 1:
            y = torch.as_tensor(s[1:], device=device)
            total[row] += float(logp[row, : len(s) - 1].gather(1, y[:, None]).sum())
    return total


def score_cloze(
    model: GPT,
    tokenizer: Any,
    examples: Sequence[ClozeExample],
    dtype: str = "auto",
    progress: Any = None,
) -> list[ExampleScore]:
    """Per example: whether the most probable completion is the answer."""
    if progress is not None:
        progress.reset(total=len(examples))
    out = []
    for ex in examples:
        prefix, suffixes = cloze_ids(tokenizer, ex, model.config.block_size)
        lp = cloze_logprobs(model, prefix, suffixes, dtype)
        choice = int(np.argmax(lp))
        out.append(
            ExampleScore(
                ex.id,
                ex.text,
                {"correct": float(choice == ex.answer), "answer_logprob": lp[ex.answer]},
            )
        )
        if progress is not None:
            progress.update(1)
    return out


# --- metrics ----------------------------------------------------------------------------------


def lm_metrics(sums: dict[str, float], n: int) -> dict[str, float]:
    """Perplexity per token and per word, bits per byte and per character from summed NLL."""
    nll = sums.get("nll", 0.0)

    def ratio(den: str) -> float:
        return nll / sums[den] if sums.get(den) else float("nan")

    return {
        "ppl_token": math.exp(ratio("tokens")),
        "ppl_word": math.exp(ratio("words")),
        "bits_per_byte": ratio("bytes") / LN2,
        "bits_per_char": ratio("chars") / LN2,
    }


def lambada_metrics(sums: dict[str, float], n: int) -> dict[str, float]:
    """Accuracy, and the last word's perplexity: exp of the mean NLL per word (per example)."""
    if not n:
        return {"accuracy": float("nan"), "ppl_word": float("nan")}
    return {"accuracy": sums["correct"] / n, "ppl_word": math.exp(sums["nll"] / n)}


def cloze_metrics(sums: dict[str, float], n: int) -> dict[str, float]:
    return {"accuracy": sums["correct"] / n if n else float("nan")}


METRICS = {"lm": lm_metrics, "lambada": lambada_metrics, "cbt": cloze_metrics}
METRIC_NAMES = {
    "lm": ("ppl_token", "ppl_word", "bits_per_byte", "bits_per_char"),
    "lambada": ("accuracy", "ppl_word"),
    "cbt": ("accuracy",),
}


def summarise(kind: str, examples: Sequence[ExampleScore], dirty: Sequence[bool]) -> dict[str, Any]:
    """Metrics on all, clean and dirty examples with their counts, and the relative difference
    of clean from all in percent (GPT-3 Appendix C): positive means the clean score is higher."""
    subsets: dict[str, dict[str, Any]] = {}
    for name, keep in (
        ("all", [True] * len(examples)),
        ("clean", [not d for d in dirty]),
        ("dirty", list(dirty)),
    ):
        chosen = [e for e, k in zip(examples, keep, strict=True) if k]
        sums: dict[str, float] = {}
        for e in chosen:
            for key, value in e.values.items():
                sums[key] = sums.get(key, 0) + value  # counts stay integers
        metrics = METRICS[kind](sums, len(chosen))
        subsets[name] = {"examples": len(chosen), **sums, **metrics}
    rel = {}
    for m in METRIC_NAMES[kind]:
        a, c = subsets["all"][m], subsets["clean"][m]
        rel[m] = 100.0 * (c - a) / a if a and math.isfinite(a) and math.isfinite(c) else None
    return {"subsets": subsets, "relative_difference_pct": rel}
