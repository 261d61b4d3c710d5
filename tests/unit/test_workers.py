"""Decoding workers (nmt.runtime.plan_workers / map_in_workers): batches side by side on a CPU."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from nmt.runtime import MAX_AUTO_WORKERS, map_in_workers, plan_workers

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("threads", "requested", "jobs", "device", "want"),
    [
        (8, 0, 100, "cpu", (MAX_AUTO_WORKERS, 8 // MAX_AUTO_WORKERS)),  # auto: capped, threads shared out
        (2, 0, 100, "cpu", (2, 1)),
        (1, 0, 100, "cpu", (1, 1)),  # one thread: one worker
        (8, 3, 2, "cpu", (2, 4)),  # never more workers than batches
        (2, 5, 100, "cpu", (5, 1)),  # asked for: at least one thread each
        (8, 0, 1, "cpu", (1, 8)),  # one batch: all the threads on it
        (8, 1, 100, "cpu", (1, 8)),  # one at a time, as asked
        (8, 0, 100, "cuda", (1, 8)),  # a GPU: one stream of batches
    ],
)
def test_plan_workers(
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
    requested: int,
    jobs: int,
    device: str,
    want: tuple[int, int],
) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert plan_workers(requested, torch.device(device), jobs) == want


def test_results_come_in_input_order_from_several_threads() -> None:
    def slow_first(i: int) -> tuple[int, str]:
        time.sleep(0.05 * (i % 3 == 0))  # some items finish after later ones
        return i * i, threading.current_thread().name

    out = list(map_in_workers(slow_first, range(12), 3, 1, CPU))
    assert [v for v, _ in out] == [i * i for i in range(12)]
    names = {name for _, name in out}
    assert threading.current_thread().name not in names
    assert len(names) > 1


def test_workers_run_under_the_callers_autocast_grad_mode_and_their_own_thread_count() -> None:
    before = torch.get_num_threads()

    def seen(_: int) -> tuple:
        return (
            torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"),
            torch.is_grad_enabled(),
            torch.get_num_threads(),
        )

    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = list(map_in_workers(seen, range(4), 2, 3, CPU))
    assert out == [(True, torch.bfloat16, False, 3)] * 4
    out = list(map_in_workers(seen, range(4), 2, 1, CPU))
    assert [(grad, n) for _, _, grad, n in out] == [(True, 1)] * 4
    assert not any(enabled for enabled, _, _, _ in out)
    assert torch.get_num_threads() == before  # the caller's count is back


def test_an_error_stops_the_items_not_yet_started_and_is_raised() -> None:
    started = []

    def work(i: int) -> int:
        started.append(i)
        if i == 0:
            raise ValueError("bad batch 0")
        time.sleep(0.1)
        return i

    with pytest.raises(ValueError, match="bad batch 0"):
        list(map_in_workers(work, range(20), 2, 1, CPU))
    assert len(started) < 20


def test_one_worker_runs_in_the_callers_thread() -> None:
    names = list(map_in_workers(lambda _: threading.current_thread().name, range(3), 1, 4, CPU))
    assert names == [threading.current_thread().name] * 3
