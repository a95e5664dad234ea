"""Pairs stage: preference pairs for DPO, by one of three strategies, then filtered.

- ``highlights_vs_worst`` (the original recipe's): chosen = reference highlights, rejected = the
  candidate with the highest badness. Chosen and rejected differ in author, length and
  style as well as in faithfulness, and DPO learns whichever separates them most easily.
- ``best_vs_worst`` (on-policy): chosen = the cleanest candidate (badness 0, ties broken by
  ROUGE-L to the highlights), rejected = the worst candidate of the same article. Both
  sides are the model's own text.
- ``minimal_swap`` (counterfactual): rejected = the chosen text with exactly one entity or
  number replaced by one of the same kind that the article does not contain, drawn (seeded)
  from the highlights of the split's other articles. The pair differs only in the
  hallucination; the rejected side is re-scored, so the margin is measured, not assumed.

Filters, for any strategy: a minimum badness margin, a maximum relative length
difference (tokens), and de-duplication.

``rank_by: checker`` ranks the candidates by the consistency checker's support instead of
badness (as Tian et al. 2023 ranked samples by a factuality score before DPO): the chosen
candidate is the best supported, the rejected the least, and ``min_support_margin`` plays the
part of ``min_margin``. The reference highlights count as fully supported (support 1.0), as they
count as badness 0. minimal_swap's rejected side is an edit the checker never reads: with
``chosen_from: cleanest`` its chosen side is the best supported candidate, and its margin stays
the re-scored badness margin.
"""

from __future__ import annotations

import logging
import random
import unicodedata

import pandas as pd

from faithdpo.io import read_parquet, write_json, write_parquet

log = logging.getLogger(__name__)

STRATEGIES = ("highlights_vs_worst", "best_vs_worst", "minimal_swap")
PAIR_COLUMNS = ["id", "prompt", "chosen", "rejected", "chosen_badness", "rejected_badness", "chosen_candidate",
                "rejected_candidate", "swap", "chosen_support", "rejected_support"]
RANK_BY = ("badness", "checker")
TOKEN_COLUMNS = ["chosen_tokens", "rejected_tokens"]
HIGHLIGHTS = -1  # the candidate index recorded when a side is the reference highlights


def completion(text: str, chat: bool = False) -> str:
    """A completion as it follows the prompt: one leading space, as generation produced it after a
    plain template; with ``chat`` (prompt.chat) none, as a reply starts its assistant turn.
    Training appends the template's end-of-turn token (training.build_trainer)."""
    return text.strip() if chat else " " + text.strip()


def worst_candidates(scores: pd.DataFrame, rank_by: str = "badness") -> pd.DataFrame:
    """One row per article: the candidate with the highest badness, or with ``rank_by: checker``
    the lowest support (ties: lowest index)."""
    key, descending = ("badness", True) if rank_by == "badness" else ("support", False)
    ranked = scores.sort_values(["id", key, "candidate"], ascending=[True, not descending, True], kind="stable")
    return ranked.drop_duplicates("id", keep="first")


def cleanest_candidates(scores: pd.DataFrame, highlights: pd.DataFrame, rank_by: str = "badness") -> pd.DataFrame:
    """One row per article: among its badness-0 candidates the one closest to the highlights by
    ROUGE-L, or with ``rank_by: checker`` its best supported candidate (ties: ROUGE-L, then the
    lowest index); with its ``rougeL``."""
    from faithdpo.quality import is_failed, rouge_f1

    # An empty, punctuation-only or looping summary has badness 0 but is no faithful summary.
    clean = scores[~scores["summary"].map(is_failed)]
    if rank_by == "badness":
        clean = clean[clean["badness"] == 0]
    clean = clean.merge(highlights[["id", "highlights"]], on="id", how="inner")
    clean = clean.assign(rougeL=rouge_f1(list(clean["summary"]), list(clean["highlights"]))["rougeL"].to_numpy()
                         if len(clean) else [])
    keys = ["id", "rougeL", "candidate"] if rank_by == "badness" else ["id", "support", "rougeL", "candidate"]
    ranked = clean.sort_values(keys, ascending=[True] + [False] * (len(keys) - 2) + [True], kind="stable")
    return ranked.drop_duplicates("id", keep="first").drop(columns="highlights")


