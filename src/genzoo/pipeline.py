"""Text in, text out: `genzoo.pipeline(task, path)` loads a model and its tokenizer (a Hugging Face directory, a genzoo
run directory or a GGUF file) and does the tokenization, batching, padding side and decoding inside, returning what
transformers' pipeline of the same task returns:

    generate = genzoo.pipeline("text-generation", "path/to/model.gguf")
    generate("The capital of France is", max_new_tokens=8)        # [{"generated_text": "The capital of ..."}]
    generate([{"role": "user", "content": "Hi!"}])                  # a chat: the template applied, reply appended
    for piece in generate("Once upon a time", stream=True): ...    # text as it is generated

Tasks (`PIPELINES`): text-generation, text2text-generation, fill-mask, feature-extraction, sentence-embedding,
zero-shot-image-classification.
"""

from __future__ import annotations

import os

import torch

from .errors import InputError
from .registry import Registry

PIPELINES: Registry = Registry("pipeline task")


def pipeline(task: str, path: str | os.PathLike, *, dtype: torch.dtype | None = None, device: str = "cpu"):
    """The pipeline of `task` (a name in `PIPELINES`) on the model and tokenizer at `path`."""
    import genzoo

    from .tokenizers import Tokenizer

    cls = PIPELINES.get(task)
    return cls(genzoo.load(path, dtype=dtype, device=device), Tokenizer.load(path), path)


def _is_chat(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(m, dict) and "role" in m for m in x)


def _texts(inputs, name: str) -> tuple[list, bool]:
    """inputs -> (list of items, whether a single item was given)."""
    if isinstance(inputs, str) or _is_chat(inputs):
        return [inputs], True
    if isinstance(inputs, (list, tuple)) and inputs:
        return list(inputs), False
    raise InputError(f"{name}: give a text, a chat (list of {{'role', 'content'}} dicts) or a non-empty list of them; "
                     f"got {type(inputs).__name__}")


class Pipeline:
    task = ""
    needs: tuple[str, ...] = ()  # model methods or attributes the task needs

    def __init__(self, model, tokenizer, path=None):
        missing = [n for n in self.needs if getattr(model, n, None) is None]
        if missing:
            raise InputError(f"pipeline {self.task!r}: {path or 'the model'} holds a {type(model).__name__}, which "
                             f"lacks {missing} ({self.__doc__.splitlines()[0]})")
        self.model, self.tokenizer = model, tokenizer

    def device(self):
        return next(self.model.parameters()).device


@PIPELINES.register("text-generation")
class TextGeneration(Pipeline):
    """A causal LM continues texts, or answers chats through its chat template."""

    task, needs = "text-generation", ("make_cache",)

    def __call__(self, inputs, max_new_tokens: int = 50, return_full_text: bool = True, batch_size: int = 8,
                 stream: bool = False, **options):
        """inputs: a text, a chat, or a list of them. options: as `generate` (do_sample, temperature, top_k, top_p,
        repetition_penalty, min_new_tokens, num_return_sequences, stop, seed, ...). Returns, per input, a list of
        {"generated_text": ...} (the prompt + its continuation, or the chat with the reply appended); a single input
        gives its list alone. stream=True (one input): an iterator of the text as it is generated."""
        items, single = _texts(inputs, self.task)
        tok = self.tokenizer
        options.setdefault("eos_token_id", tok.eos_id if tok.eos_id is not None else self.model.config.eos_token_id)
        options.setdefault("pad_token_id", tok.pad_id)
        if options.get("stop") is not None:
            options.setdefault("tokenizer", tok)
        prompts = [tok.apply_chat_template(x, add_generation_prompt=True) if _is_chat(x) else x for x in items]
        rows = [tok.encode(p, add_special_tokens=not _is_chat(x)) for p, x in zip(prompts, items)]
        if stream:
            if not single:
                raise InputError("text-generation: stream=True takes one input")
            return self._stream(rows[0], max_new_tokens, options)
        n = options.get("num_return_sequences", 1)
        results = []
        for i in range(0, len(rows), batch_size):
            ids, mask = _left_padded(rows[i:i + batch_size], tok.pad_id, self.device())
            out = self.model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, **options)
            new = out[:, ids.shape[1]:].tolist()
            for j, x in enumerate(items[i:i + batch_size]):
                texts = [self._text(row) for row in new[j * n:(j + 1) * n]]
                results.append([{"generated_text": self._full(x, prompts[i + j], t, return_full_text)} for t in texts])
        return results[0] if single else results

    def _text(self, new_ids: list[int]) -> str:
        pad, eos = self.tokenizer.pad_id, self.tokenizer.eos_id
        while new_ids and new_ids[-1] in (pad, eos):  # the finished row's filler
            new_ids = new_ids[:-1]
        return self.tokenizer.decode(new_ids, skip_special_tokens=True)

    @staticmethod
    def _full(item, prompt: str, text: str, full: bool):
        if _is_chat(item):
            return [*item, {"role": "assistant", "content": text}] if full else text
        return prompt + text if full else text

    def _stream(self, row: list[int], max_new_tokens: int, options: dict):
        from .streamers import TextStreamer

        pieces: list[str] = []
        streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, on_text=pieces.append)
        options = {k: v for k, v in options.items() if k != "streamer"}
        ids = torch.tensor([row], device=self.device())
        for _ in self.model.stream(ids, max_new_tokens=max_new_tokens, streamer=streamer, **options):
            yield from pieces
            pieces.clear()
        yield from pieces


def _left_padded(rows, pad: int, device):
    from .tokenizers import pad_rows

    ids, mask = pad_rows(rows, pad, side="left")
    return ids.to(device), mask.to(device)


