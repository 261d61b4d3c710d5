"""A character model's cells over a text: which ones follow a simple feature, shown as HTML.

Karpathy, Johnson & Fei-Fei (2015, "Visualizing and Understanding Recurrent Networks") found
cells of character LSTMs that turn on inside quotes, count the position in a line, or track
nesting in brackets. ``follow`` measures it: for every unit of a layer, the Pearson correlation
of its activation along the text (tanh of the cell state for an LSTM, the hidden state for a GRU
or a simple RNN) with a feature of the text, computed the same way character by character.
``html`` colours every character by one unit's activation (blue negative, red positive), as in
their figures.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Callable

import torch

from nmt import NmtError


def inside_quotes(text: str) -> list[float]:
    """1 for characters inside "..." or “...”, the quote marks included, else 0."""
    out, inside = [], False
    for ch in text:
        if ch == "“" or (ch == '"' and not inside):
            inside = True
            out.append(1.0)
        elif ch == "”" or (ch == '"' and inside):
            out.append(1.0)
            inside = False
        else:
            out.append(1.0 if inside else 0.0)
        if ch == "\n":
            inside = False
    return out


def bracket_depth(text: str) -> list[float]:
    """How many brackets ((, [, {) are open at each character."""
    out, depth = [], 0
    for ch in text:
        if ch in "([{":
            depth += 1
        out.append(float(depth))
        if ch in ")]}":
            depth = max(0, depth - 1)
    return out


def line_position(text: str) -> list[float]:
    """The character's position in its line."""
    out, pos = [], 0
    for ch in text:
        out.append(float(pos))
        pos = 0 if ch == "\n" else pos + 1
    return out


def word_boundary(text: str) -> list[float]:
    """1 for characters that are not part of a word (spaces, punctuation), else 0."""
    return [0.0 if ch.isalnum() else 1.0 for ch in text]


FEATURES: dict[str, Callable[[str], list[float]]] = {
    "quotes": inside_quotes,
    "brackets": bracket_depth,
    "line_position": line_position,
    "word_boundary": word_boundary,
}


def follow(activations: torch.Tensor, text: str, feature: str) -> torch.Tensor:
    """activations (steps, units) over ``text`` -> each unit's correlation with the feature (units,)."""
    if feature not in FEATURES:
        raise NmtError(f"feature={feature!r}: choose one of {', '.join(FEATURES)}")
    f = torch.tensor(FEATURES[feature](text), dtype=torch.float64)  # (steps,)
    a = activations.double()  # (steps, units)
    if f.std() == 0:
        raise NmtError(
            f"the text never changes its {feature} feature: nothing to correlate (try another text)"
        )
    fa = (f - f.mean()) / f.std()
    za = (a - a.mean(0)) / a.std(0).clamp(min=1e-12)
    return (za * fa.unsqueeze(1)).mean(0) * len(f) / (len(f) - 1)  # (units,) Pearson r


def colour(value: float) -> str:
    """-1 -> blue, 0 -> white, 1 -> red."""
    v = max(-1.0, min(1.0, value))
    fade = int(255 * (1 - abs(v)))
    return f"rgb(255,{fade},{fade})" if v > 0 else f"rgb({fade},{fade},255)"


def html(text: str, values: list[float], title: str, report: list[str]) -> str:
    """A page with ``text`` coloured character by character by ``values`` (in [-1, 1])."""
    spans = []
    for ch, v in zip(text, values):
        shown = "&nbsp;" if ch == " " else "<br>\n" if ch == "\n" else html_lib.escape(ch)
        spans.append(f'<span style="background:{colour(v)}" title="{v:+.2f}">{shown}</span>')
    items = "".join(f"<li>{html_lib.escape(r)}</li>" for r in report)
    return (
        "<!doctype html>\n<meta charset='utf-8'>\n"
        f"<title>{html_lib.escape(title)}</title>\n"
        "<style>body{font-family:monospace;font-size:14px;line-height:1.6;max-width:60em;margin:2em}"
        "span{white-space:pre}</style>\n"
        f"<h3>{html_lib.escape(title)}</h3>\n<ul>{items}</ul>\n<p>{''.join(spans)}</p>\n"
    )
