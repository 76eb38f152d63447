"""Model genres and systems; importing this package registers every preset and checkpoint format."""

from . import clip, decoder, diffusion, encoder, fusion, seq2seq, vq  # noqa: F401
