"""GPT-2 in one file, in reading order: config, attention, MLP, block, loss, model, generation.

The architecture is GPT-2's: learned position embeddings, pre-LayerNorm residual blocks, a final
LayerNorm, GELU (tanh approximation), the output projection tied to the token embedding, and
residual projections (``c_proj``) initialised with std 0.02/sqrt(2*n_layer), the paper's
1/sqrt(N) scaling of residual layers. Parameter names follow Hugging Face's ``GPT2LMHeadModel``
(``transformer.h.0.attn.c_attn.weight``...) so export is a transpose per matrix, no renaming.

Attention goes through ``scaled_dot_product_attention`` (flash/efficient kernels on GPU). For
generation a :class:`KVCache` keeps each layer's keys and values, so a new token costs one
position, not the whole prefix.

Shapes: B batch, T time (sequence), C n_embd, nh n_head, hs head size (C // nh), V vocab.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn as nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT-2 model; frozen (use ``dataclasses.replace`` for a variant)."""

    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"GPTConfig.{name}={value!r}: must be positive")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout={self.dropout!r}: must be within [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        return cls(**data)


# The paper's four sizes (Radford et al. 2019, table 2) and small ones for tests and CPU runs.
CONFIGS: dict[str, GPTConfig] = {
    "gpt2": GPTConfig(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPTConfig(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": GPTConfig(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPTConfig(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "small": GPTConfig(block_size=256, n_layer=4, n_head=4, n_embd=256),
    "tiny": GPTConfig(block_size=64, vocab_size=256, n_layer=2, n_head=2, n_embd=32),
}


def named_config(name: str, **overrides: Any) -> GPTConfig:
    """A named config with some fields replaced (``None`` values are ignored)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None})


class KVCache:
    """Keys and values of every layer for positions [0, pos), preallocated to ``max_len``."""

    def __init__(
        self, cfg: GPTConfig, batch: int, max_len: int, device: Any, dtype: torch.dtype
    ) -> None:
        hs = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch, cfg.n_head, max_len, hs)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v (B, nh, T, hs) at [pos, pos+T); return all keys and values."""
        end = self.pos + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; asked for {end}")
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.n_embd = cfg.n_embd
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout if self.training else 0.0
        if cache is None or cache.pos == 0:
            if cache is not None:
                cache.update(layer, k, v)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            past = cache.pos
            k, v = cache.update(layer, k, v)  # (B, nh, past+T, hs)
            # Query i sits at position past+i and may see keys 0..past+i. (SDPA's is_causal
            # aligns the mask top-left, which is wrong when T < the key length.)
            mask = None
            if T > 1:
                rows = torch.arange(T, device=x.device)[:, None] + past
                mask = torch.arange(past + T, device=x.device)[None, :] <= rows  # (T, past+T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's gelu ("gelu_new" in transformers)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


LOSS_CHUNK_ELEMENTS = 2**26
"""Logits per chunk of the head's loss (256 MB in float32): 1334 rows of a 50304-token vocab."""


class _HeadCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``h @ weight.T`` against ``targets`` (-1 ignored), chunk by chunk.

    Why: a batch's logits (rows x vocab, float32) are the largest tensors of a GPT-2 step, and
    the plain loss sweeps them again and again: log-softmax writes a copy, its backward reads
    it and writes another, and the loss's gradient starts as a zero-filled one. On a CPU these
    sweeps took a third of the small config's step; without them it trains 1.2-1.3x as fast.
    Here each chunk's logits become their own gradient in place (softmax minus one-hot), the
    head's two backward matmuls run at once, and only the gradients of ``h`` and ``weight`` are
    kept: no logits outlive their chunk, so their memory no longer grows with the batch.
    """

    @staticmethod
    def forward(ctx, h, weight, targets, chunk_rows, need_grad):  # h (N, C), weight (V, C)
        keep = targets != -1
        count = keep.sum()  # the mean's divisor (0 gives NaN, as F.cross_entropy does)
        scale = keep.float() / count
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = (
            torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_grad else None
        )
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.size(0), chunk_rows):
            rows = slice(start, start + chunk_rows)
            hc, tc, sc = h[rows], targets[rows].clamp(min=0), scale[rows]
            logits = (hc @ weight.t()).float()  # (r, V)
            picked = logits.gather(1, tc[:, None]).squeeze(1)
            top = logits.amax(dim=-1, keepdim=True)
            probs = logits.sub_(top).exp_()  # unnormalised softmax, in place
            norm = probs.sum(dim=-1)
            total += ((top.squeeze(1) + norm.log() - picked) * sc).sum()  # log-sum-exp - picked
            if need_grad:  # d loss / d logits = (softmax - one-hot) x scale, in place
                probs.mul_((sc / norm)[:, None])
                probs[torch.arange(probs.size(0), device=probs.device), tc] -= sc
                grad_h[rows] = probs @ weight
                grad_w += probs.t() @ hc
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, (grad_w * grad_loss).to(ctx.weight_dtype), None, None, None


def head_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int | None = None
) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T, targets, ignore_index=-1)`` (in float32) without
    materialising the logits; see :class:`_HeadCrossEntropy`."""
    rows = chunk_rows or max(1, LOSS_CHUNK_ELEMENTS // weight.size(0))
    # Decided here: inside forward grad mode is always off, and needs_input_grad stays True
    # under no_grad, where computing gradients would triple an evaluation's cost.
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    return _HeadCrossEntropy.apply(h, weight, targets, rows, need_grad)


def lm_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The model's training loss: :func:`head_cross_entropy` when run eagerly; under
    ``torch.compile`` the plain full-logits loss. Why: inductor fuses the plain loss into two
    passes over the bf16 logits, which ran faster on a GPU than the chunked loss compiled, and
    the chunked loss compiled for CUDA trained unlike eager there (its loss rose where eager's
    fell; bench/GPU.md has both); the price is the logits' memory (3.3 GB in bf16 at batch 32,
    context 1024)."""
    if torch.compiler.is_compiling():
        return F.cross_entropy((h @ weight.t()).float(), targets, ignore_index=-1)
    return head_cross_entropy(h, weight, targets)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(cfg.vocab_size, cfg.n_embd),
                "wpe": nn.Embedding(cfg.block_size, cfg.n_embd),
                "drop": nn.Dropout(cfg.dropout),
                "h": nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                "ln_f": nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps),
            }
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied input/output embedding
        self.apply(self._init_weights)
        # Residual projections add into the stream once per sublayer (2 per block): scale
        # their init so the residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters counted once (the tied head is the token embedding). ``non_embedding``
        leaves out the position embedding, as the MFU formula wants."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Logits (B, T, V) for token ids ``idx`` (B, T); or, when ``targets`` (B, T) are
        given, no logits and the mean cross-entropy loss (target -1 is ignored), computed by
        :func:`lm_loss` (eagerly without materialising the logits)."""
        T = idx.size(1)  # idx: (B, T)
        start = cache.pos if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds block_size={self.config.block_size}"
            )
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)  # (B, T, C)
        x = self.transformer.ln_f(x)
        if cache is not None:
            cache.pos += T
        if targets is None:
            return self.lm_head(x), None  # (B, T, V)
        loss = lm_loss(x.reshape(-1, x.size(-1)), self.lm_head.weight, targets.reshape(-1))
        return None, loss

    def configure_optimizers(
        self,
        weight_decay: float,
        lr: float,
        betas: tuple[float, float],
        device_type: str,
    ) -> torch.optim.AdamW:
        """AdamW with weight decay on matrices (>= 2-D: linear weights, embeddings) only;
        biases and LayerNorm gains are not decayed. Fused kernel on CUDA."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device_type == "cuda")

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Continue ``idx`` (B, T) by ``max_new_tokens``; returns (B, T + max_new_tokens).

        ``temperature`` 0 is greedy. With the cache, the prompt is run once and every new
        token costs one position. A context longer than ``block_size`` is cropped to its last
        ``block_size`` tokens, as the uncached path does; positions then shift, so past that
        point each step reruns the cropped window (no cache can hold shifted positions).
        """
        if temperature < 0:
            raise ValueError(f"temperature={temperature!r}: must be >= 0")
        block = self.config.block_size
        cache: KVCache | None = None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = self(idx[:, -block:])
            elif cache is not None and idx.size(1) <= block:
                logits, _ = self(idx[:, -1:], cache=cache)  # one new position
            else:
                dtype = self.transformer.wte.weight.dtype
                cache = KVCache(self.config, idx.size(0), block, idx.device, dtype)
                logits, _ = self(idx[:, -block:], cache=cache)  # the (cropped) prompt
            logits = logits[:, -1, :].float()  # (B, V)
            idx_next = _pick(logits, temperature, top_k, generator)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def _pick(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """The next token (B, 1) from last-position logits (B, V)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float("inf")
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
