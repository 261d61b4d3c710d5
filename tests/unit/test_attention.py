"""nmt.model.attention: the three scores, masking of padding, and Memory.select."""

from __future__ import annotations

import pytest
import torch

from nmt.model.attention import Attention, Memory

torch.manual_seed(0)


def inputs(batch: int = 3, src_len: int = 5, mem_dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.randn(batch, src_len, mem_dim)  # (batch, src_len, mem_dim)
    lens = torch.tensor([5, 3, 1])[:batch]
    mask = torch.arange(src_len).unsqueeze(0) < lens.unsqueeze(1)  # (batch, src_len)
    return values, mask


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_weights_sum_to_one_over_real_positions_and_are_zero_on_padding(kind: str) -> None:
    query_dim = 6 if kind == "dot" else 4
    att = Attention(kind, query_dim, 6, attn_dim=7)
    values, mask = inputs()
    mem = att.memory(values, mask)
    ctx, w = att(torch.randn(3, query_dim), mem)
    assert ctx.shape == (3, 6) and w.shape == (3, 5)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    assert (w[~mask] == 0).all()
    assert (w[mask] > 0).all()
    torch.testing.assert_close(ctx, torch.einsum("bs,bsd->bd", w, values))


def test_dot_score_is_the_inner_product() -> None:
    att = Attention("dot", 6, 6)
    values, mask = inputs()
    q = torch.randn(3, 6)
    e = torch.einsum("bd,bsd->bs", q, values).masked_fill(~mask, float("-inf"))
    _, w = att(q, att.memory(values, mask))
    torch.testing.assert_close(w, torch.softmax(e, 1))


def test_general_score_is_bilinear() -> None:
    att = Attention("general", 4, 6)
    values, mask = inputs()
    q = torch.randn(3, 4)
    e = torch.einsum("bq,qd,bsd->bs", q, att.w_a.weight, values).masked_fill(~mask, float("-inf"))
    _, w = att(q, att.memory(values, mask))
    torch.testing.assert_close(w, torch.softmax(e, 1))


def test_additive_score_is_v_tanh_of_the_sum() -> None:
    att = Attention("additive", 4, 6, attn_dim=5)
    values, mask = inputs()
    q = torch.randn(3, 4)
    hidden = torch.tanh(att.w_q(q).unsqueeze(1) + att.w_k(values))  # (batch, src_len, attn_dim)
    e = att.v(hidden).squeeze(2).masked_fill(~mask, float("-inf"))
    _, w = att(q, att.memory(values, mask))
    torch.testing.assert_close(w, torch.softmax(e, 1))


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_attend_over_all_steps_equals_one_step_at_a_time(kind: str) -> None:
    att = Attention(kind, 6, 6)
    values, mask = inputs()
    mem = att.memory(values, mask)
    queries = torch.randn(3, 4, 6)  # (batch, steps, query_dim)
    ctx, w = att.attend(queries, mem)
    for t in range(4):
        c_t, w_t = att(queries[:, t], mem)
        torch.testing.assert_close(ctx[:, t], c_t)
        torch.testing.assert_close(w[:, t], w_t)


def test_padding_values_do_not_change_the_context() -> None:
    att = Attention("general", 6, 6)
    values, mask = inputs()
    q = torch.randn(3, 6)
    noisy = values.clone()
    noisy[~mask] = 1e3  # whatever sits on padding positions
    ctx, _ = att(q, att.memory(values, mask))
    ctx2, _ = att(q, att.memory(noisy, mask))
    torch.testing.assert_close(ctx, ctx2)


def test_memory_select_picks_rows() -> None:
    att = Attention("general", 6, 6)
    values, mask = inputs()
    mem = att.memory(values, mask)
    idx = torch.tensor([2, 2, 0])
    sel = mem.select(idx)
    assert isinstance(sel, Memory)
    torch.testing.assert_close(sel.values, values[idx])
    torch.testing.assert_close(sel.keys, mem.keys[idx])
    assert torch.equal(sel.mask, mask[idx])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown attention"):
        Attention("cosine", 4, 4)
    with pytest.raises(ValueError, match="query_dim == mem_dim"):
        Attention("dot", 4, 6)
