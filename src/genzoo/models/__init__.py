"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import clip, decoder, diffusion, encoder, gliner, seq2seq, vl  # noqa: F401
