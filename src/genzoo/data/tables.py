"""Tables for the tabular models: the user's CSV / parquet file (pandas; parquet through pyarrow) and, embedded,
scikit-learn's bundled tables (wine, breast_cancer, diabetes, iris) and a generated mixed-type table (`mixed`:
`make_classification` with categorical, boolean and integer columns added). Each is a `pandas.DataFrame` whose
target column is named by `TABLES[name].target`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class EmbeddedTable:
    load: Callable[[], "pandas.DataFrame"]  # noqa: F821
    target: str
    task: str  # "classification" or "regression"
    description: str


TABLES: Registry = Registry("table")


def _sklearn(name: str):
    def load():
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame
    return load


TABLES.register("wine", EmbeddedTable(_sklearn("wine"), "target", "classification",
                                      "178 wines, 13 chemical measurements, 3 cultivars"))
TABLES.register("breast_cancer", EmbeddedTable(_sklearn("breast_cancer"), "target", "classification",
                                               "569 tumours, 30 cell-nucleus features, malignant or benign"))
TABLES.register("diabetes", EmbeddedTable(_sklearn("diabetes"), "target", "regression",
                                          "442 patients, 10 baseline variables, disease progression after a year"))
TABLES.register("iris", EmbeddedTable(_sklearn("iris"), "target", "classification",
                                      "150 flowers, 4 measurements, 3 species"))


def mixed_table(n: int = 1000, seed: int = 0):
    """`make_classification` (3 classes, 6 informative of 8 numeric features) with types added: two informative
    features replaced by categorical versions of them (quantile bins named as words), a boolean from the sign of a
    third, a noisy integer count, a categorical column of pure noise, and class names as text."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=8, n_informative=6, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, class_sep=1.2, random_state=seed, shuffle=False)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(x[:, 2:], columns=[f"x{i}" for i in range(2, 8)])
    levels = ["low", "mid", "high", "top"]
    df["level"] = np.array(levels)[np.digitize(x[:, 0], np.quantile(x[:, 0], [0.25, 0.5, 0.75]))].tolist()
    df["colour"] = np.array(["red", "green", "blue"])[np.digitize(x[:, 1], np.quantile(x[:, 1], [1 / 3, 2 / 3]))
                                                      ].tolist()
    df["flag"] = x[:, 2] > 0
    df["count"] = np.clip(np.round(3 * x[:, 3] + 10 + rng.normal(0, 1, n)), 0, None).astype(np.int64)
    df["noise"] = rng.choice(["p", "q", "r", "s", "t"], n).tolist()
    df["target"] = np.array(["alpha", "beta", "gamma"])[y].tolist()
    return df


TABLES.register("mixed", EmbeddedTable(mixed_table, "target", "classification",
                                       "1000 generated rows: 5 numeric, 3 categorical, 1 boolean, 1 integer column"))


def read_table(path: str | Path):
    """A user's .csv or .parquet file as a DataFrame; a missing file, another suffix or an unreadable file is a
    ConfigError naming the file."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data.source={str(path)!r}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p)
        if suffix == ".parquet":
            return pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise ConfigError(f"data.source={str(path)!r}: cannot read it as {suffix[1:]}: {str(e).splitlines()[0]}") \
            from None
    raise ConfigError(f"data.source={str(path)!r}: a table must be a .csv or .parquet file, got {suffix or 'no suffix'!r}")


def load_table(corpus: str, source: str | None = None):
    """(DataFrame, default target column or None): the user's file when `source` is given, else the embedded table
    named `corpus`."""
    if source is not None:
        return read_table(source), None
    t = TABLES.get(corpus)
    return t.load(), t.target
