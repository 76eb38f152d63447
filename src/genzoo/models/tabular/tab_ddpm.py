"""TabDDPM (Kotelnikov et al. 2023, "TabDDPM: Modelling Tabular Data with Diffusion Models", arXiv:2209.15421,
sec. 3): Gaussian diffusion on the quantile-normalised numeric columns and multinomial diffusion (Hoogeboom et al.
2021, arXiv:2102.05379) on each categorical column, one MLP denoising both, conditioned on the class for a
classification table (a regression target is one more numeric column).

Both parts share one noise schedule, the diffusion genre's `DDPMScheduler` (alpha_bar_t; beta_t):
- numeric x (B, n): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps; the MLP predicts eps; loss
  || eps - eps_hat ||^2 (Ho et al. 2020, eq. 14); sampling is the scheduler's ancestral step.
- a categorical column with K values, x_0 one-hot: q(x_t | x_0) = Cat(alpha_bar_t x_0 + (1 - alpha_bar_t) / K)
  (Hoogeboom et al. eq. 13); the posterior q(x_{t-1} | x_t, x_0) is proportional to
  [alpha_t x_t + (1 - alpha_t) / K] * [alpha_bar_{t-1} x_0 + (1 - alpha_bar_{t-1}) / K] (their eq. 14). The MLP
  predicts x_0's distribution; the loss is KL(q(x_{t-1} | x_t, x_0) || q(x_{t-1} | x_t, x0_hat)), which at t = 0
  is the negative log-likelihood of x_0; sampling draws x_{t-1} from the posterior at x0_hat.
TabDDPM's loss is the Gaussian loss plus the mean of the categorical columns' losses (their eq. 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ..diffusion.denoisers import Conditioning
from ..diffusion.schedulers import DDPMScheduler
from .config import TabDDPMConfig
from .schema import TableSchema


@dataclass
class TabDDPMOutput:
    loss: torch.Tensor | None = None
    loss_numeric: torch.Tensor | None = None
    loss_categorical: torch.Tensor | None = None


class MLPDenoiser(nn.Module):
    """TabDDPM's MLP (their appendix: Linear, ReLU, Dropout blocks): [x_num_t, one-hot x_cat_t] projected, plus the
    timestep and class conditioning (the diffusion genre's `Conditioning`) -> eps for the numeric columns and x_0
    logits for each categorical one."""

    def __init__(self, d_in: int, d_out: int, cfg: TabDDPMConfig, n_classes: int):
        super().__init__()
        h = cfg.d_hidden
        self.cond = Conditioning(cfg.num_train_timesteps, h, n_classes)
        self.inp = nn.Linear(d_in, h)
        layers = []
        for _ in range(cfg.n_layers):
            layers += [nn.Linear(h, h), nn.ReLU(), nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(h, d_out)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.out(self.body(self.inp(x) + self.cond(t, labels)))  # (B, d_in) -> (B, d_out)


@GENRES.register("tab-ddpm")
class TabDDPM(nn.Module):
    config_class = TabDDPMConfig

    def __init__(self, config: TabDDPMConfig):
        super().__init__()
        self.config = config
        self.schema = s = TableSchema.from_dict(config.schema)
        self.classify = s.task == "classification"
        # what is generated: the numeric features (+ a regression target, last) and the categorical features
        self.n_num = len(s.numeric) + (s.task == "regression")
        self.sizes = [len(c.categories) for c in s.categorical]
        self.n_classes = len(s.target.categories) if self.classify else 0
        if self.classify and len(config.class_counts) != self.n_classes:
            raise InputError(f"class_counts must give the training rows of each of the {self.n_classes} classes, got "
                             f"{config.class_counts!r}")
        width = self.n_num + sum(self.sizes)
        self.denoiser = MLPDenoiser(width, width, config, self.n_classes)
        self.scheduler = DDPMScheduler(**config.scheduler_config())

    # ---- the multinomial part ----
    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, sum K) -> per categorical column (B, K)."""
        return list(torch.split(x, self.sizes, dim=1)) if self.sizes else []

    def _posterior(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_{t-1} | x_t, x_0) (B, K) for one column: x_t one-hot (B, K), x0 a distribution (B, K), t (B,)."""
        k = x_t.shape[1]
        a = (1 - self.scheduler.betas.to(x_t.device)[t])[:, None]  # alpha_t (B, 1)
        abar = self.scheduler.alphas_cumprod.to(x_t.device)
        ab_prev = torch.where(t > 0, abar[(t - 1).clamp(min=0)], torch.ones_like(t, dtype=abar.dtype))[:, None]
        post = (a * x_t + (1 - a) / k) * (ab_prev * x0 + (1 - ab_prev) / k)
        return post / post.sum(1, keepdim=True)

    def _noisy_categories(self, x0: torch.Tensor, t: torch.Tensor, generator=None) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) for one column, one-hot (B, K)."""
        k = x0.shape[1]
        ab = self.scheduler.alpha_bar(t, x0)
        probs = ab * x0 + (1 - ab) / k
        return F.one_hot(torch.multinomial(probs, 1, generator=generator).squeeze(1), k).to(x0.dtype)

    # ---- training ----
    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor, labels: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> TabDDPMOutput:
        """The denoising loss of a batch: numeric (B, n_num) normal scores (a regression target appended last),
        categorical (B, n_cat) category indices, labels (B,) class indices (classification tables)."""
        b, device = numeric.shape[0], numeric.device
        if numeric.shape != (b, self.n_num) or categorical.shape != (b, len(self.sizes)):
            raise InputError(f"numeric must be (B, {self.n_num}) and categorical (B, {len(self.sizes)}), got "
                             f"{tuple(numeric.shape)} and {tuple(categorical.shape)}")
        if self.classify and labels is None:
            raise InputError("a classification table's TabDDPM is conditioned on labels (B,)")
        t = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator).to(device)
        noise = torch.randn(numeric.shape, generator=generator).to(device)
        x0_cat = [F.one_hot(categorical[:, j], k).float() for j, k in enumerate(self.sizes)]
        x_t_cat = [self._noisy_categories(x0, t, generator) for x0 in x0_cat]
        x_t = torch.cat([self.scheduler.add_noise(numeric, noise, t), *x_t_cat], dim=1)  # (B, n_num + sum K)
        out = self.denoiser(x_t, t, labels if self.classify else None)
        loss_num = F.mse_loss(out[:, : self.n_num], noise) if self.n_num else out.new_zeros(())
        kls = []
        for x0, xt, logits in zip(x0_cat, x_t_cat, self._split(out[:, self.n_num:])):
            true = self._posterior(xt, x0, t)
            pred = self._posterior(xt, logits.softmax(1), t)
            kls.append((torch.xlogy(true, true) - true * pred.clamp(min=1e-30).log()).sum(1).mean())
        loss_cat = torch.stack(kls).mean() if kls else out.new_zeros(())
        return TabDDPMOutput(loss=loss_num + loss_cat, loss_numeric=loss_num, loss_categorical=loss_cat)

    # ---- sampling ----
    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               device=None) -> dict[str, torch.Tensor]:
        """{"numeric": (n, n_num), "categorical": (n, n_cat), "labels": (n,)} by ancestral sampling over every
        training timestep; labels default to draws from the training class frequencies."""
        if not (isinstance(n, int) and n > 0):
            raise InputError(f"the number of rows must be a positive integer, got {n!r}")
        device = device or self.denoiser.out.weight.device
        if self.classify:
            if labels is None:
                prior = torch.tensor(self.config.class_counts, dtype=torch.float)
                labels = torch.multinomial(prior / prior.sum(), n, replacement=True, generator=generator)
            if labels.shape != (n,) or bool(((labels < 0) | (labels >= self.n_classes)).any()):
                raise InputError(f"labels must be ({n},) class indices in [0, {self.n_classes - 1}]")
            labels = labels.to(device)
        sched = DDPMScheduler(**self.config.scheduler_config())
        sched.set_timesteps(self.config.num_train_timesteps)
        x = torch.randn(n, self.n_num, generator=generator).to(device)
        cats = [F.one_hot(torch.multinomial(torch.full((n, k), 1.0 / k), 1, generator=generator).squeeze(1),
                          k).float().to(device) for k in self.sizes]  # x_T: uniform
        was = self.training
        self.eval()
        try:
            for t in sched.timesteps.tolist():
                tt = torch.full((n,), t, device=device)
                out = self.denoiser(torch.cat([x, *cats], 1), tt, labels)
                x = sched.step(out[:, : self.n_num], t, x, generator=generator).prev_sample
                cats = [self._step_category(xt, logits, tt, generator)
                        for xt, logits in zip(cats, self._split(out[:, self.n_num:]))]
        finally:
            self.train(was)
        categorical = torch.stack([c.argmax(1) for c in cats], 1) if cats else torch.zeros(n, 0, dtype=torch.long)
        return {"numeric": x, "categorical": categorical, "labels": labels}

    def _step_category(self, x_t, logits, t, generator):
        probs = self._posterior(x_t, logits.softmax(1), t)
        return F.one_hot(torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1), x_t.shape[1]).to(x_t)

    def sample_table(self, n: int, generator: torch.Generator | None = None, exclude=None, max_rounds: int = 10):
        """n synthetic rows as a DataFrame with the training table's columns and dtypes.

        exclude: the training rows' fingerprints (`copies.TrainingRows`, saved as training-rows.safetensors in a
        run directory): every row equal to a training row is redrawn (with its class label, so the class balance
        stays as drawn) for at most `max_rounds` rounds, after which remaining copies raise `TrainingCopiesError`.
        What happened is in `df.attrs["copies"]`: {"checked", "first_draw" (copies in the raw sample of n rows),
        "redrawn" (rows drawn again, all rounds), "rounds"}. exclude=None samples unchecked."""
        import pandas as pd

        from .copies import TrainingCopiesError

        if not (isinstance(max_rounds, int) and max_rounds >= 0):
            raise InputError(f"max_rounds must be an integer >= 0 (rounds of redrawing copies), got {max_rounds!r}")
        if exclude is not None:
            exclude.check_schema(self.schema)
        out = self.sample(n, generator=generator)
        df = self._decode(out)
        if exclude is None:
            df.attrs["copies"] = {"checked": False}
            return df
        bad = np.flatnonzero(exclude.copies(df, self.schema))
        first, redrawn, rounds = len(bad), 0, 0
        while len(bad) and rounds < max_rounds:
            rounds += 1
            redrawn += len(bad)
            labels = None if out["labels"] is None else out["labels"][torch.from_numpy(bad).to(out["labels"].device)]
            new = self._decode(self.sample(len(bad), labels=labels, generator=generator)).set_axis(bad)
            df = pd.concat([df.drop(index=bad), new]).sort_index()  # the redrawn rows in their places
            bad = bad[exclude.copies(new, self.schema)]
        if len(bad):
            raise TrainingCopiesError(
                f"{len(bad)} of {n} synthetic rows still copy a training row after {max_rounds} round(s) of "
                f"redrawing ({first} in the first draw, {redrawn} redrawn): the model reproduces its training rows; "
                "train it on more rows or for fewer steps, raise max_rounds, or sample unchecked (--allow-copies)")
        df = df.reset_index(drop=True)
        df.attrs["copies"] = {"checked": True, "first_draw": first, "redrawn": redrawn, "rounds": rounds}
        return df

    def _decode(self, out: dict[str, torch.Tensor]):
        """`sample`'s tensors as a DataFrame in the table's columns and dtypes."""
        num = out["numeric"].cpu().double().numpy()
        s = self.schema
        if s.task == "regression":  # the target is the last numeric column
            from .schema import from_normal_scores

            target = from_normal_scores(num[:, -1], s.target)
            num = num[:, :-1]
        else:
            target = None if out["labels"] is None else out["labels"].cpu().numpy()
        return s.decode(num, out["categorical"].cpu().numpy(), target)

    def encode_table(self, df) -> dict[str, torch.Tensor]:
        """A DataFrame (with its target) as the tensors `forward` takes."""
        return table_tensors(self.schema, df)


def table_tensors(schema: TableSchema, df) -> dict[str, torch.Tensor]:
    """{"numeric": (N, n_num) normal scores (a regression target appended last), "categorical": (N, n_cat),
    "labels": (N,) class indices, or None for a regression table}."""
    from .schema import normal_scores

    enc = schema.encode(df)
    num, labels = enc["numeric"], None
    if schema.task == "regression":
        target = normal_scores(enc["target"].astype(np.float64), schema.target)[:, None].astype(np.float32)
        num = np.concatenate([num, target], 1)
    elif schema.task == "classification":
        labels = torch.from_numpy(enc["target"])
    return {"numeric": torch.from_numpy(num), "categorical": torch.from_numpy(enc["categorical"]), "labels": labels}
