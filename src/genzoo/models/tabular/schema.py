"""The table codec shared by the tabular models: which columns are numeric and which categorical (inferred from
the pandas dtypes, or given by name), how a numeric column is quantile-normalised and back, which values a
categorical column takes, and how missing values are handled. It is fitted on the training rows, stored as plain
data in the model's config (so `genzoo.load` restores it) and round-trips types: `decode(encode(df))` gives back
the same columns with the same dtypes (integers as integers, booleans, text).

Quantile normalisation (as scikit-learn's `QuantileTransformer(output_distribution="normal")`, which FT-Transformer
(Gorishniy et al. 2021, arXiv:2106.11959, sec. 4.2) and TabDDPM (Kotelnikov et al. 2023, arXiv:2209.15421, sec. 4)
use): a value's position between the column's training quantiles, mapped through the normal's inverse CDF.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError, InputError

N_QUANTILES = 1000
BOUND = 1e-7  # scikit-learn's BOUNDS_THRESHOLD
MISSING = ("refuse", "impute")
MISSING_CATEGORY = "<missing>"
MAX_CLASSES = 20  # an integer target with at most this many distinct values is a class label


@dataclass
class Column:
    name: str
    kind: str  # "numeric" or "categorical"
    dtype: str  # what decode gives back: "int", "float", "bool" or "str"
    categories: list[str] = field(default_factory=list)  # categorical: its values as text, sorted
    quantiles: list[float] = field(default_factory=list)  # numeric: training values at evenly spaced levels
    fill: float | str | None = None  # the value a missing entry takes (missing="impute")
    mean: float = 0.0  # numeric: training mean and standard deviation (a regression target is predicted scaled)
    std: float = 1.0


@dataclass
class TableSchema:
    features: list[Column]
    target: Column | None = None
    order: list[str] = field(default_factory=list)  # every column in the table's order

    @property
    def numeric(self) -> list[Column]:
        return [c for c in self.features if c.kind == "numeric"]

    @property
    def categorical(self) -> list[Column]:
        return [c for c in self.features if c.kind == "categorical"]

    @property
    def task(self) -> str | None:
        """"classification", "regression", or None (no target)."""
        return None if self.target is None else ("classification" if self.target.kind == "categorical"
                                                 else "regression")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TableSchema":
        if not d:
            raise ConfigError("config field schema is empty: it is fitted on a table (TableSchema.fit(df, target)), "
                              "which `genzoo train` does from data.source / data.corpus")
        target = d.get("target")
        return cls([Column(**c) for c in d["features"]], Column(**target) if target else None, list(d["order"]))

    # ---- fitting ----
    @classmethod
    def fit(cls, df, target: str | None, categorical=(), numeric=(), missing: str = "refuse") -> "TableSchema":
        """Infer each column's kind from its dtype (text, boolean: categorical; numbers: numeric; an integer target
        with at most MAX_CLASSES values: class labels) unless `categorical` / `numeric` name it, and fit quantiles,
        categories and fill values on `df`. missing: "refuse" (a NaN is an error naming the column) or "impute"
        (numeric: the median; categorical: a '<missing>' category). A target never has missing values."""
        if missing not in MISSING:
            raise ConfigError(f"data.missing={missing!r} is invalid: 'refuse' or 'impute'")
        columns = [str(c) for c in df.columns]
        if len(set(columns)) != len(columns):
            raise ConfigError(f"the table has duplicate column names: {sorted({c for c in columns if columns.count(c) > 1})}")
        for given in (*categorical, *numeric):
            if given not in columns:
                raise ConfigError(f"column {given!r} (data.categorical / data.numeric) is not in the table; columns: "
                                  f"{', '.join(columns)}")
        both = set(categorical) & set(numeric)
        if both:
            raise ConfigError(f"columns {sorted(both)} are named both categorical and numeric")
        if target is not None and target not in columns:
            raise ConfigError(f"data.target={target!r} is not a column of the table; columns: {', '.join(columns)}")
        if len(df) < 2:
            raise ConfigError(f"the table has {len(df)} rows: too few to fit on")
        features, tcol = [], None
        for name in columns:
            is_target = name == target
            col = _fit_column(df[name], name, "categorical" if name in categorical else
                              "numeric" if name in numeric else None, missing, is_target)
            if is_target:
                tcol = col
            else:
                features.append(col)
        if not features:
            raise ConfigError("the table has no feature columns besides the target")
        return cls(features, tcol, columns)

    # ---- encoding ----
    def encode(self, df, with_target: bool = True) -> dict[str, np.ndarray]:
        """{"numeric": (N, n_num) float32 normal scores, "categorical": (N, n_cat) int64 category indices (-1: a
        value not seen in training), "target": (N,) class indices or float values} from a DataFrame."""
        missing = [c.name for c in self.features if c.name not in df.columns]
        if with_target and self.target is not None and self.target.name not in df.columns:
            missing.append(self.target.name)
        if missing:
            raise InputError(f"the table lacks column(s) {missing}; it has: {', '.join(map(str, df.columns))}")
        out = {"numeric": np.stack([normal_scores(self._numbers(df[c.name], c), c) for c in self.numeric], 1)
               .astype(np.float32) if self.numeric else np.zeros((len(df), 0), np.float32),
               "categorical": np.stack([self._codes(df[c.name], c) for c in self.categorical], 1)
               if self.categorical else np.zeros((len(df), 0), np.int64)}
        if with_target and self.target is not None:
            t = self.target
            if bool(df[t.name].isna().any()):
                raise InputError(f"target column {t.name!r} has {int(df[t.name].isna().sum())} missing value(s): "
                                 "drop those rows")
            out["target"] = self._codes(df[t.name], t) if t.kind == "categorical" else \
                self._numbers(df[t.name], t).astype(np.float32)
        return out

    def _numbers(self, s, c: Column) -> np.ndarray:
        _check_numeric(s, c.name)
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        nan = np.isnan(x)
        if nan.any():
            if c.fill is None:
                raise InputError(f"column {c.name!r} has {int(nan.sum())} missing value(s) (NaN); this model was "
                                 "fitted with data.missing='refuse'")
            x = np.where(nan, c.fill, x)
        return x

    def _codes(self, s, c: Column) -> np.ndarray:
        text = _as_text(s, c)
        index = {v: i for i, v in enumerate(c.categories)}
        return np.array([index.get(v, -1) for v in text], dtype=np.int64)

    def decode(self, numeric: np.ndarray, categorical: np.ndarray, target: np.ndarray | None = None):
        """A DataFrame in the table's column order and dtypes from model space: normal scores (N, n_num), category
        indices (N, n_cat), and the target (class indices or values)."""
        import pandas as pd

        cols = {}
        for j, c in enumerate(self.numeric):
            cols[c.name] = _cast(from_normal_scores(np.asarray(numeric[:, j], np.float64), c), c)
        for j, c in enumerate(self.categorical):
            cols[c.name] = _category_values(np.asarray(categorical[:, j]), c)
        if self.target is not None and target is not None:
            cols[self.target.name] = self.target_values(target)
        return pd.DataFrame({name: cols[name] for name in self.order if name in cols})

    def target_values(self, target: np.ndarray):
        """The target's own values (class labels in their dtype, or numbers) from class indices or values."""
        t = self.target
        return _category_values(np.asarray(target), t) if t.kind == "categorical" else \
            _cast(np.asarray(target, np.float64), t)

    def __len__(self) -> int:
        return len(self.features)


