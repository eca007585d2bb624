"""The training loop: token shards -> GPT-2 checkpoints, metrics and a loss curve.

One process or many under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU), the same call either
way: the rank and world size come from torchrun's environment. Each optimiser step accumulates
gradients over micro-batches until the target batch (in tokens) is reached, clips them, and
takes an AdamW step at the learning rate :func:`get_lr` gives for that step.

Everything a resumed run needs to continue exactly is in the checkpoint: weights, optimiser
moments, step (the schedule is a function of it), the data cursor and every rank's RNG states.
SIGTERM sets a flag; the loop checkpoints at the next step boundary and returns. A NaN/inf loss
stops the run before the optimiser step, so the last checkpoint stays the last good one.

Output in ``out_dir``: ``ckpt-*.pt`` + ``latest.json``, ``metrics.jsonl``, ``loss.png`` and a
copy of the tokenizer, so the directory can be moved and still sampled, evaluated and exported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from foundation.config import ConfigError, JobConfig, TrainConfig
from foundation.errors import WebtextError
from foundation.layout import record_path, resolve_recorded
from foundation.shards import MANIFEST, Manifest, ShardError
from trainer import precision
from trainer.checkpoint import (
    CheckpointError,
    copy_tokenizer,
    latest_checkpoint,
    load_checkpoint,
    recorded_tokenizer,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from trainer.data import Batches, batches
from trainer.metrics import MetricsLog, flops_per_token, mfu, peak_flops, plot_loss
from trainer.model import GPT, GPTConfig, named_config
from trainer.tokens import TokenShardError, TokenShards

log = logging.getLogger(__name__)


class TrainingDiverged(WebtextError, RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the bad state."""


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job (rank 0 of 1 when run directly)."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


