"""Generated named-entity sentences for GLiNER (`genzoo train gliner-nano`, `genzoo experiment gliner-zero-shot`).

40 entity types, each with clause templates; the values come from real lists: the Python standard library's module,
function, class, exception, keyword and encoding names, its MIME types, HTTP methods, Unicode character names,
month and weekday names; scikit-learn's bundled datasets' feature names, its dataset and estimator names;
matplotlib's CSS colour names and their hex values; person, city, country, language, currency and company names
from a list shipped with genzoo (`ner_lists.json`); generated numbers, dates, times, versions, IP addresses, file
paths, URLs and e-mail addresses. Values nest (a person's first name, a written date's month and year, a URL's or
an e-mail's domain, a path's file name and its extension), and filler clauses with capitalised words are
distractors. A sentence is 1-3 clauses; its spans are word spans over `models.gliner.split_words`.

SEEN (30 types) are the training types; HELD_OUT (10 types) never appear in training sentences and are kept for
zero-shot evaluation (their values nest in a few seen ones: a file name's extension, a price's currency).
"""

from __future__ import annotations

import calendar
import functools
import json
import random
from dataclasses import dataclass, field
from importlib import resources

from ..models.gliner.processing import split_words

# type -> clause templates; {} is the entity
TEMPLATES = {
    "person": ["{} wrote the first draft", "the talk was given by {}", "{} joined the team last spring",
               "according to {}, the results hold", "we thanked {} for the review"],
    "first name": ["her first name is {}", "everyone just calls him {}", "the form asks for a first name such as {}"],
    "country": ["the delegation flew in from {}", "exports to {} doubled", "she grew up in {}", "{} signed the treaty"],
    "language": ["the manual was translated into {}", "he speaks fluent {}", "subtitles are available in {}"],
    "currency code": ["prices are quoted in {}", "the account is held in {}", "convert the totals to {}"],
    "company": ["{} announced a new product", "the contract went to {}", "she works as an engineer at {}"],
    "python module": ["import {} at the top of the file", "the {} module handles this", "see the docs of {}"],
    "python function": ["call {}() to get the result", "the helper wraps {}", "{}() is defined in the standard library"],
    "exception": ["the parser raises {} on bad input", "catch {} and retry", "a {} was logged at startup"],
    "python keyword": ["the {} keyword starts the block", "you cannot name a variable {}", "the statement uses {}"],
    "encoding": ["the file is encoded as {}", "decode the bytes with {}", "open it with encoding {}"],
    "mime type": ["the server replies with {}", "set the content type to {}", "the upload was sent as {}"],
    "http method": ["send a {} request to the endpoint", "the route only accepts {}", "a {} call creates the record"],
    "unicode character name": ["the glyph is named {}", "the code point is called {}", "insert the {} character"],
    "month": ["the release is planned for {}", "sales peak every {}", "the survey ran in {}"],
    "hex color": ["the background is {}", "the line is drawn in {}", "set the accent colour to {}"],
    "feature name": ["the model relies on the {} feature", "drop the column {}", "the strongest predictor is {}"],
    "dataset name": ["we trained on the {} dataset", "the {} data ships with the library", "results on {} are shown"],
    "estimator": ["fit a {} on the training split", "the baseline is a {}", "{} gave the best score"],
    "integer": ["the crate holds {} items", "we counted {} votes", "the queue has {} jobs waiting"],
    "decimal number": ["the ratio came out at {}", "the sensor read {}", "the mean was {} on average"],
    "money amount": ["the ticket costs {}", "they raised {} in the first round", "the invoice totals {}"],
    "date": ["the meeting was moved to {}", "the log starts on {}", "the deadline is {}"],
    "year": ["the bridge opened in {}", "the company was founded in {}", "records go back to {}"],
    "url": ["the docs live at {}", "open {} in a browser", "the link {} is broken"],
    "domain name": ["the site moved to {}", "mail is routed through {}", "the certificate covers {}"],
    "file path": ["the output is written to {}", "edit {} before running", "the script reads {}"],
    "file name": ["attach {} to the ticket", "the notes are in {}", "rename the draft to {}"],
    "ip address": ["the host answers on {}", "block traffic from {}", "the printer sits at {}"],
    "version number": ["upgrade to version {}", "the bug was fixed in {}", "release {} is out"],
    # held out
    "city": ["the conference takes place in {}", "she moved to {} last year", "the train to {} was late"],
    "continent": ["the species is native to {}", "the tour covers most of {}", "sales grew fastest in {}"],
    "email address": ["write to {} for details", "the invite came from {}", "reply to {} by Friday"],
    "weekday": ["the shop is closed on {}", "we meet every {}", "the build runs on {} nights"],
    "time": ["the train leaves at {}", "the call starts at {}", "the alarm went off at {}"],
    "percentage": ["turnout reached {}", "the discount is {}", "accuracy improved by {}"],
    "python class": ["create a {} instance", "the function returns a {}", "subclass {} to customise it"],
    "file extension": ["the tool exports {} files", "save the table in the {} format", "only {} uploads are accepted"],
    "currency": ["the price is given in {}", "they paid in {}", "the fee was converted to {}"],
    "color name": ["the walls were painted {}", "the logo is {} on white", "pick {} for the header"],
}
HELD_OUT = ("city", "continent", "email address", "weekday", "time", "percentage", "python class", "file extension",
            "currency", "color name")
