"""Eager against compiled training losses on tests/test_cuda.py's tiny job, per loss and dtype:
which of the two losses, and which precision, makes tests/test_cuda.py's compile check differ.

    python bench/compile_parity.py --device cuda   # prints one line per (loss, dtype)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from train_speed import use_loss

from tests.train_factory import job, token_dir
from trainer.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tokens = str(token_dir(Path(tmp) / "tokens"))
        for loss in ("auto", "fused"):  # auto first: use_loss("auto") restores nothing
            use_loss(loss)
            for dtype in ("auto", "float32"):
                runs = {}
                for compile_ in (False, True):
                    cfg = job(
                        device=args.device, max_steps=args.steps, compile=compile_, dtype=dtype
                    )
                    out = f"{tmp}/{loss}-{dtype}-{compile_}"
                    runs[compile_] = train(cfg, tokens, out, progress=False).losses
                diff = max(abs(runs[True][s] - runs[False][s]) for s in runs[False])
                eager = " ".join(f"{v:.4f}" for v in runs[False].values())
                compiled = " ".join(f"{v:.4f}" for v in runs[True].values())
                print(
                    f"parity: loss={loss} dtype={dtype} eager [{eager}] compiled [{compiled}] "
                    f"max_diff={diff:.4f}"
                )


if __name__ == "__main__":
    main()
