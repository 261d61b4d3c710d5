"""Decoding workers (nmt.runtime.plan_workers / DecodePool): batches side by side on a CPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import torch

from nmt.runtime import MAX_AUTO_WORKERS, DecodePool, plan_workers

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("threads", "requested", "device", "want"),
    [
        (8, 0, "cpu", (MAX_AUTO_WORKERS, 8 // MAX_AUTO_WORKERS)),  # auto: capped, threads shared out
        (6, 0, "cpu", (3, 2)),  # auto: a count that divides the threads, every worker alike
        (5, 0, "cpu", (1, 5)),  # no such count up to the cap: one batch at a time
        (2, 0, "cpu", (2, 1)),
        (1, 0, "cpu", (1, 1)),  # one thread: one worker
        (8, 3, "cpu", (3, 2)),  # asked for: the threads shared out evenly
        (2, 5, "cpu", (2, 1)),  # never more workers than threads
        (8, 1, "cpu", (1, 8)),  # one at a time, as asked
        (8, 0, "cuda", (1, 8)),  # a GPU: one stream of batches
    ],
)
def test_plan_workers(
    monkeypatch: pytest.MonkeyPatch, threads: int, requested: int, device: str, want: tuple[int, int]
) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert plan_workers(requested, torch.device(device)) == want


def test_plan_workers_under_autocast_keeps_one_batch_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert plan_workers(0, CPU, autocast=True) == (1, 4)  # auto: one batch at a time
    assert plan_workers(2, CPU, autocast=True) == (2, 2)  # asked for: as asked
    assert plan_workers(0, CPU, autocast=False) == (4, 1)


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    before = torch.get_num_threads()
    p = DecodePool(2, 1 if before > 1 else 2)  # a count other than the caller's
    yield p
    p.close()


def test_results_come_in_input_order_from_the_workers(pool: DecodePool) -> None:
    both = threading.Barrier(2)

    def work(i: int) -> tuple[int, str]:
        if i < 2:  # the first two run at the same time, on two threads, or this waits forever
            both.wait(timeout=30)
        if i == 0:
            time.sleep(0.05)  # the first finishes after the second
        return i * i, threading.current_thread().name

    out = list(pool.map(work, range(8), CPU))
    assert [v for v, _ in out] == [i * i for i in range(8)]
    names = {name for _, name in out}
    assert threading.current_thread().name not in names
    assert len(names) == 2


def test_workers_run_under_the_callers_autocast_and_grad_mode_on_their_own_thread_count(
    pool: DecodePool,
) -> None:
    caller = torch.get_num_threads()
    assert caller != pool.threads  # the constructor put the caller's count back

    def seen(_: int) -> tuple:
        x = torch.ones(2, 2, requires_grad=True)
        return (
            torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"),
            torch.is_grad_enabled(),
            torch.get_num_threads(),
            (x @ x).dtype,
        )

    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = list(pool.map(seen, range(4), CPU))
    assert out == [(True, torch.bfloat16, False, pool.threads, torch.bfloat16)] * 4
    out = list(pool.map(seen, range(4), CPU))
    assert out == [(False, out[0][1], True, pool.threads, torch.float32)] * 4
    assert torch.get_num_threads() == caller


def test_a_new_thread_gets_the_callers_thread_count_not_the_workers(pool: DecodePool) -> None:
    got = []
    t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert got == [torch.get_num_threads()]


def test_an_error_cancels_the_items_not_yet_started_and_is_raised(pool: DecodePool) -> None:
    started = []

    def work(i: int) -> int:
        started.append(i)
        if i == 0:
            raise ValueError("bad batch 0")
        time.sleep(0.1)
        return i

    caller = torch.get_num_threads()
    with pytest.raises(ValueError, match="bad batch 0"):
        list(pool.map(work, range(20), CPU))
    time.sleep(0.3)  # let the workers finish what they had started
    assert len(started) < 20
    assert torch.get_num_threads() == caller
    assert list(pool.map(lambda i: -i, range(3), CPU)) == [0, -1, -2]  # the pool still works