SEEN = tuple(t for t in TEMPLATES if t not in HELD_OUT)
FILLERS = ["the Committee approved the plan", "nobody objected at the Board meeting", "as the Manual explains",
           "everything went well", "the Team agreed after a short Review", "details follow in the Appendix",
           "Support confirmed it", "the Office stayed open"]
JOINS = [", and ", "; ", ". Then ", ", while ", ". ", " and "]


@functools.lru_cache(maxsize=1)
def lists() -> dict[str, list[str]]:
    """The value lists, from the standard library, scikit-learn, matplotlib and `ner_lists.json`."""
    import builtins
    import encodings.aliases
    import http
    import inspect
    import keyword
    import mimetypes
    import sys
    import unicodedata
    from importlib import import_module

    import sklearn.datasets
    from matplotlib.colors import CSS4_COLORS

    shipped = json.loads(resources.files("genzoo.data").joinpath("ner_lists.json").read_text())

    def public(module, pred):
        m = import_module(module)
        return [n for n, v in vars(m).items() if not n.startswith("_") and pred(v)]

    functions, classes = set(), set()
    for m in ("math", "os", "os.path", "json", "re", "shutil", "itertools", "functools", "random", "statistics",
              "textwrap", "heapq", "bisect", "glob", "copy", "base64", "hashlib", "csv", "difflib", "tempfile"):
        functions.update(public(m, lambda v: inspect.isfunction(v) or inspect.isbuiltin(v)))
    for m in ("collections", "pathlib", "datetime", "decimal", "fractions", "argparse", "threading", "queue",
              "logging", "io", "enum", "configparser", "csv", "zipfile", "tarfile", "socket", "sqlite3", "string"):
        classes.update(n for n in public(m, lambda v: inspect.isclass(v) and not issubclass(v, BaseException))
                       if n[0].isupper())
    features = set()
    for load in (sklearn.datasets.load_iris, sklearn.datasets.load_wine, sklearn.datasets.load_breast_cancer,
                 sklearn.datasets.load_diabetes):
        features.update(load().feature_names)
    datasets = [n.split("_", 1)[1].replace("_", " ") for n in dir(sklearn.datasets)
                if n.startswith(("load_", "fetch_")) and not n.endswith(("files", "file", "image", "images", "openml"))
                and "vectorized" not in n]
    estimators = set()
    for m in ("linear_model", "tree", "svm", "neighbors", "naive_bayes", "cluster", "decomposition"):
        estimators.update(n for n in import_module(f"sklearn.{m}").__all__ if n[0].isupper())
    names = {c: unicodedata.name(chr(c), "") for c in [*range(0x41, 0x7B), *range(0xC0, 0x180), *range(0x391, 0x3CA),
                                                       *range(0x2190, 0x21A0), *range(0x2200, 0x2230)]}
    return {
        **shipped,
        "python_modules": sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n.isidentifier()),
        "python_functions": sorted(functions), "python_classes": sorted(classes),
        "exceptions": sorted(n for n, v in vars(builtins).items() if inspect.isclass(v) and issubclass(v, BaseException)
                             and n[0].isupper()),
        "keywords": list(keyword.kwlist), "encodings": sorted(set(encodings.aliases.aliases.values())),
        "mime_types": sorted(set(mimetypes.MimeTypes().types_map[True].values())),
        "http_methods": [m.value for m in http.HTTPMethod] if hasattr(http, "HTTPMethod") else
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        "unicode_names": sorted({n for n in names.values() if n and len(n.split()) <= 8}),
        "months": list(calendar.month_name)[1:], "weekdays": list(calendar.day_name),
        "colors": sorted(CSS4_COLORS), "hex_colors": sorted({v.lower() for v in CSS4_COLORS.values()}),
        "features": sorted(features), "datasets": sorted(datasets), "estimators": sorted(estimators),
    }