def _frame(ids, chosen, rejected, chosen_badness, rejected_badness, chosen_candidate, rejected_candidate, swap="",
           chosen_support=None, rejected_support=None):
    """Pairs; the supports are NaN where the checker did not rank the sides."""
    n = len(ids)
    return pd.DataFrame({
        "id": list(ids), "chosen": list(chosen), "rejected": list(rejected),
        "chosen_badness": list(chosen_badness), "rejected_badness": list(rejected_badness),
        "chosen_candidate": list(chosen_candidate), "rejected_candidate": list(rejected_candidate),
        "swap": swap if isinstance(swap, str) else list(swap),
        "chosen_support": [float("nan")] * n if chosen_support is None else list(chosen_support),
        "rejected_support": [float("nan")] * n if rejected_support is None else list(rejected_support),
    })


def highlights_vs_worst(scores: pd.DataFrame, data: pd.DataFrame, rank_by: str = "badness",
                        chosen_badness: pd.Series | None = None) -> pd.DataFrame:
    worst = worst_candidates(scores, rank_by).merge(data[["id", "highlights"]], on="id", how="inner",
                                                     validate="one_to_one")
    # The highlights are part of the reference, so they cannot hallucinate by definition
    # (badness 0, and support 1.0 where the checker ranks). Under scoring.reference: article they
    # are not: ``chosen_badness`` (by id, see highlights_badness) is their measured badness.
    checked = rank_by == "checker"
    badness = [0] * len(worst) if chosen_badness is None else worst["id"].map(chosen_badness)
    return _frame(worst["id"], worst["highlights"], worst["summary"], badness, worst["badness"],
                  [HIGHLIGHTS] * len(worst), worst["candidate"], chosen_support=[1.0] * len(worst) if checked else None,
                  rejected_support=worst["support"] if checked else None)


def best_vs_worst(scores: pd.DataFrame, data: pd.DataFrame, rank_by: str = "badness") -> pd.DataFrame:
    best = cleanest_candidates(scores, data, rank_by)
    both = best.merge(worst_candidates(scores, rank_by), on="id", suffixes=("_c", "_r"), validate="one_to_one")
    if rank_by == "badness":
        both = both[both["badness_r"] > 0]
        return _frame(both["id"], both["summary_c"], both["summary_r"], both["badness_c"], both["badness_r"],
                      both["candidate_c"], both["candidate_r"])
    both = both[both["support_c"] > both["support_r"]]
    return _frame(both["id"], both["summary_c"], both["summary_r"], both["badness_c"], both["badness_r"],
                  both["candidate_c"], both["candidate_r"], chosen_support=both["support_c"],
                  rejected_support=both["support_r"])


def swap_one(text: str, spans: list[dict], pool: dict[str, list[str]], unsupported, rng: random.Random):
    """``text`` with one span replaced by a pool item of the same kind that
    ``unsupported(kind, item)`` accepts, and "old -> new"; None when no span has one."""
    options = []
    for span in spans:
        fits = [item for item in pool.get(span["kind"], [])
                if item != span["text"] and unsupported(span["kind"], item)]
        if fits:
            options.append((span, fits))
    if not options:
        return None
    span, fits = rng.choice(options)
    new = rng.choice(fits)
    return text[: span["start"]] + new + text[span["end"]:], f"{span['text']} -> {new}"


