"""FuseLLM token alignment against brute force: edit distance against the textbook dynamic programme, DTW against
every monotone path and against a loop-by-loop transcription of the simple DTW FuseLLM uses (its tie order),
hand-built token pairs whose alignment turns on the stripped spaces and on that tie order (checked cell by cell),
the vocabulary mapping against an exhaustive arg-min, token surfaces of byte-level and SentencePiece tokenizers,
mapped distributions summing to 1, and the identity alignment of a tokenizer with itself."""

import itertools
import random

import numpy as np
import pytest
import torch

from genzoo.errors import InputError
from genzoo.fuse.align import (aligned_source, alignment_cost, dtw_path, edit_distances, map_distributions, spaceless,
                               vocab_map)
from genzoo.fuse.surface import byte_level, metaspace, surfaces, wordpiece
from genzoo.tokenizers import train_bpe, train_sentencepiece_bpe

TEXT = ["def request(self, url):\n    return self.open(url)  # é ☃ 漢\n", "x = [1, 2, 3]\nprint(x)\n"] * 30


def levenshtein(a: str, b: str) -> int:
    """The textbook O(len(a) len(b)) dynamic programme."""
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


def all_paths(n, m):
    """Every monotone path from (0, 0) to (n-1, m-1) with steps (1,1), (1,0), (0,1)."""
    def rec(i, j):
        if (i, j) == (n - 1, m - 1):
            yield [(i, j)]
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            if i + di < n and j + dj < m:
                for rest in rec(i + di, j + dj):
                    yield [(i, j)] + rest
    return list(rec(0, 0))


def test_edit_distance_matches_the_textbook_dp():
    rng = random.Random(0)
    alphabet = ["a", "b", " ", "\n", "é", "漢", "Ġ", "▁", "\udcc3"]  # unicode, whitespace, markers, a lone surrogate
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(40)]
    got = edit_distances(words, words[::-1])
    want = np.array([[levenshtein(a, b) for b in words[::-1]] for a in words])
    assert (got == want).all()


def test_dtw_finds_the_least_cost_monotone_path():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = rng.integers(1, 6, 2)
        cost = rng.integers(0, 5, (n, m))
        path = dtw_path(cost)
        assert path[0] == (0, 0) and path[-1] == (n - 1, m - 1)
        assert all((i2 - i1, j2 - j1) in ((1, 1), (1, 0), (0, 1)) for (i1, j1), (i2, j2) in zip(path, path[1:]))
        best = min(sum(cost[i, j] for i, j in p) for p in all_paths(n, m))
        assert sum(cost[i, j] for i, j in path) == best


