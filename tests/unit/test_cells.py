"""nmt.model.cells: the decoder's LSTM and GRU cells compute what torch.nn's cells compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.model.cells import GRUCell, LSTMCell


def test_lstm_cell_equals_torch_lstm_cell() -> None:
    torch.manual_seed(0)
    pre_size, step_size, hidden = 5, 3, 4
    cell = LSTMCell(pre_size, step_size, hidden, forget_bias=1.0)
    ref = nn.LSTMCell(pre_size + step_size, hidden)
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([cell.w_pre, cell.w_step[:, :step_size]], 1))
        ref.weight_hh.copy_(cell.w_step[:, step_size:])
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x_pre, x_step = torch.randn(2, pre_size), torch.randn(2, step_size)
    h, c = torch.randn(2, hidden), torch.randn(2, hidden)
    got_h, got_c = cell(cell.project(x_pre), x_step, h, c)
    want_h, want_c = ref(torch.cat([x_pre, x_step], 1), (h, c))
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(got_c, want_c)


def test_lstm_cell_without_ahead_of_time_input() -> None:
    torch.manual_seed(1)
    cell = LSTMCell(0, 3, 4)
    ref = nn.LSTMCell(3, 4)
    with torch.no_grad():
        ref.weight_ih.copy_(cell.w_step[:, :3])
        ref.weight_hh.copy_(cell.w_step[:, 3:])
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    got = cell(None, x, h, c)
    want = ref(x, (h, c))
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


@pytest.mark.parametrize("step_size", [0, 3])
def test_gru_cell_equals_torch_gru_cell(step_size: int) -> None:
    torch.manual_seed(2)
    pre_size, hidden = 5, 4
    cell = GRUCell(pre_size, step_size, hidden)
    ref = nn.GRUCell(pre_size + step_size, hidden)
    with torch.no_grad():
        w_in = cell.w_pre if step_size == 0 else torch.cat([cell.w_pre, cell.w_step], 1)
        ref.weight_ih.copy_(w_in)
        ref.weight_hh.copy_(cell.w_hid)
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.copy_(cell.bias_hid)
    x_pre, x_step, h = torch.randn(2, pre_size), torch.randn(2, step_size), torch.randn(2, hidden)
    got_h, got_c = cell(cell.project(x_pre), x_step if step_size else None, h)
    assert got_c is None
    torch.testing.assert_close(got_h, ref(torch.cat([x_pre, x_step], 1), h))


@pytest.mark.parametrize("forget_bias", [0.0, 1.0, 2.5])
def test_lstm_forget_gate_bias_starts_at_forget_bias(forget_bias: float) -> None:
    cell = LSTMCell(5, 3, 4, forget_bias=forget_bias)
    torch.testing.assert_close(cell.bias[4:8], torch.full((4,), forget_bias))
    cell.reset_parameters(init_range=0.1)
    torch.testing.assert_close(cell.bias[4:8], torch.full((4,), forget_bias))
    assert cell.bias[:4].abs().max() <= 0.1 and cell.w_step.abs().max() <= 0.1


def test_gates_are_the_activations_of_the_step() -> None:
    torch.manual_seed(3)
    cell = LSTMCell(5, 3, 4)
    pre, x, h, c = cell.project(torch.randn(2, 5)), torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    g = cell.gates(pre, x, h)
    new_h, new_c = cell(pre, x, h, c)
    torch.testing.assert_close(new_c, g.forget * c + g.input * g.candidate)
    torch.testing.assert_close(new_h, g.output * torch.tanh(new_c))
