"""The FastAPI application of `genzoo serve`: the guard (API key, body size), CORS only when origins are given,
OpenAI-shaped errors, GET /health and /v1/models, the text routes (`lm.py`) over the continuous-batching
scheduler, the one-call routes (`tasks.py`) on the worker thread, and the web page (`static/`, shipped in the
package: no CDN)."""

from __future__ import annotations

import contextlib
import time
from importlib import resources

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from . import errors, lm, tasks
from .guard import Guard
from .scheduler import Scheduler
from .served import Served
from .settings import ServeSettings
from .worker import Worker

STATIC = resources.files("genzoo.serve") / "static"


def create_app(served: Served, settings: ServeSettings | None = None) -> FastAPI:
    """The app; its scheduler and worker start with the app's lifespan (uvicorn, or `with TestClient(app)`)."""
    settings = settings or ServeSettings()
    if settings.model_name:
        served.name = settings.model_name
    state = {"scheduler": None, "worker": None, "started": int(time.time())}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = Worker(settings.max_queue, settings.max_inputs).start()
        state["worker"] = worker
        if served.index_path is not None:
            worker.call(served.open_index)  # on the thread that will query it
        if "completions" in served.capabilities:
            state["scheduler"] = Scheduler(served.model, served.tokenizer, max_batch=settings.max_batch,
                                           max_len=settings.max_context, max_queue=settings.max_queue).start()
        try:
            yield
        finally:
            if state["scheduler"] is not None:
                state["scheduler"].stop()
            worker.stop()
            if served.index is not None:
                served.index.close()

    app = FastAPI(title="genzoo", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.serve = state
    app.state.settings = settings
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Guard, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)

    @app.get("/health")
    async def health():
        sched = state["scheduler"]
        if sched is not None and not sched.alive:
            return JSONResponse({"status": "error", "error": sched.error or "the scheduler has stopped"}, 503)
        body = {"status": "ok", "model": served.name}
        if sched is not None:
            body["decoding"] = {**sched.load(), **sched.stats.as_dict()}
        return body

    @app.get("/v1/models")
    async def models():
        sched = state["scheduler"]
        info = {"kind": served.kind, "capabilities": served.capabilities, "routes": served.routes()}
        if sched is not None:
            info.update(context=sched.max_len, max_tokens=settings.max_tokens, max_batch=settings.max_batch,
                        chat_template="chat" in served.capabilities)
        if "images" in served.capabilities:
            cfg = served.model.config
            info.update(image_size=cfg.image_size, channels=cfg.channels, n_classes=getattr(cfg, "n_classes", 0))
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": state["started"],
                                            "owned_by": "genzoo", "genzoo": info}]}

    lm.add_routes(app, served, settings, lambda: state["scheduler"])
    tasks.add_routes(app, served, settings, _Lazy(lambda: state["worker"]))

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


class _Lazy:
    """The worker, which exists once the app has started."""

    def __init__(self, get):
        self._get = get

    def __getattr__(self, name):
        return getattr(self._get(), name)
