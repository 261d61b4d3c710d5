"""nmt.model (seq2seq, decoder): every attention x cell x input feeding combination.

The step loop (``decode_step``, what the search runs) must equal the teacher-forced ``forward``
(what training runs); attention is a distribution over real source positions; padding a sentence
in a batch changes nothing; initialisation and weight tying are as configured.
"""

from __future__ import annotations

import itertools
import platform
import warnings
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from nmt import NmtError
from nmt.config import Attention, Bridge, Cell, ModelConfig
from nmt.data.tokenizer import BOS, PAD
from nmt.model.decoder import DecoderState
from nmt.model.loss import sequence_loss
from nmt.model.quantize import _qlinear
from nmt.model.seq2seq import Seq2Seq, _has_onednn_linear, build_model, count_parameters, output_product

SRC_V, TGT_V = 23, 19
COMBOS = list(itertools.product(list(Attention), list(Cell), [True, False]))
IDS = [f"{a.value}-{c.value}-{'feed' if f else 'nofeed'}" for a, c, f in COMBOS]


def config(
    attention: Attention = Attention.luong_general, cell: Cell = Cell.lstm, feed: bool = True, **kw
) -> ModelConfig:
    base: dict = dict(
        cell=cell,
        emb_dim=12,
        enc_hidden=8,
        enc_layers=2,
        dec_hidden=16,
        dec_layers=2,
        attention=attention,
        attn_dim=9,
        input_feeding=feed,
        dropout=0.0,
        emb_dropout=0.0,
        init_range=0.3,
    )
    base.update(kw)
    return ModelConfig(**base)


