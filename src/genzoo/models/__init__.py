"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import clip, decoder, diffusion, encoder, fusion, gan, gato, gliner, seq2seq, tabular, vl, vq  # noqa: F401
