"""nmt.model.encoder: packed BiRNN encoding (padding never read) and the bridge to the decoder."""

from __future__ import annotations

import pytest
import torch

from nmt.data.tokenizer import PAD
from nmt.model.encoder import Bridge, Encoder


def encoder(cell: str, layers: int = 2) -> Encoder:
    torch.manual_seed(0)
    return Encoder(
        vocab=20, emb_dim=8, hidden=5, layers=layers, dropout=0.0, emb_dropout=0.0, cell=cell
    ).eval()


def batch(lens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 20, (len(lens), max(lens)), generator=g)  # (batch, src_len)
    for r, n in enumerate(lens):
        src[r, n:] = PAD
    return src, torch.tensor(lens)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_padded_sentence_encodes_like_the_sentence_alone(cell: str, layers: int) -> None:
    enc = encoder(cell, layers)
    src, lens = batch([7, 3, 5, 1])
    states, h, c = enc(src, lens)
    assert states.shape == (4, 7, 10) and h.shape == (layers, 4, 10)
    assert (c is None) == (cell != "lstm")
    for r, n in enumerate(lens.tolist()):
        s1, h1, c1 = enc(src[r : r + 1, :n], lens[r : r + 1])
        torch.testing.assert_close(states[r, :n], s1[0], atol=1e-6, rtol=1e-5)
        assert (states[r, n:] == 0).all()  # padding positions are zeros
        torch.testing.assert_close(h[:, r], h1[:, 0], atol=1e-6, rtol=1e-5)
        if c is not None:
            torch.testing.assert_close(c[:, r], c1[:, 0], atol=1e-6, rtol=1e-5)


def test_unsorted_lengths_are_accepted() -> None:
    enc = encoder("lstm")
    src, lens = batch([2, 6, 4])
    states, h, _ = enc(src, lens)
    perm = torch.tensor([1, 2, 0])
    states2, h2, _ = enc(src[perm], lens[perm])
    torch.testing.assert_close(states[perm], states2, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h[:, perm], h2, atol=1e-6, rtol=1e-5)


def test_final_state_joins_forward_last_and_backward_first() -> None:
    enc = encoder("gru", layers=1)
    src, lens = batch([6, 4])
    states, h, _ = enc(src, lens)
    for r, n in enumerate(lens.tolist()):
        torch.testing.assert_close(h[0, r, :5], states[r, n - 1, :5])  # forward direction ends at n-1
        torch.testing.assert_close(h[0, r, 5:], states[r, 0, 5:])  # backward direction ends at 0


def test_bridge_zero_gives_zero_initial_state() -> None:
    b = Bridge("zero", enc_dim=10, dec_hidden=7, dec_layers=3, has_cell=True)
    h, c = b(torch.randn(2, 4, 10), torch.randn(2, 4, 10))
    assert h.shape == (3, 4, 7) and c is not None and c.shape == (3, 4, 7)
    assert (h == 0).all() and (c == 0).all()
    assert h.data_ptr() != c.data_ptr()
    h, c = b(torch.randn(2, 4, 10), None)
    assert (h == 0).all() and c is None


def test_bridge_copy_passes_states_through() -> None:
    b = Bridge("copy", enc_dim=10, dec_hidden=10, dec_layers=2, has_cell=True)
    h, c = torch.randn(2, 4, 10), torch.randn(2, 4, 10)
    assert b(h, c) == (h, c)


def test_bridge_learned_maps_the_top_layer_to_every_decoder_layer() -> None:
    torch.manual_seed(2)
    b = Bridge("learned", enc_dim=10, dec_hidden=7, dec_layers=3, has_cell=True)
    h, c = torch.randn(2, 4, 10), torch.randn(2, 4, 10)
    out_h, out_c = b(h, c)
    assert out_h.shape == (3, 4, 7) and out_c is not None
    want = torch.tanh(b.to_h(h[-1])).view(4, 3, 7)  # (batch, dec_layers, dec_hidden)
    for layer in range(3):
        torch.testing.assert_close(out_h[layer], want[:, layer])
    torch.testing.assert_close(out_c[0], torch.tanh(b.to_c(c[-1]))[:, :7])
    assert Bridge("learned", 10, 7, 3, has_cell=False).to_c is None
