"""``train(cfg, run_dir)``: prepared data and a config in, checkpoints, logs and a summary out.

One update = ``world_size x accum_steps`` token-budget batches; the loss is summed over their
target tokens and divided by the count of them all, so an update means the same on one process
with accumulation as on several with DistributedDataParallel. Each update: autocast forward,
label-smoothed loss, backward (BPTT through the whole sentence), gradient clipping by global L2
norm (logged), optimizer step, learning-rate schedule. Every ``valid_every`` updates: dev loss,
perplexity and greedy BLEU; the best checkpoint by dev BLEU is kept, and training stops early
after ``patience`` validations without improvement. SIGINT/SIGTERM stop cleanly after the current
update (a second one aborts). ``last.pt`` lets ``train.resume=true`` continue exactly: same data
order, same RNG states, same weights as if never stopped (on CPU). ``train.tensorboard=true``:
the same figures, and the attention of a few dev pairs at each validation, for TensorBoard
(tensorboard.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

import nmt
from nmt import NmtError
from nmt.checks import (
    validate_data,
    validate_model,
    validate_search,
    validate_subwords,
    validate_tokenizer,
    validate_train,
)
from nmt.config import PlateauMetric, TrainConfig, TrainJob, describe
from nmt.data.batching import batch_indices, batch_shapes, bounded_multiple, make_batch
from nmt.data.corpus import Prepared, corpus_weights, load_prepared, prepare
from nmt.data.mixing import Mixture
from nmt.data.sampling import Resegmented, Resegmenter, SampledEpochs
from nmt.data.store import EncodedSplit, Pairs
from nmt.model.seq2seq import build_model, count_parameters
from nmt.runlock import RunLock
from nmt.runtime import (
    autocast,
    autocast_dtype,
    describe_precision,
    git_commit,
    hardware,
    set_threads,
)
from nmt.startup import kernel_cache_capacity, raise_kernel_caches, train_kernel_cache
from nmt.training.checkpoint import CheckpointKeeper
from nmt.training.distributed import init_distributed
from nmt.training.optim import LRSchedule, build_optimizer, clipped_step
from nmt.training.progress import Meter, Progress, StopSignal, fmt_time
from nmt.training.resume import Checkpointing
from nmt.training.state import TrainState, epoch_generator
from nmt.training.tensorboard import Board, summary_writer
from nmt.training.validation import dev_references, validate

log = logging.getLogger(__name__)

__all__ = ["train", "validate"]


class Trainer(Checkpointing):
    """The parts of one training run and the operations on them (an update, a validation, the loop);
    starting, resuming and committing checkpoints come from ``Checkpointing`` (resume.py)."""

    def __init__(self, cfg: TrainJob, run_dir: Path) -> None:
        validate_data(cfg.data)
        validate_tokenizer(cfg.tokenizer)
        validate_model(cfg.model)
        validate_train(cfg.train)
        validate_search(cfg.search)
        validate_subwords(cfg.train, cfg.tokenizer)
        if cfg.train.tensorboard:
            summary_writer()  # installed? (before the data is prepared)
        self.cfg, self.tc, self.run_dir = cfg, cfg.train, run_dir
        self.dist = init_distributed(cfg.device, 60 * self.tc.dist_timeout_min, 60 * self.tc.wait_timeout_min)
        self.device = self.dist.device
        set_threads(self.tc.num_threads)
        self.amp = autocast_dtype(self.tc.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.data = self._prepared()
        self.train_split, self.dev = self.data.splits["train"], self.data.splits["dev"]
        self.mixture = Mixture(self.data.corpora, corpus_weights(cfg.data), cfg.data.epoch_pairs, cfg.seed)
        if len(self.train_split) == 0:
            raise NmtError(
                "no training pairs left after filtering (check data.max_len and data.max_len_ratio)"
            )
        self._first_epoch: list[np.ndarray] | None = (
            None  # epoch 1's batches, cut while choosing the multiple
        )
        self.sampler = self._sampler()  # subword sampling: each epoch's own segmentation
        self.epoch_split: EncodedSplit | Pairs | Resegmented = self.train_split  # the epoch's pairs
        self.multiple, self.shapes = self._shape_multiple()
        self.model = build_model(cfg.model, len(self.data.src_tok), len(self.data.tgt_tok)).to(self.device)
        self.model.encoder.explicit_bptt = self.model.decoder.explicit_bptt = self.tc.explicit_bptt
        torch.manual_seed(cfg.seed + self.dist.rank)  # dropout masks differ between processes
        self.optimizer = build_optimizer(self.model.parameters(), self.tc, self.device)
        self.state = TrainState(  # everything a resume needs besides weights and optimizer
            LRSchedule(self.optimizer, self.tc),
            torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16),
        )
        self.keeper = CheckpointKeeper(run_dir / "checkpoints", self.tc.keep_last, self.tc.keep_best)
        self.cfg_dict = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
        if self.dist.main:
            self.keeper.clean_temporary()
        self._start(self.keeper.dir / "last.pt")
        self.ddp = self.model
        if self.dist.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.refs = dev_references(cfg, self.dev) if self.dist.main else []
        self.group = self.dist.world * self.tc.accum_steps  # batches per update
        self.board: Board | None = None  # rank 0's TensorBoard, open while run() runs

    def _prepared(self) -> Prepared:
        data_dir = self.run_dir / "data"
        if self.dist.main:
            prepared = prepare(self.cfg.data, self.cfg.tokenizer, data_dir)
        self.dist.wait_for_main()  # preparing a large corpus outlasts any collective's timeout
        return prepared if self.dist.main else load_prepared(data_dir)

    def _sampler(self) -> SampledEpochs | None:
        """Subword regularisation's epochs (``train.subword_alpha`` > 0), each process its own."""
        tc = self.tc
        if tc.subword_alpha <= 0:
            return None
        worker = Resegmenter(
            self.data.src_tok.proto,
            self.data.tgt_tok.proto,
            tc.subword_alpha,
            tc.subword_nbest,
            tc.subword_sides,
            self.cfg.data.max_len,
        )
        folder = self.run_dir / "data" / "sampled" / f"rank_{self.dist.rank}"
        return SampledEpochs(
            self.train_split, worker, self.cfg.seed, folder, self.mixture.epoch, tc.subword_workers
        )

    def _shape_multiple(self) -> tuple[int, int]:
        """(length multiple, distinct batch shapes of the first epoch) for this run.

        Where products run as oneDNN primitives compiled per shape and cached (autocast on a CPU),
        every distinct batch shape costs a set of kernels, so the lengths are padded to the
        smallest multiple that keeps an epoch's shapes within ``train.max_shapes``, the number the
        kernel cache is sized to hold (``nmt.startup.KERNEL_CACHE_TRAIN``). Elsewhere (float32 on
        a CPU, GPUs) there is nothing to bound and no padding is added. ``train.shape_multiple``
        > 0 fixes the multiple. Depends only on the data and the configuration, so a resumed run
        gets the same batches.
        """
        tc = self.tc
        drawn = self.mixture.epoch(1)
        src, tgt = self.train_split.src_lens, self.train_split.tgt_lens  # (sampled epochs: alike)
        if drawn is not None:
            src, tgt = src[drawn], tgt[drawn]

        def cut(m: int) -> list[np.ndarray]:  # the last one cut is the chosen multiple's
            self._first_epoch = self._cut(src, tgt, 1, m)
            return self._first_epoch

        if tc.shape_multiple > 0:
            m = tc.shape_multiple
            shapes = len(batch_shapes(src, tgt, cut(m), m))
        elif self.device.type == "cpu" and self.amp is not None and tc.max_shapes > 0:
            m, shapes = bounded_multiple(src, tgt, tc.max_shapes, cut)
        else:
            m, shapes = 1, len(batch_shapes(src, tgt, cut(1), 1))
        self.train_split.release()
        need = train_kernel_cache(max(shapes, tc.max_shapes))
        if self.device.type == "cpu" and self.amp is not None and kernel_cache_capacity() < need:
            raise_kernel_caches(need)  # read by oneDNN when it makes its first primitive
        return m, shapes

    def _cut(self, src: np.ndarray, tgt: np.ndarray, epoch: int, multiple: int) -> list[np.ndarray]:
        """An epoch's batches of positions in (src, tgt), lengths counted up to ``multiple``."""
        return batch_indices(
            src,
            tgt,
            self.tc.batch_size,
            self.tc.batch_type.value == "tokens",
            epoch_generator(self.cfg.seed, epoch),
            self.tc.sort_buckets,
            multiple=multiple,
        )

    def describe(self) -> None:
        if not self.dist.main:
            return
        tc, d = self.tc, self.data
        log.info(
            "nmt %s | %s | device %s | precision %s",
            nmt.__version__,
            hardware(self.device),
            self.device,
            describe_precision(self.tc.precision, self.device),
        )
        log.info("model: %s parameters | %s", f"{count_parameters(self.model):,}", describe(self.cfg.model))
        log.info(
            "data: %d training pairs, %d dev pairs | vocab %d / %d | update = %d x %s %s%s",
            len(self.train_split),
            len(self.dev),
            len(d.src_tok),
            len(d.tgt_tok),
            self.group,
            tc.batch_size,
            tc.batch_type.value,
            f" ({self.dist.world} processes x {tc.accum_steps} accumulated)" if self.group > 1 else "",
        )
        if len(self.mixture.names) > 1 or not self.mixture.plain:
            for line in self.mixture.describe():
                log.info("corpus %s", line)
        self.describe_loops()
        if self.sampler is not None:
            log.info(
                "subword sampling: a fresh segmentation every epoch | alpha %g, nbest %d, %s side(s) | "
                "next epoch made by %d process(es) in the background",
                tc.subword_alpha,
                tc.subword_nbest,
                tc.subword_sides,
                tc.subword_workers,
            )
        log.info(
            "batch shapes: %d distinct (sentences, source, target) in the first epoch, lengths padded to a multiple of %d%s",
            self.shapes,
            self.multiple,
            f" | oneDNN kernel cache {kernel_cache_capacity()}" if self.device.type == "cpu" else "",
        )

    def describe_loops(self) -> None:
        """Which loop trains each RNN, once: the hand-written loops made a CPU step 1.08-1.10x
        faster (docs/benchmarks.md, 2026-12-06), and a person should not have to find out by
        profiling that a configuration falls back to autograd's."""
        enc, dec = self.model.encoder, self.model.decoder
        dtype = next(self.model.parameters()).dtype
        autocast = self.amp is not None
        enc_loop = enc.training_loop(self.device, dtype)
        dec_loop = dec.training_loop(self.device, self.amp or dtype, autocast)
        cliff = self.device.type == "cpu" and dec_loop.startswith("autograd")
        log.log(
            logging.WARNING if cliff else logging.INFO,
            "training loops: encoder: %s | decoder: %s",
            enc_loop,
            dec_loop,
        )

    def epoch_batches(self) -> list[np.ndarray]:
        """This epoch's batches of pair indices (the same again when resuming in the middle of it):
        the pairs the mixture draws for the epoch, cut into batches in an order of its own."""
        st = self.state
        if st.batch_in_epoch == 0:
            st.epoch += 1
        drawn = self.mixture.epoch(st.epoch)  # None: every pair once
        if self.sampler is not None:  # this epoch's segmentation (the same again on resuming)
            self.epoch_split = self.sampler.epoch(st.epoch)
        src_lens, tgt_lens = self.epoch_split.src_lens, self.epoch_split.tgt_lens
        if st.epoch == 1 and self._first_epoch is not None and self.sampler is None:  # cut already
            batches = self._first_epoch
        else:
            batches = self._cut(
                src_lens if drawn is None else src_lens[drawn],
                tgt_lens if drawn is None else tgt_lens[drawn],
                st.epoch,
                self.multiple,
            )
        self._first_epoch = None
        if drawn is not None:
            batches = [drawn[b] for b in batches]
        self.train_split.release()  # the length files' pages, read whole just now
        if len(batches) < self.group:
            raise NmtError(
                f"the training set makes {len(batches)} batches, fewer than one update needs ({self.group})"
            )
        return batches

    def update(self, members: list[np.ndarray]) -> float:
        """One optimizer update over a group of batches (this process takes its share); returns the LR."""
        tgt_lens = self.epoch_split.tgt_lens
        normalizer = sum(int(tgt_lens[idx].sum()) + len(idx) for idx in members)  # target tokens with EOS
        mine = members[self.dist.rank :: self.dist.world]
        st = self.state
        for k, idx in enumerate(mine):
            b = make_batch(self.epoch_split, idx, multiple=self.multiple).to(self.device)
            sync = k == len(mine) - 1 or self.dist.world == 1  # DDP all-reduces on the last backward only
            with contextlib.nullcontext() if sync else self.ddp.no_sync(), autocast(self.device, self.amp):
                loss, nll = self.ddp(b.src, b.src_lens, b.tgt_in, b.tgt_out, self.tc.label_smoothing)
            st.scaler.scale(loss * (self.dist.world / normalizer)).backward()
            st.meter.add(loss.detach(), nll, b.n_tgt_tokens)  # stays on the device until the next log line
        self.train_split.release()  # the file pages of this update's sentences: in the batches now
        lr = st.schedule.step(st.step + 1, self.progress())
        norm = clipped_step(self.optimizer, st.scaler, self.tc.clip_norm)
        # skipped for a gradient that is not finite (with fp16, GradScaler skips such steps itself)
        if not (math.isfinite(norm) or st.scaler.is_enabled()):
            log.warning("step %d: gradient norm is %s; update skipped", st.step + 1, norm)
        self.optimizer.zero_grad(set_to_none=True)
        st.step += 1
        st.tokens += normalizer
        st.meter.norms.append(norm)
        st.meter.clipped += int(self.tc.clip_norm > 0 and norm > self.tc.clip_norm)
        return lr

    def progress(self) -> float:
        """Fraction of the training budget used (the larger of steps and time), for the wsd schedule."""
        st, tc = self.state, self.tc
        done = [st.step / tc.max_steps] if tc.max_steps else []
        if tc.max_time:
            done.append(st.train_seconds / (60 * tc.max_time))
        return max(done, default=0.0)

    def should_stop(self, signalled: bool, epoch_end: bool) -> str:
        st, tc = self.state, self.tc
        if signalled:
            return "interrupted"
        if tc.max_steps and st.step >= tc.max_steps:
            return f"max_steps={tc.max_steps}"
        if tc.max_time and st.train_seconds >= 60 * tc.max_time:
            return f"max_time={tc.max_time:g} min"
        if tc.max_epochs and epoch_end and st.epoch >= tc.max_epochs:
            return f"max_epochs={tc.max_epochs}"
        if tc.patience and st.bad_validations >= tc.patience:
            return f"no better dev BLEU in {tc.patience} validations"
        return ""

    def validate_and_save(self, progress: Progress) -> None:
        """Rank 0 validates and commits the checkpoints (see checkpoint.py) while the others wait
        for it (``Dist.wait_for_main``: however long that takes); then every rank applies the same
        verdict (best score, early-stopping count, plateau cut of the learning rate)."""
        st, dist = self.state, self.dist
        st.last_valid_step = st.step
        ranks = dist.gather(st.rank_state(self.device))  # every process's dropout stream and meter
        metric = plateau = 0.0
        if dist.main:
            assert ranks is not None
            metric, plateau = self._validate_and_commit(progress, ranks)
        dist.wait_for_main()
        metric, plateau = dist.broadcast(metric), dist.broadcast(plateau)  # rank 0's
        if not dist.main:
            self._verdict(metric, plateau)

    def _verdict(self, metric: float, plateau: float) -> tuple[bool, bool]:
        """Apply a validation's scores (``metric``: the best checkpoint's, ``plateau``: the
        plateau schedule's; higher is better): (is it the best so far, was the learning rate cut)."""
        st = self.state
        is_best = metric > st.best_metric
        if is_best:
            st.best_metric, st.best_step, st.bad_validations = metric, st.step, 0
        else:
            st.bad_validations += 1
        return is_best, st.schedule.on_validation(plateau)

    def _validate_and_commit(self, progress: Progress, ranks: list[dict]) -> tuple[float, float]:
        st = self.state
        r = validate(
            self.model, self.dev, self.refs, self.data.tgt_tok, self.cfg, self.device, self.amp, self.multiple
        )
        metric, plateau = scores(r, self.tc)
        is_best, cut = self._verdict(metric, plateau)
        if cut:
            log.info(
                "no better dev %s in %d validations: learning rate cut to %.2e",
                "BLEU" if self.tc.plateau_metric == PlateauMetric.bleu and self.tc.valid_bleu else "loss",
                self.tc.plateau_patience,
                st.schedule.lr_at(st.step + 1),
            )
        payload = {
            "model": self.model.state_dict(),
            "config": self.cfg_dict,
            "step": st.step,
            "metrics": r,
            "spm": {"src": self.data.src_tok.proto, "tgt": self.data.tgt_tok.proto},
        }
        progress.record(
            {
                "kind": "valid",
                "step": st.step,
                "time": st.train_seconds,
                **{k: v for k, v in r.items() if k != "example"},
            }
        )
        if self.board is not None:  # before the commit: a resumed run purges what follows it
            self.board.attention(self.model, st.step, self.device)
        self.commit(payload, metric, is_best, ranks, progress.position())
        bleu = f" | dev BLEU {r['dev_bleu']:.2f}" if "dev_bleu" in r else ""
        best = " (best)" if is_best else f" (best {st.best_metric:.2f} at {st.best_step})"
        log.info(
            "validation at step %d | dev loss %.3f | dev ppl %.2f%s%s | %.1fs | e.g. %r",
            st.step,
            r["dev_nll"],
            r["dev_ppl"],
            bleu,
            best,
            r["valid_seconds"],
            r.get("example", "")[:80],
        )
        return metric, plateau

    def run(self) -> dict:
        st, tc, dist = self.state, self.tc, self.dist
        self.describe()
        if tc.tensorboard and dist.main:
            d = self.data
            self.board = Board(
                self.run_dir, st.step, self.dev, d.src_tok, d.tgt_tok, tc.tensorboard_sentences
            )
        progress = Progress(self.run_dir, tc, st.step, dist.main, self.device, self.board)
        session_start, base_seconds = time.perf_counter(), st.train_seconds
        self.model.train()
        # a resumed run may already be finished (max_steps, max_time, patience or max_epochs reached)
        st.stop_reason = self.should_stop(False, epoch_end=st.batch_in_epoch == 0 and st.epoch > 0)
        try:
            with StopSignal() as stop:
                while not st.stop_reason:
                    batches = self.epoch_batches()
                    updates = len(batches) // self.group
                    for u in range(st.batch_in_epoch // self.group, updates):
                        lr = self.update(batches[u * self.group : (u + 1) * self.group])
                        epoch_end = u + 1 == updates
                        st.batch_in_epoch = 0 if epoch_end else (u + 1) * self.group  # 0: the next one starts
                        st.train_seconds = base_seconds + time.perf_counter() - session_start
                        progress.bar.update(1)
                        if st.step % tc.log_every == 0:
                            m = st.meter
                            totals = dist.sum([float(m.loss), float(m.nll), float(m.tokens)])
                            progress.log_interval(
                                m, totals, st.step, st.epoch, st.train_seconds, lr, updates, u
                            )
                            st.meter = Meter()
                        if st.step % tc.valid_every == 0:
                            self.validate_and_save(progress)
                            st.train_seconds = base_seconds + time.perf_counter() - session_start
                            st.meter.start = time.perf_counter()  # throughput figures leave validation out
                        reason = self.should_stop(stop.requested, epoch_end)
                        if dist.any_rank(bool(reason)):
                            st.stop_reason = reason or "another process stopped"
                            break
                if st.last_valid_step != st.step:
                    self.validate_and_save(progress)
        finally:
            progress.close()
            if self.sampler is not None:
                self.sampler.close()
            if self.board is not None:
                self.board.close()
            dist.close()
        return self.summarize(progress.steady_rate())

    def summarize(self, steady_rate: float | None) -> dict:
        st = self.state
        summary = {
            "stop_reason": st.stop_reason,
            "steps": st.step,
            "epochs": st.epoch,
            "train_seconds": round(st.train_seconds, 1),
            "target_tokens": st.tokens,
            "target_tokens_per_second": round(st.tokens / max(st.train_seconds, 1e-9), 1),
            "steady_target_tokens_per_second": steady_rate,
            "best_dev_bleu": st.best_metric if math.isfinite(st.best_metric) else None,
            "best_step": st.best_step,
            "hardware": hardware(self.device),
            "device": str(self.device),
            "seed": self.cfg.seed,
            "git_commit": git_commit(),
            "parameters": count_parameters(self.model),
            "processes": self.dist.world,
            "corpora": {
                name: {"pairs": int(size), "weight": w, "drawn_per_epoch": int(n)}
                for name, size, n, w in zip(
                    self.mixture.names,
                    self.mixture.sizes,
                    self.mixture.draws,
                    corpus_weights(self.cfg.data).values(),
                )
            },
        }
        if self.dist.main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
            log.info(
                "done (%s): %d steps, %s of training, %.0f target tokens/s; best dev BLEU %.2f at step %d",
                st.stop_reason,
                st.step,
                fmt_time(st.train_seconds),
                summary["target_tokens_per_second"],
                st.best_metric,
                st.best_step,
            )
        return summary


def scores(r: dict, tc: TrainConfig) -> tuple[float, float]:
    """A validation's two scores, higher better: the one the best checkpoint and early stopping
    go by (dev BLEU; dev loss negated without BLEU), and the one the plateau schedule watches
    (``train.plateau_metric``: the same, or the dev loss negated)."""
    metric = r["dev_bleu"] if tc.valid_bleu else -r["dev_nll"]
    on_bleu = tc.plateau_metric == PlateauMetric.bleu and tc.valid_bleu
    return metric, metric if on_bleu else -r["dev_nll"]


def train(cfg: TrainJob, run_dir: Path) -> dict:
    """Train a model as configured; returns the summary also written to ``<run_dir>/summary.json``.

    The process that writes (rank 0) holds the run directory's lock for the whole run."""
    first = int(os.environ.get("RANK", "0")) == 0
    with RunLock(run_dir, "nmt-train") if first else contextlib.nullcontext():
        return Trainer(cfg, run_dir).run()