def model(cfg: ModelConfig, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(cfg, SRC_V, TGT_V).eval()


def data(src_lens: list[int], tgt_len: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_V, (len(src_lens), max(src_lens)), generator=g)  # (batch, src_len)
    for r, n in enumerate(src_lens):
        src[r, n:] = PAD
    tgt_in = torch.randint(4, TGT_V, (len(src_lens), tgt_len), generator=g)  # (batch, tgt_len)
    tgt_in[:, 0] = BOS
    return src, torch.tensor(src_lens), tgt_in


# --------------------------------------------------------------------------- step loop == forward


@pytest.mark.parametrize(("attention", "cell", "feed"), COMBOS, ids=IDS)
def test_step_loop_equals_teacher_forced_forward(attention: Attention, cell: Cell, feed: bool) -> None:
    m = model(config(attention, cell, feed))
    src, src_lens, tgt_in = data([6, 4, 1], tgt_len=5)
    with torch.no_grad():
        want = F.log_softmax(m(src, src_lens, tgt_in), dim=-1)  # (batch, tgt_len, vocab)
        mem, state = m.encode(src, src_lens)
        for t in range(tgt_in.size(1)):
            lp, state, _ = m.decode_step(tgt_in[:, t], state, mem)
            torch.testing.assert_close(lp, want[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("attention", "cell", "feed"), COMBOS, ids=IDS)
def test_attention_is_a_distribution_over_real_positions(
    attention: Attention, cell: Cell, feed: bool
) -> None:
    m = model(config(attention, cell, feed))
    src, src_lens, tgt_in = data([6, 4, 1], tgt_len=4)
    real = src != PAD  # (batch, src_len)
    with torch.no_grad():
        mem, state = m.encode(src, src_lens)
        _, weights = m.decoder(tgt_in, state, mem, with_attention=True)  # (batch, tgt_len, src_len)
        assert weights is not None and weights.shape == (3, 4, 6)
        for t in range(tgt_in.size(1)):
            _, state, w = m.decode_step(tgt_in[:, t], state, mem)
            torch.testing.assert_close(w, weights[:, t], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert (weights.masked_select(~real.unsqueeze(1)) == 0).all()
    assert (weights[2, :, 0] == 1).all()  # a one-piece source gets all the attention


@pytest.mark.parametrize(("attention", "cell", "feed"), COMBOS, ids=IDS)
def test_padding_in_a_batch_changes_nothing(attention: Attention, cell: Cell, feed: bool) -> None:
    m = model(config(attention, cell, feed))
    src, src_lens, tgt_in = data([7, 3], tgt_len=4)
    with torch.no_grad():
        mem, state = m.encode(src, src_lens)
        mem1, state1 = m.encode(src[1:, :3], src_lens[1:])
        torch.testing.assert_close(mem.values[1, :3], mem1.values[0], atol=1e-6, rtol=1e-5)
        assert (mem.values[1, 3:] == 0).all()
        torch.testing.assert_close(state.h[:, 1], state1.h[:, 0], atol=1e-6, rtol=1e-5)
        if cell == Cell.lstm:
            torch.testing.assert_close(state.c[:, 1], state1.c[:, 0], atol=1e-6, rtol=1e-5)
        logits = m(src, src_lens, tgt_in)
        logits1 = m(src[1:, :3], src_lens[1:], tgt_in[1:])
    torch.testing.assert_close(logits[1], logits1[0], atol=1e-5, rtol=1e-5)


def test_memory_mask_marks_real_tokens() -> None:
    m = model(config())
    src, src_lens, _ = data([5, 2], tgt_len=1)
    mem, state = m.encode(src, src_lens)
    assert mem.mask.tolist() == [[True] * 5, [True, True, False, False, False]]
    assert state.h.shape == (2, 2, 16) and state.feed.shape == (2, 16)
    assert (state.feed == 0).all()  # the first attentional vector fed back is zeros


def test_decoder_state_select_reorders_rows() -> None:
    h, c, feed = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(3, 4)
    idx = torch.tensor([2, 0, 0])
    s = DecoderState(h, c, feed).select(idx)
    torch.testing.assert_close(s.h, h[:, idx])
    assert s.c is not None
    torch.testing.assert_close(s.c, c[:, idx])
    torch.testing.assert_close(s.feed, feed[idx])
    assert DecoderState(h, None, feed).select(idx).c is None


def test_dropout_is_active_in_training_mode_only() -> None:
    m = model(config(dropout=0.5, emb_dropout=0.5))
    src, src_lens, tgt_in = data([4, 3], tgt_len=3)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(src, src_lens, tgt_in), m(src, src_lens, tgt_in))
        m.train()
        assert not torch.equal(m(src, src_lens, tgt_in), m(src, src_lens, tgt_in))


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("forget_bias", [1.0, 2.5])
@pytest.mark.parametrize("init_range", [0.1, 0.0])
def test_lstm_forget_gate_bias_in_encoder_and_decoder(forget_bias: float, init_range: float) -> None:
    cfg = config(forget_bias=forget_bias, init_range=init_range)
    m = model(cfg)
    h = cfg.dec_hidden
    for cell in m.decoder.cells:
        torch.testing.assert_close(cell.bias[h : 2 * h], torch.full((h,), forget_bias))
    e = cfg.enc_hidden
    names = [n for n, _ in m.encoder.rnn.named_parameters() if n.startswith("bias")]
    assert len(names) == 2 * 2 * cfg.enc_layers  # ih and hh, two directions, each layer
    for name, p in m.encoder.rnn.named_parameters():
        if name.startswith("bias_ih"):
            torch.testing.assert_close(p[e : 2 * e], torch.full((e,), forget_bias))
        elif name.startswith("bias_hh"):
            assert (p[e : 2 * e] == 0).all()
            assert (p[:e] != 0).any()  # the other gates keep their random initialisation


def test_init_range_bounds_the_weights() -> None:
    m = model(config(init_range=0.05))
    for name, p in m.named_parameters():
        if "bias" not in name:
            assert p.abs().max() <= 0.05, name


def test_padding_embeddings_are_zero() -> None:
    m = model(config())
    assert (m.encoder.embed.weight[PAD] == 0).all()
    assert (m.decoder.embed.weight[PAD] == 0).all()


@pytest.mark.parametrize("dec_hidden", [12, 16])
def test_tied_embeddings_share_one_tensor(dec_hidden: int) -> None:
    m = model(config(tie_embeddings=True, dec_hidden=dec_hidden))
    assert m.output.weight is m.decoder.embed.weight
    assert m.output.weight.data_ptr() == m.decoder.embed.weight.data_ptr()
    assert (m.pre_output is not None) == (dec_hidden != 12)  # emb_dim is 12
    # one parameter, counted once, trained by both uses
    untied = model(config(tie_embeddings=False, dec_hidden=dec_hidden))
    extra = (dec_hidden * 12) if dec_hidden != 12 else 0
    assert count_parameters(untied) - count_parameters(m) == TGT_V * dec_hidden - extra
    src, src_lens, tgt_in = data([3], tgt_len=2)
    m.train()
    m(src, src_lens, tgt_in).sum().backward()
    assert m.decoder.embed.weight.grad is not None


def test_tied_embeddings_stay_tied_after_loading_a_state_dict() -> None:
    cfg = config(tie_embeddings=True)
    a, b = model(cfg, seed=1), model(cfg, seed=2)
    b.load_state_dict(a.state_dict())
    assert b.output.weight.data_ptr() == b.decoder.embed.weight.data_ptr()
    torch.testing.assert_close(b.output.weight, a.decoder.embed.weight)


def test_bridge_zero_starts_the_decoder_from_zeros() -> None:
    m = model(config(bridge=Bridge.zero))
    src, src_lens, _ = data([4, 2], tgt_len=1)
    _, state = m.encode(src, src_lens)
    assert (state.h == 0).all() and state.c is not None and (state.c == 0).all()


def test_bridge_copy_needs_matching_sizes() -> None:
    with pytest.raises(NmtError, match="bridge=copy"):
        Seq2Seq(config(bridge=Bridge.copy, enc_hidden=8, dec_hidden=12), SRC_V, TGT_V)
    with pytest.raises(NmtError, match="bridge=copy"):
        Seq2Seq(config(bridge=Bridge.copy, enc_hidden=8, dec_hidden=16, dec_layers=1), SRC_V, TGT_V)


def test_bridge_copy_hands_the_encoder_final_states_to_the_decoder() -> None:
    m = model(config(bridge=Bridge.copy, enc_hidden=8, dec_hidden=16))
    src, src_lens, _ = data([4, 2], tgt_len=1)
    _, h, c = m.encoder(src, src_lens)
    _, state = m.encode(src, src_lens)
    torch.testing.assert_close(state.h, h)
    torch.testing.assert_close(state.c, c)


def test_luong_dot_with_mismatched_sizes_is_refused() -> None:
    with pytest.raises(NmtError, match="luong_dot"):
        build_model(config(Attention.luong_dot, enc_hidden=8, dec_hidden=12), SRC_V, TGT_V)


def test_gru_model_has_no_cell_state() -> None:
    m = model(config(cell=Cell.gru))
    src, src_lens, tgt_in = data([3], tgt_len=2)
    _, state = m.encode(src, src_lens)
    assert state.c is None
    lp, state, _ = m.decode_step(tgt_in[:, 0], state, m.encode(src, src_lens)[0])
    assert state.c is None and lp.dtype == torch.float32
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("attention", list(Attention))
def test_cuda_forward_equals_cpu_forward(attention: Attention) -> None:
    m = model(config(attention))
    src, src_lens, tgt_in = data([6, 4, 1], tgt_len=5)
    with torch.no_grad():
        want = m(src, src_lens, tgt_in)
        got = m.cuda()(src.cuda(), src_lens, tgt_in.cuda()).cpu()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", list(Cell))
def test_fused_decoder_has_the_gradients_of_the_step_loop(cell: Cell) -> None:
    """Without input feeding (Luong) training runs the decoder as one multi-layer RNN call over the
    whole sequence; its gradients must be those of running the cells step by step."""
    m = model(config(Attention.luong_general, cell, feed=False))
    src, src_lens, tgt_in = data([6, 4, 2], tgt_len=5)
    fused = m(src, src_lens, tgt_in).logsumexp(-1).sum()  # any scalar of the outputs
    fused.backward()
    want = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    mem, state = m.encode(src, src_lens)
    total = 0.0
    for t in range(tgt_in.size(1)):
        out, state, _ = m.decoder.step(m.decoder.embed_inputs(tgt_in[:, t]), state, mem)
        total = total + m.logits(out).logsumexp(-1).sum()
    total.backward()
    torch.testing.assert_close(fused, total, atol=1e-4, rtol=1e-5)
    for n, p in m.named_parameters():
        if n in want:
            torch.testing.assert_close(p.grad, want[n], atol=1e-5, rtol=1e-4, msg=n)


def test_fused_decoder_trains_with_dropout_between_layers() -> None:
    m = model(
        config(Attention.luong_dot, Cell.lstm, feed=False, dropout=0.3, dec_hidden=16, enc_hidden=8)
    ).train()
    src, src_lens, tgt_in = data([5, 3], tgt_len=4)
    a, b = m(src, src_lens, tgt_in), m(src, src_lens, tgt_in)
    assert not torch.equal(a, b)  # dropout is on
    a.sum().backward()
    assert all(p.grad is not None for p in m.decoder.cells.parameters())


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_cpu_dropout_keeps_the_right_share_and_the_expectation(p: float) -> None:
    from nmt.model.dropout import dropout

    torch.manual_seed(0)
    x = torch.ones(400, 1000)
    y = dropout(x, p, training=True)
    kept = (y > 0).float().mean().item()
    assert kept == pytest.approx(1 - p, abs=0.003)  # 400k draws: the share is within 3 per mille
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.equal(dropout(x, p, training=False), x)
    torch.manual_seed(0)
    assert torch.equal(dropout(x, p, training=True), y)  # the seeded generator decides the mask
    g = torch.ones(400, 1000, requires_grad=True)
    dropout(g, p, training=True).sum().backward()
    values = g.grad.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)


@pytest.mark.parametrize("tie", [False, True])
def test_forward_with_targets_gives_the_loss_of_the_logits(tie: bool) -> None:
    """Training asks forward for the loss (no logits held); it equals the loss of forward's logits,
    in value and in the gradient of every parameter (a tied output weight included)."""
    cfg = config(tie_embeddings=tie, dropout=0.0)
    m = model(cfg).double().train()
    src, src_lens, tgt_in = data([5, 3, 4], 6)
    tgt_out = torch.roll(tgt_in, -1, 1)
    tgt_out[1, 4:] = PAD
    loss, nll = m(src, src_lens, tgt_in, tgt_out, 0.1)
    got = torch.autograd.grad(loss, list(m.parameters()))
    logits = m(src, src_lens, tgt_in)
    ref = F.cross_entropy(
        logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, label_smoothing=0.1, reduction="sum"
    )
    torch.testing.assert_close(loss, ref, atol=1e-9, rtol=1e-12)
    torch.testing.assert_close(nll, sequence_loss(logits, tgt_out, 0.0)[1].double(), atol=1e-4, rtol=1e-6)
    want = torch.autograd.grad(ref, list(m.parameters()))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-9)