@dataclass
class Sentence:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (first word, last word, type), inclusive

    @property
    def words(self) -> list[str]:
        return [w for w, _, _ in split_words(self.text)]


class Value:
    """An entity's text and the entities nested in it: [(start char, end char, type)] relative to the text."""

    def __init__(self, text: str, kind: str, nested=()):
        self.text, self.spans = text, [(0, len(text), kind), *nested]

    @classmethod
    def join(cls, kind: str, *parts) -> "Value":
        """Concatenate strings and Values; the Values' spans nest in the result."""
        text, nested = "", []
        for p in parts:
            if isinstance(p, Value):
                nested += [(s + len(text), e + len(text), k) for s, e, k in p.spans]
                p = p.text
            text += p
        return cls(text, kind, nested)


def value(kind: str, rng: random.Random, held_out: bool = False) -> Value:
    """A value of an entity type. held_out: formats whose nested entities are held-out types (a price in a
    currency name) may be drawn."""
    L = lists()
    pick = rng.choice
    simple = {"first name": "first_names", "country": "countries", "language": "languages",
              "currency code": "currency_codes", "company": "companies", "python module": "python_modules",
              "python function": "python_functions", "exception": "exceptions", "python keyword": "keywords",
              "encoding": "encodings", "mime type": "mime_types", "http method": "http_methods",
              "unicode character name": "unicode_names", "month": "months", "hex color": "hex_colors",
              "feature name": "features", "dataset name": "datasets", "estimator": "estimators", "city": "cities",
              "continent": "continents", "weekday": "weekdays", "python class": "python_classes",
              "file extension": "file_extensions", "currency": "currencies", "color name": "colors"}
    if kind in simple:
        return Value(pick(L[simple[kind]]), kind)
    if kind == "person":
        return Value.join(kind, value("first name", rng), " ", pick(L["last_names"]))
    if kind == "integer":
        n = rng.randint(2, 99999)
        return Value(f"{n:,}" if n >= 1000 and rng.random() < 0.5 else str(n), kind)
    if kind == "decimal number":
        return Value(f"{rng.uniform(0, 1000):.{rng.randint(1, 3)}f}", kind)
    if kind == "percentage":
        return Value.join(kind, f"{rng.randint(1, 99)}" if rng.random() < 0.5 else value("decimal number", rng), "%")
    if kind == "money amount":
        amount = f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}"
        r = rng.random()
        if held_out and r < 0.4:
            return Value.join(kind, amount, " ", value("currency", rng))
        return Value("$" + amount, kind) if r < 0.7 else Value.join(kind, amount, " ", value("currency code", rng))
    if kind == "date":
        y, m, d = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
        if rng.random() < 0.5:
            return Value(f"{y}-{m:02d}-{d:02d}", kind)
        month, year = Value(calendar.month_name[m], "month"), Value(str(y), "year")
        return Value.join(kind, month, f" {d}, ", year) if rng.random() < 0.5 else Value.join(kind, f"{d} ", month,
                                                                                              " ", year)
    if kind == "year":
        return Value(str(rng.randint(1500, 2030)), kind)
    if kind == "time":
        h, m = rng.randint(0, 23), rng.randint(0, 59)
        return Value(f"{h:02d}:{m:02d}" if rng.random() < 0.6 else f"{h % 12 + 1}:{m:02d} {pick(['am', 'pm'])}", kind)
    if kind == "domain name":
        stem = pick(L["companies"]).split()[0].lower() if rng.random() < 0.5 else pick(L["file_stems"])
        return Value(f"{stem}.{pick(L['tlds'])}", kind)
    if kind == "url":
        return Value.join(kind, pick(["https://", "http://"]), value("domain name", rng), "/",
                          pick(L["path_parts"]))
    if kind == "email address":
        return Value.join(kind, f"{pick(L['first_names']).lower()}.{pick(L['last_names']).lower()}@",
                          value("domain name", rng))
    if kind == "file name":
        return Value.join(kind, pick(L["file_stems"]), ".", value("file extension", rng))
    if kind == "file path":
        parts = rng.sample(L["path_parts"], rng.randint(1, 2))
        return Value.join(kind, pick(["", "/"]), "/".join(parts), "/", value("file name", rng))
    if kind == "ip address":
        return Value(".".join(str(rng.randint(1, 254)) for _ in range(4)), kind)
    if kind == "version number":
        return Value(".".join(str(rng.randint(0, 20)) for _ in range(rng.randint(2, 3))), kind)
    raise KeyError(kind)


