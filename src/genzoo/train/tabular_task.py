"""Tabular tasks on a table: the user's file (`--data table.csv`, data.source) or an embedded one (data.corpus:
wine, breast_cancer, diabetes, iris, mixed). The rows are split once (a fixed seed, data.val_percent held out),
the `TableSchema` is fitted on the training rows only and travels in the model's config; batches are rows in a
seeded order per epoch (`ExampleTask`), so the data position is one integer and resume is exact. The file's
SHA-256 is kept in `data.json`, and a resume on a changed file is refused.

- `tabular`: supervised FT-Transformer (or any model with the same forward); validation: loss, and accuracy or
  RMSE (in the target's units) on the held-out rows.
- `tabular-diffusion`: TabDDPM; validation: the denoising loss on the held-out rows (fixed noise and timesteps).
  Every saved model (checkpoints, the final export) has the fingerprints of all the table's rows beside it
  (training-rows.safetensors, `models.tabular.copies`), so `genzoo generate` can redraw synthetic rows that copy one.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from ..data.tables import load_table
from ..errors import ConfigError
from ..modes import evaluating
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe


def split_names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


class TableTask(ExampleTask):
    units = "rows"

    def __init__(self, recipe, run, d):
        super().__init__(recipe, run, d)
        from ..models.tabular import TableSchema

        data = recipe.data
        df, default_target = load_table(data.corpus, data.source)
        target = data.target or default_target
        if target is None:
            raise ConfigError(f"data.target: name the column to predict (--set data.target=COLUMN); the table's "
                              f"columns: {', '.join(map(str, df.columns))}")
        self._check_source(data.source)
        g = np.random.default_rng(0)
        order = g.permutation(len(df))
        n_val = max(1, round(len(df) * data.val_percent / 100))
        if len(df) - n_val < 2:
            raise ConfigError(f"the table has {len(df)} rows: too few to hold out {n_val} for validation")
        self.train_df, self.val_df = df.iloc[order[n_val:]], df.iloc[order[:n_val]]
        given = dict(categorical=split_names(data.categorical), numeric=split_names(data.numeric), missing=data.missing)
        TableSchema.fit(df, target, **given)  # the whole table's problems (NaNs, mixed types), named before the split
        self.schema = TableSchema.fit(self.train_df, target, **given)
        self.train_rows, self.val_rows = self.encode(self.train_df), self.encode(self.val_df)

    def _check_source(self, source):
        """The user's file's SHA-256 in run/data.json; a resume on other bytes is refused (exact resume)."""
        if source is None or not self.d.is_main:
            return
        from pathlib import Path

        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        record = self.run / "data.json"
        if record.exists():
            old = json.loads(record.read_text())
            if old.get("sha256") not in (None, digest) and any((self.run / "checkpoints").glob("step-*")):
                raise ConfigError(f"data.source={source!r} changed since this run started (SHA-256 {old['sha256'][:12]}"
                                  f"... -> {digest[:12]}...): resume needs the same data; start a new --out")
        record.write_text(json.dumps({"source": source, "sha256": digest}, indent=1) + "\n")

    def encode(self, df) -> tuple[torch.Tensor | None, ...]:
        """The rows as the model's input tensors (numeric, categorical, target or labels)."""
        raise NotImplementedError

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_rows[0]))
        idx = batch[mine]
        return tuple(None if t is None else t[idx].to(self.d.device) for t in self.train_rows)

    def save_files(self, directory):
        """No tokenizer: the schema is in config.json."""


@TASKS.register("tabular")
class TabularPrediction(TableTask):
    loss_label = "loss (cross-entropy, or MSE of the standardised target)"

    def build_model(self):
        return build_from_recipe(self.recipe, schema=self.schema.to_dict())

    def encode(self, df):
        enc = self.schema.encode(df)
        y = torch.from_numpy(enc["target"])
        return torch.from_numpy(enc["numeric"]), torch.from_numpy(enc["categorical"]), y

    def loss(self, model, batch, amp):
        num, cat, y = batch
        with autocast(num.device, amp):
            return model(num, cat, y).loss

    @torch.no_grad()
    def validate(self, model, amp):
        num, cat, y = (t.to(self.d.device) for t in self.val_rows)
        with evaluating(model) as net:
            out = net(num, cat, y)
        result = {"val_loss": out.loss.item()}
        if self.schema.task == "classification":
            result["val_accuracy"] = (out.logits.argmax(1) == y).float().mean().item()
        else:
            t = self.schema.target
            pred = out.logits.squeeze(1).double() * t.std + t.mean
            result["val_rmse"] = (pred - y.double()).pow(2).mean().sqrt().item()
        return result


@TASKS.register("tabular-diffusion")
class TabularDiffusion(TableTask):
    loss_label = "denoising loss (Gaussian MSE + multinomial KL)"

    def __init__(self, recipe, run, d):
        super().__init__(recipe, run, d)
        import pandas as pd

        from ..models.tabular import TrainingRows

        # every row of the table, the held-out ones too: they are the user's data as much as the training rows
        self.training_rows = TrainingRows.fit(self.schema, pd.concat([self.train_df, self.val_df]))

    def save_files(self, directory):
        """The schema is in config.json; the rows' fingerprints go beside the weights."""
        self.training_rows.save(directory)

    def build_model(self):
        s = self.schema
        counts = []
        if s.task == "classification":
            codes = s.encode(self.train_df)["target"]
            counts = np.bincount(codes, minlength=len(s.target.categories)).tolist()
        return build_from_recipe(self.recipe, schema=s.to_dict(), class_counts=counts)

    def encode(self, df):
        from ..models.tabular.tab_ddpm import table_tensors

        enc = table_tensors(self.schema, df)
        return enc["numeric"], enc["categorical"], enc["labels"]

    def loss(self, model, batch, amp):
        num, cat, y = batch
        with autocast(num.device, amp):
            return model(num, cat, y).loss

    @torch.no_grad()
    def validate(self, model, amp):
        num, cat, y = (None if t is None else t.to(self.d.device) for t in self.val_rows)
        with evaluating(model) as net:
            out = net(num, cat, y, generator=torch.Generator().manual_seed(0))
        return {"val_loss": out.loss.item(), "val_loss_numeric": out.loss_numeric.item(),
                "val_loss_categorical": out.loss_categorical.item()}
