"""Generation runs under inference mode but hands back ordinary tensors: generated ids feed a training step."""

import torch

import genzoo


def test_generated_ids_train_the_model():
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny")
    ids = model.generate(torch.randint(0, model.config.vocab_size, (2, 5)), max_new_tokens=6)
    assert not ids.is_inference()
    model.train()
    loss = model(ids, labels=ids).loss
    loss.backward()
    assert model.embed.weight.grad is not None and torch.isfinite(loss)
