"""District name normalisation and resolution: ranked candidates, and a decision that never guesses."""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

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
    "NO": "NORTH", "SO": "SOUTH", "CNTY": "COUNTY", "INDEP": "INDEPENDENT", "PUB": "PUBLIC", "SCHL": "SCHOOL",
    "SCHLS": "SCHOOLS", "BD": "BOARD", "EDUC": "EDUCATION",
}
_PUNCT = re.compile(r"[^A-Z0-9 ]+")
# Words naming the kind of municipality or grade span, which later official names add or drop ("ALPHA" became
# "alpha borough school district", "BRIDGETON" "bridgeton city school district"). They still tell districts apart
# when both names carry one (BOONTON TOWN / BOONTON TOWNSHIP): drift never matches two that disagree.
_DESIGNATORS = frozenset({"BOROUGH", "TOWNSHIP", "TOWN", "CITY", "VILLAGE", "ELEMENTARY"})


_LONG_GENERIC = sorted(w for w in _GENERIC if len(w) >= 6)


def _swaps(word: str) -> set[str]:
    """The word with two neighbouring, different letters swapped, each way it can be."""
    return {word[:i] + word[i + 1] + word[i] + word[i + 2:]
            for i in range(len(word) - 1) if word[i] != word[i + 1]}


# Generic words and abbreviations of 4 letters or more with two neighbouring letters swapped (DITS, UCSD,
# ICSD) -> the word meant. None of these spellings is a word of the 17,178 real names; shorter words are left
# out, where a swap makes real names (ISD -> SID).
_SWAPPED = {s: w for w in sorted(_GENERIC | set(_EXPAND)) if len(w) >= 4 and w.isalpha() for s in _swaps(w)
            if s not in _GENERIC and s not in _EXPAND}


def _edits(a: str, b: str, score_cutoff: int | None = None) -> int:
    """Typing slips between two strings: OSA distance, where two swapped neighbours ("DISTRCIT") are one edit,
    not the two Levenshtein counts."""
    return OSA.distance(a, b, score_cutoff=score_cutoff)


@lru_cache(maxsize=200_000)
def _word(word: str) -> str:
    """One word, expanded; "" for a generic word, also when mistyped by one edit (SCHOOL as SCHOOK, SHCOOL or
    SCHOL)."""
    parts = []
    word = _SWAPPED.get(word, word)
    for part in _EXPAND.get(word, word).split():
        if part in _GENERIC:
            continue
        # From 5 letters: a long generic word with a letter missed (SCHOL). The words of the 17,178 real names
        # one edit from a long generic word are all that word mistyped, cut or plural (SCHOO, DISTRIC, SYSTEMS).
        if len(part) >= 5 and any(_edits(part, g, score_cutoff=1) <= 1 for g in _LONG_GENERIC):
            continue
        parts.append(part)
    return " ".join(parts)


