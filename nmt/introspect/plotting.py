"""Pictures with Japanese in them: matplotlib with a fallback font that has the glyphs.

matplotlib's default font (DejaVu Sans) has no kana or kanji: Japanese pieces come out as empty
boxes with a "Glyph missing" warning. ``japanese_rc()`` registers IPAexGothic, shipped by the
``matplotlib-fontja`` package (a dependency of nmt), and puts it after DejaVu Sans in the font
family, so Latin text keeps its usual look and Japanese is drawn. Use it as
``with plt.rc_context(japanese_rc()):``; nothing global is changed.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def japanese_font() -> str | None:
    """The family name of the registered Japanese font, or None if the package is missing."""
    from matplotlib import font_manager

    try:
        from matplotlib_fontja import get_font_ttf_path
    except ImportError:
        log.warning("matplotlib-fontja is not installed: Japanese text in pictures will be boxes")
        return None
    path = str(get_font_ttf_path())
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def japanese_rc() -> dict:
    import matplotlib

    matplotlib.use("Agg")
    name = japanese_font()
    return {"font.family": ["DejaVu Sans", name] if name else ["DejaVu Sans"], "axes.unicode_minus": False}


def attention_figure(
    src_pieces: list[str],
    tgt_pieces: list[str],
    attention: torch.Tensor | list,
    title: str = "",
    target: str = "translation",
) -> Figure:
    """A heatmap of attention (target pieces x source pieces); call it, and draw or save what it
    returns, inside ``plt.rc_context(japanese_rc())``. The caller closes the figure."""
    import matplotlib.pyplot as plt

    att = torch.as_tensor(attention, dtype=torch.float32)  # (target pieces, source pieces)
    fig, ax = plt.subplots(
        figsize=(max(4.0, 0.45 * len(src_pieces) + 2), max(3.0, 0.4 * len(tgt_pieces) + 1.5))
    )
    im = ax.imshow(att.numpy(), aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_pieces)), src_pieces, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(tgt_pieces)), tgt_pieces, fontsize=9)
    ax.set_xlabel("source")
    ax.set_ylabel(target)  # what the rows are: the model's translation, or a reference
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def plot_attention(
    src_pieces: list[str], tgt_pieces: list[str], attention: torch.Tensor | list, path: str, title: str = ""
) -> None:
    """A heatmap of attention (target pieces x source pieces) as a PNG."""
    import matplotlib.pyplot as plt

    with plt.rc_context(japanese_rc()):
        fig = attention_figure(src_pieces, tgt_pieces, attention, title)
        fig.savefig(path, dpi=120)
        plt.close(fig)
