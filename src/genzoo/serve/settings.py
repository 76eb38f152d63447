"""`genzoo serve`'s settings: where it listens, who may call it, and the limits that keep it up under load."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"  # loopback only unless asked
    port: int = 8000
    api_key: str | None = None  # when set: every API route needs `Authorization: Bearer KEY` (401 otherwise)
    model_name: str | None = None  # the id clients name in `model` (default: the directory's name)
    cors_origins: list[str] = field(default_factory=list)  # none: no CORS headers (browsers refuse other origins)
    max_batch: int = 8  # decoding rows run together (continuous batching)
    max_queue: int = 64  # requests waiting beyond the running ones; more get 429
    max_context: int = 2048  # prompt + max_tokens per request; also the KV cache's length (min with the model's)
    max_tokens: int = 1024  # the largest max_tokens a request may ask
    max_n: int = 8  # completions per request (`n`, and prompts x n for a list of prompts)
    max_inputs: int = 256  # texts per embeddings request, queries per index request
    max_body_bytes: int = 2 * 1024 * 1024  # request bodies larger than this get 413
    max_images: int = 16  # images per /v1/images request
    max_steps: int = 1000  # diffusion steps per image request

    def __post_init__(self):
        for name in ("max_batch", "max_queue", "max_context", "max_tokens", "max_n", "max_inputs", "max_body_bytes",
                     "max_images", "max_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}={v!r} is invalid: a positive integer")
        if not (isinstance(self.port, int) and 0 <= self.port < 65536):
            raise ConfigError(f"port={self.port!r} is invalid: 0..65535")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key is empty: give a key, or none for an open server")
