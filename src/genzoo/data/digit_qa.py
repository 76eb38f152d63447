"""Words about digits, for the vision-through-language systems (`genzoo.models.vl`: LENS, arXiv 2306.16410; SPAE,
arXiv 2306.17842): a word-level vocabulary, facts about the ten digits, the questions asked about them, and the
text-only question answering a frozen language model is trained on.

The language model never sees an image. Its training text is generated here from words alone: a context in LENS's
prompt layout (tags, attributes, captions naming a digit, with distractors and wrong evidence mixed in), a question
about that digit and its short answer. What it learns is text: "seven plus one is eight", "eight has two loops",
and how to weigh several noisy mentions of a number.

The vocabulary is split into roles: specials, the punctuation and words that give prompts their layout
(`FORMAT_WORDS`), label words for in-context tasks (`LABEL_WORDS`), and content words (`content_words()`): every
other word, which is also the set of tokens the SPAE quantiser may emit (its codebook rows).
"""

from __future__ import annotations

import random

from ..registry import Registry
from .digits import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, WORDS, all_train_captions

EOS = "<|endoftext|>"
UNK = "<unk>"
SPECIALS = [EOS, UNK]

NUMBER_WORDS = WORDS + ["ten", "eleven", "twelve"]
NUMERALS = [str(i) for i in range(21)]
PARITY = ["even" if c % 2 == 0 else "odd" for c in range(10)]
LOOPS = [1, 0, 0, 0, 1, 0, 1, 0, 2, 1]  # closed loops of the printed digit
STROKES = ["straight" if c in (1, 4, 7) else "curved" for c in range(10)]

# What a LENS prompt and an in-context prompt are made of; never emitted as image tokens.
FORMAT_WORDS = [".", ",", ":", "?", "-", "tags", "attributes", "captions", "question", "short", "answer", "is",
                "what"]
# Labels of in-context classification episodes (made-up words, as Frozen and SPAE use for open-ended few-shot).
LABEL_WORDS = ["dax", "wug", "blicket", "toma", "fep", "zup", "kiki", "bouba", "gazzer", "modi", "tufa", "lorp",
               "snib", "vorp", "plim", "quax", "rilb", "yeep", "glorp", "trink"]
# Tags a tag module may also rank (LENS's tag vocabulary is every object name it knows, not only the right ones).
TAG_DISTRACTORS = ["letter", "circle", "line", "square", "cross", "dot", "ink", "paper", "pencil", "scribble",
                   "arrow", "hook", "ring", "bar"]
# Common English words: the rest of the vocabulary (more codebook rows for SPAE, more tokens for in-context tasks).
FILLER = """
apple banana cherry grape lemon mango melon olive peach pear plum berry bread butter cheese honey rice salt sugar
soup tea water milk coffee cake cookie egg flour cat dog horse cow pig sheep goat mouse rabbit fox wolf bear lion
tiger zebra monkey snake frog fish shark whale bird eagle owl duck swan bee ant spider red orange yellow green blue
purple pink brown black white grey gold silver sun moon star sky cloud rain snow wind storm fire ice stone rock sand
river lake sea ocean hill mountain forest tree leaf flower grass seed root branch garden field road bridge city
town house door window roof wall floor table chair bed lamp clock book page pen box bag cup plate bowl spoon knife
fork bottle glass key lock coin ship boat car train plane wheel engine rope chain bell drum flute piano song music
voice word name story letter map king queen child friend teacher doctor farmer sailor hand foot head eye ear nose
mouth face heart bone skin hair tooth arm leg big small tall short long wide narrow thick thin heavy light dark
bright warm cold hot cool soft hard sharp smooth rough quiet loud fast slow early late new old young happy sad calm
brave kind wise north south east west left right up down inside outside above below near far morning evening night
day week month year spring summer autumn winter
""".split()
QA_WORDS = """a an the this of by in it has have does which made number digit plus times greater than or how many
loop loops no yes strokes stroke even odd straight curved""".split()


def caption_words() -> list[str]:
    """Every word of the digits' caption templates (training and held-out), in order of appearance."""
    out = []
    for t in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES:
        out += split_words(t.replace("{}", " "))
    return out


def split_words(text: str) -> list[str]:
    """The words of a text as the vocabulary's tokenizer splits them: lower case, punctuation apart."""
    import re

    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def vocabulary() -> list[str]:
    """The word list, deterministic: specials, format words, label words, then content words."""
    words: list[str] = []
    for group in (SPECIALS, FORMAT_WORDS, LABEL_WORDS, NUMBER_WORDS, NUMERALS, QA_WORDS, caption_words(),
                  TAG_DISTRACTORS, FILLER):
        for w in group:
            if w not in words:
                words.append(w)
    return words


def content_words() -> list[str]:
    """The words that are neither special, nor layout, nor in-context labels: SPAE's codebook."""
    reserved = set(SPECIALS) | set(FORMAT_WORDS) | set(LABEL_WORDS)
    return [w for w in vocabulary() if w not in reserved]


# The words a frozen CLIP may rank as SPAE's semantic targets (K_I, arXiv 2306.17842 sec. 3.2): name -> () -> words.
SEMANTIC_WORDS: Registry = Registry("semantic word set")


