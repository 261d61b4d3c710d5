"""The decoder step, captured: a model whose ``decode_step`` runs through ``torch.compile``.

A search calls ``decode_step`` once per output step with small tensors, so on a GPU the time goes
to launching kernels, not to computing. Compiling the step (``fullgraph=True``: the whole step is
one graph, or compilation fails) lets inductor fuse its element-wise work and, with
``mode="reduce-overhead"`` on CUDA, replay it as a CUDA graph. Off by default (``compile=true``
in nmt-translate and nmt-evaluate) until it is measured on the hardware it is meant for; the
first batches of every new shape pay the compilation.
"""

from __future__ import annotations

from typing import Any

import torch

from nmt.model.seq2seq import Seq2Seq


class CapturedModel:
    """``encode`` as the model's, ``decode_step`` compiled (the search interface, nothing else)."""

    def __init__(self, model: Seq2Seq, device: torch.device, backend: str = "inductor") -> None:
        self.model = model
        self.encode = model.encode
        mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
        self.decode_step: Any = torch.compile(
            model.decode_step, fullgraph=True, dynamic=True, mode=mode, backend=backend
        )

    def parameters(self):  # noqa: ANN201
        return self.model.parameters()
