"""The training loop: token shards -> GPT-2 checkpoints, metrics and a loss curve.

One process or many under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU), the same call either
way: the rank and world size come from torchrun's environment. Each optimiser step accumulates
gradients over micro-batches until the target batch (in tokens) is reached, clips them, and
takes an AdamW step at the learning rate :func:`get_lr` gives for that step.

Everything a resumed run needs to continue exactly is in the checkpoint: weights, optimiser
moments, step (the schedule is a function of it), the data cursor and every rank's RNG states.
SIGTERM sets a flag; the loop checkpoints at the next step boundary and returns (under torchrun,
at the next log, evaluation or checkpoint step, where the processes agree on it).

No step waits for the GPU: losses and gradient norms stay on the device and are read once per
``log_interval`` (and before every evaluation and checkpoint), so the host queues the next
step, and its batch's copy from pinned memory, while the current one runs. Each step's duration
comes from CUDA events. A NaN/inf loss is found at that read: the run stops there, before any
later checkpoint, so the last checkpoint stays the last good one (the steps since it are lost).

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
from trainer.metrics import MetricsLog, Peak, flops_per_token, peak_flops, plot_loss
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


@dataclass
class Run:
    """One training call's state: what :func:`setup` builds, and the loop, evaluation and
    checkpoints share. Only ``step`` changes as training goes (the weights, optimiser moments
    and data cursor change inside their objects); a test can build one and call any part."""

    job: JobConfig
    tokens_dir: str
    out: Path
    dist: DistInfo
    gate: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    mcfg: GPTConfig
    shards: TokenShards
    train_data: Batches
    val_data: Batches | None
    accum: int
    raw: GPT
    optimizer: torch.optim.Optimizer
    autocast: Any
    scaler: torch.amp.GradScaler
    model: torch.nn.Module
    """What trains: ``raw``, compiled and/or wrapped in DDP by :func:`wrap_model`."""
    evaluator: torch.nn.Module
    """What evaluates: the compiled model without DDP (no gradient sync is wanted)."""
    fpt: int
    peak: Peak
    step: int = 0

    @property
    def cfg(self) -> TrainConfig:
        return self.job.train

    @property
    def tokens_per_step(self) -> int:
        return self.accum * self.cfg.batch_size * self.mcfg.block_size * self.dist.world


def setup(job: JobConfig, tokens_dir: str, out: Path, dist: DistInfo, gate: dict[str, Any]) -> Run:
    """Device, data, a fresh model and optimiser at step 0 (nothing compiled or wrapped yet, so
    :func:`restore` can load a checkpoint into the plain module first)."""
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
    raw = GPT(mcfg).to(device)
    optimizer = raw.configure_optimizers(
        cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2), device.type
    )
    fpt = flops_per_token(
        raw.num_params(non_embedding=True),
        mcfg.n_layer,
        mcfg.n_head,
        mcfg.n_embd // mcfg.n_head,
        mcfg.block_size,
    )
    return Run(
        job=job,
        tokens_dir=tokens_dir,
        out=out,
        dist=dist,
        gate=gate,
        device=device,
        dtype=dtype,
        mcfg=mcfg,
        shards=shards,
        train_data=train_data,
        val_data=val_data,
        accum=max(1, cfg.batch_tokens // per_micro),
        raw=raw,
        optimizer=optimizer,
        autocast=precision.autocast(device, dtype),
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        model=raw,
        evaluator=raw,
        fpt=fpt,
        peak=peak_flops(device.type, str(dtype).removeprefix("torch.")),
    )


def restore(run: Run) -> Path | None:
    """Load the latest checkpoint in ``run.out`` (weights, optimiser, data cursor, step, this
    rank's RNG) into a run from :func:`setup`; its path, or None when there is none yet."""
    path = latest_checkpoint(run.out)
    if path is None:
        log.info("%s: no checkpoint yet; starting from step 0", run.out)
        return None
    ckpt = load_checkpoint(run.out, map_location=run.device)
    if ckpt["model_config"] != run.mcfg.to_dict():
        raise CheckpointError(
            f"{run.out}: checkpoint model {ckpt['model_config']} differs from the configured "
            f"{run.mcfg.to_dict()}"
        )
    run.raw.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.train_data.load_state_dict(ckpt["data"])
    run.step = int(ckpt["step"])
    states = ckpt["rng"]
    if len(states) == run.dist.world:
        set_rng_state(states[run.dist.rank])
    else:
        log.warning(
            "checkpoint had %d processes, now %d: RNG reseeded", len(states), run.dist.world
        )
    log.info("resumed from %s at step %d", path, run.step)
    return path


def wrap_model(run: Run) -> None:
    """Compile (``train.compile``) and, under torchrun, wrap in DDP; evaluation uses the
    compiled module without DDP."""
    model: torch.nn.Module = torch.compile(run.raw) if run.cfg.compile else run.raw
    run.evaluator = model
    if run.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [run.dist.local_rank] if run.device.type == "cuda" else None
        model = DDP(model, device_ids=ids)
    run.model = model


@dataclass
class StepFigures:
    """One optimiser step's figures, still on the device: reading them waits for the GPU, so
    the loop reads a whole log interval's at once (see :func:`flush`)."""

    step: int
    lr: float
    loss: torch.Tensor
    """Mean loss over the micro-batches (one process's; :func:`flush` averages processes)."""
    grad_norm: torch.Tensor | None
    """Gradient norm before clipping; None without clipping."""
    timer: StepTimer
    time: float
    """Host wall-clock when the step was handed to the device."""


class StepTimer:
    """A step's duration without waiting for it: CUDA events on the stream (read once the
    device has passed them), the host clock on the CPU, where work is synchronous."""

    def __init__(self, device: torch.device) -> None:
        self.events = None
        if device.type == "cuda":
            self.events = tuple(torch.cuda.Event(enable_timing=True) for _ in range(2))
            self.events[0].record()
        self.t0 = time.perf_counter()
        self.t1 = self.t0

    def stop(self) -> None:
        if self.events is not None:
            self.events[1].record()
        self.t1 = time.perf_counter()

    def seconds(self) -> float:
        if self.events is not None:
            self.events[1].synchronize()
            return self.events[0].elapsed_time(self.events[1]) / 1000
        return self.t1 - self.t0


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host batch -> device. On CUDA from pinned memory and non-blocking: the copy queues
    behind the running step instead of making the host wait for it."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def train_step(run: Run) -> StepFigures:
    """One optimiser step at ``get_lr(run.step)``: accumulate gradients over the micro-batches,
    clip, step AdamW, advance the data cursor and ``run.step``.

    Nothing here waits for the GPU: the loss and gradient norm stay device tensors, so the
    host prepares the next step while this one runs. The NaN/inf check on the loss therefore
    happens in :func:`flush`, at every log, evaluation and checkpoint boundary, before anything
    is saved.
    """
    cfg, dist, device = run.cfg, run.dist, run.device
    timer = StepTimer(device)
    lr = get_lr(run.step, cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=device)
    for micro in range(run.accum):
        x, y = run.train_data.batch(micro)
        x, y = _to_device(x, device), _to_device(y, device)
        sync = micro == run.accum - 1  # all-reduce gradients on the last micro-batch only
        no_sync = run.model.no_sync() if dist.enabled and not sync else contextlib.nullcontext()
        with no_sync:
            with run.autocast:
                _, loss = run.model(x, y)
            run.scaler.scale(loss / run.accum).backward()
        loss_sum += loss.detach().float()
    run.train_data.advance(run.accum)
    run.scaler.unscale_(run.optimizer)
    norm = None
    if cfg.grad_clip > 0:
        params = [p for p in run.raw.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).float()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    timer.stop()
    run.step += 1
    return StepFigures(run.step, lr, loss_sum / run.accum, norm, timer, time.time())


def flush(run: Run, pending: list[StepFigures], report: Progress) -> dict[int, float]:
    """Read the pending steps' figures (one wait for the device, one all-reduce over processes),
    report them, empty ``pending`` and return the losses by step.

    Raises :class:`TrainingDiverged` at the first NaN/inf loss, after reporting the steps
    before it: the loop flushes before every checkpoint, so no checkpoint holds the weights
    of a diverged step or any step after it.
    """
    steps, pending[:] = list(pending), []
    if not steps:
        return {}
    losses = _all_mean(torch.stack([f.loss for f in steps]), run.dist)  # (n,)
    norms = [f.grad_norm for f in steps if f.grad_norm is not None]
    values = torch.cat([losses, torch.stack(norms)]).tolist() if norms else losses.tolist()
    out: dict[int, float] = {}
    for i, f in enumerate(steps):
        loss = values[i]
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss} at step {f.step} (lr {f.lr:.3g}); stopped at step {run.step}, "
                f"and nothing after step {f.step - 1} was saved. Last good checkpoint: "
                f"{latest_checkpoint(run.out) or 'none yet'}. Lower train.lr, raise "
                "warmup_steps or check the data, then --resume."
            )
        report.step(f, loss, values[len(steps) + i] if norms else None)
        out[f.step] = loss
    return out


