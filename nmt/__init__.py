"""nmt: attentional LSTM encoder-decoder neural machine translation in PyTorch.

Data flows raw lines -> SentencePiece ids -> length-bucketed batches -> BiLSTM encoder ->
attentional LSTM decoder -> search (greedy | beam | sampling) -> detokenised lines -> SacreBLEU,
and the package is laid out in that order (``nmt.data``, ``nmt.model``, ``nmt.search``,
``nmt.training``, ``nmt.metrics``, ``nmt.translator``, ``nmt.cli``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nmt.translator import Translator

__version__ = "0.1.0"


def load(ckpt: Any, device: str = "auto", search: Any = "beam", **options: Any) -> Translator:
    """A trained model, ready to translate: ``nmt.load("best.pt").translate("Hello.")``.

    See ``nmt.api.load`` (imported here on first use, so ``import nmt`` stays light)."""
    from nmt.api import load as _load

    return _load(ckpt, device, search, **options)


class NmtError(Exception):
    """An error caused by the user's input (a file, a config value, a checkpoint).

    The command-line entry points print its message as one line and exit with status 2; it is
    never shown with a traceback. The message names the file (and line) and the problem.
    """
