"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import (  # noqa: F401
    clip,
    decoder,
    diffusion,
    encoder,
    fusion,
    gan,
    gato,
    gliner,
    pointe,
    seq2seq,
    tabular,
    vl,
    vq,
)
