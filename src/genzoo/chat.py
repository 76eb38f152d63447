"""Chat templates: a model's `chat_template` (Jinja, from `tokenizer_config.json`, `chat_template.jinja` or a GGUF
file's metadata) rendered with `jinja2` as transformers' `apply_chat_template(..., tokenize=False)` renders it: the
same sandboxed environment (`trim_blocks`, `lstrip_blocks`, loop controls), the same globals (`raise_exception`,
`strftime_now`, a `tojson` that keeps non-ASCII text), the same variables (`messages`, `tools`, `documents`,
`add_generation_prompt` and the tokenizer's special tokens: `bos_token`, `eos_token`, ...), messages with keys whose
value is None dropped and reasoning fields aliased, and the `{% generation %}` block (rendered as its body)."""

from __future__ import annotations

import functools
import json
from datetime import datetime

from .errors import InputError

REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")  # transformers' names for a message's reasoning


@functools.lru_cache(maxsize=16)
def compile_template(source: str):
    """The template compiled in transformers' sandbox (jinja2 >= 3.1.6, whose sandbox has no known escapes)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` marks the assistant's tokens for training masks; rendering
        is its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    class Namespace(jinja2.utils.Namespace):
        """A `namespace()` that refuses underscore names (no reach into Python internals)."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"chat templates cannot set {name!r} on a namespace")

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt),
                       dict=dict, namespace=Namespace)
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise InputError(f"chat template does not parse: {e} (line {e.lineno})") from None


def plain_messages(messages) -> list[dict]:
    """Messages as transformers hands them to a template: dicts, keys whose value is None dropped, a reasoning field
    copied to `thinking` and `reasoning_content`."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InputError(f"messages must be a non-empty list of {{'role': ..., 'content': ...}} dicts, got "
                         f"{type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise InputError(f"message {i} must be a dict with a 'role' (and 'content'), got {m!r}")
        m = {k: v for k, v in m.items() if v is not None}
        reasoning = next((m[k] for k in REASONING_FIELDS if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        out.append(m)
    return out


def render_chat(template: str, messages, add_generation_prompt: bool = False, tools=None, documents=None,
                **variables) -> str:
    """The conversation as the template writes it. variables: the tokenizer's special tokens (`bos_token`, ...)
    and anything else the template reads (e.g. `enable_thinking`)."""
    import jinja2

    try:
        return compile_template(template).render(messages=plain_messages(messages), tools=tools,
                                                 documents=documents, add_generation_prompt=add_generation_prompt,
                                                 **variables)
    except jinja2.exceptions.TemplateError as e:
        raise InputError(f"chat template: {e}") from None