def test_onednn_output_product_is_found_on_x86_builds_with_onednn() -> None:
    """Guards against the op silently dropping out of a PyTorch upgrade (decoding would slow down)."""
    if not (torch.backends.mkldnn.is_available() and platform.machine() in ("x86_64", "AMD64")):
        pytest.skip("needs an x86 PyTorch build with oneDNN")
    assert _has_onednn_linear()


@pytest.mark.parametrize("tie", [False, True])
def test_decoding_logits_equal_the_output_layer_on_every_side_of_the_row_rule(tie: bool) -> None:
    """The vocabulary-major product (2-64 rows) and oneDNN's (more rows) give the output layer's scores."""
    m = model(config(tie_embeddings=tie, emb_dim=16 if tie else 12))
    torch.manual_seed(3)
    paths = set()
    for rows in (1, 2, 5, 64, 65, 320):
        out = torch.randn(rows, 16)
        with torch.no_grad():
            got, want = m.logits(out), m.output(m._output_input(out))
            paths.add(output_product(m._output_input(out), m.output))
        assert got.shape == (rows, TGT_V)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    strided = torch.randn(16, 100).t()  # (100, 16), not contiguous
    with torch.no_grad():
        torch.testing.assert_close(
            m.logits(strided), m.output(m._output_input(strided)), rtol=1e-5, atol=1e-5
        )
    assert paths == {"linear", "vocab_major", "onednn" if _has_onednn_linear() else "linear"}


