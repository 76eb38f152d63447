"""Embeddings into a vector index: build from the user's texts with any genzoo encoder, add / delete / upsert
by id, query top-k with metadata filters, persist, reopen; a `Retriever` puts passages into an LM's prompt.

Backends behind one interface (`backend.Backend`, registered in `BACKENDS`): `faiss` (embedded, the default:
SQLite rows + faiss exact / HNSW / IVF search, every write crash-safe) and `qdrant` (qdrant-client: local mode
or a server URL, for indexes that outgrow one machine).
"""

from .backend import BACKENDS, Backend, Hit
from .embedder import DEFAULT_MODEL, Embedder
from .index import Index, read_manifest
from .retriever import Retriever
from .sources import Chunk, Chunker, Document, read_source
from . import faiss_backend, qdrant_backend  # noqa: F401,E402  (register the backends)

__all__ = ["BACKENDS", "Backend", "Chunk", "Chunker", "DEFAULT_MODEL", "Document", "Embedder", "Hit", "Index",
           "Retriever", "read_manifest", "read_source"]
