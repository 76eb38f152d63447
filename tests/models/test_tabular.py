"""The table codec (type inference, quantile normalisation equal to scikit-learn's, type round trip, missing values,
mixed types), the FT-Transformer (feature tokenizer formula, no positions, save/load) and TabDDPM (the multinomial
posterior against Bayes' rule, sampling keeps the table's columns and dtypes)."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo import ConfigError, InputError
from genzoo.data.tables import TABLES, load_table, mixed_table
from genzoo.models.tabular import TableSchema
from genzoo.models.tabular.schema import normal_scores


@pytest.fixture(scope="module")
def mixed():
    return mixed_table(300)


def test_types_inferred_and_round_trip(mixed):
    s = TableSchema.fit(mixed, "target")
    kinds = {c.name: (c.kind, c.dtype) for c in s.features}
    assert kinds["x2"] == ("numeric", "float") and kinds["count"] == ("numeric", "int")
    assert kinds["level"] == ("categorical", "str") and kinds["flag"] == ("categorical", "bool")
    assert s.task == "classification" and s.target.categories == ["alpha", "beta", "gamma"]
    enc = s.encode(mixed)
    back = s.decode(enc["numeric"], enc["categorical"], enc["target"])
    assert list(back.columns) == list(mixed.columns)
    assert back.dtypes.to_dict() == mixed.dtypes.to_dict()
    for c in mixed.columns:
        if mixed[c].dtype.kind == "f":
            np.testing.assert_allclose(back[c], mixed[c], atol=1e-3 * mixed[c].std())
        else:
            assert back[c].tolist() == mixed[c].tolist(), c


def test_given_types_and_targets():
    df = load_table("iris")[0]
    assert TableSchema.fit(df, "target").task == "classification"  # an integer target with 3 values
    assert TableSchema.fit(df, "target", numeric=["target"]).task == "regression"
    assert TableSchema.fit(load_table("diabetes")[0], "target").task == "regression"
    s = TableSchema.fit(df, "target", categorical=["petal width (cm)"])
    assert s.categorical[0].name == "petal width (cm)" and len(s.numeric) == 3
    for name in TABLES.names():
        frame, target = load_table(name)
        assert target in frame.columns and len(TableSchema.fit(frame, target)) == frame.shape[1] - 1


def test_quantile_normalisation_equals_scikit_learn():
    from sklearn.preprocessing import QuantileTransformer

    df = load_table("diabetes")[0]
    s = TableSchema.fit(df, "target")
    x = df[[c.name for c in s.numeric]].to_numpy(np.float64)
    ref = QuantileTransformer(output_distribution="normal", n_quantiles=len(x)).fit(x)
    probe = np.concatenate([x, x + 0.013, x.min(0, keepdims=True) - 1, x.max(0, keepdims=True) + 1])
    ours = np.stack([normal_scores(probe[:, j].copy(), c) for j, c in enumerate(s.numeric)], 1)
    np.testing.assert_allclose(ours, ref.transform(probe), atol=1e-9, rtol=0)


def test_missing_values_refused_or_imputed(mixed):
    df = mixed.copy()
    df.loc[[3, 7], "x4"] = np.nan
    df.loc[5, "colour"] = None
    with pytest.raises(ConfigError, match=r"column 'x4' has 2 missing value\(s\).*data.missing=impute"):
        TableSchema.fit(df, "target")
    s = TableSchema.fit(df, "target", missing="impute")
    colour = next(c for c in s.categorical if c.name == "colour")
    assert "<missing>" in colour.categories
    enc = s.encode(df)
    assert np.isfinite(enc["numeric"]).all()
    back = s.decode(enc["numeric"], enc["categorical"], enc["target"])
    assert back["colour"].isna().sum() == 1 and back["x4"].notna().all()  # imputed with the median
    df.loc[0, "target"] = None
    with pytest.raises(ConfigError, match="target column 'target' has 1 missing"):
        TableSchema.fit(df, "target", missing="impute")


def test_bad_tables(mixed):
    with pytest.raises(ConfigError, match=r"data.target='label' is not a column.*columns: x2, x3"):
        TableSchema.fit(mixed, "label")
    df = mixed.copy()
    df["count"] = df["count"].astype(object)
    df.loc[4, "count"] = "twelve"
    with pytest.raises(ConfigError, match=r"column 'count' mixes numbers \(299 rows\) and text \(1 rows, e.g. "
                                          r"\['twelve'\]\).*data.categorical=count"):
        TableSchema.fit(df, "target")
    assert "count" in [c.name for c in TableSchema.fit(df, "target", categorical=["count"]).categorical]
    with pytest.raises(ConfigError, match="'colour' holds text and cannot be numeric"):
        TableSchema.fit(mixed, "target", numeric=["colour"])
    with pytest.raises(ConfigError, match="column 'nope'"):
        TableSchema.fit(mixed, "target", categorical=["nope"])
    s = TableSchema.fit(mixed, "target")
    with pytest.raises(InputError, match=r"lacks column\(s\) \['x3'\]"):
        s.encode(mixed.drop(columns=["x3"]))


def test_feature_tokenizer_formula_and_no_positions(mixed):
    s = TableSchema.fit(mixed, "target")
    m = genzoo.build("ft-tiny", schema=s.to_dict(), attention_dropout=0.0, ffn_dropout=0.0).eval()
    num, cat = m.tensors(mixed.iloc[:4])
    cat[0, 1] = -1  # a value unseen in training
    tok = m.feature_tokenizer
    tokens = tok(num, cat)
    n_num = num.shape[1]
    torch.testing.assert_close(tokens[:, :n_num], num[:, :, None] * tok.num_weight + tok.num_bias)
    j, k = 1, cat[0, 1] + 1 + tok.offsets[1]
    torch.testing.assert_close(tokens[0, n_num + j], tok.cat_embed.weight[k] + tok.cat_bias[j])
    # no positions: the [CLS] output does not depend on the order of the feature tokens
    perm = torch.randperm(tokens.shape[1])
    cls = m.cls.expand(4, -1, -1)
    torch.testing.assert_close(m.stack(tokens, prefix=cls)[:, 0], m.stack(tokens[:, perm], prefix=cls)[:, 0])
    assert isinstance(m.stack.blocks[0].attn_norm, torch.nn.Identity)  # the paper's first block


def test_ft_transformer_learns_and_round_trips(tmp_path, mixed):
    s = TableSchema.fit(mixed, "target")
    m = genzoo.build("ft-tiny", schema=s.to_dict())
    rows = mixed.iloc[:100]
    num, cat = m.tensors(rows)
    y = torch.from_numpy(s.encode(rows)["target"])
    opt = torch.optim.AdamW(m.parameters(), 3e-3)
    first = None
    for _ in range(30):
        loss = m(num, cat, y).loss
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first
    genzoo.save(m, tmp_path)
    back = genzoo.load(tmp_path)
    assert list(back.predict(mixed.iloc[:20])) == list(m.predict(mixed.iloc[:20]))
    assert set(back.predict(mixed)) <= {"alpha", "beta", "gamma"}
    with pytest.raises(InputError, match=r"categorical column 'level': indices must be in \[-1, 3\]"):
        m(num[:2], torch.full_like(cat[:2], 4))


def test_multinomial_posterior_is_bayes_rule(mixed):
    s = TableSchema.fit(mixed, "target")
    m = genzoo.build("tab-ddpm-tiny", schema=s.to_dict(), class_counts=[100, 100, 100])
    k, abar, beta = 4, m.scheduler.alphas_cumprod.double(), m.scheduler.betas.double()
    for t in (0, 1, 7, 19):
        x0 = torch.tensor([0.1, 0.6, 0.2, 0.1], dtype=torch.float64)
        xt = 2
        # Q_t: one step, x_{t-1} -> x_t; the marginal q(x_{t-1} | x_0)
        step = (1 - beta[t]) * torch.eye(k, dtype=torch.float64) + beta[t] / k
        prev = x0 if t == 0 else abar[t - 1] * x0 + (1 - abar[t - 1]) / k
        bayes = step[:, xt] * prev / (step[:, xt] * prev).sum()  # over x_{t-1}, given x_t and this x_0 guess
        got = m._posterior(F.one_hot(torch.tensor([xt]), k).double(), x0[None], torch.tensor([t]))
        torch.testing.assert_close(got[0], bayes)
    out = m.encode_table(mixed)
    loss = m(out["numeric"][:32], out["categorical"][:32], out["labels"][:32])
    assert loss.loss_categorical >= 0 and loss.loss_numeric > 0


def test_tab_ddpm_samples_keep_the_table(mixed):
    for frame, target in ((mixed, "target"), (load_table("diabetes")[0].iloc[:200], "target")):
        s = TableSchema.fit(frame, target)
        counts = np.bincount(s.encode(frame)["target"]).tolist() if s.task == "classification" else []
        m = genzoo.build("tab-ddpm-tiny", schema=s.to_dict(), class_counts=counts)
        syn = m.sample_table(25, generator=torch.Generator().manual_seed(0))
        assert syn.shape == (25, frame.shape[1]) and list(syn.columns) == list(frame.columns)
        assert syn.dtypes.to_dict() == frame.dtypes.to_dict()
    with pytest.raises(InputError, match="positive integer"):
        m.sample_table(0)


def test_tab_ddpm_samples_stay_in_the_normal_scores_support(mixed):
    """The predicted x0 is clipped to |z| <= normal_score_bound() (about 5.2), the support of the quantile-normalised
    columns, so the last ancestral step lands inside it (unclipped, an undertrained denoiser's amplified early
    estimates piled samples onto each column's minimum and maximum)."""
    from genzoo.models.tabular.schema import normal_score_bound

    s = TableSchema.fit(mixed, "target")
    m = genzoo.build("tab-ddpm-tiny", schema=s.to_dict(), class_counts=np.bincount(s.encode(mixed)["target"]).tolist())
    with torch.no_grad():
        m.denoiser.out.weight.mul_(50.0)  # a wild denoiser: its eps estimates are far too large
    z = m.sample(64, generator=torch.Generator().manual_seed(0))["numeric"]
    bound = normal_score_bound()
    assert 5.1 < bound < 5.3
    assert z.abs().max() <= bound + 1e-5