@SEMANTIC_WORDS.register("content")
def all_content_words() -> list[str]:
    """Every content word: right for a CLIP that has read all of them (SPAE's web-scale CLIP). A CLIP that has read
    only digit captions scores the words it never saw by their letters (measured on a `clip-digits` run: its top
    word names the digit for 50% of the training images; "week", "wide", "wise" top the twos, sharing the "w" of
    "two")."""
    return content_words()


@SEMANTIC_WORDS.register("clip-captions")
def clip_caption_words() -> list[str]:
    """The content words of the captions a `clip-digits` CLIP is trained on (`digits.all_train_captions`): the words
    its relevance score is defined for (measured on a `clip-digits` run: its top word names the digit for 98% of the
    training images)."""
    seen = {w for caption in all_train_captions() for w in split_words(caption)}
    return [w for w in content_words() if w in seen]


def word_tokenizer():
    """A word-level tokenizer over `vocabulary()` (the `tokenizers` library's WordLevel model): lower case,
    punctuation split off, unknown words -> <unk>; the end-of-text token is the pad token too."""
    from tokenizers import Tokenizer as _HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers

    from ..tokenizers import Tokenizer

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = _HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens(SPECIALS)
    return Tokenizer(tok, EOS, EOS)


# ---- questions about a digit: (question, answer of digit c) ----
QUESTIONS = [
    ("what digit is this?", lambda c: WORDS[c]),
    ("is the number even or odd?", lambda c: PARITY[c]),
    ("what is the number plus one?", lambda c: NUMBER_WORDS[c + 1]),
    ("what is the number times two?", lambda c: str(2 * c)),
    ("is the number greater than four?", lambda c: "yes" if c > 4 else "no"),
    ("how many loops does the digit have?", lambda c: NUMBER_WORDS[LOOPS[c]]),
    ("is the digit made of straight or curved strokes?", lambda c: STROKES[c]),
]


def attribute_phrases(c: int) -> list[str]:
    """LENS-style attribute descriptions of digit c ("{class} which has {attribute}")."""
    w, n = WORDS[c], LOOPS[c]
    loops = ["no loops", "one loop", "two loops"][n]
    return [f"{w} which is {PARITY[c]}", f"{w} which has {loops}", f"{w} which is made of {STROKES[c]} strokes"]


def all_attributes() -> list[str]:
    return [a for c in range(10) for a in attribute_phrases(c)]


def all_tags() -> list[str]:
    """The tag vocabulary: every name of a digit (word and numeral) and the distractor tags."""
    return WORDS + [str(c) for c in range(10)] + TAG_DISTRACTORS


def lens_prompt(tags: list[str], attributes: list[str], captions: list[str], question: str) -> str:
    """LENS's prompt (Berrios et al. 2023, sec. 3): the vision modules' text, then the question."""
    return (f"Tags: {', '.join(tags)}. Attributes: {', '.join(attributes)}. Captions: {'. '.join(captions)}. "
            f"Question: {question} Short answer:")


def _name(c: int, rng: random.Random) -> str:
    return WORDS[c] if rng.random() < 0.5 else str(c)


def _other(c: int, rng: random.Random) -> int:
    return rng.choice([d for d in range(10) if d != c])


def text_context(c: int, rng: random.Random, attribute_right: float | None = None
                 ) -> tuple[list[str], list[str], list[str]]:
    """Tags, attributes and captions naming digit c, made of words only: mostly right, sometimes wrong (another
    digit ranked first, a wrong caption), so that the model learns to weigh the evidence.

    attribute_right: None: 3 in 4 attribute phrases describe c, the others the one wrong digit of the example (the
    first recipe's text). A share p: each phrase describes c with probability p, else an independently drawn other
    digit. LENS's attribute module is CLIP ranking attribute phrases (Berrios et al. 2023, sec. 3); a CLIP that never
    read such phrases ranks them poorly, so the LM should learn how much they are worth: a clip-digits CLIP's top
    phrases name the right digit for 25% of its training images' phrases (tags 94%, captions 83%)."""
    wrong = _other(c, rng)
    tags = [_name(c, rng)]
    if rng.random() < 0.15:  # the right digit ranked second
        tags.insert(0, _name(wrong, rng))
    n = rng.randint(1, 4)
    while len(tags) < n:
        tags.append(rng.choice([_name(c, rng), _name(_other(c, rng), rng), rng.choice(TAG_DISTRACTORS)]))
    if attribute_right is None:
        attributes = [rng.choice(attribute_phrases(c if rng.random() < 0.75 else wrong))
                      for _ in range(rng.randint(0, 3))]
    else:
        attributes = [rng.choice(attribute_phrases(c if rng.random() < attribute_right else _other(c, rng)))
                      for _ in range(rng.randint(0, 3))]
    captions = []
    for _ in range(rng.randint(1, 4)):
        d = c if rng.random() < 0.8 else wrong
        captions.append(rng.choice(TRAIN_TEMPLATES).format(_name(d, rng)))
    return tags, attributes, captions


def qa_example(rng: random.Random, attribute_right: float | None = None) -> tuple[str, str]:
    """One text question-answering example: (LENS-layout prompt about a digit, short answer); attribute_right as in
    `text_context`."""
    c = rng.randrange(10)
    question, answer = rng.choice(QUESTIONS)
    return lens_prompt(*text_context(c, rng, attribute_right), question), answer(c)


def related_words(c: int) -> set[str]:
    """The words that name digit c: its word and its numeral (semantic precision counts these)."""
    return {WORDS[c], str(c)}
