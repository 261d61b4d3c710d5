"""Dataclass schemas for every config group; ``register_configs()`` puts them in Hydra's ConfigStore.

The dataclasses are the single source of defaults and documentation. Hydra composes the YAML files
in ``conf/`` on top of them, so an unknown key, a mistyped key or a value of the wrong type is
rejected with a message naming it. Library code receives real dataclasses (``OmegaConf.to_object``)
and never sees Hydra. ``nmt.checks`` adds the checks a type cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from nmt.structured import MISSING

# ----------------------------------------------------------------------------- choices


class Cell(str, Enum):
    lstm = "lstm"
    gru = "gru"
    rnn = "rnn"  # Elman's simple recurrent network: h_t = tanh(W x_t + U h_{t-1} + b)


class Attention(str, Enum):
    """``bahdanau``: additive score on the previous decoder state, context fed into the RNN
    (Bahdanau et al. 2015). ``luong_*``: score on the current top decoder state, then an
    attentional hidden state (Luong et al. 2015) with the dot, general or concat score."""

    bahdanau = "bahdanau"
    luong_dot = "luong_dot"
    luong_general = "luong_general"
    luong_concat = "luong_concat"


class Bridge(str, Enum):
    learned = "learned"  # tanh(W [h_fwd; h_bwd]) of the top encoder layer, for every decoder layer
    zero = "zero"  # decoder starts from zeros
    copy = "copy"  # encoder layer l's final [h_fwd; h_bwd] -> decoder layer l (sizes must match)


class SpmModel(str, Enum):
    unigram = "unigram"
    bpe = "bpe"
    word = "word"  # whitespace-separated words (pre-tokenised text; the peers' word-level vocabulary)


class Optimizer(str, Enum):
    adam = "adam"
    sgd = "sgd"


class PlateauMetric(str, Enum):
    bleu = "bleu"  # dev BLEU (greedy): what the best checkpoint is chosen by
    loss = "loss"  # dev loss: moves steadily while BLEU on a sample is noisy


class Schedule(str, Enum):
    constant = "constant"
    inverse_sqrt = "inverse_sqrt"  # linear warmup, then lr * sqrt(warmup / step)
    plateau = "plateau"  # multiply by plateau_factor when the dev score (plateau_metric) stops improving
    wsd = "wsd"  # constant, then linear decay to min_lr over the last decay_fraction of the budget


class Precision(str, Enum):
    auto = "auto"  # bf16 autocast where the hardware has native bf16 (CUDA; CPUs with AMX or AVX512-BF16), else fp32
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"  # CUDA only, with dynamic loss scaling


class Quantize(str, Enum):
    none = "none"
    int8 = "int8"  # dynamic quantization: int8 weights, activations quantized per batch (CPU only)


class BatchType(str, Enum):
    tokens = "tokens"  # batch_size counts padded tokens (max(src, tgt) length x sentences)
    sents = "sents"  # batch_size counts sentences


class SearchMethod(str, Enum):
    greedy = "greedy"
    beam = "beam"
    sample = "sample"


class LengthPenalty(str, Enum):
    none = "none"  # raw log-probability
    average = "average"  # log-probability / length
    gnmt = "gnmt"  # log-probability / ((5 + length) / 6) ** alpha (Wu et al. 2016)


class Pretokenize(str, Enum):
    none = "none"
    moses = "moses"  # Moses-style tokenisation (sacremoses): "didn't." -> "didn 't ."


class Normalize(str, Enum):
    none = "none"
    nfkc = "nfkc"  # Unicode NFKC: full-width ASCII to ASCII, compatibility characters folded


class BeamStop(str, Enum):
    """When a sentence's beam search ends (before its length limit)."""

    exact = "exact"  # when no alive hypothesis can still beat the n-th best finished one
    first_k = "first_k"  # when beam-size hypotheses have finished (fairseq's rule)


class OutputFormat(str, Enum):
    text = "text"
    jsonl = "jsonl"


class BadLine(str, Enum):
    """What to do with an input line that is invalid UTF-8 or longer than ``max_input_len``."""

    error = "error"  # stop with an error naming the line
    fix = "fix"  # replace bad bytes with U+FFFD / truncate to the limit, with a warning


