"""nmt-sample: text from a character-level language model, continuing a prime, at a temperature.

nmt-sample ckpt=runs/char_rnn/lm.pt prime="Kyoto is" temperature=0.5 length=300
"""

from __future__ import annotations

from nmt.checks import validate_sample
from nmt.cli.common import hydra_cli
from nmt.config import SampleJob


def task(cfg: SampleJob) -> None:
    validate_sample(cfg)
    from nmt.lm import load_lm, sample
    from nmt.runtime import resolve_device

    model, vocab, _ = load_lm(cfg.ckpt, resolve_device(cfg.device))
    for k in range(cfg.samples):
        text = sample(model, vocab, cfg.prime, cfg.length, cfg.temperature, cfg.top_k, cfg.seed + k)
        print(text + ("\n" + "-" * 40 if k + 1 < cfg.samples else ""))


main = hydra_cli("sample", task, direct=True, quick_exit=True)

if __name__ == "__main__":
    main()
