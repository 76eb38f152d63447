"""The backend that scales past one machine: Qdrant through `qdrant-client`.

The same code talks to Qdrant's local mode (a folder inside the index directory: in-process, exact search,
one process at a time) and to a Qdrant server or cluster (`url=`: HNSW search, sharding and replication
configured on the server, any number of readers and writers). A chunk is a point whose id is a UUID derived
from (document id, chunk number) and whose payload holds the document id, chunk number, text and metadata.

Writes are not transactions here: an upsert deletes the documents' old points, then writes the new ones, so
a crash between the two leaves the document absent until it is written again (Qdrant's own write-ahead log
makes each of the two steps durable). The embedded faiss backend has no such window.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from .backend import BACKENDS, Backend, Hit, check_query, check_write
from .store import where_sql

NAMESPACE = uuid.UUID("6f1c1c52-5f0e-4a8e-9a43-9b1b3f0c2e27")
BATCH = 256


def _qdrant():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError:
        raise ConfigError("the qdrant index backend needs qdrant-client: pip install 'genzoo[index]'") from None
    return qdrant_client, models


def point_id(doc: str, chunk: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{doc}\0{chunk}"))


@BACKENDS.register("qdrant")
class QdrantBackend(Backend):
    name = "qdrant"

    def __init__(self, path: Path, dim: int, kind: str = "flat", params: dict | None = None, readonly: bool = False,
                 url: str | None = None, collection: str = "genzoo", create: bool = False):
        qdrant_client, self.m = _qdrant()
        if kind not in ("flat", "hnsw"):
            raise ConfigError(f"index kind {kind!r} is invalid for the qdrant backend: 'flat' (exact) or 'hnsw'")
        self.path, self.dim, self.kind, self.url, self.collection = Path(path), int(dim), kind, url, collection
        self.params = {"M": 16, "ef_construction": 100, "ef_search": 64, **(params or {})}
        try:
            self.client = (qdrant_client.QdrantClient(url=url) if url
                           else qdrant_client.QdrantClient(path=str(self.path / "qdrant")))
        except RuntimeError as e:  # local mode: another process holds the folder
            raise ConfigError(f"{self.path}: {e} (Qdrant's local mode serves one process; run a Qdrant server "
                              "and build with --url for concurrent readers and writers)") from None
        exists = self.client.collection_exists(collection)
        if create:
            if exists:
                raise ConfigError(f"Qdrant collection {collection!r} already exists at {url or self.path}")
            self.client.create_collection(
                collection, vectors_config=self.m.VectorParams(size=self.dim, distance=self.m.Distance.DOT),
                hnsw_config=self.m.HnswConfigDiff(m=self.params["M"], ef_construct=self.params["ef_construction"]))
            if url:  # a server filters and deletes by document through a payload index
                self.client.create_payload_index(collection, "doc", self.m.PayloadSchemaType.KEYWORD)
        elif not exists:
            raise ConfigError(f"Qdrant collection {collection!r} does not exist at {url or self.path}")
        size = self.client.get_collection(collection).config.params.vectors.size
        if size != self.dim:
            raise ConfigError(f"Qdrant collection {collection!r} holds {size}-dimensional vectors, "
                              f"the index {self.dim}")

    def _docs_filter(self, docs: list[str]):
        m = self.m
        return m.Filter(must=[m.FieldCondition(key="doc", match=m.MatchAny(any=list(docs)))])

    def _where(self, where: dict | None):
        where_sql(where)  # the same key and value rules as the embedded backend
        if not where:
            return None
        m, must = self.m, []
        for key, v in where.items():
            field = f"metadata.{key}"
            if v is None:
                must.append(m.IsNullCondition(is_null=m.PayloadField(key=field)))
            elif isinstance(v, float) and not v.is_integer():
                must.append(m.FieldCondition(key=field, range=m.Range(gte=v, lte=v)))
            else:
                value = int(v) if isinstance(v, float) else v  # 2.0 matches the stored integer 2
                must.append(m.FieldCondition(key=field, match=m.MatchValue(value=value)))
        return m.Filter(must=must)

    def _existing(self, docs: list[str]) -> list[str]:
        found = set()
        for i in range(0, len(docs), BATCH):
            part = docs[i:i + BATCH]
            points, _ = self.client.scroll(self.collection, scroll_filter=self._docs_filter(part), limit=len(part) * 64,
                                           with_payload=["doc"], with_vectors=False)
            found.update(p.payload["doc"] for p in points)
        return sorted(found)

    def write(self, chunks, vectors, mode):
        vectors = check_write(chunks, vectors, self.dim, mode)
        docs = list(dict.fromkeys(c.doc for c in chunks))
        existing = self._existing(docs)
        if existing and mode == "add":
            raise InputError(f"{len(existing)} document id(s) already in the index, e.g. {existing[0]!r}: "
                             "use upsert (genzoo index add --upsert) to replace them")
        if existing:
            self.delete(existing)
        m = self.m
        for i in range(0, len(chunks), BATCH):
            points = [m.PointStruct(id=point_id(c.doc, c.chunk), vector=v.tolist(),
                                    payload={"doc": c.doc, "chunk": c.chunk, "text": c.text, "metadata": c.metadata})
                      for c, v in zip(chunks[i:i + BATCH], vectors[i:i + BATCH])]
            self.client.upsert(self.collection, points=points, wait=True)

    def delete(self, docs):
        docs = list(docs)
        n = 0
        for i in range(0, len(docs), BATCH):
            f = self._docs_filter(docs[i:i + BATCH])
            k = self.client.count(self.collection, count_filter=f, exact=True).count
            if k:
                self.client.delete(self.collection, points_selector=self.m.FilterSelector(filter=f), wait=True)
            n += k
        return n

    def search(self, queries, k, where=None, exact=False):
        q = check_query(queries, k, self.dim)
        flt = self._where(where)
        params = None  # local mode always searches exactly (and warns about search parameters)
        if self.url:
            params = self.m.SearchParams(exact=exact or self.kind == "flat", hnsw_ef=max(self.params["ef_search"], k))
        out = []
        for row in q:
            r = self.client.query_points(self.collection, query=row.tolist(), limit=k, query_filter=flt,
                                         search_params=params, with_payload=True)
            out.append([Hit(p.payload["doc"], p.payload["chunk"], float(p.score), p.payload["text"],
                            p.payload["metadata"]) for p in r.points])
        return out

    def sample(self, n, seed=0):
        points, _ = self.client.scroll(self.collection, limit=4 * n, with_payload=False, with_vectors=True)
        vecs = np.array([p.vector for p in points], dtype=np.float32).reshape(-1, self.dim)
        return vecs[np.random.default_rng(seed).permutation(len(vecs))[:n]]

    def counts(self):
        m = self.m
        chunks = self.client.count(self.collection, exact=True).count
        first = m.Filter(must=[m.FieldCondition(key="chunk", match=m.MatchValue(value=0))])
        return self.client.count(self.collection, count_filter=first, exact=True).count, chunks

    def info(self) -> dict:
        files = None if self.url else sum(p.stat().st_size for p in (self.path / "qdrant").rglob("*") if p.is_file())
        return {"kind": self.kind, "params": self.params, "url": self.url, "collection": self.collection,
                "mode": "server" if self.url else "local (in-process, exact search, one process at a time)",
                "bytes_on_disk": files}

    def close(self) -> None:
        self.client.close()
