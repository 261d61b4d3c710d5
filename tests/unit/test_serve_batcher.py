"""nmt.serve.batcher: requests that ask for the same search share a translation call; requests
that ask for another one wait their turn in the same queue and are never mixed into a batch."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from nmt.config import SearchConfig, SearchMethod
from nmt.serve.batcher import Batcher, Settings
from nmt.translator import Translation

OWN = SearchConfig(method=SearchMethod.beam, beam_size=5, nbest=1, alpha=0.6)


class Recorder:
    """A stand-in translator: records each call's lines and settings; a line's translation names
    the beam size and attention it was translated with."""

    cfg = OWN

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], SearchConfig | None, bool]] = []

    def translate_detailed(
        self, lines: list[str], search: SearchConfig | None = None, with_attention: bool = False, **_: object
    ) -> list[Translation]:
        self.calls.append((list(lines), search, with_attention))
        beam = (search or self.cfg).beam_size
        return [Translation(f"{line}|beam{beam}|att{int(with_attention)}", 0.0, 0.0) for line in lines]


def test_settings_resolve_against_the_models_own_search() -> None:
    assert Settings().search(OWN) is None and Settings(attention=True).search(OWN) is None
    greedy = Settings(beam_size=1).search(OWN)
    assert greedy is not None and greedy.method == SearchMethod.greedy and greedy.nbest == 1
    wider = Settings(beam_size=8, alpha=1.0, n_best=3).search(OWN)
    assert wider is not None and (wider.method, wider.beam_size, wider.alpha, wider.nbest) == (
        SearchMethod.beam,
        8,
        1.0,
        3,
    )
    assert Settings(alpha=0.2).search(OWN).beam_size == 5  # type: ignore[union-attr]
    assert OWN.beam_size == 5 and OWN.alpha == 0.6  # the served search is never changed


def test_requests_are_batched_only_with_requests_of_the_same_settings() -> None:
    recorder = Recorder()
    wide, attend = Settings(beam_size=8), Settings(attention=True)

    async def main() -> list[list[Translation]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(recorder, pool, wait_ms=50, batch_words=1000, queue_limit=100)  # type: ignore[arg-type]
            worker = asyncio.create_task(batcher.run())
            await asyncio.sleep(0)
            got = await asyncio.gather(
                batcher.translate(["a"]),
                batcher.translate(["b"], wide),
                batcher.translate(["c"]),
                batcher.translate(["d"], attend),
                batcher.translate(["e"], wide),
            )
            worker.cancel()
            return got

    got = asyncio.run(main())
    assert [r[0].text for r in got] == [
        "a|beam5|att0",
        "b|beam8|att0",
        "c|beam5|att0",
        "d|beam5|att1",
        "e|beam8|att0",
    ]
    batches = sorted(lines for lines, _, _ in recorder.calls)
    assert batches == [["a", "c"], ["b", "e"], ["d"]]  # three calls, one per setting, oldest first
    assert recorder.calls[0][0] == ["a", "c"]
