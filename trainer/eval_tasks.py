"""Zero-shot task inputs: files -> examples, and the de-tokenisers of tokenised releases.

- :func:`read_lm` ``(path, unit, detokenize) -> list[LMDocument]``: a plain-text file is one
  document scored as one stream, cut into examples (paragraphs by default) for the
  clean/dirty split; a JSONL file of ``{"text": ...}`` lines gives one document per line.
- :func:`read_lambada` ``(path) -> list[LambadaExample]``: ``{"text": ...}`` lines, the last
  word being everything after the last space.
- :func:`read_cbt` ``(path, placeholder) -> list[ClozeExample]``: context, question with a
  placeholder, candidates, answer.

Every bad record raises :class:`EvalInputError` naming ``path:line``: an evaluation that
silently skipped examples would report a figure on a different test set.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.errors import WebtextError
from foundation.textfiles import json_objects, read_utf8

DETOKENIZERS = ("wikitext", "ptb")
LM_UNITS = ("paragraph", "line", "file")


class EvalInputError(WebtextError, ValueError):
    """A test file is missing, malformed, or holds an example that cannot be scored."""


@dataclass(frozen=True)
class LMDocument:
    """One stream to score. ``text`` is what the model sees (de-tokenised); ``spans`` cut it
    into examples (character ranges covering it), each with the original text's words."""

    source: str
    text: str
    spans: tuple[tuple[int, int], ...]
    example_ids: tuple[str, ...]
    words: tuple[int, ...]
    """Whitespace-separated words of each example's *original* text (the word-level
    perplexity's denominator, as for the tokenised releases' own word counts)."""


@dataclass(frozen=True)
class LambadaExample:
    id: str
    context: str
    """The text before the last space (the space goes with the target)."""
    target: str
    """The last word with its leading space: ``" word"``."""

    @property
    def text(self) -> str:
        return self.context + self.target


@dataclass(frozen=True)
class ClozeExample:
    id: str
    prefix: str
    """Context, then the question up to the whitespace before the placeholder."""
    suffixes: tuple[str, ...]
    """Per candidate: the rest of the question with the candidate in place of the blank."""
    candidates: tuple[str, ...]
    answer: int
    """Index of the answer among the candidates."""
    text: str
    """Context and the question completed with the answer (what is checked for overlap)."""


# --- de-tokenisers ----------------------------------------------------------------------------
# The tokenised releases split words and punctuation apart; GPT-2 scored them through invertible
# de-tokenisers so that its byte-level BPE saw ordinary text. No rule crosses a line break, so a
# file de-tokenised paragraph by paragraph is the file de-tokenised whole.