# ----------------------------------------------------------------------------- groups


@dataclass
class TextConfig:
    """How text as people type it becomes the text of the corpus (one language side).

    Applied to every input the model reads (nmt-translate, nmt-evaluate, the Python API), and by
    nmt-prepare to the corpus unless ``data.processed`` says it is already in that form. On the
    target side the pretokenisation is undone on the way out (Moses detokenisation).
    """

    normalize: Normalize = Normalize.none
    pretokenize: Pretokenize = Pretokenize.none
    lowercase: bool = False  # after tokenisation, as corpora like small_parallel_enja were made


@dataclass
class TestSetConfig:
    src: str = MISSING  # path, relative to data.root unless absolute
    ref: str = MISSING
    segmented: bool = False  # reference is word-segmented with spaces (score -tok none as well)
    processed: bool = False  # src is already in the corpus's form (tokenised/lowercased like it)


@dataclass
class CorpusConfig:
    """One training corpus of several (``data.train_corpora``), mixed by ``weight``.

    Unset fields (null) take the data group's value. Each corpus is read, cleaned and encoded on
    its own, and its counts (read, kept, dropped by which filter, drawn per epoch) are logged and
    go into the results card."""

    name: str = MISSING  # in logs, counts and the prepared folder's name
    corpus: str = MISSING  # folder under data.root holding <train>.<src_lang> and <train>.<tgt_lang>
    train: str = "train"  # the files' prefix
    weight: float = 1.0  # examples are drawn in proportion to the weights (OpenNMT-py's); a small
    # corpus repeats as needed, a large one is subsampled (a different part every epoch)
    src_text: TextConfig | None = None
    tgt_text: TextConfig | None = None
    processed: bool | None = None
    max_train_pairs: int = 0
    max_len: int | None = None
    max_len_ratio: float | None = None
    dedup: bool | None = None
    drop_copies: bool | None = None
    require_script: bool | None = None


@dataclass
class DataConfig:
    name: str = MISSING
    # Folder holding the corpora. "auto": $NMT_DATA_ROOT, else <repo>/data/corpora (where the
    # download scripts put them), else <repo>/../shared/data.
    root: str = "auto"
    corpus: str = MISSING  # folder under root with {train,dev,test}.{src_lang,tgt_lang}
    src_lang: str = "en"
    tgt_lang: str = "ja"
    train: str = "train"
    dev: str = "dev"
    test: str = "test"
    segmented: bool = False  # the target side is word-segmented with spaces: outputs are joined back
    src_text: TextConfig = field(default_factory=TextConfig)  # raw source text -> the corpus's form
    tgt_text: TextConfig = field(default_factory=TextConfig)
    processed: bool = False  # the corpus files are already in the src_text/tgt_text form
    max_len: int = 100  # training pairs with more pieces on either side are dropped
    max_len_ratio: float = 3.0  # ... or with a longer/shorter piece ratio above this
    max_train_pairs: int = 0  # use only the first N training pairs (0 = all); for CPU subsets
    # Cleaning a crawl (training pairs only; each drop is counted): exact duplicate pairs after
    # text processing (a 64-bit hash per pair kept, never the text), a source equal to its target,
    # a target without a character of its language's script (ja: kana or kanji).
    dedup: bool = False
    drop_copies: bool = False
    require_script: bool = False
    # Several training corpora mixed by weight; empty: the one corpus above (data.corpus/data.train).
    train_corpora: list[CorpusConfig] = field(default_factory=list)
    epoch_pairs: int = 0  # pairs drawn from the corpora per epoch (0: all their kept pairs)
    workers: int = 0  # processes preparing the text (0: the cores available to this process)
    test_sets: dict[str, TestSetConfig] = field(default_factory=dict)


