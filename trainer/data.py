"""Training batches from memory-mapped token shards: (x, y) int64 tensors of shape (B, T).

The shards of a split are one token stream (documents separated by ``<|endoftext|>``), cut into
windows of ``block_size + 1`` tokens that overlap by one (x is the window's first T tokens, y
its last T). Nothing is read into RAM: each batch gathers its windows from the memmaps.

Order and sharding are a pure function of one integer, the global ``cursor`` (windows handed
out so far over all processes), so a checkpoint stores just that and a resumed run (even with
another number of processes) continues with exactly the windows that come next. Micro-batch
``m`` of process ``r`` takes windows ``cursor + (m * world + r) * B`` onwards: each process its
own part, and 2 processes x 1 micro-batch see the same windows as 1 process x 2 micro-batches.

Training windows are visited in a shuffled order per epoch: an affine permutation
``i -> (a*i + b) mod n`` with ``a`` coprime to ``n``, drawn from (seed, epoch). It needs no
memory, unlike a stored permutation of millions of windows, and spreads neighbouring windows
apart, which is what a shuffle is for here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from trainer.tokens import TokenShardError, TokenShards


class TokenStream:
    """The concatenation of several token arrays, read by global offset without copying them."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = [a for a in arrays if len(a)]
        self.starts = np.cumsum([0] + [len(a) for a in self.arrays])  # start offset of each array
        self.n_tokens = int(self.starts[-1])

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) as int64."""
        if start < 0 or start + length > self.n_tokens:
            raise IndexError(f"span [{start}, {start + length}) outside {self.n_tokens} tokens")
        out = np.empty(length, dtype=np.int64)
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        filled = 0
        while filled < length:
            offset = start + filled - int(self.starts[i])
            take = min(length - filled, len(self.arrays[i]) - offset)
            out[filled : filled + take] = self.arrays[i][offset : offset + take]
            filled += take
            i += 1
        return out


def _affine(n: int, seed: int, epoch: int) -> tuple[int, int]:
    """(a, b) of the epoch's permutation i -> (a*i + b) mod n; a is coprime to n."""
    rng = np.random.default_rng([seed, epoch])
    if n <= 2:
        return 1, int(rng.integers(n))
    while True:
        a = int(rng.integers(1, n))
        if math.gcd(a, n) == 1:
            return a, int(rng.integers(n))


@dataclass
class Batches:
    """Micro-batches of one process. ``cursor`` is the whole position state (see module doc)."""

    stream: TokenStream
    block_size: int
    batch_size: int
    rank: int = 0
    world: int = 1
    seed: int = 0
    shuffle: bool = True
    cursor: int = 0
    name: str = "train"

    def __post_init__(self) -> None:
        self.n_windows = (self.stream.n_tokens - 1) // self.block_size
        need = self.batch_size * self.world
        if self.n_windows < need:
            raise TokenShardError(
                f"the {self.name} split has {self.stream.n_tokens} tokens: "
                f"{self.n_windows} windows of {self.block_size + 1}, fewer than one batch over "
                f"all processes needs ({self.batch_size} x {self.world}); use a smaller "
                "batch_size or block_size, or more data"
            )

    def window(self, k: int) -> int:
        """Start token of the k-th window handed out (over all epochs)."""
        epoch, i = divmod(k, self.n_windows)
        if self.shuffle:
            a, b = _affine(self.n_windows, self.seed, epoch)
            i = (a * i + b) % self.n_windows
        return i * self.block_size

    def batch(self, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's micro-batch number ``micro`` at the current cursor (cursor unchanged)."""
        first = self.cursor + (micro * self.world + self.rank) * self.batch_size
        span = self.block_size + 1
        rows = [self.stream.read(self.window(first + j), span) for j in range(self.batch_size)]
        data = torch.from_numpy(np.stack(rows))  # (B, T+1)
        return data[:, :-1].contiguous(), data[:, 1:].contiguous()  # x, y: (B, T)

    def advance(self, micro_steps: int = 1) -> None:
        """Move past one optimiser step's windows (every process's micro-batches)."""
        self.cursor += micro_steps * self.world * self.batch_size

    def state_dict(self) -> dict[str, int]:
        return {"cursor": self.cursor, "seed": self.seed, "n_windows": self.n_windows}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if (
            state.get("n_windows", self.n_windows) != self.n_windows
            or state.get("seed", self.seed) != self.seed
        ):
            raise TokenShardError(
                f"the {self.name} data changed since the checkpoint: it had "
                f"{state.get('n_windows')} windows with seed {state.get('seed')}, now "
                f"{self.n_windows} with seed {self.seed}; resuming would not continue the run"
            )
        self.cursor = int(state["cursor"])


def batches(
    shards: TokenShards,
    block_size: int,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    seed: int = 0,
) -> Batches:
    """Batches over one split of a token directory (training shuffled, validation in order)."""
    return Batches(
        TokenStream(shards.memmaps),
        block_size,
        batch_size,
        rank=rank,
        world=world,
        seed=seed,
        shuffle=shards.split == "train",
        name=shards.split,
    )
