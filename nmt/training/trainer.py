"""``train(cfg, run_dir)``: prepared data and a config in, checkpoints, logs and a summary out.

One update = ``world_size x accum_steps`` token-budget batches; the loss is the sum over their
target tokens divided by the count of them all, so an update means the same on one process with
accumulation and on several with DistributedDataParallel. Each update: autocast forward,
label-smoothed loss, backward (BPTT through the whole sentence), gradient clipping by global L2
norm (logged), optimizer step, learning-rate schedule. Every ``valid_every`` updates: dev loss,
perplexity and greedy BLEU; the best checkpoint by dev BLEU is kept, and training stops early
after ``patience`` validations without improvement. SIGINT/SIGTERM stop training cleanly after
the current update (a second one aborts). ``last.pt`` lets ``train.resume=true`` continue exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

import nmt
from nmt import NmtError
from nmt.config import SearchConfig, SearchMethod, TrainJob, describe, validate_model, validate_train
from nmt.data.batching import batch_indices, make_batch
from nmt.data.corpus import EncodedSplit, Prepared, load_prepared, prepare, read_lines, split_paths
from nmt.metrics import bleu, default_tokenize
from nmt.model.seq2seq import Seq2Seq, build_model, count_parameters
from nmt.runtime import autocast, autocast_dtype, git_commit, hardware, resolve_device, set_threads
from nmt.training.checkpoint import CheckpointKeeper, load_checkpoint, save_checkpoint
from nmt.training.distributed import Dist, init_distributed
from nmt.training.loss import sequence_loss
from nmt.training.optim import LRSchedule, build_optimizer
from nmt.translator import decode_ids

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    step: int = 0  # updates done
    epoch: int = 0  # epochs started
    batch_in_epoch: int = 0  # batches of the current epoch consumed
    epoch_rng: dict | None = None  # batch-order generator state at the start of the current epoch
    best_metric: float = -math.inf
    best_step: int = 0
    bad_validations: int = 0
    last_valid_step: int = -1
    train_seconds: float = 0.0  # over all sessions (resume adds to it)
    tokens: int = 0  # target tokens trained on
    stop_reason: str = ""


@dataclass
class Meter:
    """Running sums between two log lines."""

    loss: float = 0.0
    nll: float = 0.0
    tokens: int = 0
    norms: list[float] = field(default_factory=list)
    clipped: int = 0
    start: float = field(default_factory=time.perf_counter)


class StopSignal:
    """First SIGINT/SIGTERM: finish the current update, validate, save, exit. Second: abort."""

    def __init__(self) -> None:
        self.requested = False
        self.old = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        log.warning(
            "%s received: stopping after this update (send again to abort)", signal.Signals(signum).name
        )
        for sig, old in self.old.items():
            signal.signal(sig, old)

    def __exit__(self, *exc) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


def _prepared(cfg: TrainJob, run_dir: Path, dist: Dist) -> Prepared:
    data_dir = run_dir / "data"
    if dist.main:
        prepared = prepare(cfg.data, cfg.tokenizer, data_dir)
    dist.barrier()
    return prepared if dist.main else load_prepared(data_dir)


def _dev_references(cfg: TrainJob, dev: EncodedSplit) -> list[str]:
    refs = read_lines(split_paths(cfg.data, "dev")[1])
    return [refs[i] for i in dev.lines]


@torch.no_grad()
def validate(
    model: Seq2Seq,
    dev: EncodedSplit,
    refs: list[str],
    prepared: Prepared,
    cfg: TrainJob,
    device: torch.device,
    amp: torch.dtype | None,
) -> dict:
    """Dev loss per target token, perplexity, and greedy BLEU of the first valid_max_sents sentences."""
    t0 = time.perf_counter()
    model.eval()
    nll, tokens = 0.0, 0
    for idx in batch_indices(
        dev.src_lens, dev.tgt_lens, cfg.train.batch_size, cfg.train.batch_type.value == "tokens"
    ):
        b = make_batch(dev, idx).to(device)
        with autocast(device, amp):
            logits = model(b.src, b.src_lens, b.tgt_in)
        nll += float(sequence_loss(logits, b.tgt_out, 0.0)[1])
        tokens += b.n_tgt_tokens
    out = {"dev_nll": nll / max(tokens, 1), "dev_ppl": math.exp(min(nll / max(tokens, 1), 50))}
    if cfg.train.valid_bleu:
        n = cfg.train.valid_max_sents or len(dev)
        greedy = SearchConfig(
            method=SearchMethod.greedy, max_len_a=cfg.search.max_len_a, max_len_b=cfg.search.max_len_b
        )
        with autocast(device, amp):
            hyps = decode_ids(model, [dev.src(i) for i in range(n)], greedy, device, cfg.train.batch_size)
        texts = prepared.tgt_tok.decode([h[0].tokens for h in hyps])
        tok = "none" if cfg.data.segmented else default_tokenize(cfg.data.tgt_lang)
        s = bleu(texts, refs[:n], tok)
        out.update(dev_bleu=s.score, bleu_signature=s.signature, example=texts[0] if texts else "")
    model.train()
    out["valid_seconds"] = time.perf_counter() - t0
    return out


def _checkpoint_payload(model: Seq2Seq, cfg_dict: dict, prepared: Prepared, state: TrainState) -> dict:
    return {
        "model": model.state_dict(),
        "config": cfg_dict,
        "step": state.step,
        "spm": {"src": prepared.src_tok.proto, "tgt": prepared.tgt_tok.proto},
    }


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train(cfg: TrainJob, run_dir: Path) -> dict:
    """Train a model as configured; returns the summary also written to ``<run_dir>/summary.json``."""
    validate_model(cfg.model)
    validate_train(cfg.train)
    tc = cfg.train
    use_cuda = resolve_device(cfg.device).type == "cuda"
    dist = init_distributed(use_cuda)
    device = resolve_device(cfg.device, dist.local_rank)
    set_threads(tc.num_threads)
    amp = autocast_dtype(tc.precision, device)
    torch.manual_seed(cfg.seed)
    prepared = _prepared(cfg, run_dir, dist)
    train_split, dev = prepared.splits["train"], prepared.splits["dev"]
    if len(train_split) == 0:
        raise NmtError("no training pairs left after filtering (check data.max_len / data.max_len_ratio)")
    model = build_model(cfg.model, len(prepared.src_tok), len(prepared.tgt_tok)).to(device)
    torch.manual_seed(cfg.seed + dist.rank)  # dropout differs between ranks
    optimizer = build_optimizer(model.parameters(), tc, device)
    schedule = LRSchedule(optimizer, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    state, rng = TrainState(), np.random.default_rng(cfg.seed)
    ckpt_dir = run_dir / "checkpoints"
    keeper = CheckpointKeeper(ckpt_dir, tc.keep_last, tc.keep_best)
    cfg_dict = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    if tc.resume:
        _resume(ckpt_dir / "last.pt", model, optimizer, schedule, scaler, state, device)
    if dist.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if use_cuda else None
        )
    else:
        ddp = model
    refs = _dev_references(cfg, dev) if dist.main else []
    group = dist.world * tc.accum_steps
    if dist.main:
        log.info(
            "nmt %s | %s | device %s | precision %s",
            nmt.__version__,
            hardware(device),
            device,
            "fp32" if amp is None else str(amp).replace("torch.", ""),
        )
        log.info("model: %s parameters | %s", f"{count_parameters(model):,}", describe(cfg.model))
        log.info(
            "data: %d training pairs, %d dev pairs | vocab %d / %d | update = %d x %s %s%s",
            len(train_split),
            len(dev),
            len(prepared.src_tok),
            len(prepared.tgt_tok),
            group,
            tc.batch_size,
            tc.batch_type.value,
            f" ({dist.world} processes x {tc.accum_steps} accumulated)" if group > 1 else "",
        )
    metrics_log = open(run_dir / "metrics.jsonl", "a") if dist.main else None
    bar = tqdm(
        total=tc.max_steps or None,
        initial=state.step,
        unit="step",
        dynamic_ncols=True,
        disable=not (dist.main and sys.stderr.isatty()),
        desc="train",
    )
    meter, session_start, base_seconds = Meter(), time.perf_counter(), state.train_seconds
    rates: list[float] = []  # target tokens/s of each log interval (steady state: their median)
    tgt_cost = train_split.tgt_lens + 1
    model.train()
    try:
        with StopSignal() as stop_signal:
            while not state.stop_reason:
                if state.batch_in_epoch == 0:
                    state.epoch += 1
                    state.epoch_rng = rng.bit_generator.state
                else:
                    rng.bit_generator.state = state.epoch_rng
                batches = batch_indices(
                    train_split.src_lens,
                    train_split.tgt_lens,
                    tc.batch_size,
                    tc.batch_type.value == "tokens",
                    rng,
                    tc.sort_buckets,
                )
                updates = len(batches) // group
                if updates == 0:
                    raise NmtError(
                        f"the training set makes {len(batches)} batches, fewer than one update needs ({group})"
                    )
                for u in range(state.batch_in_epoch // group, updates):
                    members = batches[u * group : (u + 1) * group]
                    normalizer = sum(int(tgt_cost[idx].sum()) for idx in members)
                    mine = members[dist.rank :: dist.world]
                    for k, idx in enumerate(mine):
                        b = make_batch(train_split, idx).to(device)
                        sync = k == len(mine) - 1 or dist.world == 1
                        with contextlib.nullcontext() if sync else ddp.no_sync(), autocast(device, amp):
                            logits = ddp(b.src, b.src_lens, b.tgt_in)  # (batch, tgt_len, vocab)
                            loss, nll = sequence_loss(logits, b.tgt_out, tc.label_smoothing)
                        scaler.scale(loss * (dist.world / normalizer)).backward()
                        meter.loss += float(loss.detach())
                        meter.nll += float(nll)
                        meter.tokens += b.n_tgt_tokens
                    lr = schedule.step(state.step + 1)
                    scaler.unscale_(optimizer)
                    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm or math.inf))
                    if math.isfinite(norm) or scaler.is_enabled():
                        scaler.step(optimizer)  # (GradScaler skips the step itself on inf/nan in fp16)
                    else:
                        log.warning("step %d: gradient norm is %s; update skipped", state.step + 1, norm)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    state.step += 1
                    state.batch_in_epoch = (u + 1) * group
                    state.tokens += normalizer
                    meter.norms.append(norm)
                    meter.clipped += int(tc.clip_norm > 0 and norm > tc.clip_norm)
                    state.train_seconds = base_seconds + time.perf_counter() - session_start
                    bar.update(1)
                    if state.step % tc.log_every == 0:
                        rates.append(_log_progress(meter, state, tc, lr, updates, u, bar, dist, metrics_log))
                        meter = Meter()
                    if state.step % tc.valid_every == 0:
                        _validate_and_save(
                            model,
                            dev,
                            refs,
                            prepared,
                            cfg,
                            cfg_dict,
                            device,
                            amp,
                            state,
                            keeper,
                            schedule,
                            optimizer,
                            scaler,
                            dist,
                            metrics_log,
                        )
                        state.train_seconds = base_seconds + time.perf_counter() - session_start
                        meter.start = time.perf_counter()  # throughput figures leave validation out
                    reason = _should_stop(state, tc, stop_signal.requested, u + 1 == updates)
                    if dist.any_rank(bool(reason), device):
                        state.stop_reason = reason or "another process stopped"
                        break
                else:
                    state.batch_in_epoch = 0
            if state.last_valid_step != state.step:
                _validate_and_save(
                    model,
                    dev,
                    refs,
                    prepared,
                    cfg,
                    cfg_dict,
                    device,
                    amp,
                    state,
                    keeper,
                    schedule,
                    optimizer,
                    scaler,
                    dist,
                    metrics_log,
                )
    finally:
        bar.close()
        if metrics_log:
            metrics_log.close()
        dist.close()
    summary = {
        "stop_reason": state.stop_reason,
        "steps": state.step,
        "epochs": state.epoch,
        "train_seconds": round(state.train_seconds, 1),
        "target_tokens": state.tokens,
        "target_tokens_per_second": round(state.tokens / max(state.train_seconds, 1e-9), 1),
        "steady_target_tokens_per_second": round(float(np.median(rates)), 1) if rates else None,
        "best_dev_bleu": state.best_metric if math.isfinite(state.best_metric) else None,
        "best_step": state.best_step,
        "hardware": hardware(device),
        "device": str(device),
        "seed": cfg.seed,
        "git_commit": git_commit(),
        "parameters": count_parameters(model),
        "processes": dist.world,
    }
    if dist.main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        log.info(
            "done (%s): %d steps, %s of training, %.0f target tokens/s; best dev BLEU %.2f at step %d",
            state.stop_reason,
            state.step,
            _fmt_time(state.train_seconds),
            summary["target_tokens_per_second"],
            state.best_metric,
            state.best_step,
        )
    return summary


def _should_stop(state: TrainState, tc, signalled: bool, epoch_end: bool) -> str:
    if signalled:
        return "interrupted"
    if tc.max_steps and state.step >= tc.max_steps:
        return f"max_steps={tc.max_steps}"
    if tc.max_time and state.train_seconds >= 60 * tc.max_time:
        return f"max_time={tc.max_time} min"
    if tc.max_epochs and epoch_end and state.epoch >= tc.max_epochs:
        return f"max_epochs={tc.max_epochs}"
    if tc.patience and state.bad_validations >= tc.patience:
        return f"no dev improvement in {tc.patience} validations"
    return ""


def _eta(state: TrainState, tc, step_seconds: float, updates: int, u: int) -> float | None:
    left = []
    if tc.max_steps:
        left.append((tc.max_steps - state.step) * step_seconds)
    if tc.max_time:
        left.append(60 * tc.max_time - state.train_seconds)
    if tc.max_epochs:
        left.append(((tc.max_epochs - state.epoch) * updates + updates - u - 1) * step_seconds)
    return max(0.0, min(left)) if left else None


def _log_progress(
    meter: Meter, state: TrainState, tc, lr: float, updates: int, u: int, bar, dist: Dist, metrics_log
) -> float:
    elapsed = time.perf_counter() - meter.start
    steps = len(meter.norms)
    loss_sum, nll_sum, tokens = dist.sum([meter.loss, meter.nll, float(meter.tokens)])  # over all processes
    tok_s = tokens / max(elapsed, 1e-9)
    loss, nll = loss_sum / max(tokens, 1), nll_sum / max(tokens, 1)
    eta = _eta(state, tc, elapsed / max(steps, 1), updates, u)
    if eta is not None and not tc.max_steps:
        bar.total = state.step + int(eta / max(elapsed / max(steps, 1), 1e-9))
    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", refresh=False)
    if dist.main:
        log.info(
            "step %d | epoch %d %d%% | loss %.3f | ppl %.1f | lr %.2e | |g| %.2f (clipped %d%%) | %s tgt tok/s | "
            "%.0f ms/step | %s | ETA %s",
            state.step,
            state.epoch,
            100 * (u + 1) // updates,
            loss,
            math.exp(min(nll, 50)),
            lr,
            float(np.mean(meter.norms)),
            100 * meter.clipped // max(steps, 1),
            f"{tok_s:,.0f}",
            1000 * elapsed / max(steps, 1),
            _fmt_time(state.train_seconds),
            "--" if eta is None else _fmt_time(eta),
        )
        metrics_log.write(
            json.dumps(
                {
                    "kind": "train",
                    "step": state.step,
                    "epoch": state.epoch,
                    "loss": loss,
                    "ppl": math.exp(min(nll, 50)),
                    "lr": lr,
                    "grad_norm": float(np.mean(meter.norms)),
                    "tok_s": tok_s,
                    "time": state.train_seconds,
                }
            )
            + "\n"
        )
        metrics_log.flush()
    return tok_s


def _validate_and_save(
    model,
    dev,
    refs,
    prepared,
    cfg: TrainJob,
    cfg_dict,
    device,
    amp,
    state: TrainState,
    keeper: CheckpointKeeper,
    schedule: LRSchedule,
    optimizer,
    scaler,
    dist: Dist,
    metrics_log,
) -> None:
    state.last_valid_step = state.step
    if dist.main:
        r = validate(model, dev, refs, prepared, cfg, device, amp)
        metric = r["dev_bleu"] if cfg.train.valid_bleu else -r["dev_nll"]
        is_best = metric > state.best_metric
        if is_best:
            state.best_metric, state.best_step, state.bad_validations = metric, state.step, 0
        else:
            state.bad_validations += 1
        if schedule.on_validation(metric):
            log.info(
                "dev BLEU did not improve for %d validations: learning rate cut to %.2e",
                cfg.train.plateau_patience,
                schedule.lr_at(state.step + 1),
            )
        payload = _checkpoint_payload(model, cfg_dict, prepared, state)
        payload["metrics"] = r
        keeper.save(state.step, payload, metric, is_best)
        _save_last(keeper.dir / "last.pt", payload, optimizer, schedule, scaler, state)
        bleu_txt = f" | dev BLEU {r['dev_bleu']:.2f}" if "dev_bleu" in r else ""
        log.info(
            "validation at step %d | dev loss %.3f | dev ppl %.2f%s%s | %.1fs | e.g. %r",
            state.step,
            r["dev_nll"],
            r["dev_ppl"],
            bleu_txt,
            " (best)" if is_best else f" (best {state.best_metric:.2f} at {state.best_step})",
            r["valid_seconds"],
            r.get("example", "")[:80],
        )
        metrics_log.write(
            json.dumps(
                {
                    "kind": "valid",
                    "step": state.step,
                    "time": state.train_seconds,
                    **{k: v for k, v in r.items() if k != "example"},
                }
            )
            + "\n"
        )
        metrics_log.flush()
    dist.barrier()
    if dist.world > 1:  # every rank needs the early-stopping counter
        obj = [state.bad_validations]
        torch.distributed.broadcast_object_list(obj, src=0)
        state.bad_validations = obj[0]


def _save_last(path: Path, payload: dict, optimizer, schedule: LRSchedule, scaler, state: TrainState) -> None:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    save_checkpoint(
        path,
        {
            **payload,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(),
            "state": asdict(state),
            "rng": rng,
        },
    )


def _resume(path: Path, model, optimizer, schedule: LRSchedule, scaler, state: TrainState, device) -> None:
    if not path.is_file():
        log.warning("train.resume=true but %s does not exist: starting from scratch", path)
        return
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt:
        raise NmtError(f"{path}: has no training state to resume from")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise NmtError(
            f"{path}: does not fit the configured model ({str(e).splitlines()[0]}); "
            "resume with the same model settings"
        ) from None
    optimizer.load_state_dict(ckpt["optimizer"])
    schedule.load_state_dict(ckpt["schedule"])
    scaler.load_state_dict(ckpt["scaler"])
    for k, v in ckpt["state"].items():
        setattr(state, k, v)
    state.stop_reason = ""
    torch.set_rng_state(ckpt["rng"]["torch"])
    if "cuda" in ckpt["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    log.info(
        "resumed from %s: step %d, epoch %d, %s trained",
        path,
        state.step,
        state.epoch,
        _fmt_time(state.train_seconds),
    )
