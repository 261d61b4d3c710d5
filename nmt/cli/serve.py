"""nmt-serve: one or more checkpoints behind an HTTP JSON server (OpenNMT-py's routes).

    nmt-serve ckpt=runs/en_ja_small/checkpoints/best.pt            # then open http://127.0.0.1:5000/
    curl -s localhost:5000/translator/translate -d '[{"id": 100, "src": "Where is the station?"}]'
    nmt-serve ckpt=runs/en_ja_small/checkpoints/best.pt lm=runs/char_rnn/lm.pt   # and the char-rnn view

Requests that arrive together are translated together (nmt/serve/batcher.py). It listens on
127.0.0.1 unless told otherwise (host=0.0.0.0); SIGTERM or Ctrl-C finishes the requests in flight,
then exits. Needs the server extra: pip install 'nmt[serve]' (Starlette and uvicorn).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator

from nmt import NmtError
from nmt.checks import validate_serve
from nmt.cli.common import hydra_cli
from nmt.config import ServeJob

log = logging.getLogger(__name__)


def task(cfg: ServeJob) -> None:
    validate_serve(cfg)
    try:
        import uvicorn

        from nmt.serve.app import Limits, Served, create_app
        from nmt.serve.http import protocol_class
    except ImportError as e:
        raise NmtError(
            f"nmt-serve needs {e.name}: pip install 'nmt[serve]' (Starlette and uvicorn)"
        ) from None
    from nmt.api import checkpoint_list, load_translator
    from nmt.runtime import resolve_device, set_threads
    from nmt.translator import Options

    device = resolve_device(cfg.device)
    set_threads(cfg.num_threads)
    options = Options(
        max_input_len=cfg.max_input_len,
        replace_unk=cfg.replace_unk,
        keep_segmentation=cfg.keep_segmentation,
        precision=cfg.precision,
        quantize=cfg.quantize,
        workers=cfg.workers,
    )
    specs = [(cfg.model_id, cfg.ckpt)] if cfg.ckpt is not None else [(m.id, m.ckpt) for m in cfg.models]
    served = []
    for model_id, ckpt in specs:
        translator, _ = load_translator(ckpt, device, cfg.search, options)
        served.append(Served(model_id, checkpoint_list(ckpt), translator))
    lm = None
    if cfg.lm is not None:
        from nmt.lm import load_lm
        from nmt.serve.lm import ServedLM

        model, vocab, ck = load_lm(cfg.lm, device)
        lm = ServedLM(str(cfg.lm), model, vocab, ck.get("metrics", {}))
    limits = Limits(
        cfg.wait_ms,
        cfg.batch_words,
        cfg.queue_limit,
        cfg.max_sentences,
        cfg.timeout_s,
        cfg.max_body_bytes,
        cfg.max_input_chars or 64 * cfg.max_input_len,
        cfg.body_timeout_s,
        cfg.max_beam,
    )
    app = create_app(served, limits, lm, cfg.page)
    url = f"http://{cfg.host}:{cfg.port}"
    log.info(
        "nmt-serve: %d model(s) on %s/translator%s%s%s",
        len(served),
        url,
        f" ({served[0].translator.precision().why})" if served else "",
        f", a character model on {url}/lm" if lm is not None else "",
        f" | the page: {url}/" if cfg.page else "",
    )
    server = _server_class()(
        uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            http=protocol_class(cfg.head_timeout_s),
            log_level="warning",
            timeout_graceful_shutdown=60,
        )
    )
    server.run()
    log.info("nmt-serve: stopped")


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, exiting with status 0 after a graceful stop on SIGTERM or Ctrl-C
        (uvicorn re-raises the signal once stopped, which ends the process with -SIGTERM)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def stop(signum: int, frame: object) -> None:
                if self.should_exit:  # a second signal: stop without waiting for requests
                    self.force_exit = True
                self.should_exit = True

            previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    return Server


main = hydra_cli("serve", task, direct=True)

if __name__ == "__main__":
    main()