def snapshot(run: Run, val_loss: float | None) -> dict[str, Any]:
    """The checkpoint's contents: everything :func:`restore` needs to continue exactly, plus
    the configs, the gate's report and where the data came from. Every rank must call it (the
    RNG states are gathered)."""
    cfg = run.cfg
    rngs = [rng_state()]
    if run.dist.enabled:
        import torch.distributed as td

        rngs = [None] * run.dist.world
        td.all_gather_object(rngs, rng_state())
    return {
        "model": run.raw.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "step": run.step,
        "schedule": {"lr_now": get_lr(run.step, cfg), **{k: getattr(cfg, k) for k in _SCHEDULE}},
        "data": run.train_data.state_dict(),
        "rng": rngs,
        "model_config": run.mcfg.to_dict(),
        "config": run.job.to_dict(),
        "gate": run.gate,
        "tokens_dir": record_path(run.tokens_dir, str(run.out)),
        "tokenizer": recorded_tokenizer(run.out),
        "world": run.dist.world,
        "val_loss": val_loss,
    }


def checkpoint(run: Run, val_loss: float | None) -> Path | None:
    """Save a checkpoint (rank 0 writes, all wait); its path on rank 0, None elsewhere."""
    state = snapshot(run, val_loss)
    path = save_checkpoint(run.out, state) if run.dist.main else None
    if run.dist.enabled:
        import torch.distributed as td

        td.barrier()
    return path


