"""Hypotheses and references in, SacreBLEU BLEU and chrF (with their signatures) out.

The BLEU tokenizer follows the target language (``ja`` -> ``ja-mecab``, ``zh`` -> ``zh``,
``ko`` -> ``ko-mecab``, else ``13a``) unless given. For a pre-segmented reference (words separated
by spaces, as in small_parallel_enja) two BLEU figures are reported: ``-tok none`` on the text as
segmented (comparable with published numbers on such a corpus) and the language's tokenizer on
the text with the spaces removed (comparable with raw-text systems). chrF ignores spaces.

``repetition`` measures the failure a BLEU figure hides: the share of outputs in which a span of
two or more tokens (the BLEU tokenizer's) is immediately said again ("A B A B"), the loop an
attentional decoder falls into when its attention stalls; scored for the references too, since
language repeats itself now and then on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF

from nmt import NmtError

TOKENIZERS = {"ja": "ja-mecab", "zh": "zh", "ko": "ko-mecab"}


@dataclass
class Score:
    metric: str  # "BLEU" or "chrF"
    score: float
    signature: str
    detail: str = ""  # what was scored, e.g. "segmented text, -tok none"

    def as_dict(self) -> dict:
        return asdict(self)


def default_tokenize(lang: str) -> str:
    return TOKENIZERS.get(lang, "13a")


def strip_spaces(lines: list[str]) -> list[str]:
    return ["".join(s.split()) for s in lines]


def bleu(hyps: list[str], refs: list[str], tokenize: str, detail: str = "") -> Score:
    metric = BLEU(tokenize=tokenize)
    s = metric.corpus_score(hyps, [refs])
    return Score("BLEU", s.score, str(metric.get_signature()), detail)


def chrf(hyps: list[str], refs: list[str], detail: str = "") -> Score:
    metric = CHRF()
    s = metric.corpus_score(hyps, [refs])
    return Score("chrF", s.score, str(metric.get_signature()), detail)


def has_repeat(tokens: list[str], min_n: int = 2) -> bool:
    """Whether some span of ``min_n`` or more tokens is followed at once by the same span."""
    for n in range(min_n, len(tokens) // 2 + 1):
        for i in range(len(tokens) - 2 * n + 1):
            if tokens[i : i + n] == tokens[i + n : i + 2 * n]:
                return True
    return False


def repetition(lines: list[str], tokenize: str, min_n: int = 2) -> float:
    """The share of ``lines`` (0..1) with a span of ``min_n`` or more tokens said twice in a row."""
    if not lines:
        return 0.0
    split = BLEU(tokenize=tokenize).tokenizer
    return sum(has_repeat(split(line).split(), min_n) for line in lines) / len(lines)


def score_all(
    hyps: list[str], refs: list[str], lang: str, tokenize: str | None = None, segmented: bool = False
) -> list[Score]:
    """BLEU (both ways for segmented text) and chrF; the first Score is the headline BLEU."""
    if len(hyps) != len(refs):
        raise NmtError(
            f"{len(hyps)} hypotheses but {len(refs)} references: the files must have the same number of lines"
        )
    if not hyps:
        raise NmtError("nothing to score: no lines")
    tok = tokenize or default_tokenize(lang)
    if not segmented:
        return [bleu(hyps, refs, tok), chrf(hyps, refs)]
    h, r = strip_spaces(hyps), strip_spaces(refs)
    return [
        bleu(hyps, refs, "none", "segmented text, -tok none"),
        bleu(h, r, tok, f"spaces removed, -tok {tok}"),
        chrf(h, r, "spaces removed"),
    ]
