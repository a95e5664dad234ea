"""Demo only: a synthetic news corpus, written by this project, for the offline demo.

Articles are generated deterministically from templates filled with people, places,
organisations, dates and numbers, with CNN/DailyMail's columns (``id``, ``article``,
``highlights``). Every entity and number of the highlights appears in the article, so
the reference summaries are faithful by construction, as the experiment assumes.
No real article text is used.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import pandas as pd

from faithdpo.io import write_parquet

FIRST_NAMES = [
    "James", "Maria", "David", "Sarah", "Michael", "Emma", "Robert", "Laura", "Daniel", "Anna",
    "Thomas", "Julia", "Peter", "Helen", "George", "Alice", "Richard", "Karen", "Andrew", "Claire",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Moore", "Martin", "Thompson", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King",
    "Wright",
]
CITIES = [
    "London", "Paris", "Berlin", "Madrid", "Chicago", "Boston", "Toronto", "Sydney", "Tokyo",
    "Dublin", "Rome", "Vienna", "Denver", "Seattle", "Lisbon", "Oslo", "Cairo", "Mumbai",
]
COUNTRIES = [
    "France", "Germany", "Spain", "Canada", "Australia", "Japan", "Ireland", "Italy", "Austria",
    "Portugal", "Norway", "Egypt", "India", "Brazil", "Mexico", "Kenya",
]
COMPANIES = [
    "Northwind Bank", "Apex Motors", "Bluewater Energy", "Crestline Airlines", "Helios Pharma",
    "Ironbridge Steel", "Lumen Telecom", "Orchard Foods", "Summit Insurance", "Vertex Software",
]
AGENCIES = [
    "the World Health Organization", "the European Commission", "the United Nations",
    "the Federal Reserve", "the Red Cross", "the International Monetary Fund",
]
TEAMS = [
    "Real Madrid", "Manchester United", "Chicago Bulls", "Boston Celtics", "Bayern Munich",
    "Juventus", "Toronto Raptors", "Ajax",
]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
# Figures come from the round values that news copy favours ("more than 450 residents"), and
# each story states at most one figure of each kind (a count, a small count, a percentage, a
# year, an amount), so that a figure in the highlights has one source in the article. The
# tokenizer splits figures into digits, as Qwen2.5's does; tiny_model.copy_warmup teaches the
# tiny model to copy such runs of tokens.
COUNTS = ["75", "80", "90", "120", "150", "180", "200", "240", "250", "300", "350", "400", "450", "500", "600",
          "650", "700", "750", "800", "900"]
SMALL_COUNTS = ["3", "4", "5", "6", "7", "8", "9", "11", "12", "14", "15", "17", "19", "21", "23", "26", "28",
                "32", "37", "41"]
BILLIONS = ["1.2", "1.5", "2.4", "3.6", "4.5", "6.3", "7.2", "9.6"]
MILLIONS = ["120", "150", "240", "300", "420", "560", "720", "850"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class Story:
    article: str
    highlights: str


# The demo's world. Each story has one optional place and one optional figure: the article
# states each with probability 1 - OMIT_DETAIL. Reference highlights (the train, validation
# and dev splits) mention a detail only when the article states it, so they are faithful by
# construction. The pretrain split, which the tiny model learns from, has the noise of real
# reference summaries: when the article leaves a detail out, its highlights still state one
# (an invented place or figure) with probability PRETRAIN_EXTRINSIC. A model trained on it
# copies what the article says and sometimes invents what it does not: the hallucination
# that DPO should unlearn, and the headroom the demo's measurement needs.
OMIT_DETAIL = 0.5
PRETRAIN_EXTRINSIC = 0.6
NOISY_SPLITS = frozenset({"pretrain"})


class _Details:
    """Draws whether a story's optional details are in the article and in its highlights."""

    def __init__(self, rng: random.Random, extrinsic: float):
        self.rng, self.extrinsic = rng, extrinsic

    def __call__(self, value, invent):
        """(what the article says, what the highlights say): ``value`` or None for each."""
        if self.rng.random() >= OMIT_DETAIL:
            return value, value
        return None, invent() if self.rng.random() < self.extrinsic else None


