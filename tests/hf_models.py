"""Tiny random `transformers` decoders, saved with save_pretrained: what a user's checkpoint looks like."""

import torch

VOCAB = 97


def tiny_hf(arch: str, **kw):
    import transformers as tf

    if arch == "gpt2":
        cfg = tf.GPT2Config(vocab_size=VOCAB, n_positions=96, n_embd=32, n_layer=2, n_head=4,
                            bos_token_id=0, eos_token_id=1, **kw)
        model = tf.GPT2LMHeadModel(cfg)
    elif arch == "llama":
        kw = {"tie_word_embeddings": False, **kw}
        cfg = tf.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
                             rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
                             bos_token_id=0, eos_token_id=1, **kw)
        model = tf.LlamaForCausalLM(cfg)
    elif arch == "mistral":
        cfg = tf.MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
                               sliding_window=8, bos_token_id=0, eos_token_id=1, **kw)
        model = tf.MistralForCausalLM(cfg)
    else:
        raise ValueError(arch)
    # random init gives near-uniform logits; widen them so greedy decoding is not decided by ties
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.2)
    return model.eval()


def tiny_mixtral(**kw):
    import transformers as tf

    cfg = tf.MixtralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=96, router_aux_loss_coef=0.02, bos_token_id=0, eos_token_id=1,
                           **kw)
    model = tf.MixtralForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.2)
    return model.eval()


def tiny_clip(**text_kw):
    import transformers as tf

    text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=24, eos_token_id=VOCAB - 1, pad_token_id=0, bos_token_id=VOCAB - 2)
    text.update(text_kw)
    vision = dict(hidden_size=40, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=16,
                  patch_size=4, num_channels=3)
    cfg = tf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    model = tf.CLIPModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.1)
    return model.eval()


def tiny_bert(masked_lm: bool = False):
    import transformers as tf

    cfg = tf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64, type_vocab_size=2)
    model = (tf.BertForMaskedLM if masked_lm else tf.BertModel)(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.2)
    return model.eval()


def tiny_modernbert(masked_lm: bool = False):
    import transformers as tf

    cfg = tf.ModernBertConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                              num_attention_heads=4, max_position_embeddings=64, local_attention=8,
                              global_attn_every_n_layers=3, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                              cls_token_id=1, sep_token_id=2)
    model = (tf.ModernBertForMaskedLM if masked_lm else tf.ModernBertModel)(cfg)
    with torch.no_grad():  # wide random weights (not the near-zero init); 0.1 keeps fp32 rounding below 1e-5
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.1)
    return model.eval()


def tiny_deberta(masked_lm: bool = False, **kw):
    import transformers as tf

    args = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=64, relative_attention=True, position_buckets=8, max_relative_positions=32,
                pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
                position_biased_input=False, type_vocab_size=0, pad_token_id=0)
    args.update(kw)
    model = (tf.DebertaV2ForMaskedLM if masked_lm else tf.DebertaV2Model)(tf.DebertaV2Config(**args))
    with torch.no_grad():  # wide random weights (not the near-zero init); 0.1 keeps fp32 rounding below 1e-5
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.1)
    return model.eval()


def tiny_t5(proj: str = "relu", encoder_only: bool = False, **kw):
    import transformers as tf

    cfg = tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj=proj,
                      tie_word_embeddings=proj == "relu", decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                      **kw)
    model = (tf.T5EncoderModel if encoder_only else tf.T5ForConditionalGeneration)(cfg)
    with torch.no_grad():  # wide random weights (not the near-zero init); 0.1 keeps fp32 rounding below 1e-5
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.1 if proj != "relu" else 0.2)
    return model.eval()


def save_for_transformers(model, hf_class, directory):
    """genzoo.save `model` to `directory` and load it with `hf_class.from_pretrained`, asserting no missing,
    unexpected or mis-shaped keys; -> the transformers model in eval mode."""
    import genzoo

    genzoo.save(model, directory)
    back, info = hf_class.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info.get("mismatched_keys"), info
    return back.eval()