_WIKI_RULES: tuple[tuple[str, str], ...] = (
    (r" @([-,.])@ ", r"\1"),  # 1 @,@ 000 -> 1,000; well @-@ known -> well-known
    (r" ([.,:;!?)\]}%])", r"\1"),  # no space before closing punctuation
    (r"([(\[{$]) ", r"\1"),  # nor after opening brackets and currency
    (r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1"),  # do n't -> don't, it 's -> it's
    (r"(?<==) (?==)", ""),  # heading markers: = = Early life = = -> == Early life ==
    (r'" ([^"\n]*?) "', r'"\1"'),  # quoted spans
    (r"(?m)^ +| +$", ""),  # spaces at line ends (per line: the same in a piece or the whole)
)
_PTB_RULES: tuple[tuple[str, str], ...] = (
    (r"(?<!\S)N(?!\S)", "1"),  # PTB replaces every number with N
    (r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1"),
    (r" ([.,:;!?%])", r"\1"),
    (r"\$ (?=\d)", "$"),
    (r"<unk>", "?"),  # rare words: one placeholder symbol (after the punctuation rule)
)


def _rules(rules: tuple[tuple[str, str], ...]) -> Callable[[str], str]:
    compiled = [(re.compile(p), r) for p, r in rules]

    def apply(text: str) -> str:
        for pattern, repl in compiled:
            text = pattern.sub(repl, text)
        return text

    return apply


wikitext_detokenize = _rules(_WIKI_RULES)
wikitext_detokenize.__doc__ = "WikiText's ``@-@``/``@,@``/``@.@`` and punctuation spacing."
ptb_detokenize = _rules(_PTB_RULES)
ptb_detokenize.__doc__ = "PTB's ``N`` numbers, ``<unk>`` and punctuation/contraction spacing."


def detokenizer(name: str | None) -> Callable[[str], str]:
    """The de-tokeniser called ``name`` (``None`` or "none": the identity)."""
    if name in (None, "none"):
        return lambda text: text
    if name == "wikitext":
        return wikitext_detokenize
    if name == "ptb":
        return ptb_detokenize
    raise ValueError(f"detokenize={name!r}: must be one of {['none', *DETOKENIZERS]}")


# --- readers ----------------------------------------------------------------------------------


def _field(obj: dict[str, Any], name: str, where: str, kind: type = str) -> Any:
    if name not in obj:
        raise EvalInputError(f"{where}: missing field {name!r} (fields: {sorted(obj)})")
    value = obj[name]
    if not isinstance(value, kind):
        raise EvalInputError(f"{where}: field {name!r} must be a {kind.__name__}: {value!r:.60}")
    return value


def _text_field(obj: dict[str, Any], where: str) -> str:
    text = _field(obj, "text", where)
    if not text.strip():
        raise EvalInputError(f"{where}: empty text")
    return text


def is_jsonl(path: str | Path) -> bool:
    return str(path).endswith((".jsonl", ".jsonl.txt", ".ndjson"))


def _pieces(text: str, unit: str) -> list[str]:
    """``text`` cut into examples that concatenate back to it (separators stay attached)."""
    if unit == "file":
        return [text]
    if unit == "line":
        parts = text.splitlines(keepends=True)
    else:  # paragraphs: a paragraph keeps the blank (whitespace-only) lines after it
        parts = _merge_blank(re.split(r"(\n[ \t]*\n(?:[ \t]*\n)*)", text))
    return [p for p in parts if p]


def _merge_blank(parts: list[str]) -> list[str]:
    """re.split with a captured separator -> pieces with their separator appended."""
    out = []
    for i in range(0, len(parts), 2):
        sep = parts[i + 1] if i + 1 < len(parts) else ""
        out.append(parts[i] + sep)
    return out


def _document(source: str, ids: list[str], originals: list[str], detok: Callable) -> LMDocument:
    spans, texts, words, keep = [], [], [], []
    pos = 0
    for ex_id, original in zip(ids, originals, strict=True):
        piece = detok(original)
        texts.append(piece)
        if original.strip():
            spans.append((pos, pos + len(piece)))
            words.append(len(original.split()))
            keep.append(ex_id)
        elif spans:  # a blank piece joins the example before it
            spans[-1] = (spans[-1][0], pos + len(piece))
        pos += len(piece)
    if spans and spans[0][0] > 0:
        spans[0] = (0, spans[0][1])
    return LMDocument(source, "".join(texts), tuple(spans), tuple(keep), tuple(words))


def read_lm(
    path: str | Path, unit: str = "paragraph", detokenize: str | None = None
) -> list[LMDocument]:
    """The documents of a language-modelling test file (see the module docstring).

    ``unit`` cuts a plain-text file into examples: the stream is still scored as a whole (the
    context runs across examples), only the clean/dirty attribution is per example.
    """
    if unit not in LM_UNITS:
        raise ValueError(f"unit={unit!r}: must be one of {list(LM_UNITS)}")
    detok = detokenizer(detokenize)
    name = str(path)
    if is_jsonl(path):
        docs = []
        for lineno, obj in json_objects(path, EvalInputError):
            text = _text_field(obj, f"{name}:{lineno}")
            docs.append(_document(name, [f"{name}:{lineno}"], [text], detok))
        if not docs:
            raise EvalInputError(f"{name}: no examples")
        return docs
    text = read_utf8(path, EvalInputError)
    if not text.strip():
        raise EvalInputError(f"{name}: empty text")
    pieces = _pieces(text, unit)
    ids, line = [], 1
    for piece in pieces:
        ids.append(f"{name}:{line + (len(piece) - len(piece.lstrip(chr(10))))}")
        line += piece.count("\n")
    return [_document(name, ids, pieces, detok)]


def read_lambada(path: str | Path) -> list[LambadaExample]:
    """LAMBADA examples from ``{"text": ...}`` lines (OpenAI's ``lambada_test.jsonl`` layout).

    The last word is what follows the last space, punctuation included: OpenAI's copy has no
    final punctuation, and a copy that has it is scored as it is (strip it beforehand to match
    the paper). The context and the word are tokenised separately, so the word's tokens are the
    ones BPE gives a space-led word whatever the context (GPT-2's pre-tokeniser never merges
    across that space either, so nothing changes for ordinary words).
    """
    out = []
    for lineno, obj in json_objects(path, EvalInputError):
        where = f"{path}:{lineno}"
        text = _text_field(obj, where).rstrip()
        cut = text.rfind(" ")
        if cut <= 0 or not text[:cut].strip():
            raise EvalInputError(f"{where}: no context before the last word in {text[-60:]!r}")
        out.append(LambadaExample(where, text[:cut], text[cut:]))
    if not out:
        raise EvalInputError(f"{path}: no examples")
    return out


def read_cbt(path: str | Path, placeholder: str = "XXXXX") -> list[ClozeExample]:
    """Children's Book Test-style cloze examples.

    A line holds ``context`` (a string, or a list of sentences joined by spaces), ``question``
    (with ``placeholder`` once), ``candidates`` (strings) and ``answer`` (one of them). The
    example's text is cut before the whitespace that precedes the placeholder; what follows
    is scored once per candidate (the shared part cancels out of the comparison).
    """
    out = []
    for lineno, obj in json_objects(path, EvalInputError):
        where = f"{path}:{lineno}"
        context = obj.get("context")
        if isinstance(context, list) and all(isinstance(s, str) for s in context):
            context = " ".join(s.strip() for s in context)
        context = _field({**obj, "context": context}, "context", where)
        question = _field(obj, "question", where)
        cands = _field(obj, "candidates", where, list)
        answer = _field(obj, "answer", where)
        if not context.strip() or not question.strip():
            raise EvalInputError(f"{where}: empty context or question")
        if question.count(placeholder) != 1:
            raise EvalInputError(
                f"{where}: the question must hold the placeholder {placeholder!r} once "
                f"(found {question.count(placeholder)}): {question[:80]!r}"
            )
        if not cands or not all(isinstance(c, str) and c.strip() for c in cands):
            raise EvalInputError(f"{where}: candidates must be non-empty strings: {cands!r:.80}")
        if answer not in cands:
            raise EvalInputError(f"{where}: answer {answer!r} is not among the candidates")
        head = context.rstrip() + " "
        full = head + question.strip()
        at = len(head) + question.strip().index(placeholder)  # not a look-alike in the context
        cut = at
        while cut > 0 and not full[cut - 1].isspace():
            cut -= 1
        cut = max(cut - 1, 0)  # the whitespace goes with the candidate, as BPE attaches it
        lead, tail = full[cut:at], full[at + len(placeholder) :]
        out.append(
            ClozeExample(
                where,
                full[:cut],
                tuple(lead + c + tail for c in cands),
                tuple(cands),
                cands.index(answer),
                full[:at] + answer + tail,
            )
        )
    if not out:
        raise EvalInputError(f"{path}: no examples")
    return out