# ---- one column ----
def _fit_column(s, name: str, given: str | None, missing: str, is_target: bool) -> Column:
    import pandas as pd

    n_missing = int(s.isna().sum())
    if n_missing and is_target:
        raise ConfigError(f"target column {name!r} has {n_missing} missing value(s): drop those rows")
    if n_missing and missing == "refuse":
        raise ConfigError(f"column {name!r} has {n_missing} missing value(s) (NaN); drop or fill them, or set "
                          "data.missing=impute (numeric: the training median; categorical: a '<missing>' category)")
    present = s.dropna()
    if len(present) == 0:
        raise ConfigError(f"column {name!r} has no values")
    if pd.api.types.is_bool_dtype(s.dtype) or (s.dtype == object and present.map(type).eq(bool).all()):
        dtype = "bool"
    elif pd.api.types.is_integer_dtype(s.dtype) or (pd.api.types.is_float_dtype(s.dtype)
                                                      and np.all(np.mod(present.to_numpy(np.float64), 1) == 0)
                                                      and given == "categorical"):
        dtype = "int"
    elif pd.api.types.is_float_dtype(s.dtype):
        dtype = "float"
    else:
        dtype = "str"
        if given != "categorical":
            _check_not_mixed(present, name)
    kind = given or ("numeric" if dtype in ("int", "float") and not (
        is_target and dtype == "int" and present.nunique() <= MAX_CLASSES) else "categorical")
    if kind == "numeric" and dtype in ("str", "bool"):
        raise ConfigError(f"column {name!r} holds {'text' if dtype == 'str' else 'booleans'} and cannot be numeric")
    if kind == "categorical":
        col = Column(name, kind, dtype, categories=sorted(set(_as_text(present, None))))
        if n_missing:
            col.categories.append(MISSING_CATEGORY)
            col.fill = MISSING_CATEGORY
        if len(col.categories) < 2 and is_target:
            raise ConfigError(f"target column {name!r} has a single class {col.categories}: nothing to predict")
        return col
    x = present.to_numpy(dtype=np.float64)
    levels = np.linspace(0, 1, min(N_QUANTILES, len(x)))
    q = np.maximum.accumulate(np.nanpercentile(x, levels * 100))  # as scikit-learn: monotone
    return Column(name, kind, dtype, quantiles=q.tolist(), fill=float(np.median(x)) if n_missing else None,
                  mean=float(x.mean()), std=float(x.std()) or 1.0)