@dataclass
class TokenizerConfig:
    model_type: SpmModel = SpmModel.unigram
    joint: bool = False  # one vocabulary for both languages
    vocab_size: int = 8000  # per side, or of the joint vocabulary
    src_vocab_size: int = 0  # 0: vocab_size
    tgt_vocab_size: int = 0
    # None: 0.9995 for ja/zh/ko (rare characters become <unk> rather than pieces), else 1.0
    character_coverage: float | None = None
    input_sentence_size: int = 2_000_000  # sentences sampled to train SentencePiece
    byte_fallback: bool = False
    split_digits: bool = False
    normalization: str = "nmt_nfkc"


@dataclass
class ModelConfig:
    cell: Cell = Cell.lstm  # for encoder and decoder
    emb_dim: int = 256  # source and target embeddings
    enc_hidden: int = 128  # per direction
    enc_layers: int = 2
    dec_hidden: int = 256
    dec_layers: int = 2
    attention: Attention = Attention.luong_general
    attn_dim: int = 0  # hidden size of the additive scores (bahdanau, luong_concat); 0: dec_hidden
    input_feeding: bool = True  # feed the previous attentional vector into the decoder (Luong)
    bridge: Bridge = Bridge.learned
    dropout: float = 0.2  # between RNN layers and on the attentional output
    emb_dropout: float = 0.2
    tie_embeddings: bool = False  # target embedding = output projection (adds dec->emb projection if needed)
    forget_bias: float = 1.0  # initial forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015)
    init_range: float = 0.1  # uniform(-r, r) init of all weights; 0: PyTorch defaults


@dataclass
class TrainConfig:
    optimizer: Optimizer = Optimizer.adam
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0  # SGD
    weight_decay: float = 0.0
    schedule: Schedule = Schedule.constant
    warmup_steps: int = 0  # linear warmup (all schedules)
    plateau_factor: float = 0.5
    plateau_patience: int = 1  # validations without improvement before the LR is cut
    plateau_metric: PlateauMetric = PlateauMetric.bleu  # what the plateau schedule watches: bleu | loss
    min_lr: float = 1e-5
    decay_fraction: float = 0.2  # wsd: share of the budget (max_steps or max_time) spent decaying
    clip_norm: float = 5.0  # clip gradients by global L2 norm (Pascanu et al. 2013); 0: off
    label_smoothing: float = 0.1
    batch_type: BatchType = BatchType.tokens
    batch_size: int = 4096
    max_steps: int = 0  # stop after this many updates (0: no limit)
    max_epochs: int = 0  # (0: no limit)
    max_time: float = 0.0  # minutes of wall-clock training, validations included (0: no limit)
    # subword regularisation: a fresh segmentation of every training pair each epoch (nmt/data/sampling.py)
    subword_alpha: float = 0.0  # 0: off; unigram: SentencePiece's smoothing (Kudo 2018; smaller is flatter); bpe: BPE-dropout probability
    subword_nbest: int = -1  # unigram: sample among the n best segmentations (-1: all)
    subword_sides: str = "both"  # src | tgt | both
    subword_workers: int = 1  # processes that segment the next epoch while this one trains
    valid_every: int = 1000  # steps
    valid_bleu: bool = True  # greedy-decode the dev set at each validation
    valid_max_sents: int = 0  # decode N dev sentences for BLEU, spread evenly across the dev set (0: all)
    patience: int = 0  # stop after N validations without a better dev BLEU (0: off)
    log_every: int = 100
    accum_steps: int = 1  # batches accumulated per update (per process)
    keep_last: int = 5  # newest step checkpoints kept (weights only, for averaging); best.pt, last.pt always
    keep_best: int = 5  # best step checkpoints (by dev BLEU) kept as well
    precision: Precision = Precision.auto
    num_threads: int = 0  # CPU intra-op threads (0: PyTorch's default)
    resume: bool = False  # continue from <run_dir>/checkpoints/last.pt
    sort_buckets: int = 0  # sentences per length-sorting window (0: the whole epoch)
    # bf16 on a CPU: lengths padded to the smallest multiple (1, 2, 4, 8, 16) that keeps an epoch's
    # distinct batch shapes within max_shapes, each shape's oneDNN kernels compiled once (0: no bound)
    max_shapes: int = 32
    shape_multiple: int = 0  # > 0: pad lengths to this multiple, whatever the device and precision
    explicit_bptt: bool = True  # BPTT by hand where it applies (nmt.model.bptt, .bilstm); false: autograd
    dist_timeout_min: float = 10.0  # torchrun: how long a collective waits for the other processes
    wait_timeout_min: float = 1440.0  # ... and how long they wait for rank 0's own work (data, validation)
    tensorboard: bool = False  # scalars and attention images in <run_dir>/tensorboard (nmt[tensorboard])
    tensorboard_sentences: int = 3  # dev sentences whose attention is drawn at each validation