def _opt(template: str, value) -> str:
    return template.format(value) if value is not None else ""


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _money(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"${rng.choice(BILLIONS)}bn"
    return f"${rng.choice(MILLIONS)} million"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(rng: random.Random) -> str:
    return rng.choice(COUNTS)


def _business(rng: random.Random, detail: _Details) -> Story:
    company, ceo = rng.choice(COMPANIES), _person(rng)
    profit, pct = _money(rng), f"{rng.randint(2, 39)}%"
    jobs, quarter, analyst = _count(rng), rng.choice(["first", "second", "third", "fourth"]), _person(rng)
    city_a, city_h = detail(rng.choice(CITIES), lambda: rng.choice(CITIES))
    year_a, year_h = detail(rng.randint(2005, 2024), lambda: rng.randint(2005, 2024))
    article = (
        f"{company} reported a profit of {profit} for the {quarter} quarter, "
        f"{_opt('its best result since {}', year_a) or 'its best result in years'}. "
        f"Chief executive {ceo} told reporters{_opt(' in {}', city_a)} that sales rose {pct} compared with a year "
        f"earlier. The company said it would hire {jobs} new staff over the next two years. "
        f"Shares in {company} rose sharply after the announcement on {rng.choice(WEEKDAYS)}. "
        f"Analyst {analyst} said the figures were stronger than expected."
    )
    highlights = (
        f"{company} reports {quarter} quarter profit of {profit}{_opt(', best since {}', year_h)} .\n"
        f"Sales rose {pct}, chief executive {ceo} says{_opt(' in {}', city_h)} .\n"
        f"Company plans to hire {jobs} new staff ."
    )
    return Story(article, highlights)


def _election(rng: random.Random, detail: _Details) -> Story:
    winner, loser, country = _person(rng), _person(rng), rng.choice(COUNTRIES)
    share, month, year = f"{rng.randint(40, 65)}%", rng.choice(MONTHS), rng.randint(1998, 2024)
    city_a, city_h = detail(rng.choice(CITIES), lambda: rng.choice(CITIES))
    votes_a, votes_h = detail(_count(rng), lambda: _count(rng))
    article = (
        f"{winner} has won the presidential election in {country} with {share} of the vote. "
        f"Polls closed across the country in {month} {year}, and officials praised the turnout. "
        f"{winner} beat {loser}{_opt(' by about {} votes', votes_a)} in the final count. "
        f"Supporters gathered{_opt(' in {}', city_a)} to celebrate late into the night. "
        f"{loser} conceded defeat and called for calm."
    )
    highlights = (
        f"{winner} wins {country} presidential election with {share} .\n"
        f"{winner} beat {loser}{_opt(' by {} votes', votes_h)} in {month} {year} .\n"
        f"Supporters celebrate{_opt(' in {}', city_h)} ."
    )
    return Story(article, highlights)


def _sport(rng: random.Random, detail: _Details) -> Story:
    home, away = rng.sample(TEAMS, 2)
    g1, g2 = rng.randint(1, 5), rng.randint(0, 4)
    scorer, coach, crowd = _person(rng), _person(rng), _count(rng)
    city_a, city_h = detail(rng.choice(CITIES), lambda: rng.choice(CITIES))
    minute_a, minute_h = detail(_ordinal(rng.randint(10, 90)), lambda: _ordinal(rng.randint(10, 90)))
    article = (
        f"{home} beat {away} {g1 + g2}-{g2} in front of {crowd} fans{_opt(' in {}', city_a)} "
        f"on {rng.choice(WEEKDAYS)}. {scorer} scored the decisive goal "
        f"{_opt('in the {} minute', minute_a) or 'late in the match'}. "
        f"Coach {coach} praised the team after the match. "
        f"The result moves {home} to the top of the table."
    )
    highlights = (
        f"{home} beat {away} {g1 + g2}-{g2}{_opt(' in {}', city_h)} .\n"
        f"{scorer} scores decisive goal{_opt(' in the {} minute', minute_h)} .\n"
        f"Coach {coach} praises the team ."
    )
    return Story(article, highlights)


def _disaster(rng: random.Random, detail: _Details) -> Story:
    country, agency = rng.choice(COUNTRIES), rng.choice(AGENCIES)
    kind = rng.choice(["floods", "an earthquake", "wildfires", "a storm"])
    dead, aid = rng.choice(SMALL_COUNTS), _money(rng)
    spokesperson, day = _person(rng), rng.choice(WEEKDAYS)
    city_a, city_h = detail(rng.choice(CITIES), lambda: rng.choice(CITIES))
    displaced_a, displaced_h = detail(_count(rng), lambda: _count(rng))
    article = (
        f"At least {dead} people have died after {kind} hit {country} on {day}. "
        f"{_opt('More than {} residents were', displaced_a) or 'Many residents were'} forced to leave their homes, "
        f"according to {agency}. Spokesperson {spokesperson} said rescue teams were still searching for survivors"
        f"{_opt(' near {}', city_a)}. The government has promised {aid} in emergency aid."
    )
    highlights = (
        f"At least {dead} dead after {kind} hit {country} .\n"
        f"{_opt('More than {} residents', displaced_h) or 'Residents'} displaced, {agency} says .\n"
        f"Rescuers search for survivors{_opt(' near {}', city_h)} ."
    )
    return Story(article, highlights)


def _science(rng: random.Random, detail: _Details) -> Story:
    lead, agency = _person(rng), rng.choice(AGENCIES)
    n, pct, year = _count(rng), f"{rng.randint(16, 60)}%", rng.randint(2010, 2024)
    city_a, city_h = detail(rng.choice(CITIES), lambda: rng.choice(CITIES))
    years_a, years_h = detail(rng.randint(2, 15), lambda: rng.randint(2, 15))
    article = (
        f"Researchers{_opt(' at the University of {}', city_a)} have found that a daily walk cuts the risk of "
        f"heart disease by {pct}. The study, led by {lead}, followed {n} adults{_opt(' for {} years', years_a)}. "
        f"The results were published in {rng.choice(MONTHS)} {year} and welcomed by {agency}. "
        f"{lead.split()[-1]} said the benefits appeared within months."
    )
    highlights = (
        f"Daily walk cuts heart disease risk by {pct}, study finds .\n"
        f"Researchers{_opt(' at the University of {}', city_h)} followed {n} adults{_opt(' for {} years', years_h)} .\n"
        f"Study led by {lead} ."
    )
    return Story(article, highlights)


STORY_TYPES = (_business, _election, _sport, _disaster, _science)


def story_id(split: str, index: int, seed: int) -> str:
    """A 40-hex id shaped like CNN/DailyMail's (a SHA-1), stable for (split, index, seed)."""
    return hashlib.sha1(f"faithdpo-synthetic/{seed}/{split}/{index}".encode()).hexdigest()


def generate_corpus(n: int, split: str, seed: int) -> pd.DataFrame:
    """Generate ``n`` synthetic stories for ``split``; the same arguments give the same frame.

    The highlights of the ``pretrain`` split carry invented details (see PRETRAIN_EXTRINSIC);
    those of every other split are faithful to their article.
    """
    if n < 0:
        raise ValueError(f"corpus size must be >= 0, got {n}")
    split_salt = int(hashlib.sha1(split.encode()).hexdigest()[:8], 16)
    rng = random.Random(seed * 1_000_003 + split_salt)
    detail = _Details(rng, PRETRAIN_EXTRINSIC if split in NOISY_SPLITS else 0.0)
    rows = []
    for i in range(n):
        story = rng.choice(STORY_TYPES)(rng, detail)
        rows.append({"id": story_id(split, i, seed), "article": story.article, "highlights": story.highlights})
    return pd.DataFrame(rows, columns=["id", "article", "highlights"])


def synthesize_split(output: str, split: str, n: int, seed: int) -> None:
    """Write ``n`` synthetic stories of ``split`` as the demo's raw data."""
    write_parquet(generate_corpus(n, split, seed), output)
