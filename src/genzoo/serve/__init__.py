"""`genzoo serve`: a model behind the HTTP API its clients already speak (OpenAI's: /v1/completions,
/v1/chat/completions with the model's chat template and server-sent-event streaming, /v1/embeddings, /v1/models),
genzoo's own routes for the rest (/v1/ner, /v1/classify, /v1/images, /v1/index/query), and a web page at / to try
it. Decoding steps of concurrent requests run as one batch (continuous batching over a static KV cache,
`scheduler.py`).

    from genzoo.serve import ServeSettings, create_app, load_served
    app = create_app(load_served("runs/llama-nano"), ServeSettings(api_key="secret"))   # any ASGI server runs it
"""

from .app import create_app
from .runner import BackgroundServer, run
from .served import Served, load_served
from .settings import ServeSettings

__all__ = ["BackgroundServer", "ServeSettings", "Served", "create_app", "load_served", "run"]
