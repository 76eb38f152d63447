"""Greedy span decoding (GLiNER, Zaratiana et al., 2023, arXiv 2311.08526, sec. 2.4), as the `gliner` package
decodes: candidates (spans whose probability for a type is above the threshold) are taken by decreasing score and
kept unless they clash with one already kept.

- flat_ner=True: kept spans may not overlap at all;
- flat_ner=False (nested): they may nest (one inside the other) but not partly overlap;
- multi_label=True: the same span may be kept with several types.
"""

from __future__ import annotations

from typing import NamedTuple


class Candidate(NamedTuple):
    start: int  # first word (inclusive)
    end: int  # last word (inclusive)
    label: int  # index into the label list
    score: float


def clash(a: Candidate, b: Candidate, flat_ner: bool, multi_label: bool) -> bool:
    if (a.start, a.end) == (b.start, b.end):
        return not multi_label
    disjoint = a.start > b.end or b.start > a.end
    if flat_ner:
        return not disjoint
    nested = (a.start <= b.start and a.end >= b.end) or (b.start <= a.start and b.end >= a.end)
    return not (disjoint or nested)


def greedy(candidates: list[Candidate], flat_ner: bool = True, multi_label: bool = False) -> list[Candidate]:
    """The kept candidates, by start. `candidates` come in (start, width, type) order, which breaks score ties as the
    package's torch.where order does."""
    kept: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: -c.score):  # stable: ties keep (start, width, type) order
        if not any(clash(c, k, flat_ner, multi_label) for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.start)  # stable: equal starts in the order they were kept
