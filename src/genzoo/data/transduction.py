"""Sequence-to-sequence data made here: synthetic transductions (sort or reverse a random string) and a real
task from the standard library (name a function from its body, names masked in the body)."""

from __future__ import annotations

import ast
import random

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def synthetic_pairs(kind: str, n: int, seed: int, min_len: int = 4, max_len: int = 12) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(min_len, max_len)))
        out.append((s, "".join(sorted(s)) if kind == "sort" else s[::-1]))
    return out


def function_name_pairs(texts: list[str], max_body_chars: int = 200) -> list[tuple[str, str]]:
    """(body with the function's own name masked, name) for every function definition in the sources."""
    pairs = []
    for text in texts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                body = ast.get_source_segment(text, node)
                if not body:
                    continue
                body = body.split(":", 1)[-1].replace(node.name, "_")[:max_body_chars].strip()
                pairs.append((body, node.name))
    return pairs


def docstring_pairs(texts: list[str], max_code_chars: int = 400) -> list[tuple[str, str]]:
    """(the first line of a function's docstring, the function's code without its docstring) for every documented
    function in the sources: a retrieval task (find the code a summary describes) made from the standard library."""
    pairs = []
    for text in texts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            code = ast.get_source_segment(text, node)
            if not doc or not code or len(node.body) < 2:
                continue
            summary = doc.strip().splitlines()[0].strip()
            first = node.body[0]  # the docstring expression: dropped from the code
            lines = code.splitlines()
            start, end = first.lineno - node.lineno, first.end_lineno - node.lineno + 1
            body = "\n".join(lines[:start] + lines[end:])[:max_code_chars]
            if len(summary) >= 12:
                pairs.append((summary, body))
    return pairs
