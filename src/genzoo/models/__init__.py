"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import clip, decoder, diffusion, encoder, gan, seq2seq, tabular  # noqa: F401