@dataclass
class SearchConfig:
    method: SearchMethod = SearchMethod.greedy
    beam_size: int = 5
    nbest: int = 1  # hypotheses returned per sentence (<= beam_size)
    length_penalty: LengthPenalty = LengthPenalty.gnmt
    alpha: float = 0.6  # GNMT length penalty exponent
    coverage_penalty: float = 0.0  # GNMT coverage penalty beta (0: off)
    max_len_a: float = 2.0  # hypotheses end at a * source pieces + b target pieces
    max_len_b: int = 10
    min_len: int = 0  # no EOS before this many pieces
    no_repeat_ngram: int = 0  # forbid repeating any n-gram of this size (0: off)
    stop: BeamStop = BeamStop.exact  # beam: when a sentence is done
    temperature: float = 1.0  # sampling: softmax(logits / T)
    top_k: int = 0  # sampling: keep the k most likely pieces (0: all)
    seed: int = 1234  # sampling


# ----------------------------------------------------------------------------- jobs


@dataclass
class TrainJob:
    """nmt-prepare and nmt-train (they share the run directory)."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # used by the recipes' final evaluation
    name: str = "${data.name}"
    run_dir: str = "runs/${name}"
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class TranslateJob:
    """nmt-translate."""

    ckpt: Any = MISSING  # a checkpoint, or a list of them: an ensemble ([a.pt,b.pt])
    input: str = "-"  # file, or - for stdin
    output: str = "-"  # file, or - for stdout
    search: SearchConfig = field(default_factory=SearchConfig)
    format: OutputFormat = OutputFormat.text
    with_attention: bool = False  # jsonl: add source/target pieces and the attention matrix
    batch_size: int = 4096  # source tokens per batch (x beam size)
    max_sentences: int = 0  # and at most this many sentences per batch (0: no cap)
    chunk_lines: int = 20000  # lines read, sorted and translated at a time (memory bound)
    max_input_len: int = 250  # source pieces; longer lines are handled by on_bad_line
    on_bad_line: BadLine = BadLine.error
    keep_segmentation: bool = False  # print the target as the model makes it (segmented, tokenised)
    processed: bool = False  # the input is already in the model's form (its corpus's own test set)
    replace_unk: bool = True  # an unknown target piece becomes the source word it attends to most
    precision: Precision = Precision.auto  # bf16 autocast where the hardware has it natively
    quantize: Quantize = Quantize.none  # int8: dynamically quantized linear layers and LSTMs (CPU)
    compile: bool = False  # torch.compile the decoder step (CUDA graphs on a GPU); off until measured
    constraints: bool = (
        False  # input lines are "source<TAB>term<TAB>term...": every term appears in the output
    )
    ordered_constraints: bool = False  # ... in the order given
    interactive: bool | None = None  # None: when stdin is a terminal and input is -
    progress: bool | None = None  # None: when stderr is a terminal
    num_threads: int = 0  # CPU threads (0: PyTorch's default; 1 on a machine busy with other work)
    workers: int = 0  # CPU: batches decoded side by side (0: auto, up to 4; 1: one at a time)
    device: str = "auto"


@dataclass
class EvaluateJob:
    """nmt-evaluate: score a hypothesis file, or translate and score named test sets."""

    hyp: str | None = None  # hypothesis file to score against ref
    ref: str | None = None
    ckpt: Any = None  # or: a checkpoint (or a list: an ensemble), translating src or named test sets
    src: str | None = None
    test_sets: list[str] = field(default_factory=list)  # names from data.test_sets; empty: all
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    lang: str | None = None  # target language; None: the checkpoint's, else "ja"
    tokenize: str | None = None  # SacreBLEU tokenizer; None: by language (ja -> ja-mecab)
    segmented: bool = False  # hyp/ref are word-segmented: also report -tok none on them as given
    processed: bool = False  # src= is already in the model's input form (like its training corpus)
    replace_unk: bool = True  # an unknown target piece becomes the source word it attends to most
    precision: Precision = Precision.auto  # bf16 autocast where the hardware has it natively
    quantize: Quantize = Quantize.none  # int8: dynamically quantized linear layers and LSTMs (CPU)
    compile: bool = False  # torch.compile the decoder step (CUDA graphs on a GPU); off until measured
    batch_size: int = 4096  # source tokens per batch (x beam size)
    max_sentences: int = 0  # and at most this many sentences per batch (0: no cap)
    max_input_len: int = 1000  # source pieces; longer lines are handled by on_bad_line
    on_bad_line: BadLine = BadLine.error
    output: str | None = None  # JSON file for the results
    hyp_dir: str | None = None  # write each test set's translations to <hyp_dir>/<name>.hyp
    alphas: list[float] = field(default_factory=list)  # beam: try these GNMT alphas, report the best
    first: int = 0  # use only the first N sentences of each test set (0: all); for quick tuning
    sample: int = 0  # or N sentences spread evenly across each test set (every document of a dev set)
    num_threads: int = 0  # CPU threads (0: PyTorch's default)
    workers: int = 0  # CPU: batches decoded side by side (0: auto, up to 4; 1: one at a time)
    device: str = "auto"


@dataclass
class ServeModelConfig:
    id: int = 100  # the "id" requests name it by (OpenNMT-py's model id)
    ckpt: Any = MISSING  # a checkpoint, or a list of them: an ensemble


@dataclass
class ServeJob:
    """nmt-serve: an HTTP JSON translation server (OpenNMT-py's routes)."""

    ckpt: Any = None  # one model (id ``model_id``): a checkpoint or a list (ensemble) ...
    model_id: int = 100
    models: list[ServeModelConfig] = field(
        default_factory=list
    )  # ... or several: [{id: 100, ckpt: a.pt}, ...]
    host: str = "127.0.0.1"  # 0.0.0.0 to listen on every interface
    port: int = 5000
    search: SearchConfig = field(default_factory=SearchConfig)
    wait_ms: float = 10.0  # how long a batch waits for more requests to join it
    batch_words: int = 2048  # source words gathered into one translation call
    queue_limit: int = 2048  # sentences waiting, all requests together; more: 503
    max_sentences: int = 256  # per request; more: 413
    max_input_len: int = 250  # source pieces per sentence; more: 400
    timeout_s: float = 30.0  # a request not answered within this: 504
    max_body_bytes: int = 2_097_152  # a request's body; more: 413, refused before it is read whole
    max_input_chars: int = (
        0  # characters per sentence, checked before text processing (0: 64 x max_input_len)
    )
    body_timeout_s: float = 10.0  # a body not received within this: 408
    head_timeout_s: float = 10.0  # a connection that sends no complete request head within this is closed
    max_beam: int = 16  # the largest beam_size a request (or the page) may ask for
    replace_unk: bool = True
    keep_segmentation: bool = False
    precision: Precision = Precision.auto
    quantize: Quantize = Quantize.none
    num_threads: int = 0
    workers: int = 0  # CPU: batches decoded side by side (0: auto, up to 4; 1: one at a time)
    device: str = "auto"
    lm: str | None = None  # a character language model (nmt-lm) for the page's char-rnn view and /lm/
    page: bool = True  # the page at / (translate as you type, attention, char-rnn)


@dataclass
class AverageJob:
    """nmt-average: average the weights of the last or best k checkpoints of a run."""

    run_dir: str = MISSING  # a training run (its checkpoints/ folder and index.json)
    k: int = 5
    by: str = "best"  # best (by dev BLEU) | last
    output: str | None = None  # default: <run_dir>/checkpoints/avg_<by><k>.pt


@dataclass
class CardJob:
    """nmt-card: the results card of a recipe run (Markdown, JSON, curves PNG)."""

    run_dir: str = MISSING
    title: str | None = None  # default: the run's name
    readme: str | None = None  # also replace the results block of this README (and copy the PNG beside it)
    examples: int = 5  # example translations from the first test set


@dataclass
class InspectJob:
    """nmt-inspect: trace one translation through the decoder's gates and cells."""

    ckpt: str = MISSING
    text: str = MISSING  # the source sentence
    target: str | None = None  # the target to trace; None: the model's own greedy translation
    output: str = "inspect.png"
    attention_png: str | None = None  # also the attention alone, as a heatmap PNG
    units: int = 24  # cell units shown (those that vary most along this sentence)
    device: str = "auto"


@dataclass
class LMConfig:
    """A character-level language model (nmt-lm): a stack of cells without attention."""

    cell: Cell = Cell.lstm
    emb_dim: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.2


@dataclass
class LMTrainConfig:
    seq_len: int = 100  # characters per window of truncated BPTT
    batch: int = 64  # parallel streams of the text
    lr: float = 2e-3
    clip_norm: float = 5.0  # 0: off
    max_time: float = 10.0  # minutes (0: no limit)
    max_steps: int = 0
    eval_every: int = 200
    valid_fraction: float = 0.05  # the text's last part, held out for bits per character
    vocab_size: int = 200  # the most frequent characters (the rest: one unknown symbol)
    seed: int = 1234


@dataclass
class LmJob:
    """nmt-lm: train a character-level language model (char-rnn) on a text file."""

    text: str = MISSING  # a text file, relative to the corpus folders like data configs (or absolute)
    data_root: str = "auto"
    max_chars: int = 0  # read only the first N characters (0: all)
    model: LMConfig = field(default_factory=LMConfig)
    train: LMTrainConfig = field(default_factory=LMTrainConfig)
    run_dir: str = "runs/char_rnn"
    device: str = "auto"


@dataclass
class SampleJob:
    """nmt-sample: text from a character-level language model, primed, at a temperature."""

    ckpt: str = MISSING
    prime: str = ""  # the text the sample continues
    length: int = 400  # characters to draw
    temperature: float = 1.0  # < 1: safer, more repetitive; > 1: more varied, more mistakes
    top_k: int = 0
    seed: int = 1
    samples: int = 1
    device: str = "auto"


@dataclass
class CellsJob:
    """nmt-cells: look inside a character-level model's cells over a text (char-rnn style)."""

    ckpt: str = MISSING
    input: str = MISSING  # a text file
    max_chars: int = 3000
    feature: str = (
        "quotes"  # quotes | brackets | line_position | word_boundary: find the cells that follow it
    )
    layer: int = -1  # which layer (-1: the top one)
    unit: int = -1  # which unit to colour (-1: the one that follows the feature best)
    top: int = 8  # units reported
    output: str = "cells.html"
    device: str = "auto"


def describe(cfg: object) -> str:
    """A dataclass config as ``key=value`` pairs (enums by value), for log lines."""
    return " ".join(
        f"{f.name}={getattr(getattr(cfg, f.name), 'value', getattr(cfg, f.name))}" for f in fields(cfg)
    )


SCHEMAS: dict[str, type] = {
    "train_schema": TrainJob,
    "translate_schema": TranslateJob,
    "evaluate_schema": EvaluateJob,
    "average_schema": AverageJob,
    "card_schema": CardJob,
    "inspect_schema": InspectJob,
    "serve_schema": ServeJob,
    "lm_schema": LmJob,
    "sample_schema": SampleJob,
    "cells_schema": CellsJob,
}


def register_configs(only: str | None = None) -> None:
    """Store the job schemas (or the one named ``only``) in Hydra's ConfigStore (called by each CLI
    before composing)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        if only is None or name == only:
            cs.store(name=name, node=node)


def repo_root() -> Path:
    """The source checkout holding this package (conf/, data/, recipes/ live there)."""
    return Path(__file__).resolve().parent.parent


def conf_dir() -> Path:
    """conf/ of the source checkout, or the copy installed as package data (nmt/conf)."""
    here = repo_root() / "conf"
    if (here / "train.yaml").is_file():
        return here
    return Path(__file__).resolve().parent / "conf"
