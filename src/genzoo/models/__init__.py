"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import clip, decoder, diffusion, encoder, fusion, gato, gliner, seq2seq, vl, vq  # noqa: F401
