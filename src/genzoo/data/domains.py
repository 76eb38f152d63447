"""Named domains of the standard-library corpus (text processing, networking, numerics), each split by file into
three roles: `source` (text only a domain expert is trained on), `fuse` (text a fused model is trained on) and
`val` (held-out text, seen by no model). Roles join with "+": `stdlib/net/source+fuse` is every training file of
the networking modules.

A corpus spec names domains and a role: ``stdlib/net/source`` is the networking modules' source share (its
validation split is the networking `val` share), ``stdlib/text+net+num/fuse`` the union of the three fuse shares.
Files go to roles whole (no file is cut between roles): in sorted-by-hash order each file joins the role furthest
below its share of the domain's bytes, so every role gets text whatever the Python version's file sizes are.
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

from ..errors import ConfigError
from ..registry import Registry, nearest
from .stdlib import EXCLUDED_DIRS, Corpus

DOMAINS: Registry = Registry("stdlib domain")  # name -> glob patterns relative to the standard library
DOMAINS.register("text", (
    "email/**/*.py", "html/*.py", "xml/**/*.py", "json/*.py", "re/*.py", "string.py", "textwrap.py", "difflib.py",
    "csv.py", "gettext.py", "locale.py", "codecs.py", "_markupbase.py", "mailbox.py", "tomllib/*.py",
    "configparser.py", "shlex.py", "fnmatch.py", "stringprep.py", "quopri.py", "base64.py", "sre_*.py"))
DOMAINS.register("net", (
    "asyncio/*.py", "http/*.py", "urllib/*.py", "socket.py", "ssl.py", "ftplib.py", "smtplib.py", "imaplib.py",
    "poplib.py", "socketserver.py", "ipaddress.py", "selectors.py", "wsgiref/*.py", "xmlrpc/*.py", "mimetypes.py",
    "nntplib.py", "telnetlib.py"))
DOMAINS.register("num", (
    "_pydecimal.py", "decimal.py", "fractions.py", "statistics.py", "random.py", "numbers.py", "colorsys.py",
    "bisect.py", "heapq.py", "_pylong.py", "datetime.py", "_pydatetime.py", "_strptime.py", "calendar.py",
    "zoneinfo/*.py", "timeit.py", "graphlib.py", "uuid.py", "hashlib.py", "hmac.py", "secrets.py", "struct.py",
    "operator.py"))

ROLES = {"source": 0.60, "fuse": 0.25, "val": 0.15}  # share of each domain's bytes


def domain_files(name: str, root: str | None = None) -> list[str]:
    """The domain's .py files (tests excluded), as sorted paths relative to the standard library."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    files = set()
    for pattern in DOMAINS.get(name):
        for p in base.glob(pattern):
            rel = p.relative_to(base)
            if p.is_file() and not EXCLUDED_DIRS.intersection(rel.parts[:-1]):
                files.add(rel.as_posix())
    if not files:
        raise ConfigError(f"stdlib domain {name!r} has no .py files under {base}")
    return sorted(files)


def split_roles(files: list[str], sizes: dict[str, int]) -> dict[str, list[str]]:
    """Files -> {role: files}: in hash order, each file joins the role furthest below its byte share."""
    total = sum(sizes[f] for f in files)
    got = dict.fromkeys(ROLES, 0)
    out: dict[str, list[str]] = {r: [] for r in ROLES}
    for f in sorted(files, key=lambda f: hashlib.sha1(f.encode()).hexdigest()):
        role = max(ROLES, key=lambda r: ROLES[r] * total - got[r])
        out[role].append(f)
        got[role] += sizes[f]
    return {r: sorted(v) for r, v in out.items()}


def parse_spec(spec: str) -> tuple[list[str], list[str]]:
    """'stdlib/text+net/fuse' -> (['text', 'net'], ['fuse']), naming what is wrong otherwise."""
    parts = spec.split("/")
    if len(parts) != 3 or parts[0] != "stdlib":
        raise ConfigError(f"data.corpus={spec!r} is invalid: 'stdlib' or 'stdlib/DOMAIN[+DOMAIN...]/ROLE' "
                          f"(domains: {', '.join(DOMAINS.names())}; roles: {', '.join(ROLES)})")
    names = parts[1].split("+")
    for n in names:
        DOMAINS.get(n)
    roles = parts[2].split("+")
    for r in roles:
        if r not in ROLES or r == "val":
            raise ConfigError(f"data.corpus={spec!r}: role {r!r} is not a training role"
                              f"{nearest(r, ROLES)}; roles: source, fuse, source+fuse (val is the held-out share)")
    return names, roles


def domain_corpus(spec: str, max_bytes: int | None = None, root: str | None = None) -> Corpus:
    """The Corpus of a spec: train files are the role's files of every named domain, val files their `val` files.
    max_bytes caps the bytes kept per domain and split (`_cap`: at least one file each)."""
    names, roles_wanted = parse_spec(spec)
    base = Path(root or sysconfig.get_paths()["stdlib"])
    train, val = [], []
    for n in names:
        files = domain_files(n, str(base))
        roles = split_roles(files, {f: (base / f).stat().st_size for f in files})
        train += _cap(sorted(f for r in roles_wanted for f in roles[r]), base, max_bytes)
        val += _cap(roles["val"], base, max_bytes)
    return Corpus(str(base), train, val)


def _cap(files: list[str], base: Path, max_bytes: int | None) -> list[str]:
    """The files, in sorted order, that fit in max_bytes together (a file that does not fit is skipped, a smaller
    one further on may still fit); the smallest file alone if none fits."""
    if max_bytes is None or not files:
        return files
    sizes = {f: (base / f).stat().st_size for f in files}
    kept, total = [], 0
    for f in files:
        if total + sizes[f] <= max_bytes:
            kept.append(f)
            total += sizes[f]
    return kept or [min(files, key=lambda f: (sizes[f], f))]