def minimal_swap(scores: pd.DataFrame, data: pd.DataFrame, scorer, chosen_from: str = "highlights",
                 seed: int = 0, rank_by: str = "badness", chosen_badness: pd.Series | None = None) -> pd.DataFrame:
    """Counterfactual pairs: the faithful text vs the same text with one item swapped. A swap is
    unsupported by the scorer's reference (scoring.reference); ``chosen_badness``: as for
    highlights_vs_worst."""
    from faithdpo.scoring import (entity_supported, normalize_number, reference_index, reference_number_values,
                                  reference_text)

    if chosen_from == "highlights":
        badness = 0 if chosen_badness is None else data["id"].map(chosen_badness).to_numpy()
        base = pd.DataFrame({"id": data["id"], "text": data["highlights"], "badness": badness,
                             "candidate": HIGHLIGHTS})
    else:
        # the chosen text must be faithful by both judges: badness 0, then the best supported
        clean = scores if rank_by == "badness" else scores[scores["badness"] == 0]
        best = cleanest_candidates(clean, data, rank_by)
        base = pd.DataFrame({"id": best["id"], "text": best["summary"], "badness": best["badness"],
                             "candidate": best["candidate"]})
    base = base.merge(data[["id", "article", "highlights"]], on="id", how="inner", validate="one_to_one")
    base["text"] = base["text"].map(lambda t: unicodedata.normalize("NFKC", t.strip()))
    # One NER pass over the highlights gives the pool and, when they are the chosen texts, the spans.
    highlight_items = scorer.items([h.strip() for h in data["highlights"]])
    if chosen_from == "highlights":
        items_of = dict(zip(data["id"], highlight_items))
        spans = [items_of[pid] for pid in base["id"]]
    else:
        spans = scorer.items(list(base["text"]))
    # The pool: every entity and number of the split's highlights, by kind, in a fixed order.
    # An article's own items are supported by its reference, so they are never drawn for it.
    pool: dict[str, set[str]] = {}
    for items in highlight_items:
        for item in items:
            pool.setdefault(item["kind"], set()).add(item["text"])
    pool = {kind: sorted(texts) for kind, texts in pool.items()}
    rows = []
    for (pid, text, badness, cand, article, highlights), items in zip(
        base[["id", "text", "badness", "candidate", "article", "highlights"]].itertuples(index=False), spans
    ):
        reference = reference_text(article, highlights, scorer.config.reference)
        index, values = reference_index(reference), reference_number_values(reference, scorer.number_re)

        def unsupported(kind, item, index=index, values=values):
            if kind.startswith("NUMBER:"):
                return normalize_number(item) not in values
            return not entity_supported(item, index, kind)

        if scorer.config.reference == "article":
            # the highlights may state what the article does not: swapping such an item adds no
            # hallucination, so only an item the article supports is swapped
            items = [item for item in items if not unsupported(item["kind"], item["text"])]
        swapped = swap_one(text, items, pool, unsupported, random.Random(f"{seed}/{pid}"))
        if swapped:
            rows.append((pid, text, swapped[0], badness, cand, swapped[1], article, highlights))
    if not rows:
        return _frame([], [], [], [], [], [], [], [])
    out = pd.DataFrame(rows, columns=["id", "chosen", "rejected", "chosen_badness", "chosen_candidate", "swap",
                                      "article", "highlights"])
    rescored = scorer.score(out.rename(columns={"rejected": "summary"}))
    # The rejected side is the chosen text edited, so both record the chosen's source.
    return _frame(out["id"], out["chosen"], out["rejected"], out["chosen_badness"], rescored["badness"],
                  out["chosen_candidate"], out["chosen_candidate"], out["swap"])


def highlights_badness(data: pd.DataFrame, scorer) -> pd.Series:
    """The badness of each article's highlights read as a summary (by id), scored by ``scorer``
    against ``data``'s article (as the prompt gave it). Under scoring.reference: article the
    highlights are no longer part of the reference and can state what the article does not."""
    highlights = data["highlights"].to_numpy()
    scored = scorer.score(pd.DataFrame({"article": data["article"].to_numpy(), "highlights": highlights,
                                        "summary": highlights}))
    return pd.Series(scored["badness"].to_numpy(), index=data["id"].to_numpy())