@PIPELINES.register("text2text-generation")
class Text2TextGeneration(Pipeline):
    """An encoder-decoder (T5) maps texts to texts."""

    task, needs = "text2text-generation", ("encoder", "decoder")

    def __call__(self, inputs, max_new_tokens: int = 50, batch_size: int = 8, **options):
        """inputs: a text or a list of texts; options as `Seq2SeqLM.generate` (num_beams, do_sample, ...). Returns,
        per input, [{"generated_text": ...}] (num_return_sequences entries); a single text gives its list alone."""
        items, single = _texts(inputs, self.task)
        n = options.get("num_return_sequences", 1)
        results = []
        for i in range(0, len(items), batch_size):
            ids, mask = self.tokenizer.batch(items[i:i + batch_size])  # right padding: the encoder masks it
            out = self.model.generate(ids.to(self.device()), attention_mask=mask.to(self.device()),
                                      max_new_tokens=max_new_tokens, **options)
            texts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in out[:, 1:].tolist()]
            results += [[{"generated_text": t} for t in texts[j * n:(j + 1) * n]] for j in range(len(texts) // n)]
        return results[0] if single else results


@PIPELINES.register("fill-mask")
class FillMask(Pipeline):
    """A masked LM fills the tokenizer's mask token."""

    task, needs = "fill-mask", ("mlm",)

    @torch.no_grad()
    def __call__(self, inputs, top_k: int = 5):
        """inputs: a text (or list) holding the mask token. Returns per text, best first, top_k dicts {"score",
        "token", "token_str", "sequence"} (a list of such lists for a text with several masks)."""
        items, single = _texts(inputs, self.task)
        tok = self.tokenizer
        mask_id = tok.token_id("mask")
        if mask_id is None:
            raise InputError("fill-mask: the tokenizer has no mask token (tokenizer_config.json 'mask_token')")
        out = []
        for text in items:
            ids = tok.encode(text)
            where = [i for i, t in enumerate(ids) if t == mask_id]
            if not where:
                raise InputError(f"fill-mask: no {tok.special['mask_token']} in {text!r}")
            logits = self.model(torch.tensor([ids], device=self.device())).logits[0]  # (T, V)
            per_mask = []
            for pos in where:
                probs = logits[pos].float().softmax(-1)
                values, tokens = probs.topk(min(top_k, probs.shape[-1]))
                per_mask.append([self._entry(ids, pos, float(v), int(t)) for v, t in zip(values, tokens)])
            out.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return out[0] if single else out

    def _entry(self, ids, pos, score, token):
        filled = ids[:pos] + [token] + ids[pos + 1:]
        return {"score": score, "token": token, "token_str": self.tokenizer.decode([token]),
                "sequence": self.tokenizer.decode(filled, skip_special_tokens=True)}


@PIPELINES.register("feature-extraction")
class FeatureExtraction(Pipeline):
    """An encoder's last hidden states, one vector per token."""

    task, needs = "feature-extraction", ("check_inputs",)

    @torch.no_grad()
    def __call__(self, inputs, return_tensors: bool = False):
        """inputs: a text or a list. Returns per text its (1, T, D) hidden states (nested lists, or tensors with
        return_tensors=True), as transformers' feature-extraction pipeline."""
        items, single = _texts(inputs, self.task)
        out = []
        for text in items:
            ids = torch.tensor([self.tokenizer.encode(text)], device=self.device())
            h = self.model(ids).last_hidden_state  # (1, T, D)
            out.append(h if return_tensors else h.tolist())
        return out[0] if single else out


@PIPELINES.register("sentence-embedding")
class SentenceEmbedding(Pipeline):
    """A sentence encoder's pooled, normalised embeddings (`EncoderModel.encode`)."""

    task, needs = "sentence-embedding", ("encode",)

    def __call__(self, inputs, normalize: bool = True, batch_size: int = 64) -> torch.Tensor:
        """inputs: a text or a list -> (D,) or (B, D)."""
        items, single = _texts(inputs, self.task)
        emb = self.model.encode(items, self.tokenizer, normalize=normalize, batch_size=batch_size)
        return emb[0] if single else emb


@PIPELINES.register("zero-shot-image-classification")
class ZeroShotImageClassification(Pipeline):
    """CLIP scores images against texts made from candidate labels."""

    task, needs = "zero-shot-image-classification", ("encode_image",)

    def __init__(self, model, tokenizer, path=None):
        super().__init__(model, tokenizer, path)
        from .models.clip.preprocess import ImagePreprocessor

        self.preprocess = ImagePreprocessor.for_model(model, path)

    @torch.no_grad()
    def __call__(self, images, candidate_labels: list[str], hypothesis_template: str = "This is a photo of {}."):
        """images: a PIL image, an (H, W, C) uint8 array, a (C, H, W) or (B, C, H, W) tensor of pixel values already
        normalised, or a list of images. Returns per image [{"score", "label"}], best first."""
        if not candidate_labels:
            raise InputError("zero-shot-image-classification: candidate_labels is empty")
        pixels, single = self.preprocess(images)
        texts = [hypothesis_template.format(label) for label in candidate_labels]
        ids, mask = self.tokenizer.batch(texts)
        logits = self.model(ids.to(pixels.device), pixels, attention_mask=mask.to(pixels.device)).logits_per_image
        probs = logits.float().softmax(-1)  # (B, C)
        out = []
        for row in probs.tolist():
            order = sorted(range(len(row)), key=lambda i: -row[i])
            out.append([{"score": row[i], "label": candidate_labels[i]} for i in order])
        return out[0] if single else out