def simple_dtw(cost):
    """The textbook DTW as FuseLLM writes it (after simpledtw): an (n+1, m+1) float matrix with an infinite border,
    filled row by row, then a back-trace from the corner taking np.argmin of [diagonal, up, left] at each step."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    for i in range(n):
        for j in range(m):
            acc[i + 1, j + 1] = cost[i, j] + min(acc[i, j + 1], acc[i + 1, j], acc[i, j])
    acc = acc[1:, 1:]
    i, j, path = n - 1, m - 1, []
    while i > 0 or j > 0:
        path.append((i, j))
        move = np.argmin([acc[i - 1, j - 1] if i > 0 and j > 0 else np.inf, acc[i - 1, j] if i > 0 else np.inf,
                          acc[i, j - 1] if j > 0 else np.inf])
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    return [(0, 0)] + path[::-1]


def test_dtw_breaks_ties_as_fusellm_does():
    rng = np.random.default_rng(1)
    for _ in range(300):  # costs 0..2: ties everywhere
        n, m = rng.integers(1, 9, 2)
        cost = rng.integers(0, 3, (n, m))
        assert dtw_path(cost) == simple_dtw(cost)
    assert dtw_path(np.zeros((3, 3), dtype=int)) == [(0, 0), (1, 1), (2, 2)]  # the diagonal first
    # up and left tie at the corner (both 2, the diagonal 3): a row back first
    assert dtw_path(np.array([[1, 0, 1], [1, 2, 1], [1, 0, 1]])) == [(0, 0), (0, 1), (1, 2), (2, 2)]


def test_stripped_spaces_decide_the_alignment():
    # " defdef": the target (byte-level) glues the space to the first word, the source has it on its own
    target, source = [" def", "def"], [" ", "def", "def"]
    assert [spaceless(t) for t in target] == ["def", "def"] and spaceless("\t x\n ") == "\tx\n"
    cost = alignment_cost(target, source)  # (source, target): every cell by hand
    assert cost.tolist() == [[3, 3],  # ""    vs "def", "def"
                             [0, 0],  # "def" vs "def", "def"
                             [0, 0]]
    # accumulated: [[3, 6], [3, 3], [3, 3]]; from the corner all three ties -> diagonal, then up:
    assert dtw_path(cost) == [(0, 0), (1, 0), (2, 1)]
    assert aligned_source(target, source).tolist() == [-1, 2]  # "def" pairs with "def" alone
    # with the spaces kept (" " vs " def" 3, "def" vs " def" 1) the path is (0,0), (1,1), (2,1): " def" pairs with
    # the lone " " and "def" with two source tokens - the alignment FuseLLM's stripping avoids
    kept = np.array([[levenshtein(s, t) for t in target] for s in source])
    assert kept.tolist() == [[3, 3], [1, 0], [1, 0]]
    assert dtw_path(kept) == [(0, 0), (1, 1), (2, 1)]


def test_tie_order_decides_the_alignment():
    # "xyxyx": target "xy" "x" "yx", source "x" "yxy" "x"; two least-cost paths (3), the tie at the corner
    target, source = ["xy", "x", "yx"], ["x", "yxy", "x"]
    cost = alignment_cost(target, source)
    assert cost.tolist() == [[1, 0, 1],  # "x"   vs "xy", "x", "yx"
                             [1, 2, 1],  # "yxy"
                             [1, 0, 1]]  # "x"
    # accumulated [[1, 1, 2], [2, 3, 2], [3, 2, 3]]: at (2, 2) up (2) ties left (2) below the diagonal (3);
    # FuseLLM steps a source token back: (1, 2), then the diagonal (0, 1), then (0, 0)
    assert dtw_path(cost) == simple_dtw(cost) == [(0, 0), (0, 1), (1, 2), (2, 2)]
    assert aligned_source(target, source).tolist() == [0, 0, -1]
    # stepping a target token back first would give (0,0), (1,0), (2,1), (2,2) and pair "x" with the last "x"
    transposed = dtw_path(cost.T)
    assert [(j, i) for i, j in transposed] == [(0, 0), (1, 0), (2, 1), (2, 2)]


def test_tokens_that_split_differently():
    # target: "def", " f", "(x", "):"  source: "de", "f", " f", "(", "x", ")", ":"
    target = ["def", " f", "(x", "):"]
    source = ["de", "f", " f", "(", "x", ")", ":"]
    partner = aligned_source(target, source)
    cost = np.array([[levenshtein(s.replace(" ", ""), t.replace(" ", "")) for t in target] for s in source])
    assert (alignment_cost(target, source) == cost).all()
    best = min(sum(cost[i, j] for i, j in p) for p in all_paths(len(source), len(target)))
    path = dtw_path(cost)
    assert sum(cost[i, j] for i, j in path) == best == 5
    # "de" -> "def" (1); "f", " f" -> " f" (0, 0) and "(" too (1, tied with "(x": the diagonal first);
    # "x" -> "(x" alone (1); ")", ":" -> "):" (1, 1): "def" and "(x" have one partner each
    assert path == [(0, 0), (1, 1), (2, 1), (3, 1), (4, 2), (5, 3), (6, 3)]
    assert partner.tolist() == [0, -1, 4, -1]
    same = aligned_source(["a", "bc", "d"], ["a", "bc", "d"])
    assert same.tolist() == [0, 1, 2]


def test_surfaces_strip_the_markers_of_each_family():
    assert byte_level("Ġdef") == " def" and byte_level("Ċ") == "\n" and byte_level("<|endoftext|>") == "<|endoftext|>"
    assert metaspace("▁def") == " def" and metaspace("<0x0A>") == "\n" and metaspace("▁▁") == "  "
    assert wordpiece("##ing") == "ing" and wordpiece("##") == "##"
    assert byte_level("Ã") == "\udcc3" == metaspace("<0xC3>")  # half of "é": the same surface in both families


def test_byte_level_and_sentencepiece_tokens_of_one_text_align():
    from genzoo.data.domains import domain_corpus

    corpus = domain_corpus("stdlib/net/source", max_bytes=40_000).read("train")
    byte_tok, sp_tok = train_bpe(corpus, 400), train_sentencepiece_bpe(corpus, 500)
    bs, ss = surfaces(byte_tok), surfaces(sp_tok)
    text = TEXT[0]
    b, s = byte_tok.encode(text), sp_tok.encode(text)
    for sf, ids in ((bs, b), (ss, s)):  # the surfaces spell the text, bytes of a split character included
        assert "".join(sf[t] for t in ids).encode("utf-8", "surrogateescape") == text.encode()
    partner = aligned_source([bs[t] for t in b], [ss[t] for t in s])
    pairs = [(bs[b[i]], ss[s[j]]) for i, j in enumerate(partner) if j >= 0]
    same = [x for x, y in pairs if x == y]
    assert len(same) >= len(b) // 3, (pairs, len(b))  # most one-to-one pairs are the same string


def test_vocab_map_exact_else_minimum_edit_distance():
    target = ["<s>", "get", "gets", " the", "a", "sets"]
    source = ["<s>", "gets", "geet", " th", "zzzz", "the"]
    vm = vocab_map(source, target, source_special={0}, target_special={0})
    assert vm.exact.tolist() == [0, 2, -1, -1, -1, -1]
    for i in range(1, len(source)):  # brute force: exact, else the lowest id at minimum distance (never a special)
        if vm.exact[i] >= 0:
            assert vm.mined[i] == vm.exact[i]
        else:
            d = [levenshtein(source[i], t) if k != 0 else 99 for k, t in enumerate(target)]
            assert vm.mined[i] == d.index(min(d))
    assert vm.mined[2] == 1 and vm.mined[3] == 3 and vm.overlap == 2


def _distribution(partner, t_ids, s_ids, k=3, vocab=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = len(s_ids)
    topk_ids = torch.stack([torch.randperm(vocab, generator=g)[:k] for _ in range(m)])
    topk_probs = torch.softmax(torch.randn(m, vocab, generator=g), -1).sort(descending=True).values[:, :k]
    return topk_ids, topk_probs


def test_mapped_distributions_sum_to_one_and_fall_back_to_the_next_gold_token():
    target = ["def", " f", "(x", "):", "\n"]  # target ids 0..4
    source = ["de", "f", " f", "(", "x", ")", ":", "\n"]  # source ids 5, 6, 1, 7, 0, 2, 3, 4
    t_ids, s_ids = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 6, 1, 7, 0, 2, 3, 4])
    partner = aligned_source(target, source)
    assert partner.tolist() == [0, -1, 4, -1, 7]  # "(x" pairs with "x" alone (id 0 -> "def": no match)
    topk_ids, topk_probs = _distribution(partner, t_ids, s_ids)
    vmap = torch.tensor([0, 1, 2, 3, 4, 0, 1, -1])  # source id -> target id ("de" -> "def"); 7 has none: dropped
    exact = torch.tensor([0, 1, 2, 3, 4, -1, -1, -1])
    ids, probs, aligned = map_distributions(partner, t_ids, s_ids, topk_ids, topk_probs, vmap, vmap)
    assert ids.shape == (4, 3) and aligned.tolist() == [True, False, False, False]  # the last token predicts nothing
    assert not map_distributions(partner, t_ids, s_ids, topk_ids, topk_probs, vmap, exact)[2].any()  # "de" != "def"
    dense = torch.zeros(4, 5).scatter_add_(1, ids, probs)
    torch.testing.assert_close(dense.sum(1), torch.ones(4))
    for i in (1, 2, 3):  # fallback: one-hot on the token the position predicts
        assert dense[i, t_ids[i + 1]] == 1
    keep = vmap[topk_ids[0]] >= 0
    want = torch.zeros(5).scatter_add_(0, vmap[topk_ids[0]][keep], topk_probs[0][keep])
    torch.testing.assert_close(dense[0], want / want.sum())


def test_a_source_with_the_target_tokenizer_aligns_as_the_identity():
    tok = train_bpe(TEXT, 300)
    s = surfaces(tok)
    vm = vocab_map(s, s)
    assert (vm.exact == torch.arange(len(s))).all() and (vm.mined == vm.exact).all()
    ids = tok.encode(TEXT[0])
    partner = aligned_source([s[t] for t in ids], [s[t] for t in ids])
    assert partner.tolist() == list(range(len(ids)))
    t_ids = torch.tensor(ids)
    topk_ids, topk_probs = _distribution(partner, t_ids, t_ids, k=4, vocab=tok.vocab_size)
    out_ids, out_probs, aligned = map_distributions(partner, t_ids, t_ids, topk_ids, topk_probs, vm.mined, vm.mined)
    assert aligned.all() and (out_ids == topk_ids[:-1]).all()
    torch.testing.assert_close(out_probs, topk_probs[:-1] / topk_probs[:-1].sum(-1, keepdim=True))


def test_empty_sequences_are_refused():
    with pytest.raises(InputError, match="empty token sequence"):
        aligned_source([], ["a"])
    with pytest.raises(InputError, match="non-empty"):
        dtw_path(np.zeros((0, 3)))


@pytest.mark.parametrize("n,m", list(itertools.product([1, 2, 7], [1, 3, 40])))
def test_dtw_on_degenerate_shapes(n, m):
    path = dtw_path(np.ones((n, m), dtype=int))
    assert path[0] == (0, 0) and path[-1] == (n - 1, m - 1) and len(path) == max(n, m)