@dataclass
class TrainResult:
    step: int
    losses: dict[int, float] = field(default_factory=dict)
    """Training loss of each step this call ran (mean over micro-batches and processes)."""
    val_loss: float | None = None
    checkpoint: Path | None = None
    interrupted: bool = False


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps`` to ``lr``, then cosine decay to ``min_lr`` at
    ``max_steps`` (held there after). Step 0 gets lr/warmup, not 0: no step is wasted."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def model_config(job: JobConfig, vocab_size: int) -> GPTConfig:
    """The model of ``job.model``; vocab from the token shards, padded to a multiple of 64."""
    m = job.model
    vocab = m.vocab_size if m.vocab_size is not None else -(-vocab_size // 64) * 64
    if vocab < vocab_size:
        raise ConfigError(
            f"model.vocab_size={vocab}: smaller than the token shards' vocabulary ({vocab_size})"
        )
    try:
        return named_config(
            m.name,
            n_layer=m.n_layer,
            n_head=m.n_head,
            n_embd=m.n_embd,
            block_size=m.block_size,
            vocab_size=vocab,
            dropout=m.dropout,
        )
    except ValueError as e:
        raise ConfigError(f"model: {e}") from e


def resolve_device(cfg: TrainConfig, dist: DistInfo) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and dist.enabled:
        return torch.device(f"cuda:{dist.local_rank}")
    return torch.device(cfg.device)


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun job described by RANK/WORLD_SIZE, if any (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as td

    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def check_contamination(tokens_dir: str, job: JobConfig, out_dir: str) -> dict[str, Any]:
    """The contamination gate for the text shards these tokens came from, as a dict whose
    report path is relative to ``out_dir`` (where the checkpoints record it).

    Raises ContaminationGateError when the report is missing, stale or over the threshold,
    unless ``train.allow_contaminated``.
    """
    from contamination.gate import ContaminationGateError, check_gate

    allow = job.train.allow_contaminated
    threshold = job.train.max_overlap_pct
    if threshold is None:
        threshold = job.contamination.max_overlap_pct
    recorded = Manifest.load(tokens_dir).extra.get("source")
    source = resolve_recorded(recorded, tokens_dir) if recorded else None
    try:
        if not source:
            raise ShardError(f"{tokens_dir}/{MANIFEST} records no source text shards")
        result = check_gate(source, max_overlap_pct=threshold, allow=allow)
    except ShardError as e:
        reason = f"cannot check contamination: {e}"
        if not allow:
            raise ContaminationGateError(f"{reason}; allow it explicitly to train anyway") from e
        return {"ok": False, "reason": reason, "allowed": True, "max_overlap_pct": threshold}
    if result.allowed:
        log.warning("contamination gate failed, training anyway: %s", result.reason)
    return {**dataclasses.asdict(result), "report_path": record_path(result.report_path, out_dir)}


@contextlib.contextmanager
def _sigterm_flag() -> Iterator[dict[str, bool]]:
    """A flag SIGTERM sets (instead of killing the process), for the duration of the block."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: checkpointing at the end of this step, then stopping")
        flag["stop"] = True

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def _all_mean(value: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    if dist.enabled:
        import torch.distributed as td

        td.all_reduce(value, op=td.ReduceOp.SUM)  # gloo has no AVG
        value /= dist.world
    return value


def _any(flag: bool, dist: DistInfo, device: torch.device) -> bool:
    """True on every process when it is True on any (so all stop at the same step)."""
    if not dist.enabled:
        return flag
    import torch.distributed as td

    t = torch.tensor([1.0 if flag else 0.0], device=device)  # NCCL reduces device tensors only
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    val: Batches,
    steps: int,
    autocast: Any,
    device: torch.device,
    dist: DistInfo,
) -> float:
    """Mean loss over the first ``steps`` micro-batches per process of the validation split:
    the same windows at every evaluation, so successive figures compare."""
    model.eval()
    steps = min(steps, max(1, val.n_windows // (val.batch_size * val.world)))
    total = torch.zeros((), device=device)
    for m in range(steps):
        x, y = val.batch(m)
        with autocast:
            _, loss = model(x.to(device), y.to(device))
        total += loss.float()
    model.train()
    return float(_all_mean(total / steps, dist).item())


def train(
    job: JobConfig,
    tokens_dir: str,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Train ``job.model`` on ``tokens_dir`` per ``job.train``; see the module docstring.

    ``max_steps`` stops this call early (the schedule still runs to ``train.max_steps``): what
    an interrupted run does, for tests and for splitting a run into sessions.
    """
    gate = check_contamination(tokens_dir, job, out_dir)
    dist = init_distributed(resolve_device(job.train, DistInfo()).type)
    if dist.main:
        copy_tokenizer(tokens_dir, out_dir)
    try:
        return _train(job, tokens_dir, Path(out_dir), dist, gate, resume, progress, max_steps)
    finally:
        if dist.enabled:
            import torch.distributed as td

            td.destroy_process_group()


def _train(
    job: JobConfig,
    tokens_dir: str,
    out: Path,
    dist: DistInfo,
    gate: dict[str, Any],
    resume: bool,
    progress: bool,
    max_steps: int | None,
) -> TrainResult:
    cfg = job.train
    device = resolve_device(cfg, dist)
    dtype = precision.compute_dtype(cfg.dtype, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 on Ampere+ for fp32 matmuls
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed + dist.rank)

    shards = TokenShards(tokens_dir, "train")
    mcfg = model_config(job, shards.vocab_size)
    train_data = batches(shards, mcfg.block_size, cfg.batch_size, dist.rank, dist.world, cfg.seed)
    try:
        val_data = batches(
            TokenShards(tokens_dir, "val"), mcfg.block_size, cfg.batch_size, dist.rank, dist.world
        )
    except TokenShardError as e:
        log.warning("no evaluation: %s", e)
        val_data = None

    per_micro = cfg.batch_size * mcfg.block_size * dist.world
    if cfg.batch_tokens % per_micro:
        raise ConfigError(
            f"train.batch_tokens={cfg.batch_tokens}: not a multiple of batch_size x block_size x "
            f"processes = {cfg.batch_size} x {mcfg.block_size} x {dist.world} = {per_micro}"
        )
    accum = max(1, cfg.batch_tokens // per_micro)

    raw = GPT(mcfg).to(device)
    optimizer = raw.configure_optimizers(
        cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2), device.type
    )
    step = 0
    if resume and latest_checkpoint(out) is not None:
        ckpt = load_checkpoint(out, map_location=device)
        if ckpt["model_config"] != mcfg.to_dict():
            raise CheckpointError(
                f"{out}: checkpoint model {ckpt['model_config']} differs from the configured "
                f"{mcfg.to_dict()}"
            )
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        train_data.load_state_dict(ckpt["data"])
        step = int(ckpt["step"])
        states = ckpt["rng"]
        if len(states) == dist.world:
            set_rng_state(states[dist.rank])
        else:
            log.warning(
                "checkpoint had %d processes, now %d: RNG reseeded", len(states), dist.world
            )
        log.info("resumed from %s at step %d", latest_checkpoint(out), step)
    elif resume:
        log.info("%s: no checkpoint yet; starting from step 0", out)

    model: torch.nn.Module = torch.compile(raw) if cfg.compile else raw
    evaluator = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    autocast = precision.autocast(device, dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    tokens_per_step = accum * per_micro
    fpt = flops_per_token(
        raw.num_params(non_embedding=True),
        mcfg.n_layer,
        mcfg.n_head,
        mcfg.n_embd // mcfg.n_head,
        mcfg.block_size,
    )
    peak = peak_flops(device.type, str(dtype).removeprefix("torch."))
    metrics = MetricsLog(out / "metrics.jsonl", resume_step=step) if dist.main else None
    if dist.main:
        log.info(
            "%s: %.1fM parameters, %d process(es) x %d micro-batch(es) x %d x %d = %d tokens/step",
            device,
            raw.num_params() / 1e6,
            dist.world,
            accum,
            cfg.batch_size,
            mcfg.block_size,
            tokens_per_step,
        )

    def state(val_loss: float | None) -> dict[str, Any]:
        rngs = [rng_state()]
        if dist.enabled:
            import torch.distributed as td

            rngs = [None] * dist.world
            td.all_gather_object(rngs, rng_state())
        return {
            "model": raw.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "schedule": {"lr_now": get_lr(step, cfg), **{k: getattr(cfg, k) for k in _SCHEDULE}},
            "data": train_data.state_dict(),
            "rng": rngs,
            "model_config": mcfg.to_dict(),
            "config": job.to_dict(),
            "gate": gate,
            "tokens_dir": record_path(tokens_dir, str(out)),
            "tokenizer": recorded_tokenizer(out),
            "world": dist.world,
            "val_loss": val_loss,
        }

    def checkpoint(val_loss: float | None) -> Path | None:
        snapshot = state(val_loss)  # every rank takes part (RNG gather)
        path = save_checkpoint(out, snapshot) if dist.main else None
        if dist.enabled:
            import torch.distributed as td

            td.barrier()
        return path

    stop_at = cfg.max_steps if max_steps is None else min(max_steps, cfg.max_steps)
    result = TrainResult(step=step)
    bar = None
    if dist.main and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    params = [p for p in raw.parameters() if p.requires_grad]
    with _sigterm_flag() as signal_flag:
        while step < stop_at:
            t0 = time.perf_counter()
            lr = get_lr(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(accum):
                x, y = train_data.batch(micro)
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                sync = micro == accum - 1  # all-reduce gradients on the last micro-batch only
                no_sync = model.no_sync() if dist.enabled and not sync else contextlib.nullcontext()
                with no_sync:
                    with autocast:
                        _, loss = model(x, y)
                    scaler.scale(loss / accum).backward()
                loss_sum += loss.detach().float()
            train_data.advance(accum)
            figures = [_all_mean(loss_sum / accum, dist)]
            scaler.unscale_(optimizer)
            if cfg.grad_clip > 0:
                figures.append(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).float())
            step_loss, *norm = torch.stack(figures).tolist()  # one wait for the device, not two
            grad_norm = norm[0] if norm else None
            if not math.isfinite(step_loss):
                last = latest_checkpoint(out)
                raise TrainingDiverged(
                    f"loss is {step_loss} at step {step + 1} (lr {lr:.3g}); stopped before the "
                    f"optimiser step. Last good checkpoint: {last or 'none yet'}. Lower "
                    "train.lr, raise warmup_steps or check the data, then --resume."
                )
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            step += 1
            dt = time.perf_counter() - t0
            result.losses[step] = step_loss
            tps = tokens_per_step / dt
            util = mfu(tps / dist.world, fpt, peak)
            if metrics is not None:
                metrics.write(
                    {
                        "step": step,
                        "loss": step_loss,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "tokens": step * tokens_per_step,
                        "tokens_per_s": tps,
                        "mfu": util,
                        "time": time.time(),
                    }
                )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{tps:,.0f}", mfu=f"{util:.1%}")
            elif dist.main and step % cfg.log_interval == 0:
                log.info(
                    "step %d loss %.4f %.0f tok/s mfu %.1f%%", step, step_loss, tps, util * 100
                )
            if val_data is not None and (step % cfg.eval_interval == 0 or step == cfg.max_steps):
                result.val_loss = evaluate(
                    evaluator, val_data, cfg.eval_steps, autocast, device, dist
                )
                if metrics is not None:
                    metrics.write(
                        {
                            "step": step,
                            "val_loss": result.val_loss,
                            "val_ppl": math.exp(min(result.val_loss, 700.0)),
                        }
                    )
                    plot_loss(metrics.path, out / "loss.png")
                if bar is not None:
                    bar.write(f"step {step}: val loss {result.val_loss:.4f}")
            stop = _any(signal_flag["stop"], dist, device)
            if stop or step % cfg.checkpoint_interval == 0 or step == stop_at:
                result.checkpoint = checkpoint(result.val_loss) or result.checkpoint
            if stop:
                result.interrupted = True
                break
    if bar is not None:
        bar.close()
    if metrics is not None:
        plot_loss(metrics.path, out / "loss.png")
    result.step = step
    return result


_SCHEDULE = ("lr", "min_lr", "warmup_steps", "max_steps")
