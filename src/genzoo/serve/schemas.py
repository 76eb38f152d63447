"""Request bodies, validated by pydantic: OpenAI's fields for /v1/completions, /v1/chat/completions and
/v1/embeddings (with the extras vLLM also takes: top_k, repetition_penalty, min_tokens, ignore_eos), and genzoo's
own routes. A wrong type or a value out of range is a 422 naming the field; fields this server cannot honour
(log probabilities, tools, a JSON response format, best_of, suffix) are refused by name, never ignored. Unknown
fields are ignored, as OpenAI-compatible servers do."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

Prob = Annotated[float, Field(gt=0, le=1)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
Stop = Union[StrictStr, Annotated[list[StrictStr], Field(max_length=8)], None]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: StrictStr | None = None  # the served model's id (GET /v1/models); another id is a 404


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class _Sampling(_Body):
    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    top_p: Prob = 1.0
    n: Annotated[StrictInt, Field(ge=1)] = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: StrictInt | None = None
    presence_penalty: Penalty = 0.0
    frequency_penalty: Penalty = 0.0
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    user: StrictStr | None = None
    # extras (as vLLM): not in OpenAI's API
    top_k: Annotated[StrictInt, Field(ge=-1)] | None = None  # -1 or 0: off
    repetition_penalty: Annotated[float, Field(gt=0)] = 1.0
    min_tokens: Annotated[StrictInt, Field(ge=0)] = 0
    ignore_eos: StrictBool = False


TokenIds = Annotated[list[StrictInt], Field(min_length=1)]


class CompletionRequest(_Sampling):
    prompt: Union[StrictStr, Annotated[list[StrictStr], Field(min_length=1)], TokenIds,
                  Annotated[list[TokenIds], Field(min_length=1)]]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = 16
    echo: StrictBool = False
    logprobs: StrictInt | None = None  # refused when set
    best_of: StrictInt | None = None  # refused above 1
    suffix: StrictStr | None = None  # refused


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class OtherPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url", "input_audio", "file", "refusal"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[StrictStr, list[Union[TextPart, OtherPart]], None] = None
    name: StrictStr | None = None


class ChatRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    logprobs: StrictBool | None = None  # refused when true
    top_logprobs: StrictInt | None = None
    tools: list | None = None  # refused when non-empty
    tool_choice: object | None = None
    response_format: dict | None = None  # only {"type": "text"}
    chat_template_kwargs: dict | None = None  # variables for the template (e.g. enable_thinking), as vLLM
    add_generation_prompt: StrictBool = True


class EmbeddingRequest(_Body):
    input: Union[StrictStr, Annotated[list[StrictStr], Field(min_length=1)], TokenIds,
                 Annotated[list[TokenIds], Field(min_length=1)]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None
    user: StrictStr | None = None


class NerRequest(_Body):
    text: Annotated[StrictStr, Field(min_length=1)]
    labels: Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(min_length=1, max_length=100)]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    flat_ner: StrictBool = True
    multi_label: StrictBool = False


class ClassifyRequest(_Body):
    image: Annotated[StrictStr, Field(min_length=1)]  # base64 PNG / JPEG, or a data: URL
    labels: Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(min_length=1, max_length=1000)]
    template: StrictStr = "This is a photo of {}."


class ImagesRequest(_Body):
    labels: Annotated[list[StrictInt], Field(min_length=1)] | None = None  # class-conditional
    n: Annotated[StrictInt, Field(ge=1)] | None = None  # unconditional
    steps: Annotated[StrictInt, Field(ge=1)] = 50
    sampler: Literal["ddim", "ddpm"] = "ddim"
    eta: Annotated[float, Field(ge=0, le=1)] = 0.0
    guidance_scale: Annotated[float, Field(ge=0, le=50)] = 1.0
    seed: StrictInt | None = None
    scale: Annotated[StrictInt, Field(ge=1, le=64)] = 1  # PNG pixels per image pixel (nearest neighbour)


Scalar = Union[StrictStr, StrictInt, float, StrictBool]


class IndexQueryRequest(_Body):
    query: Union[Annotated[StrictStr, Field(min_length=1)], Annotated[list[StrictStr], Field(min_length=1)]]
    k: Annotated[StrictInt, Field(ge=1, le=1000)] = 5
    where: dict[str, Scalar] | None = None