def plain(name: str) -> str:
    """A name with case, spacing and punctuation aside: how a registry listing is compared with what a file says."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


def normalise(name: str) -> str:
    """Upper-case, punctuation-free, abbreviations expanded, generic words dropped."""
    text = _PUNCT.sub(" ", name.upper().replace("&", " AND ").replace("'", ""))
    return " ".join(w for w in map(_word, text.split()) if w)


# Resolution normalises each query up to five times, and the typo check every candidate of every fuzzy query.
_normalise_cached = lru_cache(maxsize=200_000)(normalise)


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
    method: str  # "exact", "fuzzy", "typo" or "none"
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
    """Districts to resolve against: columns key, name, state, optional county and account_info_id.

    Candidates are compared only within the query's state: that is what keeps WI "BELLEVILLE SCHOOL DISTRICT"
    away from Belleville NJ, and what makes 17,000 names fast. The county, where both sides know it, only chooses
    among districts of the state that bear the best candidate's very name (NJ's five WASHINGTON TOWNSHIPs): a
    name never comes from a file, and a pool of one county let a name that is another county's district (HOWELL
    TOWNSHIP, Monmouth) verify as the county's look-alike (HOPEWELL TOWNSHIP, Cumberland).
    """

    MIN_SCORE = 88.0  # below this, a fuzzy candidate is not the same name
    MIN_MARGIN = 6.0  # closer than this to the runner-up is too close to call
    NCES_CUT = 25  # older NCES agency names are cut at 25 characters
    BLOCK = 512  # queries scored at once: bounds the score matrix's memory

    def __init__(self, frame: pl.DataFrame):
        if "county" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("county"))
        if "account_info_id" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("account_info_id"))
        self.frame = frame.select(
            pl.col("key").cast(pl.Utf8),
            pl.col("name").cast(pl.Utf8).fill_null(""),
            pl.col("state").cast(pl.Utf8).str.strip_chars().str.to_uppercase(),
            pl.col("county").cast(pl.Utf8).str.strip_chars().str.to_uppercase(),
            pl.col("account_info_id").cast(pl.Int64),
        )
        self._names = self.frame["name"].to_list()
        self._norm = [normalise(n) for n in self._names]
        self._cut = np.array([len(n.strip()) == self.NCES_CUT for n in self._names])
        states = self.frame["state"].to_list()
        counties = self.frame["county"].to_list()
        self._rows = list(zip(self.frame["key"].to_list(), self._names, states, self.frame["account_info_id"].to_list()))
        self._counties = counties
        self._row_of = {key: i for i, key in enumerate(self.frame["key"].to_list())}
        self._pools: dict[tuple[str | None, str | None], np.ndarray] = {}
        by_state: dict[str | None, list[int]] = {None: list(range(len(states)))}
        for i, st in enumerate(states):
            by_state.setdefault(st, []).append(i)
        for st, idx in by_state.items():
            self._pools[(st, None)] = np.array(idx, dtype=np.int64)
        self.states = frozenset(s for s in by_state if s)
        # The reference's words, but for the last word of names exactly NCES_CUT long (perhaps cut mid-word).
        vocabulary = frozenset(w for n in self._names
                               for w in _PUNCT.sub(" ", n.upper()).split()[:-1 if len(n.strip()) == self.NCES_CUT
                                                                             else None])
        self._words = [_drift_words(n, vocabulary, self.NCES_CUT) for n in self._names]
        self._by_word: dict[str, set[int]] = {}  # distinctive word -> rows whose name has it
        for i, (words, _designators, _cut) in enumerate(self._words):
            for w in words:
                self._by_word.setdefault(w, set()).add(i)

    def _pool(self, state: str | None) -> tuple[str | None, None]:
        st = state.strip().upper() if state else None
        if st is not None and st not in self.states:
            raise ValueError(f"unknown state '{state}': no district in the reference has it")
        return (st, None)

    def _in_county(self, res: Resolution, county: str | None, limit: int) -> Resolution:
        """An undecided name whose best candidate's very name other districts of the state bear too: the one of
        them in `county` (the registry's), decided against the other names alone. Else as it was."""
        co = county.strip().upper() if county else None
        if res.decision == "resolved" or not co or not res.candidates:
            return res
        name = self._norm[self._row_of[res.best.key]]
        twins = [c for c in res.candidates if self._norm[self._row_of[c.key]] == name]
        if res.method == "exact":  # every district of the state of that name, not only the first `limit`
            twins = [self._candidate(i, 100.0) for i in self._pools[(res.best.state, None)].tolist()
                     if self._norm[i] == name]
        mine = [c for c in twins if self._counties[self._row_of[c.key]] == co]
        if len(mine) != 1 or len(twins) < 2:
            return res
        others = tuple(c for c in res.candidates if self._norm[self._row_of[c.key]] != name)
        cands = (mine[0], *others)[:limit]
        return Resolution(res.query, _decide(cands, self.MIN_SCORE, self.MIN_MARGIN), res.method, cands)

    def _candidate(self, i: int, score: float) -> Candidate:
        key, name, state, aid = self._rows[i]
        return Candidate(key=key, name=name, state=state, score=round(float(score), 2), account_info_id=aid)

    def resolve(self, name: str, state: str | None = None, county: str | None = None, limit: int = 5) -> Resolution:
        return self.resolve_many([(name, state, county)], limit=limit)[0]

    def resolve_many(
        self, queries: list[tuple[str, str | None, str | None]], limit: int = 5
    ) -> list[Resolution]:
        """Resolve many names at once: one score matrix per pool (state, county) of candidates."""
        out: list[Resolution | None] = [None] * len(queries)
        groups: dict[tuple[str | None, str | None], list[int]] = {}
        for qi, (_name, state, _county) in enumerate(queries):
            groups.setdefault(self._pool(state), []).append(qi)
        for pool_key, members in groups.items():
            pool = self._pools[pool_key]
            exact_index: dict[str, list[int]] = {}
            for i in pool.tolist():
                exact_index.setdefault(self._norm[i], []).append(i)
            fuzzy: list[int] = []
            for qi in members:
                name = queries[qi][0]
                norm = _normalise_cached(name)
                hits = exact_index.get(norm) or exact_index.get(
                    _normalise_cached(_drop_cut_word(name, self.NCES_CUT)))
                if not norm:
                    out[qi] = Resolution(name, "unmatched", "none")
                elif hits:
                    cands = tuple(self._candidate(i, 100.0) for i in hits[:limit])
                    out[qi] = Resolution(name, "resolved" if len(hits) == 1 else "ambiguous", "exact", cands)
                else:
                    fuzzy.append(qi)
            for start in range(0, len(fuzzy), self.BLOCK):
                block = fuzzy[start:start + self.BLOCK]
                for qi, cands in zip(block, self._score_block([queries[q][0] for q in block], pool, limit)):
                    name = queries[qi][0]
                    decision = _decide(cands, self.MIN_SCORE, self.MIN_MARGIN)
                    method = "fuzzy" if cands else "none"
                    typo = self._typo(name, cands)
                    if decision != "resolved" and typo == "best":
                        decision, method = "resolved", "typo"
                    elif typo == "tie":
                        # ALMAR: ALMA scores higher (a letter missing costs less than two swapped), but LAMAR
                        # is one slip away as well: too close to call. JACSKON, with two JACKSONs: either.
                        decision = "ambiguous"
                    if decision != "resolved" and typo is None:
                        drifted = self._drift(name, pool)
                        if drifted is not None:
                            decision, method = "resolved", "drift"
                            cands = (self._candidate(drifted, _similarity(
                                [_normalise_cached(name)], [self._norm[drifted]])[0, 0]),) + tuple(
                                c for c in cands if c.key != self._rows[drifted][0])[:limit - 1]
                    out[qi] = Resolution(name, decision, method, cands)
        return [self._in_county(res, county, limit) for res, (_n, _s, county) in zip(out, queries)]

    def _typo(self, name: str, cands: tuple[Candidate, ...]) -> Literal["best", "tie"] | None:
        """What typing slips say: "best" when the name is one slip of the keyboard from the best candidate and
        clearly farther (two edits more) from every other; "tie" when a runner-up is a slip away too, and no
        farther than the best; None otherwise. A slip is one edit (two for names of 12 characters or more)."""
        if not cands:
            return None
        forms = {_normalise_cached(name), _normalise_cached(_drop_cut_word(name, self.NCES_CUT))}
        dist = [min(_edits(f, _normalise_cached(c.name)) for f in forms) for c in cands]
        longest = max(len(f) for f in forms)
        allowed = 1 if longest < 12 else 2
        if dist[0] <= allowed and min(dist[1:], default=99) >= dist[0] + 2 and longest >= 5:
            return "best"
        if any(d <= allowed and d <= dist[0] for d in dist[1:]):
            return "tie"
        return None

    def _drift(self, name: str, pool: np.ndarray) -> int | None:
        """The one district of the pool whose distinctive words are the name's (the later official name of an older
        one: BRIDGETON, "bridgeton city school district"), or None. Designators (BOROUGH, CITY, ...) and generic
        words may come and go, but where both names carry a designator they must share one. A reference name cut at
        25 characters needs only its words in the name (its last word as the start of one: ATLANTIC COUNTY
        VOCATIONA, "atlantic co voc-tech"). Of those that qualify, the one covering the most of the name wins, and
        a tie (BOONTON TOWN and BOONTON TOWNSHIP for "boonton school district") is no decision."""
        words, designators, _cut = _drift_words(name)
        if not words:
            return None
        in_pool = set(pool.tolist())
        rows = set().union(*(self._by_word.get(w, set()) for w in words)) & in_pool
        covering: list[tuple[int, int]] = []
        for i in rows:
            theirs, their_designators, cut = self._words[i]
            if not theirs <= words or (designators and their_designators and not designators & their_designators):
                continue
            # the name adds no distinctive word of its own, unless the reference lost its end to the cut
            if not (words <= theirs or cut is not None) or (cut and not any(w.startswith(cut) for w in words)):
                continue
            covering.append((len(theirs) + bool(cut), i))
        if not covering:
            return None
        covering.sort(reverse=True)
        if len(covering) > 1 and covering[1][0] == covering[0][0]:
            return None
        return covering[0][1]

    def _score_block(self, names: list[str], pool: np.ndarray, limit: int) -> list[tuple[Candidate, ...]]:
        choices = [self._norm[i] for i in pool.tolist()]
        scores = _similarity([_normalise_cached(n) for n in names], choices)
        trimmed = [_normalise_cached(_drop_cut_word(n, self.NCES_CUT)) for n in names]
        if any(t != _normalise_cached(n) for t, n in zip(trimmed, names)):
            # a query cut at 25 characters may end in half a word: score it without that word too
            scores = np.maximum(scores, _similarity(trimmed, choices))
        cut = self._cut[pool]
        if cut.any():
            # A reference name cut at 25 characters is compared with the query cut the same way.
            cut_queries = [_normalise_cached(" ".join(n.upper().split())[: self.NCES_CUT]) for n in names]
            cut_scores = process.cdist(cut_queries, [c for c, k in zip(choices, cut) if k], scorer=fuzz.ratio,
                                       dtype=np.float32, workers=-1)
            scores[:, cut] = np.maximum(scores[:, cut], cut_scores)
        k = min(limit, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k else np.empty((len(names), 0), dtype=np.int64)
        result = []
        for row, idx in zip(scores, top):
            idx = idx[np.argsort(-row[idx], kind="stable")]
            result.append(tuple(self._candidate(int(pool[j]), row[j]) for j in idx if row[j] >= 50))
        return result


def _similarity(queries: list[str], choices: list[str]) -> np.ndarray:
    """Scores 0-100 of normalised names: token_sort_ratio, so that word order does not matter, or the plain
    ratio where higher: a typo in a first letter moves the word in the sorted order ("STPEPING STONES" sorts
    after STONES, "STEPPING STONES" before), and the names compared in their own order still tell one slip."""
    by_words = process.cdist(queries, choices, scorer=fuzz.token_sort_ratio, dtype=np.float32, workers=-1)
    as_typed = process.cdist(queries, choices, scorer=fuzz.ratio, dtype=np.float32, workers=-1)
    return np.maximum(by_words, as_typed)


def _drift_words(name: str, vocabulary: frozenset[str] | None = None,
                 cut: int = 25) -> tuple[frozenset[str], frozenset[str], str | None]:
    """(distinctive words, designators, the start of a word cut off or None) of a name, as drift compares them.

    With a vocabulary (the reference's words), a name exactly `cut` characters long whose last word is no word of
    the reference nor a generic one (VOCATIONA, SER), or a letter or two, lost the end of that word: it is kept apart as a prefix
    ("" when it could be the start of a generic word: ESSEX COUNTY VOCATIONAL S, of SCHOOLS). None: not cut.
    VOCATIONAL TECHNICAL is VOCATIONAL: the later NJ names call the county vocational districts voc-tech."""
    text = " ".join(name.split())
    partial = None
    if vocabulary is not None and len(text) == cut and " " in text:
        head, last = text.rsplit(" ", 1)
        last = _PUNCT.sub("", last.upper())
        if len(last) <= 2 or last not in vocabulary | _GENERIC | _DESIGNATORS and last not in _EXPAND:
            text, partial = head, ("" if any(g.startswith(last) for g in _GENERIC | set(_EXPAND)) else last)
    words = set(_normalise_cached(text).split())
    if "VOCATIONAL" in words:
        words.discard("TECHNICAL")
    return frozenset(words - _DESIGNATORS), frozenset(words & _DESIGNATORS), partial


def _drop_cut_word(name: str, cut: int) -> str:
    """A name exactly `cut` characters long was probably cut mid-word: without its last word."""
    text = " ".join(name.split())
    if len(text) != cut or " " not in text:
        return text
    return text.rsplit(" ", 1)[0]


def _decide(cands: tuple[Candidate, ...], min_score: float, min_margin: float) -> Decision:
    if not cands or cands[0].score < min_score:
        return "unmatched"
    runner_up = cands[1].score if len(cands) > 1 else 0.0
    return "resolved" if cands[0].score - runner_up >= min_margin else "ambiguous"
