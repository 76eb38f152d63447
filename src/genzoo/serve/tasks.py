"""The routes that are one model call each, run on the worker thread (`worker.Worker`):

    POST /v1/embeddings     OpenAI's shape; texts of concurrent requests are embedded together (one batch)
    POST /v1/ner            {"text", "labels", "threshold"} -> {"entities": [{"start", "end", "text", "label", "score"}]}
    POST /v1/classify       {"image": base64, "labels", "template"} -> {"labels": [{"label", "score"}], best first}
    POST /v1/images         {"labels" | "n", "steps", "guidance_scale", "seed", ...} -> {"data": [{"b64_json": PNG}]}
    POST /v1/index/query    {"query", "k", "where"} -> {"data": [{"query", "hits": [...]}]}

Each answers 404 with the reason where the served model cannot do it.
"""

from __future__ import annotations

import base64
import binascii
import io
import time

import numpy as np
import torch
from fastapi import FastAPI

from .errors import APIError
from .schemas import ClassifyRequest, EmbeddingRequest, ImagesRequest, IndexQueryRequest, NerRequest

MAX_IMAGE_PIXELS = 4096 * 4096  # decoded size allowed for /v1/classify (a small PNG can decode to gigabytes)


def add_routes(app: FastAPI, served, settings, worker) -> None:
    def need(capability: str, route: str, body) -> None:
        if capability not in served.capabilities:
            raise APIError(404, f"model {served.name!r} ({served.kind}) does not serve {route}; this server serves "
                           f"{served.routes()}", None, "unsupported_route")
        if body.model is not None and body.model != served.name:
            raise APIError(404, f"model {body.model!r} is not served here; this server serves {served.name!r}",
                           "model", "model_not_found")

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest):
        need("embeddings", "/v1/embeddings", body)
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not all(isinstance(t, str) for t in texts):
            raise APIError(400, "input as token ids is not supported: send the text", "input")
        if len(texts) > settings.max_inputs:
            raise APIError(400, f"{len(texts)} inputs; this server embeds at most {settings.max_inputs} per request",
                           "input")
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise APIError(400, f"input[{empty[0]}] is empty", "input")
        model, tok = served.encoder

        def embed(batch: list[str]):  # (len(batch), D) and each text's token count
            emb = model.encode(batch, tok).float().cpu().numpy()
            return [(row, len(tok.encode(t))) for row, t in zip(emb, batch)]

        rows = await worker.run(embed, texts, key="embeddings")
        dim = rows[0][0].shape[0]
        if body.dimensions is not None and body.dimensions != dim:
            raise APIError(400, f"dimensions={body.dimensions}: this model's embeddings have {dim} dimensions (it "
                           "cannot shorten them)", "dimensions")
        data = []
        for i, (row, _) in enumerate(rows):
            vec = (base64.b64encode(row.astype("<f4").tobytes()).decode() if body.encoding_format == "base64"
                   else row.tolist())
            data.append({"object": "embedding", "index": i, "embedding": vec})
        n = sum(t for _, t in rows)
        return {"object": "list", "data": data, "model": served.name, "usage": {"prompt_tokens": n, "total_tokens": n}}

    @app.post("/v1/ner")
    async def ner(body: NerRequest):
        need("ner", "/v1/ner", body)

        def run():
            return served.model.predict_entities(body.text, body.labels, threshold=body.threshold,
                                                 flat_ner=body.flat_ner, multi_label=body.multi_label)

        entities = await worker.run(run)
        return {"object": "ner", "model": served.name,
                "entities": [{"start": int(e["start"]), "end": int(e["end"]), "text": e["text"], "label": e["label"],
                              "score": float(e["score"])} for e in entities]}

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest):
        need("classify", "/v1/classify", body)
        if body.template.count("{}") != 1:
            raise APIError(400, f"template {body.template!r} must hold one '{{}}' where the label goes", "template")
        image = decode_image(body.image)
        scores = await worker.run(lambda: served.classifier(image, candidate_labels=body.labels,
                                                             hypothesis_template=body.template))
        return {"object": "classification", "model": served.name,
                "labels": [{"label": s["label"], "score": float(s["score"])} for s in scores]}

    @app.post("/v1/images")
    async def images(body: ImagesRequest):
        need("images", "/v1/images", body)
        if (body.labels is None) == (body.n is None):
            raise APIError(400, "give labels (class-conditional images, one per label) or n (unconditional), one of "
                           "them", "labels")
        count = len(body.labels) if body.labels is not None else body.n
        if count > settings.max_images:
            raise APIError(400, f"{count} images asked; this server makes at most {settings.max_images} per request",
                           "labels" if body.labels is not None else "n")
        if body.steps > settings.max_steps:
            raise APIError(400, f"steps={body.steps} is over this server's limit of {settings.max_steps}", "steps")
        cfg = served.model.config
        if cfg.image_size * body.scale > 2048:
            raise APIError(400, f"scale={body.scale}: {cfg.image_size * body.scale} pixels a side is over 2048",
                           "scale")
        n_classes = getattr(cfg, "n_classes", 0)
        if body.labels is not None and not n_classes:
            raise APIError(400, "this diffusion model is unconditional: give n, not labels", "labels")
        if body.labels is not None and any(not 0 <= label <= n_classes for label in body.labels):
            raise APIError(400, f"labels must be class ids in [0, {n_classes}] ({n_classes}: no class), got "
                           f"{body.labels}", "labels")

        def run():
            g = torch.Generator()
            g.manual_seed(body.seed) if body.seed is not None else g.seed()
            labels = None if body.labels is None else torch.tensor(body.labels)
            return served.model.sample(labels=labels, n=body.n if labels is None else None,
                                       num_inference_steps=body.steps, sampler=body.sampler, eta=body.eta,
                                       guidance_scale=body.guidance_scale, generator=g)

        x = await worker.run(run)  # (B, C, H, W) in [-1, 1]
        labels = body.labels or [None] * count
        return {"created": int(time.time()), "model": served.name,
                "data": [{"b64_json": png(img, body.scale), "label": label} for img, label in zip(x, labels)]}

    @app.post("/v1/index/query")
    async def index_query(body: IndexQueryRequest):
        need("index", "/v1/index/query", body)
        queries = [body.query] if isinstance(body.query, str) else body.query
        if len(queries) > settings.max_inputs:
            raise APIError(400, f"{len(queries)} queries; this server takes at most {settings.max_inputs} per "
                           "request", "query")
        if any(not q.strip() for q in queries):
            raise APIError(400, "a query is empty", "query")
        hits = await worker.run(lambda: served.index.query(queries, k=body.k, where=body.where))
        return {"object": "list", "model": served.name,
                "data": [{"query": q, "hits": [h.to_dict() for h in hs]} for q, hs in zip(queries, hits)]}


def decode_image(data: str):
    """A base64 PNG / JPEG / ... (or a data: URL) -> an RGB PIL image; a 400 naming `image` otherwise."""
    from PIL import Image, UnidentifiedImageError

    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "image is not valid base64", "image") from None
    try:
        img = Image.open(io.BytesIO(raw))
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise APIError(400, f"image is {img.width}x{img.height}; this server decodes at most {MAX_IMAGE_PIXELS} "
                           "pixels", "image")
        return img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise APIError(400, f"image cannot be read as a picture: {e}", "image") from None


def png(img: torch.Tensor, scale: int = 1) -> str:
    """An image (C, H, W) in [-1, 1] -> base64 PNG, each pixel a scale x scale block."""
    from PIL import Image

    a = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()  # (C, H, W)
    a = a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))  # (H, W) or (H, W, 3)
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