def test_output_product_rule_reroutes_fp32_cpu_decoding_only() -> None:
    lin = torch.nn.Linear(16, TGT_V)
    onednn = "onednn" if _has_onednn_linear() else "linear"
    with torch.no_grad():
        got = [output_product(torch.zeros(r, 16), lin) for r in (1, 2, 64, 65, 320)]
        assert got == ["linear", "vocab_major", "vocab_major", onednn, onednn]
        wide = torch.nn.Linear(16, TGT_V).double()
        for r in (5, 320):
            assert output_product(torch.zeros(r, 16, dtype=torch.float64), wide) == "linear"
            assert output_product(torch.zeros(2, r, 16), lin) == "linear"  # teacher-forced (batch, steps, d)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert output_product(torch.zeros(r, 16), lin) == "linear"
            with warnings.catch_warnings():  # PyTorch's deprecation notice for its quantized tensors
                warnings.simplefilter("ignore")
                int8 = _qlinear(lin.weight, lin.bias)  # the output layer under quantize=int8
            assert output_product(torch.zeros(r, 16), int8) == "linear"
    for r in (5, 320):  # autograd on: training keeps nn.Linear
        assert output_product(torch.zeros(r, 16), lin) == "linear"
    torch.backends.mkldnn.enabled = False  # oneDNN switched off by the user
    try:
        with torch.no_grad():
            assert output_product(torch.zeros(320, 16), lin) == "linear"
    finally:
        torch.backends.mkldnn.enabled = True
    with torch.no_grad(), mock.patch("torch.compiler.is_compiling", return_value=True):  # compile=true
        assert [output_product(torch.zeros(r, 16), lin) for r in (5, 320)] == ["linear", "linear"]
    x = torch.zeros(5, 16, requires_grad=True)
    m = model(config())
    m.logits(x).sum().backward()
    assert x.grad is not None
