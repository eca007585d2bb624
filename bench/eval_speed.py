"""Evaluated tokens/s of sliding-window perplexity (``trainer.evaluate.score``) on CPU, beside a
plain Hugging Face ``GPT2LMHeadModel`` loop over the same text, windows, batches and weights.

The model is a randomly initialised GPT-2 shape (``small`` by default: 4 layers, 256 wide,
context 256, GPT-2's 50257-id vocabulary) exported with ``trainer.hf.export_hf`` and loaded by
both sides from that directory. The text is tinyshakespeare from the shared corpus (a generated
text when it is absent), tokenised once with a BPE trained on it (not timed). Both sides score
the same requests in the same batches; the HF loop is the usual one: labels -100 on the
context positions, ``loss * scored tokens`` summed. The two sides alternate ``--repeats`` times
and the best run of each counts (the machine is shared). Their summed NLLs must agree.

    .venv/bin/python bench/eval_speed.py [--tokens 8192] [--model small] [--stride 0]

Last line: ``eval_speed: ratio=... tokens_per_s=...`` (ratio = ours / HF).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))

from bench.context import print_context  # noqa: E402


def bench_text() -> str:
    path = CORPUS / "lm" / "tinyshakespeare" / "input.txt"
    if path.is_file():
        return path.read_text()
    import random

    rng = random.Random(0)
    words = ["the", "king", "said", "to", "his", "daughter", "and", "all", "of", "them", "went"]
    return " ".join(rng.choice(words) for _ in range(200_000))


def hf_loop(hf, requests, batch_size: int) -> float:
    """Summed NLL of the scored tokens the plain transformers way: logits for every position
    of each (right-padded) window, cross-entropy on the scored ones. Same batches as ours."""
    import torch
    from torch.nn import functional as F

    from trainer.evaluate import _batches

    total = 0.0
    with torch.inference_mode():
        for batch in _batches(requests, batch_size):
            reqs = [requests[i] for i in batch]
            width = max(len(r.ids) - 1 for r in reqs)
            x = torch.zeros((len(reqs), width), dtype=torch.long)
            labels = torch.full((len(reqs), width), -100, dtype=torch.long)
            for row, r in enumerate(reqs):
                x[row, : len(r.ids) - 1] = torch.as_tensor(r.ids[:-1])
                labels[row, len(r.ids) - 1 - r.n : len(r.ids) - 1] = torch.as_tensor(r.ids[-r.n :])
            logits = hf(input_ids=x).logits  # (B, T, V)
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=8192, help="tokens of text to score")
    ap.add_argument("--model", default="small", help="named size (trainer.model.CONFIGS)")
    ap.add_argument("--vocab-size", type=int, default=50257)
    ap.add_argument("--stride", type=int, default=0, help="0: block_size / 2")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs; best counts")
    args = ap.parse_args(argv)

    import torch
    import transformers

    from trainer.evaluate import lm_requests, score
    from trainer.hf import export_hf
    from trainer.model import GPT, named_config
    from trainer.sample import load_model
    from trainer.tokenizer import train_tokenizer

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()  # keep the last line ours
    text = bench_text()
    tok = train_tokenizer([text], vocab_size=8192)
    ids = tok.encode(text)[: args.tokens]
    cfg = named_config(args.model, vocab_size=args.vocab_size)
    stride = args.stride or cfg.block_size // 2
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(GPT(cfg), Path(tmp) / "model")
        ours, _ = load_model(Path(tmp) / "model")
        hf = transformers.GPT2LMHeadModel.from_pretrained(str(Path(tmp) / "model")).eval()
    requests = lm_requests(ids, tok.eot_id, cfg.block_size, stride)
    print(
        f"{args.model}: {ours.num_params() / 1e6:.1f}M params, block {cfg.block_size}, stride "
        f"{stride}, {len(ids)} tokens in {len(requests)} windows, batch {args.batch_size}, "
        f"threads {torch.get_num_threads()}, transformers {transformers.__version__} "
        f"({hf.config._attn_implementation} attention)"
    )
    best_ours = best_hf = math.inf
    nll_ours = nll_hf = 0.0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        nll_ours = sum(float(s.nll.sum()) for s in score(ours, requests, args.batch_size))
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        nll_hf = hf_loop(hf, requests, args.batch_size)
        best_hf = min(best_hf, time.perf_counter() - t0)
    rel = abs(nll_ours - nll_hf) / abs(nll_hf)
    print(
        f"ours {best_ours:.2f} s, HF {best_hf:.2f} s; loss {nll_ours / len(ids):.5f} vs "
        f"{nll_hf / len(ids):.5f} (relative difference {rel:.1e})"
    )
    if rel > 1e-4:
        print("eval_speed: the two sides disagree on the loss", file=sys.stderr)
        return 1
    tps = len(ids) / best_ours
    print_context(
        model=args.model,
        tokens=len(ids),
        stride=stride,
        batch_size=args.batch_size,
        threads=torch.get_num_threads(),
    )
    print(f"eval_speed: ratio={best_hf / best_ours:.2f} tokens_per_s={tps:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
