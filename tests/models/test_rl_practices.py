"""The seed's RL practices for text prompts (issue 22 item 6), each on its own: (a) contrastive advantage
normalisation equals its formula on a hand-made reward matrix; (c) the textual-inconsistency penalty fires exactly
when a contrastive prompt is closer; (b) synthesised prompts are kept only when novel and well formed; and DPOK
drives a text-conditioned model through the condition hook with every practice on."""

import pytest
import torch

import genzoo
from genzoo.data.shape_captions import HELD_OUT_TEMPLATES, all_captions, contrastive
from genzoo.models.diffusion.rl import RLConfig, dpok
from genzoo.models.diffusion.rl.dpok import advantages
from genzoo.models.diffusion.rl.practices import ADVANTAGES, PENALTIES, shape_rewards
from genzoo.models.diffusion.rl.prompts import CLIPReward, PromptTable, synthesise_prompts, template_prompts, well_formed
from genzoo.tokenizers import train_bpe

# 3 images x (own prompt, 3 contrastive prompts)
R = torch.tensor([[0.9, 0.1, 0.2, 0.3],
                  [0.2, 0.5, 0.1, 0.0],
                  [0.4, 0.4, 0.3, 0.2]])


def test_contrastive_normalisation_is_the_formula():
    labels = torch.tensor([0, 1, 2])
    got = advantages(R, labels, "contrastive")
    for i in range(3):  # (r_i - mean_j R[i, j]) / (std_j R[i, j] + eps) over the contrastive columns only
        others = R[i, 1:].tolist()
        mean = sum(others) / 3
        std = (sum((x - mean) ** 2 for x in others) / 2) ** 0.5  # unbiased, as torch.std
        assert got[i].item() == pytest.approx((R[i, 0].item() - mean) / (std + 1e-6), rel=1e-5, abs=1e-5)
    # not the batch's statistics: image 2 beats its contrastive prompts (> 0) though it is below the batch mean
    assert got[2] > 0 and advantages(R, labels, "batch")[2] < 0
    assert advantages(R[:, 0], labels, "batch").tolist() == pytest.approx(
        ((R[:, 0] - R[:, 0].mean()) / (R[:, 0].std() + 1e-6)).tolist())


def test_inconsistency_penalty_fires_exactly_when_a_contrastive_prompt_is_closer():
    pen = PENALTIES.get("inconsistency")
    assert pen(R).tolist() == [0.0, 1.0, 0.0]  # row 2: a tie (0.4 = 0.4) is not closer
    rows = torch.rand(200, 12)
    assert torch.equal(pen(rows).bool(), (rows[:, 1:] > rows[:, :1]).any(1))
    r, adv, stats = shape_rewards(R, torch.arange(3), "none", "inconsistency", 0.5)
    assert r.tolist() == pytest.approx([0.9, 0.2 - 0.5, 0.4])
    assert stats["inconsistent"] == pytest.approx(1 / 3) and stats["reward"] == pytest.approx(0.5)
    assert PENALTIES.get("none")(R).tolist() == [0.0, 0.0, 0.0]


def test_practices_are_registered_names_and_bad_ones_are_refused():
    assert {"value", "prompt", "batch", "contrastive", "none"} <= set(ADVANTAGES)
    with pytest.raises(genzoo.ConfigError, match="penalty='typo'"):
        RLConfig(penalty="typo")
    with pytest.raises(genzoo.ConfigError, match="normalise='typo'"):
        RLConfig(normalise="typo")
    with pytest.raises(genzoo.InputError, match="contrastive"):  # a vector reward has no contrastive columns
        shape_rewards(R[:, 0], torch.arange(3), "contrastive", "none", 0.0)
    with pytest.raises(genzoo.InputError, match=r"\(3,\) or \(3, 1 \+ M\)"):
        shape_rewards(torch.zeros(2, 4), torch.arange(3), "batch", "none", 0.0)


class ScriptedLM(torch.nn.Module):
    """Stands in for the caption LM: `generate` returns the given texts' tokens after the start token."""

    def __init__(self, tokenizer, texts):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        eos = tokenizer.eos_id
        rows = [[eos, *[t for t in tokenizer.encode(x) if t != eos], eos] for x in texts]
        n = max(map(len, rows))
        self.out = torch.tensor([r + [eos] * (n - len(r)) for r in rows])
        # a row cut off by max_new_tokens (no eos), which would be well formed and novel if it had ended there
        cut = [t for t in tokenizer.encode("a small red cone on a dark") if t != eos][: n - 1]
        self.out = torch.cat([self.out, torch.tensor([[eos, *cut] + [cut[-1]] * (n - 1 - len(cut))])])

    def generate(self, start, **kw):
        return self.out


def test_synthesised_prompts_are_novel_and_well_formed():
    tok = train_bpe(all_captions(), 300, min_frequency=1)
    novel = "a simple render of a red cone on a dark background"  # two templates mixed: in no list
    texts = ["a red cone",  # a training caption
             "a 3d model of a small blue cube lying on its side",  # a training caption
             novel, novel,  # a duplicate
             HELD_OUT_TEMPLATES[0].format(desc="blue cube"),  # a held-out caption ("picture" is unseen)
             "a red blue cone",  # two colours
             "a cone",  # no colour
             "a red zorbl cone",  # an unknown word
             "the green torus lying on its side on a dark background"]
    kept, stats = synthesise_prompts(ScriptedLM(tok, texts), tok, 10, torch.Generator(), max_rounds=1)
    assert kept == [novel, "the green torus lying on its side on a dark background"]
    assert stats == {"sampled": 10, "malformed": 5, "in_templates": 2, "duplicates": 1}  # + the unfinished row
    assert all(well_formed(p) and p not in template_prompts() for p in kept)


@pytest.fixture(scope="module")
def pointe():
    torch.manual_seed(0)
    m = genzoo.build("pointe-tiny").eval()
    m.tokenizer = train_bpe(all_captions(), 300, min_frequency=1)
    return m


def test_prompt_table_and_clip_reward(pointe):
    prompts = ["a red cone", "the small blue torus"]
    table = PromptTable(pointe, prompts)
    assert table.text.shape == (2, 1 + 11, pointe.config.projection_dim)  # own + 6 shapes + 5 colours
    r = CLIPReward(pointe.clip, table)(torch.rand(3, 3, 8, 8) * 2 - 1, torch.tensor([0, 1, 1]))
    assert r.shape == (3, 12) and r.abs().max() <= 1 + 1e-5
    other = pointe.clip.encode_text(pointe.tokenize([contrastive(prompts[1])[3]]))[0]
    torch.testing.assert_close(table.text[1, 4], other)  # column 1 + j is the j-th contrastive prompt
    with pytest.raises(genzoo.InputError, match="exactly one shape"):
        PromptTable(pointe, ["a red thing"])


@pytest.mark.slow
def test_dpok_drives_a_text_conditioned_model_with_every_practice(pointe):
    table = PromptTable(pointe, ["a red cone", "a green cube", "one blue torus"])
    model = pointe.image
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = RLConfig(iterations=1, batch=4, steps=3, minibatch=8, lr=1e-3, beta=0.01, n_classes=len(table),
                   normalise="contrastive", penalty="inconsistency")
    hist = dpok(model, CLIPReward(pointe.clip, table), cfg, condition=table.condition)
    assert hist[0]["kl"] >= 0 and 0 <= hist[0]["inconsistent"] <= 1
    assert hist[0]["shaped_reward"] == pytest.approx(hist[0]["reward"] - hist[0]["inconsistent"])
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    model.load_state_dict(before)
