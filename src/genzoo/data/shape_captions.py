"""Captions of procedural shapes from templates ("a red cone", "a small blue torus lying on its side"), the words
they use, reading a caption back into (shape, colour, size, pose), and the contrastive prompts of a caption (the
same template with another shape or another colour), which the RL practices of `models.diffusion.rl.prompts` use.

Two disjoint template sets: the ones training sees, and the ones held out for evaluation (and for the prompts a
fine-tuned model is judged on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import InputError
from .shapes import COLOUR_NAMES, SHAPE_NAMES, SIZE_NAMES, Objects

TRAIN_TEMPLATES = [
    "a {desc}", "a 3d model of a {desc}", "a render of a {desc}", "one {desc}", "the {desc}",
    "a {desc} on a dark background", "a simple {desc}", "an object: a {desc}",
]
HELD_OUT_TEMPLATES = [
    "a picture of a {desc}", "a view of a {desc}", "there is a {desc}", "a toy {desc}",
]
LYING, UPRIGHT = "lying on its side", "standing upright"


def describe(shape: str, colour: str, size: str | None = None, pose: str | None = None) -> str:
    """"[size ]colour shape[ pose]", e.g. "small blue torus lying on its side"."""
    return " ".join(w for w in (size, colour, shape, pose) if w)


def captions(objs: Objects, generator: torch.Generator, templates: list[str] | None = None,
             p_size: float = 0.5, p_pose: float = 0.5) -> list[str]:
    """One caption per object: a random template; the size named with probability p_size, the pose of a shape with
    an axis with probability p_pose. Colour and shape are always named."""
    templates = TRAIN_TEMPLATES if templates is None else templates
    g = generator
    n = len(objs)
    which = torch.randint(len(templates), (n,), generator=g)
    say_size, say_pose = torch.rand(n, generator=g) < p_size, torch.rand(n, generator=g) < p_pose
    axial = objs.axial()
    out = []
    for i in range(n):
        size = SIZE_NAMES[int(objs.size[i])] if say_size[i] else None
        pose = (LYING if objs.lying[i] else UPRIGHT) if say_pose[i] and axial[i] else None
        desc = describe(SHAPE_NAMES[int(objs.shape[i])], COLOUR_NAMES[int(objs.colour[i])], size, pose)
        out.append(templates[int(which[i])].format(desc=desc))
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def vocabulary() -> set[str]:
    """Every word a training caption can contain."""
    vocab = set(SHAPE_NAMES) | set(COLOUR_NAMES) | set(SIZE_NAMES) | set(words(LYING)) | set(words(UPRIGHT))
    for t in TRAIN_TEMPLATES:
        vocab |= set(words(t.replace("{desc}", "")))
    return vocab


@dataclass
class Parsed:
    """What a caption names (None where it names nothing), and the words no training caption contains."""

    shape: str | None
    colour: str | None
    size: str | None
    lying: bool | None
    unseen: list[str]


def parse(text: str) -> Parsed:
    """Read a caption back: the first shape, colour and size word, the pose phrase; words never seen in training."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"a prompt must be a non-empty string, got {text!r}")
    ws = words(text)
    first = lambda names: next((w for w in ws if w in names), None)  # noqa: E731
    lying = True if LYING in text.lower() else False if UPRIGHT in text.lower() else None
    vocab = vocabulary()
    unseen = list(dict.fromkeys(w for w in ws if w not in vocab))
    return Parsed(first(SHAPE_NAMES), first(COLOUR_NAMES), first(SIZE_NAMES), lying, unseen)


def contrastive(text: str) -> list[str]:
    """The caption with its shape word replaced by every other shape, then its colour word by every other colour
    (the same template otherwise); [] when it names neither."""
    p = parse(text)
    out = []
    for word, names in ((p.shape, SHAPE_NAMES), (p.colour, COLOUR_NAMES)):
        if word is None:
            continue
        for other in names:
            if other != word:
                out.append(re.sub(rf"\b{word}\b", other, text, count=1))
    return out


def all_captions(templates: list[str] | None = None) -> list[str]:
    """Every caption the templates can write (each shape, colour, size or none, pose or none): a tokenizer's corpus."""
    out = []
    for t in templates or TRAIN_TEMPLATES:
        for shape in SHAPE_NAMES:
            for colour in COLOUR_NAMES:
                for size in (None, *SIZE_NAMES):
                    for pose in (None, LYING, UPRIGHT):
                        out.append(t.format(desc=describe(shape, colour, size, pose)))
    return out
