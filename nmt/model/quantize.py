"""int8 inference on a CPU: a float model in, a dynamically quantized one out.

Dynamic quantization (PyTorch's ``quantize_dynamic``, fbgemm/oneDNN int8 kernels): weights are
stored as int8 with a scale per tensor, activations are quantized on the fly per batch, products
accumulate in int32. It applies to the model's ``nn.Linear`` layers (the output layer, attention,
the attentional combination, the bridge) and the encoder's ``nn.LSTM``/``nn.GRU``; the decoder's
own cells get the same treatment here (their input and recurrent products become quantized linear
layers). Training and GPUs are not supported: those paths refuse it.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nmt import NmtError
from nmt.model.cells import GRUCell, LSTMCell, RNNCell
from nmt.model.seq2seq import Seq2Seq


def _qlinear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A float weight (out, in) (+ bias) as a dynamically quantized int8 linear layer."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import default_dynamic_qconfig

    float_linear = nn.Linear(weight.size(1), weight.size(0), bias=bias is not None)
    with torch.no_grad():
        float_linear.weight.copy_(weight)
        if bias is not None:
            float_linear.bias.copy_(bias)
    float_linear.qconfig = default_dynamic_qconfig
    return DynamicLinear.from_float(float_linear)


class QuantizedLSTMCell(nn.Module):
    """``LSTMCell`` with int8 products; same interface (``project``, ``forward``)."""

    def __init__(self, cell: LSTMCell | RNNCell) -> None:
        super().__init__()
        self.hidden = cell.hidden
        self.pre = _qlinear(cell.w_pre, cell.bias) if cell.w_pre is not None else None
        self.step = _qlinear(cell.w_step, None)
        self.register_buffer("bias", cell.bias.detach().clone())

    def project(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.pre(x.reshape(-1, shape[-1])).reshape(*shape[:-1], -1)  # (..., gates*hidden)

    def forward(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inp = h if x is None else torch.cat([x, h], 1)  # (batch, step_size + hidden)
        gates = self.step(inp) + (self.bias if pre is None else pre)  # (batch, 4*hidden)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class QuantizedRNNCell(QuantizedLSTMCell):
    """``RNNCell`` with int8 products: the LSTM's weights layout with one gate; its own step."""

    def forward(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor, c: None = None
    ) -> tuple[torch.Tensor, None]:
        inp = h if x is None else torch.cat([x, h], 1)
        return torch.tanh(self.step(inp) + (self.bias if pre is None else pre)), None


class QuantizedGRUCell(nn.Module):
    """``GRUCell`` with int8 products; same interface (``project``, ``forward``)."""

    def __init__(self, cell: GRUCell) -> None:
        super().__init__()
        self.hidden = cell.hidden
        self.pre = _qlinear(cell.w_pre, cell.bias) if cell.w_pre is not None else None
        self.step = _qlinear(cell.w_step, None) if cell.w_step is not None else None
        self.hid = _qlinear(cell.w_hid, cell.bias_hid)
        self.register_buffer("bias", cell.bias.detach().clone())

    def project(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.pre(x.reshape(-1, shape[-1])).reshape(*shape[:-1], -1)  # (..., 3*hidden)

    def forward(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor, c: None = None
    ) -> tuple[torch.Tensor, None]:
        gi = self.bias if pre is None else pre
        if x is not None:
            gi = gi + self.step(x)  # (batch, 3*hidden)
        gh = self.hid(h)  # (batch, 3*hidden)
        i_r, i_z, i_n = (gi.expand(h.size(0), -1) if gi.dim() == 1 else gi).chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return torch.lerp(n, h, z), None


def quantize_int8(model: Seq2Seq, device: torch.device) -> Seq2Seq:
    """The model with int8 dynamically quantized products, for CPU inference (a new object; the
    float model is left as it is)."""
    if device.type != "cpu":
        raise NmtError(f"quantize=int8 runs on a CPU only (device={device}); use precision=bf16 on a GPU")
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # pragma: no cover - a PyTorch without torch.ao.quantization
        raise NmtError(
            "quantize=int8 needs torch.ao.quantization, which this PyTorch does not have"
        ) from None
    import copy

    model = copy.deepcopy(model).float().eval()
    with warnings.catch_warnings():  # PyTorch points users of quantize_dynamic to torchao
        warnings.simplefilter("ignore")
        for k, cell in enumerate(model.decoder.cells):
            model.decoder.cells[k] = (
                QuantizedLSTMCell(cell)
                if isinstance(cell, LSTMCell)
                else QuantizedRNNCell(cell)
                if isinstance(cell, RNNCell)
                else QuantizedGRUCell(cell)
            )
        return quantize_dynamic(model, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8)
