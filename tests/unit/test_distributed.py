"""The collectives of ``Dist`` run on the training device, and waiting for rank 0 never times out.

Two real gloo processes on the CPU. To catch a tensor built on the wrong device without a GPU,
each process makes ``meta`` its default device (on a GPU run the default is the CPU and the
training device CUDA, where NCCL refuses CPU tensors): a collective handed anything but a tensor
on ``Dist.device`` fails the test.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nmt.training import distributed
from nmt.training.distributed import Dist, init_distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, tmp_path: Path, *args: object) -> list[dict]:  # noqa: ANN001
    port = _free_port()
    mp.start_processes(fn, args=(tmp_path, port, *args), nprocs=2, start_method="spawn", join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def _join(rank: int, port: int, timeout_s: float, wait_timeout_s: float) -> Dist:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    return init_distributed("cpu", timeout_s, wait_timeout_s)


def _checked(d: Dist, seen: list[str]) -> None:
    """Wrap the tensor collectives Dist calls: each records its tensor's device and refuses any
    but the training device, as NCCL refuses CPU tensors."""
    for name in ("all_reduce", "broadcast"):
        real = getattr(dist, name)

        def check(t: torch.Tensor, *args, _real=real, _name=name, **kwargs):  # noqa: ANN002, ANN003, ANN202
            seen.append(f"{_name}:{t.device}")
            if t.device != d.device:
                raise RuntimeError(f"{_name} got a tensor on {t.device}, the training device is {d.device}")
            return _real(t, *args, **kwargs)

        setattr(distributed.dist, name, check)


def _collectives(rank: int, tmp_path: Path, port: int) -> None:
    d = _join(rank, port, 60, 60)
    seen: list[str] = []
    _checked(d, seen)
    torch.set_default_device("meta")  # a tensor without device= lands elsewhere than Dist.device
    try:
        out = {
            "sum": d.sum([1.0 + rank, 10.0 * rank, 3.0]),
            "any": d.any_rank(rank == 1),
            "none": d.any_rank(False),
            "broadcast": d.broadcast(0.25 if rank == 0 else -1.0),
            "gather": d.gather({"rank": rank, "rng": torch.get_rng_state()[:4].tolist()}),
            "seen": seen,
        }
        d.wait_for_main()
    finally:
        torch.set_default_device(None)
        d.close()
    (tmp_path / f"rank{rank}.json").write_text(json.dumps(out))


def test_every_collective_runs_on_the_training_device(tmp_path: Path) -> None:
    r0, r1 = _spawn(_collectives, tmp_path)
    for r in (r0, r1):
        assert r["sum"] == [3.0, 10.0, 6.0]
        assert r["any"] is True and r["none"] is False
        assert r["broadcast"] == 0.25
        assert r["seen"] and all(s.endswith(":cpu") for s in r["seen"])
    assert [g["rank"] for g in r0["gather"]] == [0, 1] and r1["gather"] is None


def _slow_main(rank: int, tmp_path: Path, port: int, mode: str) -> None:
    d = _join(rank, port, 2.0, 120.0)  # collectives give up after 2 s
    out: dict = {}
    t0 = time.perf_counter()
    try:
        if rank == 0:
            time.sleep(5.0)  # rank 0 validates alone, longer than the timeout
        if mode == "wait":
            d.wait_for_main()
        out["verdict"] = d.broadcast(42.0 if rank == 0 else 0.0)
    except Exception as e:  # noqa: BLE001
        out["error"] = type(e).__name__
    out["waited"] = time.perf_counter() - t0
    (tmp_path / f"rank{rank}.json").write_text(json.dumps(out))
    if "error" in out:  # a group whose collective timed out cannot be closed cleanly: leave at once
        os._exit(0)
    d.close()


@pytest.mark.slow
def test_a_validation_longer_than_the_timeout_is_waited_for(tmp_path: Path) -> None:
    r0, r1 = _spawn(_slow_main, tmp_path, "wait")
    assert r0 == {"verdict": 42.0, "waited": r0["waited"]} and r1["verdict"] == 42.0
    assert r1["waited"] >= 4.5  # it did wait for rank 0, past the 2 s timeout


@pytest.mark.slow
def test_the_short_timeout_is_real(tmp_path: Path) -> None:
    """Without wait_for_main the waiting rank's collective gives up: the test above means something."""
    _, r1 = _spawn(_slow_main, tmp_path, "none")
    assert r1.get("error"), r1
