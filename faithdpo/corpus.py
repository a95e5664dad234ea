"""A synthetic news corpus, written by this project, for the offline demo.

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
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class Story:
    article: str
    highlights: str


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _money(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"${rng.randint(11, 99) / 10:.1f}bn"
    return f"${rng.randint(120, 950)} million"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(rng: random.Random) -> str:
    n = rng.choice([rng.randint(12, 99), rng.randint(100, 999), rng.randint(1000, 9999)])
    return f"{n:,}" if n >= 1000 and rng.random() < 0.5 else str(n)


def _business(rng: random.Random) -> Story:
    company, ceo, city = rng.choice(COMPANIES), _person(rng), rng.choice(CITIES)
    profit, pct, year = _money(rng), f"{rng.randint(2, 39)}%", rng.randint(2005, 2024)
    jobs, quarter, analyst = _count(rng), rng.choice(["first", "second", "third", "fourth"]), _person(rng)
    article = (
        f"{company} reported a profit of {profit} for the {quarter} quarter, its best result since {year}. "
        f"Chief executive {ceo} told reporters in {city} that sales rose {pct} compared with a year earlier. "
        f"The company said it would hire {jobs} new staff over the next two years. "
        f"Shares in {company} rose sharply after the announcement on {rng.choice(WEEKDAYS)}. "
        f"Analyst {analyst} said the figures were stronger than expected. "
        f"{ceo.split()[-1]} added that the firm plans to open new offices outside {city}."
    )
    highlights = (
        f"{company} reports {quarter} quarter profit of {profit}, best since {year} .\n"
        f"Sales rose {pct}, chief executive {ceo} says .\n"
        f"Company plans to hire {jobs} new staff ."
    )
    return Story(article, highlights)


def _election(rng: random.Random) -> Story:
    winner, loser, country = _person(rng), _person(rng), rng.choice(COUNTRIES)
    share, turnout = f"{rng.randint(40, 65)}%", f"{rng.randint(45, 85)}%"
    votes, month, year = _count(rng), rng.choice(MONTHS), rng.randint(1998, 2024)
    city = rng.choice(CITIES)
    article = (
        f"{winner} has won the presidential election in {country} with {share} of the vote. "
        f"Turnout was {turnout}, officials said, after polls closed across the country in {month} {year}. "
        f"{winner} beat {loser} by about {votes} votes in the final count. "
        f"Supporters gathered in {city} to celebrate late into the night. "
        f"{loser} conceded defeat and called for calm. "
        f"The new president will take office next month."
    )
    highlights = (
        f"{winner} wins {country} presidential election with {share} .\n"
        f"Turnout was {turnout} in the {month} {year} vote .\n"
        f"{loser} concedes defeat ."
    )
    return Story(article, highlights)


def _sport(rng: random.Random) -> Story:
    home, away = rng.sample(TEAMS, 2)
    g1, g2 = rng.randint(1, 5), rng.randint(0, 4)
    scorer, coach, crowd = _person(rng), _person(rng), _count(rng)
    minute, city = _ordinal(rng.randint(10, 90)), rng.choice(CITIES)
    article = (
        f"{home} beat {away} {g1 + g2}-{g2} in front of {crowd} fans in {city} on {rng.choice(WEEKDAYS)}. "
        f"{scorer} scored the decisive goal in the {minute} minute. "
        f"Coach {coach} praised the team after the match. "
        f"{away} had won their previous {rng.randint(3, 9)} games. "
        f"The result moves {home} to the top of the table."
    )
    highlights = (
        f"{home} beat {away} {g1 + g2}-{g2} in {city} .\n"
        f"{scorer} scores decisive goal in the {minute} minute .\n"
        f"Coach {coach} praises the team ."
    )
    return Story(article, highlights)


def _disaster(rng: random.Random) -> Story:
    country, city, agency = rng.choice(COUNTRIES), rng.choice(CITIES), rng.choice(AGENCIES)
    kind = rng.choice(["floods", "an earthquake", "wildfires", "a storm"])
    dead, displaced, aid = rng.randint(3, 250), _count(rng), _money(rng)
    spokesperson, day = _person(rng), rng.choice(WEEKDAYS)
    article = (
        f"At least {dead} people have died after {kind} hit {country} on {day}. "
        f"More than {displaced} residents were forced to leave their homes, according to {agency}. "
        f"Spokesperson {spokesperson} said rescue teams were still searching for survivors near {city}. "
        f"The government has promised {aid} in emergency aid. "
        f"Schools in the region will remain closed for the rest of the week."
    )
    highlights = (
        f"At least {dead} dead after {kind} hit {country} .\n"
        f"More than {displaced} residents displaced, {agency} says .\n"
        f"Government promises {aid} in aid ."
    )
    return Story(article, highlights)


def _science(rng: random.Random) -> Story:
    lead, uni_city, agency = _person(rng), rng.choice(CITIES), rng.choice(AGENCIES)
    n, pct, years = _count(rng), f"{rng.randint(5, 60)}%", rng.randint(2, 15)
    year = rng.randint(2010, 2024)
    article = (
        f"Researchers at the University of {uni_city} have found that a daily walk cuts the risk of heart "
        f"disease by {pct}. The study, led by {lead}, followed {n} adults for {years} years. "
        f"The results were published in {rng.choice(MONTHS)} {year} and welcomed by {agency}. "
        f"{lead.split()[-1]} said the benefits appeared within months. "
        f"Further trials are planned in {rng.choice(COUNTRIES)}."
    )
    highlights = (
        f"Daily walk cuts heart disease risk by {pct}, study finds .\n"
        f"Researchers at the University of {uni_city} followed {n} adults for {years} years .\n"
        f"Study led by {lead} ."
    )
    return Story(article, highlights)


STORY_TYPES = (_business, _election, _sport, _disaster, _science)


def story_id(split: str, index: int, seed: int) -> str:
    """A 40-hex id shaped like CNN/DailyMail's (a SHA-1), stable for (split, index, seed)."""
    return hashlib.sha1(f"faithdpo-synthetic/{seed}/{split}/{index}".encode()).hexdigest()


def generate_corpus(n: int, split: str, seed: int) -> pd.DataFrame:
    """Generate ``n`` synthetic stories for ``split``; the same arguments give the same frame."""
    if n < 0:
        raise ValueError(f"corpus size must be >= 0, got {n}")
    split_salt = int(hashlib.sha1(split.encode()).hexdigest()[:8], 16)
    rng = random.Random(seed * 1_000_003 + split_salt)
    rows = []
    for i in range(n):
        story = rng.choice(STORY_TYPES)(rng)
        rows.append({"id": story_id(split, i, seed), "article": story.article, "highlights": story.highlights})
    return pd.DataFrame(rows, columns=["id", "article", "highlights"])


def synthesize_split(output: str, split: str, n: int, seed: int) -> None:
    """Write ``n`` synthetic stories of ``split`` as the demo's raw data."""
    write_parquet(generate_corpus(n, split, seed), output)
