"""District name normalisation and resolution: ranked candidates, and a decision that never guesses."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from rapidfuzz import fuzz, process

Decision = Literal["resolved", "ambiguous", "unmatched"]

# Words that every source adds or drops at will: they never tell two districts apart.
_GENERIC = {
    "PUBLIC", "SCHOOL", "SCHOOLS", "DISTRICT", "DISTRICTS", "BOARD", "OF", "EDUCATION", "THE",
    "PD", "SD", "PS", "PSD", "DIST", "SCH", "SCHS", "SYSTEM", "SYS", "DEPT", "DEPARTMENT",
}
# Abbreviations expanded so that "TWP" and "TOWNSHIP" compare equal; the expanded words are kept,
# because they distinguish districts (BOONTON TOWN vs BOONTON TOWNSHIP, HSD vs SD).
_EXPAND = {
    "TWP": "TOWNSHIP", "TWSP": "TOWNSHIP", "TOWNSHP": "TOWNSHIP", "BORO": "BOROUGH", "BORO.": "BOROUGH",
    "REG": "REGIONAL", "CONS": "CONSOLIDATED", "CONSOL": "CONSOLIDATED", "JT": "JOINT", "CO": "COUNTY",
    "CTY": "COUNTY", "MT": "MOUNT", "FT": "FORT", "ST": "SAINT", "HSD": "HIGH", "HS": "HIGH",
    "ESD": "ELEMENTARY", "ELEM": "ELEMENTARY", "ISD": "INDEPENDENT", "CISD": "CONSOLIDATED INDEPENDENT",
    "USD": "UNIFIED", "UNIF": "UNIFIED", "CSD": "CENTRAL", "CUSD": "COMMUNITY UNIT", "CCSD": "COMMUNITY CONSOLIDATED",
    "VOC": "VOCATIONAL", "TECH": "TECHNICAL", "N": "NORTH", "S": "SOUTH", "E": "EAST", "W": "WEST",
    "NO": "NORTH", "SO": "SOUTH", "CNTY": "COUNTY", "INDEP": "INDEPENDENT", "AREA": "AREA",
}
_PUNCT = re.compile(r"[^A-Z0-9 ]+")


def normalise(name: str) -> str:
    """Upper-case, punctuation-free, abbreviations expanded, generic words dropped."""
    text = _PUNCT.sub(" ", name.upper().replace("&", " AND ").replace("'", ""))
    words = []
    for word in text.split():
        for part in _EXPAND.get(word, word).split():
            if part not in _GENERIC:
                words.append(part)
    return " ".join(words)


@dataclass(frozen=True)
class Candidate:
    key: str  # the reference's id (NcesId or AccountInfoId as text)
    name: str
    state: str
    score: float
    account_info_id: int | None = None


@dataclass(frozen=True)
class Resolution:
    query: str
    decision: Decision
    method: str  # "exact", "fuzzy" or "none"
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def margin(self) -> float | None:
        if not self.candidates:
            return None
        runner_up = self.candidates[1].score if len(self.candidates) > 1 else 0.0
        return round(self.candidates[0].score - runner_up, 2)


class Reference:
    """Districts to resolve against: columns key, name, state, optional county and account_info_id."""

    MIN_SCORE = 88.0  # below this, a fuzzy candidate is not the same name
    MIN_MARGIN = 6.0  # closer than this to the runner-up is too close to call

    def __init__(self, frame: pl.DataFrame):
        frame = frame.with_columns(
            pl.col("key").cast(pl.Utf8),
            pl.col("state").str.strip_chars().str.to_uppercase(),
            pl.col("name").map_elements(normalise, return_dtype=pl.Utf8).alias("norm"),
        )
        if "county" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("county"))
        if "account_info_id" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("account_info_id"))
        self.frame = frame.with_columns(pl.col("county").str.to_uppercase())
        self._rows = self.frame.select("key", "name", "state", "county", "account_info_id", "norm").rows()
        self._by_state: dict[str | None, list[int]] = {None: list(range(len(self._rows)))}
        for i, row in enumerate(self._rows):
            self._by_state.setdefault(row[2], []).append(i)
        self.states = frozenset(s for s in self._by_state if s)

    def _pool(self, state: str | None, county: str | None) -> list[int]:
        if state is not None and state.upper() not in self.states:
            raise ValueError(f"unknown state '{state}': no district in the reference has it")
        pool = self._by_state[state.upper() if state else None]
        if county:
            in_county = [i for i in pool if (self._rows[i][3] or "") == county.upper()]
            pool = in_county or pool  # a reference without counties still resolves by state
        return pool

    def _candidate(self, i: int, score: float) -> Candidate:
        key, name, state, _county, aid, _norm = self._rows[i]
        return Candidate(key=key, name=name, state=state, score=round(float(score), 2), account_info_id=aid)

    def resolve(self, name: str, state: str | None = None, county: str | None = None, limit: int = 5) -> Resolution:
        pool = self._pool(state, county)
        query = normalise(name)
        if not query:
            return Resolution(name, "unmatched", "none")
        exact = [i for i in pool if self._rows[i][5] == query]
        if exact:
            cands = tuple(self._candidate(i, 100.0) for i in exact[:limit])
            return Resolution(name, "resolved" if len(exact) == 1 else "ambiguous", "exact", cands)
        choices = [self._rows[i][5] for i in pool]
        hits = process.extract(query, choices, scorer=_score, limit=limit, score_cutoff=50)
        cands = tuple(self._candidate(pool[idx], score) for _choice, score, idx in hits)
        return Resolution(name, _decide(cands, self.MIN_SCORE, self.MIN_MARGIN), "fuzzy" if cands else "none", cands)


def _score(a: str, b: str, **kwargs) -> float:
    # token_sort_ratio punishes a missing distinguishing word (TOWN vs TOWNSHIP) more than WRatio does;
    # the partial term credits the NCES names cut at 25 characters.
    full = fuzz.token_sort_ratio(a, b)
    if len(b) >= 20 and a.startswith(b[:20]):
        return max(full, fuzz.partial_ratio(a, b) - 2)
    return full


def _decide(cands: tuple[Candidate, ...], min_score: float, min_margin: float) -> Decision:
    if not cands or cands[0].score < min_score:
        return "unmatched"
    runner_up = cands[1].score if len(cands) > 1 else 0.0
    return "resolved" if cands[0].score - runner_up >= min_margin else "ambiguous"
