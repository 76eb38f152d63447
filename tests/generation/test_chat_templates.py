"""Chat templates rendered by genzoo (jinja2) exactly as transformers' `apply_chat_template(tokenize=False)` renders
them: SmolLM2's ChatML template (a default system message), Zephyr's (whitespace from trim_blocks / lstrip_blocks),
Mistral's (bos_token, raise_exception on bad role order) and one that uses tools, tojson and namespace; the template
read from tokenizer_config.json and from chat_template.jinja."""

import pytest

from genzoo.errors import InputError
from genzoo.tokenizers import Tokenizer

from ..tiny_tokenizer import char_tokenizer

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
          "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
          "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n"
          "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
           "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
TOOLS = ("{%- set ns = namespace(n=0) -%}\n{%- if tools %}Tools: {{ tools | tojson }}\n{% endif -%}\n"
         "{%- for m in messages -%}\n  {%- set ns.n = ns.n + 1 -%}\n  {{ ns.n }}:{{ m.role }}: {{ m.content | trim }}\n"
         "{% if m.thinking is defined %}(thought: {{ m.thinking }})\n{% endif %}{%- endfor -%}\n"
         "{%- if add_generation_prompt %}assistant:{% endif %}")

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Où est Paris ?  "},
        {"role": "assistant", "content": "In France.", "reasoning_content": "easy", "tool_calls": None},
        {"role": "user", "content": "And Rome?"}]


@pytest.mark.parametrize("template", [CHATML, ZEPHYR, TOOLS], ids=["chatml", "zephyr", "tools"])
def test_templates_render_as_transformers(tmp_path, template):
    import transformers as tf

    char_tokenizer(tmp_path, chat_template=template)
    ours, ref = Tokenizer.from_dir(tmp_path), tf.AutoTokenizer.from_pretrained(tmp_path)
    tools = [{"type": "function", "function": {"name": "météo", "parameters": {"city": "str"}}}]
    for messages in (CHAT, CHAT[1:2]):
        for gen in (False, True):
            want = ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, tools=tools)
            got = ours.apply_chat_template(messages, add_generation_prompt=gen, tools=tools)
            assert got == want
    want_ids = ref.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert ours.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True) == list(want_ids)


def test_mistral_template_from_chat_template_jinja(tmp_path):
    import transformers as tf

    char_tokenizer(tmp_path)
    (tmp_path / "chat_template.jinja").write_text(MISTRAL)
    ours, ref = Tokenizer.from_dir(tmp_path), tf.AutoTokenizer.from_pretrained(tmp_path)
    chat = [m for m in CHAT if m["role"] != "system"]
    assert ours.apply_chat_template(chat) == ref.apply_chat_template(chat, tokenize=False)
    assert ours.apply_chat_template(chat).startswith("<s>[INST] Où")
    with pytest.raises(InputError, match="roles must alternate"):
        ours.apply_chat_template(chat[1:])
    with pytest.raises(InputError, match="no chat template"):
        Tokenizer(ours.tok).apply_chat_template(chat)