def build_pairs(strategy: str, scores: pd.DataFrame, prompts: pd.DataFrame, data: pd.DataFrame, scorer=None,
                chosen_from: str = "highlights", seed: int = 0, rank_by: str = "badness",
                chat: bool = False, highlights_badness: pd.Series | None = None) -> pd.DataFrame:
    """One pair per article by ``strategy``, candidates ranked by ``rank_by`` (badness, or the
    checker's ``support`` column), in data order, with its prompt (the prompts file's, as written:
    with ``chat`` the rendered chat template) and both sides as completions of it.
    ``highlights_badness``: the highlights' measured badness by id, for a highlights chosen side
    under scoring.reference: article (:func:`highlights_badness`); None: 0, as the reference holds them."""
    if rank_by not in RANK_BY:
        raise ValueError(f"pairs.rank_by = {rank_by!r}; allowed: {', '.join(RANK_BY)}")
    if strategy == "highlights_vs_worst":
        pairs = highlights_vs_worst(scores, data, rank_by, highlights_badness)
    elif strategy == "best_vs_worst":
        pairs = best_vs_worst(scores, data, rank_by)
    elif strategy == "minimal_swap":
        pairs = minimal_swap(scores, data, scorer, chosen_from, seed, rank_by, highlights_badness)
    else:
        raise ValueError(f"pairs.strategy = {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    pairs = pairs.merge(prompts[["id", "prompt"]], on="id", how="inner", validate="one_to_one")
    order = {pid: i for i, pid in enumerate(data["id"])}
    pairs = pairs.sort_values("id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    pairs["chosen"] = pairs["chosen"].map(lambda t: completion(t, chat))
    pairs["rejected"] = pairs["rejected"].map(lambda t: completion(t, chat))
    types = {"chosen_badness": "int64", "rejected_badness": "int64", "chosen_candidate": "int64",
             "rejected_candidate": "int64", "swap": "string", "chosen_support": "float64",
             "rejected_support": "float64"}
    return pairs[PAIR_COLUMNS].astype(types)


def filter_pairs(pairs: pd.DataFrame, min_margin: int = 1, max_length_diff: float | None = None,
                 dedupe: bool = True, min_support_margin: float | None = None,
                 checker_threshold: float | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop pairs whose chosen side is a failed summary (quality.is_failed), below the badness
    margin (or, with ``min_support_margin``, the checker's support margin, and a chosen side the
    checker calls unsupported: support at most ``checker_threshold``), too different in length
    (relative, in tokens), or duplicated (identical sides, or a repeat of an earlier pair).
    Returns the count of each."""
    from faithdpo.quality import is_failed

    dropped = {}
    keep = ~pairs["chosen"].map(is_failed).astype(bool)
    dropped["chosen_failed"] = int((~keep).sum())
    pairs = pairs[keep]
    if min_support_margin is None:
        keep = pairs["rejected_badness"] - pairs["chosen_badness"] >= min_margin
        dropped["below_min_margin"] = int((~keep).sum())
    else:
        if checker_threshold is not None:
            keep = pairs["chosen_support"] > checker_threshold
            dropped["chosen_unsupported"] = int((~keep).sum())
            pairs = pairs[keep]
        keep = pairs["chosen_support"] - pairs["rejected_support"] >= min_support_margin
        dropped["below_min_support_margin"] = int((~keep).sum())
    pairs = pairs[keep]
    if max_length_diff is not None:
        longer = pairs[TOKEN_COLUMNS].max(axis=1).clip(lower=1)
        keep = (pairs["chosen_tokens"] - pairs["rejected_tokens"]).abs() / longer <= max_length_diff
        dropped["over_max_length_diff"] = int((~keep).sum())
        pairs = pairs[keep]
    if dedupe:
        keep = (pairs["chosen"] != pairs["rejected"]) & ~pairs.duplicated(["prompt", "chosen", "rejected"])
        dropped["duplicate"] = int((~keep).sum())
        pairs = pairs[keep]
    return pairs.reset_index(drop=True), dropped


def articles_without_pair(strategy: str, scores: pd.DataFrame, paired_ids, rank_by: str = "badness") -> dict[str, int]:
    """Why the strategy made no pair for an article, counted per reason."""
    lost = scores[~scores["id"].isin(set(paired_ids))]
    if lost.empty:
        return {}
    if strategy == "best_vs_worst" and rank_by == "checker":
        return {"no candidate better supported than another": int(lost["id"].nunique())}
    best, worst = lost.groupby("id")["badness"].min(), lost.groupby("id")["badness"].max()
    if strategy == "best_vs_worst":
        return {"no badness-0 candidate": int((best > 0).sum()),
                "no candidate with a hallucination": int((worst == 0).sum())}
    if strategy == "minimal_swap":
        return {"no span with an unsupported replacement (or no clean chosen text)": int(lost["id"].nunique())}
    return {"no candidate": int(lost["id"].nunique())}


def selection_summary(strategy: str, n_articles: int, built: int, without_pair: dict[str, int],
                      dropped: dict[str, int], n_pairs: int, min_pairs: int) -> dict:
    """What became of the train articles on the way to pairs, and whether there are enough to train.

    An experiment below ``min_pairs`` is an outcome, not a failure: the workflow skips its
    training and the report says why from these counts.
    """
    summary = {"strategy": strategy, "articles": n_articles, "built": built, "without_pair": without_pair,
               "dropped": dropped, "pairs": n_pairs, "min_pairs": min_pairs, "trained": n_pairs >= min_pairs}
    if not summary["trained"]:
        reasons = [f"{count} article(s): {why}" for why, count in without_pair.items() if count]
        reasons += [f"{count} pair(s) dropped: {name.replace('_', ' ')}" for name, count in dropped.items() if count]
        summary["reason"] = (f"{n_pairs} pair(s), fewer than pairs.min_pairs = {min_pairs}; from {n_articles} "
                             f"train articles, strategy {strategy} made {built} pair(s)"
                             + (f" ({'; '.join(reasons)})" if reasons else ""))
    return summary


ON_CUT_TAIL = ("drop", "keep")


def chosen_from_cut_tail(pairs: pd.DataFrame, given: pd.DataFrame, full: pd.DataFrame, scorer) -> pd.Series:
    """True for each pair whose chosen side states an entity or number that the article as the
    prompt gave it does not support but the full article does: a fact from the cut tail, which
    DPO would teach the model to state without support. ``given``/``full``: ``id, article``."""
    cut = given.merge(full, on="id", suffixes=("_given", "_full"))
    cut = cut[cut["article_given"] != cut["article_full"]]
    flags = pd.Series(False, index=pairs.index)
    rows = pairs[pairs["id"].isin(set(cut["id"]))]
    if rows.empty:
        return flags
    rows = rows[["id", "chosen"]].merge(cut, on="id", how="left").set_index(rows.index)

    def unsupported(article_column):
        scored = scorer.score(pd.DataFrame({"summary": rows["chosen"], "article": rows[article_column],
                                            "highlights": ""}, index=rows.index))
        return [set(e) | set(n) for e, n in zip(scored["hallucinated_entities"], scored["hallucinated_numbers"])]

    flags[rows.index] = [bool(g - f) for g, f in zip(unsupported("article_given"), unsupported("article_full"))]
    return flags


def select_pairs(scores: str, prompts: str, data: str, model_dir: str, output: str, selection: str,
                 strategy: str = "highlights_vs_worst", chosen_from: str = "highlights", min_margin: int = 1,
                 max_length_diff: float | None = None, dedupe: bool = True, min_pairs: int = 1,
                 on_cut_tail: str = "drop", scoring: dict | None = None, seed: int = 0, rank_by: str = "badness",
                 min_support_margin: float = 0.5, checks: str | None = None,
                 checker_threshold: float = 0.5, chat: bool = False) -> pd.DataFrame:
    """Read the candidate scores, write the DPO dataset (prompt/chosen/rejected) as parquet,
    and the selection summary (JSON) that decides whether the experiment trains.

    Every side is judged against the article as the prompt gave it (cut to the token budget);
    chosen sides stating facts only the cut tail supports are counted, and dropped unless
    ``on_cut_tail`` is "keep". The token lengths of both sides are stored too: the report uses
    them to show how far length alone could separate the pairs. With ``rank_by: checker``,
    ``checks`` holds the checker's support of every candidate (faithdpo.checker). ``chat``
    (prompt.chat): the prompts are a chat template's text, and the sides start without a space.
    """
    from faithdpo.scoring import given_references
    from faithdpo.tokens import count_tokens, load_text_tokenizer

    if on_cut_tail not in ON_CUT_TAIL:
        raise ValueError(f"pairs.on_cut_tail = {on_cut_tail!r}; allowed: {', '.join(ON_CUT_TAIL)}")
    score_df = read_parquet(scores, ["id", "candidate", "summary", "badness"])
    if rank_by == "checker":
        if not checks:
            raise ValueError("pairs.rank_by: checker needs the checker's scores of the candidates (scoring.checker)")
        support = read_parquet(checks, ["id", "candidate", "support"])
        score_df = score_df.merge(support, on=["id", "candidate"], how="left", validate="one_to_one")
        if score_df["support"].isna().any():
            raise ValueError(f"{checks} does not check every candidate of {scores}")
    full_df = read_parquet(data, ["id", "article", "highlights"])
    prompts_df = read_parquet(prompts, ["id", "prompt", "article"])
    data_df = given_references(full_df, prompts_df)  # the article as the prompt gave it
    truncated = bool((data_df["article"] != data_df["id"].map(full_df.set_index("id")["article"])).any())
    # The highlights as the chosen side are badness 0 while they are part of the reference; under
    # scoring.reference: article they are scored like any summary (highlights_badness).
    chosen_highlights = (strategy == "highlights_vs_worst"
                         or (strategy == "minimal_swap" and chosen_from == "highlights"))
    score_highlights = chosen_highlights and (scoring or {}).get("reference") == "article"
    scorer = None
    if strategy == "minimal_swap" or truncated or score_highlights:
        from faithdpo.scoring import Scorer, ScoringConfig

        scorer = Scorer(ScoringConfig(**(scoring or {})))
    measured = highlights_badness(data_df, scorer) if score_highlights else None
    pairs = build_pairs(strategy, score_df, prompts_df, data_df, scorer, chosen_from, seed, rank_by, chat, measured)
    tokenizer = load_text_tokenizer(model_dir)
    pairs["chosen_tokens"] = count_tokens(pairs["chosen"], tokenizer)
    pairs["rejected_tokens"] = count_tokens(pairs["rejected"], tokenizer)
    built = len(pairs)
    unsupported_built = int((pairs["chosen_badness"] > 0).sum()) if score_highlights else 0
    without = articles_without_pair(strategy, score_df, pairs["id"], rank_by)
    tail = (chosen_from_cut_tail(pairs, data_df[["id", "article"]], full_df[["id", "article"]], scorer)
            if truncated else pd.Series(False, index=pairs.index))
    if on_cut_tail == "drop":
        pairs = pairs[~tail]
    # minimal_swap's rejected side is an edit the checker never read: its margin stays badness's
    by_support = rank_by == "checker" and strategy != "minimal_swap"
    pairs, dropped = filter_pairs(pairs, min_margin, max_length_diff, dedupe,
                                  min_support_margin if by_support else None,
                                  checker_threshold if by_support else None)
    if on_cut_tail == "drop":
        dropped = {"chosen_from_cut_tail": int(tail.sum()), **dropped}
    n_articles = score_df["id"].nunique()
    summary = selection_summary(strategy, n_articles, built, without, dropped, len(pairs), min_pairs)
    summary["chosen_from_cut_tail"] = {"pairs": int(tail.sum()), "action": on_cut_tail}
    summary["rank_by"] = rank_by
    if score_highlights:
        kept = int((pairs["chosen_badness"] > 0).sum())
        summary["chosen_highlights_unsupported"] = {"built": unsupported_built, "kept": kept}
        if unsupported_built:
            log.warning("%d of %d chosen highlights state an entity or number the article does not support "
                        "(scoring.reference: article); their pairs carry the measured badness, pairs.min_margin "
                        "kept %d. pairs.strategy: best_vs_worst chooses badness-0 candidates instead",
                        unsupported_built, built, kept)
    if on_cut_tail == "keep" and tail.any():
        log.warning("%d chosen side(s) state facts that only the cut tail of their article supports; kept "
                    "(pairs.on_cut_tail: keep)", int(tail.sum()))
    log.info("%s: %d pairs from %d articles (without a pair: %s; filters dropped %s)",
             strategy, len(pairs), n_articles, without, dropped)
    if not summary["trained"]:
        log.warning("not training this experiment: %s", summary["reason"])
    write_parquet(pairs, output)
    write_json(summary, selection)
    return pairs