def _check_not_mixed(present, name: str) -> None:
    """A text column whose values are partly numbers and partly not is refused (a typo or a unit in a number
    column, most often)."""
    import pandas as pd

    numbers = pd.to_numeric(present.astype(str), errors="coerce")
    n_num = int(numbers.notna().sum())
    if 0 < n_num < len(present):
        texts = present[numbers.isna()].astype(str).unique()[:3].tolist()
        raise ConfigError(f"column {name!r} mixes numbers ({n_num} rows) and text ({len(present) - n_num} rows, e.g. "
                          f"{texts}): fix those values, or declare it categorical (data.categorical={name})")


def _check_numeric(s, name: str) -> None:
    import pandas as pd

    if not (pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)):
        bad = s.dropna()[pd.to_numeric(s.dropna().astype(str), errors="coerce").isna()].astype(str).unique()[:3]
        if len(bad) or not pd.api.types.is_numeric_dtype(s.dtype):
            raise InputError(f"numeric column {name!r} holds non-numbers (dtype {s.dtype}, e.g. {bad.tolist()})")


def _as_text(s, c: Column | None) -> list[str]:
    """Category values as text; a missing value is '<missing>' (when fitted with missing="impute")."""
    out = []
    for v in s.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            if c is not None and c.fill is None:
                raise InputError(f"column {c.name!r} has missing value(s); this model was fitted with "
                                 "data.missing='refuse'")
            out.append(MISSING_CATEGORY)
        elif isinstance(v, (bool, np.bool_)):
            out.append(str(bool(v)))
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def _category_values(codes: np.ndarray, c: Column):
    import pandas as pd

    text = np.array(c.categories, dtype=object)[np.clip(codes, 0, len(c.categories) - 1)]
    missing = text == MISSING_CATEGORY
    if c.dtype == "bool":
        values = pd.Series(text == "True", dtype=object if missing.any() else bool)
    elif c.dtype == "int":
        values = pd.Series([None if m else int(v) for v, m in zip(text, missing)],
                           dtype="Int64" if missing.any() else np.int64)
    else:
        values = pd.Series(text, dtype=object)
    if missing.any():
        values[missing] = None
    return values.to_numpy() if c.dtype != "int" or not missing.any() else values


def _cast(x: np.ndarray, c: Column) -> np.ndarray:
    return np.round(x).astype(np.int64) if c.dtype == "int" else x


# ---- quantile normalisation (scikit-learn's QuantileTransformer, output_distribution="normal") ----
def normal_scores(x: np.ndarray, c: Column) -> np.ndarray:
    from scipy.stats import norm

    q = np.asarray(c.quantiles)
    ref = np.linspace(0, 1, len(q))
    # the mean of the forward and backward interpolations puts tied quantiles at their middle level
    p = 0.5 * (np.interp(x, q, ref) - np.interp(-x, -q[::-1], -ref[::-1]))
    p[x + BOUND > q[-1]] = 1.0
    p[x - BOUND < q[0]] = 0.0
    hi = normal_score_bound()
    return np.clip(norm.ppf(p), -hi, hi)


def normal_score_bound() -> float:
    """The largest |normal score| `normal_scores` gives (about 5.2): the support of every numeric column."""
    from scipy.stats import norm

    return float(-norm.ppf(BOUND - np.spacing(1)))


def from_normal_scores(z: np.ndarray, c: Column) -> np.ndarray:
    from scipy.stats import norm

    q = np.asarray(c.quantiles)
    ref = np.linspace(0, 1, len(q))
    p = norm.cdf(z)
    x = np.interp(p, ref, q)
    x[p - BOUND < 0] = q[0]
    x[p + BOUND > 1] = q[-1]
    return x