def sentence(rng: random.Random, types: tuple[str, ...], held_out: bool = False, max_clauses: int = 3,
             max_width: int = 12) -> Sentence:
    """1..max_clauses clauses of random types from `types` (and, sometimes, a distractor filler); every nested
    entity is labelled with its own type. Spans longer than max_width words are left out."""
    pieces: list = []
    for i in range(rng.randint(1, max_clauses)):
        kind = rng.choice(types)
        before, after = rng.choice(TEMPLATES[kind]).split("{}")
        join = rng.choice(JOINS) if i else ". "
        if join.endswith(". "):  # a new sentence: capitalise the template's first word (never an entity)
            before = before[:1].upper() + before[1:]
        pieces += ([join] if i else []) + [before, value(kind, rng, held_out), after]
    if rng.random() < 0.3:
        pieces += [rng.choice(JOINS), rng.choice(FILLERS)]
    text, chars = "", []
    for p in pieces:
        if isinstance(p, Value):
            chars += [(s + len(text), e + len(text), k) for s, e, k in p.spans]
            p = p.text
        text += p
    text += "."
    words = split_words(text)
    starts = {s: i for i, (_, s, _) in enumerate(words)}
    ends = {e: i for i, (_, _, e) in enumerate(words)}
    spans = sorted({(starts[s], ends[e], k) for s, e, k in chars
                    if s in starts and e in ends and ends[e] - starts[s] < max_width})
    return Sentence(text, spans)


# held-out evaluation sentences: clauses of the held-out types, and of the seen types their values nest in
HELD_OUT_MIX = HELD_OUT + ("money amount", "file name", "file path", "person", "date")


def sentences(n: int, seed: int, types=SEEN, held_out: bool = False, keep=None) -> list[Sentence]:
    """n sentences, the same for the same arguments; spans of types outside `keep` (default: `types`) dropped."""
    rng = random.Random(seed)
    keep = set(types if keep is None else keep)
    out = [sentence(rng, tuple(types), held_out) for _ in range(n)]
    for s in out:
        s.spans = [x for x in s.spans if x[2] in keep]
    return out


def held_out_sentences(n: int, seed: int) -> list[Sentence]:
    """Sentences for zero-shot evaluation: held-out clauses mixed with seen ones; only held-out spans are gold."""
    return sentences(n, seed, HELD_OUT_MIX, held_out=True, keep=HELD_OUT)
