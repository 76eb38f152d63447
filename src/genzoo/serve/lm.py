"""POST /v1/completions and /v1/chat/completions: OpenAI's request and response shapes over the continuous-batching
scheduler. `stream: true` answers with server-sent events, one chunk per piece of text as tokens are decoded,
then `data: [DONE]`. A client that disconnects (mid-stream, or while waiting for a whole answer) cancels its
requests: the scheduler frees their rows before its next step."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .errors import APIError, ClientGone
from .sampling import Sampling
from .scheduler import QueueFull
from .scheduler import Request as Job
from .schemas import ChatRequest, CompletionRequest, _Sampling

POLL_S = 0.5  # how often a whole answer being waited for checks that its client is still there


class LMRoutes:
    def __init__(self, served, settings, scheduler):
        self.served, self.settings, self.scheduler = served, settings, scheduler
        self.tok = served.tokenizer
        cfg = served.model.config
        eos = {served.tokenizer.eos_id, getattr(cfg, "eos_token_id", None)}
        self.eos = sorted(int(e) for e in eos if isinstance(e, int))

    # ---- request -> jobs ---------------------------------------------------------------------------------------
    def sampling(self, body: _Sampling, max_tokens: int, index: int) -> Sampling:
        if body.logit_bias:
            try:
                bias = {int(k): float(v) for k, v in body.logit_bias.items()}
            except ValueError:
                raise APIError(400, "logit_bias keys must be token ids (integers as strings)", "logit_bias") from None
        else:
            bias = {}
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if any(not s for s in stop):
            raise APIError(400, "stop: a stop string is empty", "stop")
        seed = None if body.seed is None else body.seed + index  # n choices with one seed differ
        return Sampling(max_tokens=max_tokens, temperature=body.temperature,
                        top_p=None if body.top_p >= 1 else body.top_p,
                        top_k=body.top_k if body.top_k and body.top_k > 0 else None,
                        repetition_penalty=body.repetition_penalty, presence_penalty=body.presence_penalty,
                        frequency_penalty=body.frequency_penalty, logit_bias=bias,
                        min_tokens=min(body.min_tokens, max_tokens), seed=seed, stop=stop,
                        eos=[] if body.ignore_eos else self.eos)

    def check_lengths(self, prompts: list[list[int]], max_tokens: int | None, default) -> list[int]:
        """Each prompt's max_tokens (default(prompt length) when not given), within the server's limits."""
        limit, context = self.settings.max_tokens, self.scheduler.max_len
        if max_tokens is not None and max_tokens > limit:
            raise APIError(400, f"max_tokens={max_tokens} is over this server's limit of {limit} (--max-tokens)",
                           "max_tokens")
        out = []
        for p in prompts:
            if not p:
                raise APIError(400, "the prompt is empty (it encodes to no tokens)", "prompt")
            if len(p) >= context:
                raise APIError(400, f"the prompt has {len(p)} tokens; this server's context is {context} tokens "
                               "(prompt + max_tokens)", "prompt", "context_length_exceeded")
            m = max_tokens if max_tokens is not None else default(len(p))
            if len(p) + m > context:
                raise APIError(400, f"prompt ({len(p)} tokens) + max_tokens ({m}) = {len(p) + m} exceeds this "
                               f"server's context of {context} tokens", "max_tokens", "context_length_exceeded")
            out.append(m)
        return out

    def check_body(self, body: _Sampling, choices: int) -> None:
        if choices > self.settings.max_n:
            raise APIError(400, f"{choices} completions asked (prompts x n); this server gives at most "
                           f"{self.settings.max_n} per request", "n")
        if body.model is not None and body.model != self.served.name:
            raise APIError(404, f"model {body.model!r} is not served here; this server serves {self.served.name!r}",
                           "model", "model_not_found")

    async def submit(self, request: Request, prompts: list[list[int]], samplings: list[Sampling]):
        """Queue one job per choice; -> (jobs, event queue of (choice index, event))."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        jobs = []

        def emitter(i):
            def emit(event):
                try:
                    loop.call_soon_threadsafe(events.put_nowait, (i, event))
                except RuntimeError:  # the loop is closed: nobody is listening
                    pass
            return emit

        try:
            for i, (p, s) in enumerate(zip(prompts, samplings)):
                job = Job(p, s, emitter(i))
                self.scheduler.submit(job)
                jobs.append(job)
        except BaseException:
            for j in jobs:
                j.cancel()
            raise
        return jobs, events

    # ---- answers ---------------------------------------------------------------------------------------------
    async def collect(self, request: Request, jobs, events) -> tuple[list[str], list[str]]:
        """The whole answer of each job. Every POLL_S seconds, whether or not tokens are arriving, it checks whether the
        client has gone (a stream is cancelled by the server itself when its client goes); if so it cancels the
        jobs (`finally`) and raises ClientGone."""
        loop = asyncio.get_running_loop()
        texts, reasons = [""] * len(jobs), [None] * len(jobs)
        left = len(jobs)
        check = loop.time() + POLL_S
        try:
            while left:
                try:
                    i, (kind, value) = await asyncio.wait_for(events.get(), timeout=max(0.0, check - loop.time()))
                except asyncio.TimeoutError:
                    kind = None
                if loop.time() >= check:
                    if await request.is_disconnected():
                        raise ClientGone()
                    check = loop.time() + POLL_S
                if kind is None:
                    continue
                if kind == "text":
                    texts[i] += value
                elif kind == "done":
                    reasons[i] = value
                    left -= 1
                else:
                    raise APIError(503 if "shutting down" in value else 500, value)
        finally:
            for j in jobs:
                if j.finish_reason is None:
                    j.cancel()
        return texts, reasons

    async def stream(self, request: Request, jobs, events, chunk, first=None, usage=None):
        """Server-sent events: chunk(i, text, finish_reason) per piece; first(i) opens each choice (chat's role);
        usage() the closing usage chunk (stream_options.include_usage)."""
        left = len(jobs)
        try:
            if first is not None:
                for i in range(len(jobs)):
                    yield _sse(first(i))
            while left:
                i, (kind, value) = await events.get()
                if kind == "text":
                    yield _sse(chunk(i, value, None))
                elif kind == "done":
                    left -= 1
                    yield _sse(chunk(i, None, value))
                else:
                    yield _sse({"error": {"message": value, "type": "server_error", "param": None, "code": None}})
                    return
            if usage is not None:
                yield _sse(usage())
            yield "data: [DONE]\n\n"
        finally:  # the client went away (the response was cancelled) or the stream ended
            for j in jobs:
                if j.finish_reason is None:
                    j.cancel()

    # ---- routes ----------------------------------------------------------------------------------------------
    async def completions(self, body: CompletionRequest, request: Request):
        if body.logprobs is not None:
            raise APIError(400, "logprobs are not supported by this server", "logprobs")
        if body.best_of is not None and body.best_of > 1:
            raise APIError(400, "best_of > 1 is not supported by this server", "best_of")
        if body.suffix is not None:
            raise APIError(400, "suffix (insertion) is not supported by this server", "suffix")
        texts, prompts = self.prompts(body.prompt)
        self.check_body(body, len(prompts) * body.n)
        limits = self.check_lengths(prompts, body.max_tokens, lambda p: 16)
        rows = [(k, j) for k in range(len(prompts)) for j in range(body.n)]  # choice index = k * n + j
        jobs, events = await self.submit(request, [prompts[k] for k, _ in rows],
                                         [self.sampling(body, limits[k], j) for k, j in rows])
        rid, created, name = f"cmpl-{uuid.uuid4().hex}", int(time.time()), self.served.name
        echo = [texts[k] if body.echo else "" for k, _ in rows]
        n_prompt = sum(len(p) for p in prompts)

        def usage_of():
            done = sum(j.completion_tokens for j in jobs)
            return {"prompt_tokens": n_prompt, "completion_tokens": done, "total_tokens": n_prompt + done}

        if body.stream:
            sent = [False] * len(jobs)

            def chunk(i, text, reason):
                if not sent[i]:
                    text, sent[i] = echo[i] + (text or ""), True
                return {"id": rid, "object": "text_completion", "created": created, "model": name,
                        "choices": [{"index": i, "text": text or "", "logprobs": None, "finish_reason": reason}]}

            def closing():  # the usage chunk (stream_options.include_usage)
                return {"id": rid, "object": "text_completion", "created": created, "model": name, "choices": [],
                        "usage": usage_of()}

            usage = closing if body.stream_options is not None and body.stream_options.include_usage else None
            return _sse_response(self.stream(request, jobs, events, chunk, usage=usage))
        outs, reasons = await self.collect(request, jobs, events)
        return JSONResponse({"id": rid, "object": "text_completion", "created": created, "model": name,
                             "choices": [{"index": i, "text": echo[i] + t, "logprobs": None, "finish_reason": r}
                                         for i, (t, r) in enumerate(zip(outs, reasons))],
                             "usage": usage_of()})

    def prompts(self, prompt) -> tuple[list[str], list[list[int]]]:
        """OpenAI's prompt forms -> (texts, token ids): a text, texts, token ids, lists of token ids. Texts are
        encoded as `genzoo generate` encodes a prompt (with the tokenizer's special tokens)."""
        if isinstance(prompt, str):
            prompt = [prompt]
        if all(isinstance(p, str) for p in prompt):
            return list(prompt), [self.tok.encode(p) for p in prompt]
        rows = [prompt] if all(isinstance(t, int) for t in prompt) else list(prompt)
        vocab = self.served.model.config.vocab_size
        for r in rows:
            bad = [t for t in r if not 0 <= t < vocab]
            if bad:
                raise APIError(400, f"prompt token ids {bad[:5]} are outside the vocabulary [0, {vocab})", "prompt")
        return [self.tok.decode(r) for r in rows], rows

    async def chat(self, body: ChatRequest, request: Request):
        if "chat" not in self.served.capabilities:
            raise APIError(404, f"model {self.served.name!r} has no chat template (tokenizer_config.json "
                           "'chat_template', chat_template.jinja or GGUF metadata): use /v1/completions", None,
                           "no_chat_template")
        if body.logprobs:
            raise APIError(400, "logprobs are not supported by this server", "logprobs")
        if body.tools:
            raise APIError(400, "tools (function calling) are not supported by this server", "tools")
        if body.response_format and body.response_format.get("type", "text") != "text":
            raise APIError(400, f"response_format {body.response_format.get('type')!r} is not supported (only "
                           "'text')", "response_format")
        self.check_body(body, body.n)
        messages = []
        for k, m in enumerate(body.messages):
            content = m.content
            if isinstance(content, list):
                other = [p.type for p in content if p.type != "text"]
                if other:
                    raise APIError(400, f"messages[{k}].content: {other[0]} parts are not supported (text only)",
                                   f"messages[{k}].content")
                content = "\n".join(p.text for p in content)
            messages.append({"role": "system" if m.role == "developer" else m.role, "content": content or "",
                             **({"name": m.name} if m.name else {})})
        ids = self.tok.apply_chat_template(messages, add_generation_prompt=body.add_generation_prompt, tokenize=True,
                                           **(body.chat_template_kwargs or {}))
        context = self.scheduler.max_len
        asked = body.max_completion_tokens or body.max_tokens
        limits = self.check_lengths([ids], asked, lambda p: max(1, min(self.settings.max_tokens, context - p)))
        jobs, events = await self.submit(request, [ids] * body.n,
                                         [self.sampling(body, limits[0], i) for i in range(body.n)])
        rid, created, name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), self.served.name

        def usage_of():
            done = sum(j.completion_tokens for j in jobs)
            return {"prompt_tokens": len(ids), "completion_tokens": done, "total_tokens": len(ids) + done}

        if body.stream:
            def head(i):
                return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                        "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None}]}

            def chunk(i, text, reason):
                delta = {"content": text} if text is not None else {}
                return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                        "choices": [{"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}]}

            def closing():  # the usage chunk (stream_options.include_usage)
                return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name, "choices": [],
                        "usage": usage_of()}

            usage = closing if body.stream_options is not None and body.stream_options.include_usage else None
            return _sse_response(self.stream(request, jobs, events, chunk, first=head, usage=usage))
        outs, reasons = await self.collect(request, jobs, events)
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": name,
                             "choices": [{"index": i, "message": {"role": "assistant", "content": t},
                                          "logprobs": None, "finish_reason": r}
                                         for i, (t, r) in enumerate(zip(outs, reasons))],
                             "usage": usage_of()})


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class _EventStream(StreamingResponse):
    """Server-sent events whose generator is always closed when the response ends. Starlette cancels the sending
    task when the client disconnects; if that task was blocked writing (a client that stopped reading: the socket's
    buffers are full) rather than waiting on the generator, the generator stays suspended at its `yield` and its
    `finally` (which frees the rows) would only run when garbage collection finds it."""

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def _sse_response(gen) -> StreamingResponse:
    return _EventStream(gen, media_type="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def add_routes(app: FastAPI, served, settings, scheduler_of) -> None:
    """scheduler_of(): the running scheduler, or None when the model is not a causal LM."""

    def routes() -> LMRoutes:
        sched = scheduler_of()
        if sched is None:
            raise APIError(404, f"model {served.name!r} ({served.kind}) cannot generate text: /v1/completions and "
                           f"/v1/chat/completions need a causal LM; this server serves {served.routes()}", None,
                           "unsupported_route")
        if app.state.lm_routes is None:
            app.state.lm_routes = LMRoutes(served, settings, sched)
        return app.state.lm_routes

    app.state.lm_routes = None

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await routes().completions(body, request)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        return await routes().chat(body, request)


__all__ = ["add_routes", "LMRoutes", "QueueFull"]