def validate(run: Run, metrics: MetricsLog | None) -> float:
    """Validation loss now (``run.val_data`` must exist), logged to metrics and the curve."""
    assert run.val_data is not None
    val_loss = evaluate(
        run.evaluator, run.val_data, run.cfg.eval_steps, run.autocast, run.device, run.dist
    )
    if metrics is not None:
        metrics.write(
            {"step": run.step, "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 700.0))}
        )
        plot_loss(metrics.path, run.out / "loss.png")
    return val_loss


class Progress:
    """Per-step reporting on rank 0: a ``metrics.jsonl`` record, and a tqdm bar or one log line
    every ``log_interval`` steps. Other ranks report nothing. Records arrive a log interval at a
    time (:func:`flush`), each with its own step's duration."""

    def __init__(self, run: Run, bar: bool) -> None:
        self.run = run
        main = run.dist.main
        self.metrics = MetricsLog(run.out / "metrics.jsonl", resume_step=run.step) if main else None
        self.bar = None
        if main and bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=run.cfg.max_steps,
                initial=run.step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
            )

    def step(self, figures: StepFigures, loss: float, grad_norm: float | None) -> None:
        run = self.run
        tps = run.tokens_per_step / figures.timer.seconds()
        util = run.peak.mfu(tps / run.dist.world, run.fpt)
        if self.metrics is not None:
            self.metrics.write(
                {
                    "step": figures.step,
                    "loss": loss,
                    "lr": figures.lr,
                    "grad_norm": grad_norm,
                    "tokens": figures.step * run.tokens_per_step,
                    "tokens_per_s": tps,
                    "mfu": util,
                    "time": figures.time,
                }
            )
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps:,.0f}", mfu=f"{util:.1%}")
        elif run.dist.main and figures.step % run.cfg.log_interval == 0:
            log.info("step %d loss %.4f %.0f tok/s mfu %.1f%%", figures.step, loss, tps, util * 100)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.metrics is not None:
            plot_loss(self.metrics.path, self.run.out / "loss.png")


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
    run = setup(job, tokens_dir, out, dist, gate)
    if resume:
        restore(run)
    wrap_model(run)
    cfg = run.cfg
    if dist.main:
        log.info(
            "%s: %.1fM parameters, %d process(es) x %d micro-batch(es) x %d x %d = %d tokens/step; "
            "MFU against a peak of %s",
            run.device,
            run.raw.num_params() / 1e6,
            dist.world,
            run.accum,
            cfg.batch_size,
            run.mcfg.block_size,
            run.tokens_per_step,
            run.peak.describe(),
        )
    report = Progress(run, progress)
    stop_at = cfg.max_steps if max_steps is None else min(max_steps, cfg.max_steps)
    result = TrainResult(step=run.step)
    pending: list[StepFigures] = []
    with _sigterm_flag() as signal_flag:
        while run.step < stop_at:
            pending.append(train_step(run))
            step = run.step
            evaluate_now = run.val_data is not None and (
                step % cfg.eval_interval == 0 or step == cfg.max_steps
            )
            save_now = step % cfg.checkpoint_interval == 0 or step == stop_at
            boundary = evaluate_now or save_now or step % cfg.log_interval == 0
            if dist.enabled:  # agreeing is an all-reduce the host waits for: at boundaries only
                stop = boundary and _any(signal_flag["stop"], dist, run.device)
            else:
                stop = signal_flag["stop"]
            if not (boundary or stop):
                continue
            result.losses.update(flush(run, pending, report))  # raises on a NaN/inf loss
            if evaluate_now:
                result.val_loss = validate(run, report.metrics)
                report.note(f"step {step}: val loss {result.val_loss:.4f}")
            if stop or save_now:
                result.checkpoint = checkpoint(run, result.val_loss) or result.checkpoint
            if stop:
                result.interrupted = True
                break
    report.close()
    result.step = run.step
    return result


_SCHEDULE = ("lr", "min_lr", "warmup_steps", "max_steps")
