"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import clip, decoder, diffusion, encoder, gato, gliner, seq2seq, vl  # noqa: F401
