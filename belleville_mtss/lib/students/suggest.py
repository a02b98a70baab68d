"""Suggested counterparts for students no identifier links: a person decides, nothing links by itself.

Two causes. An assessment's student whose identifier matches no PowerSchool student (`unknown_<source>_student`,
the vendor named: `unknown_star_student`, `unknown_iready_student` ...): its candidates are the district's PowerSchool
students, scored on what that vendor's files say of the student (its `person` columns; a file that names no student,
MAP Growth's AssessmentResults, gets no suggestion, since a number alone is too weak to offer). A PowerSchool student with no ClassLink account (`no_classlink_account`):
its candidates are the tenant's ClassLink users no student is linked to. Candidates are blocked (the same school
where both sides name one, or the same number once leading zeros are dropped) and scored on what both sides carry:
the identifier's edit distance (a transposed or mistyped digit, dropped leading zeros), the name, the birth date,
the email. Each suggestion keeps its score and the evidence that made it: which fields agreed and which did not,
as field names and figures, never the values.

rapidfuzz scores the strings (already a dependency, for district names). Splink or recordlinkage would add a
probabilistic model that needs labelled pairs or EM over large volumes; an unmatched list is tens of students a
drop, where a transparent score a person can read serves better.
"""
from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from collections.abc import Collection

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from ..load.warehouse import NO_CLASSLINK  # the cause, declared beside the table that stores it
from ..sources import ASSESSMENTS, SOURCE_OF, Source


def unknown_cause(source: str) -> str:
    """The cause of a suggestion for an identifier of `source` that links to no student."""
    return f"unknown_{source}_student"


CAUSES = (*(unknown_cause(s.name) for s in ASSESSMENTS), NO_CLASSLINK)
TOP = 3  # suggestions kept per unlinked student
MIN_SCORE = 0.80  # below, a candidate is not shown: a wrong suggestion costs a person's time and trust
WEIGHTS = {"number": 0.35, "name": 0.35, "birth_date": 0.20, "email": 0.10}
SUGGESTION_COLUMNS = {"cause": pl.Utf8, "subjects": pl.Utf8, "from_id": pl.Utf8, "to_id": pl.Utf8,
                      "score": pl.Float64, "evidence": pl.Utf8}


# _plain and _date run for every pair scored (tens of thousands for a state's roster), on names and dates that
# recur: each value is worked out once.
@functools.lru_cache(maxsize=1 << 16)
def _plain(text: str | None) -> str:
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(folded.lower().replace("-", " ").replace("'", "").split())


NUMBER_BY_SLIPS = (1.0, 0.8, 0.3)  # a number's score by its slips from the other's; more slips: 0


def number_similarity(a: str | None, b: str | None) -> tuple[float | None, str]:
    """1 for the same number once leading zeros are dropped; 0.8 one slip apart (a digit mistyped, two swapped);
    0.3 two slips apart; 0 otherwise."""
    if not a or not b:
        return None, "number: absent"
    if a == b or a.lstrip("0") == b.lstrip("0"):
        return NUMBER_BY_SLIPS[0], "number: same" + ("" if a == b else " once leading zeros are dropped")
    d = OSA.distance(a.lstrip("0"), b.lstrip("0"))
    if d == 1:
        return NUMBER_BY_SLIPS[1], "number: one digit apart (mistyped or two swapped)"
    return (NUMBER_BY_SLIPS[2], "number: two digits apart") if d == 2 else (0.0, f"number: {d} digits apart")


def slips_within(min_score: float) -> int | None:
    """The most slips a candidate's number may be from the person's and still let the pair score `min_score`: the
    best such a pair could do is every other field known on both sides and the same (a weighted mean, and a birth
    date that differs only lowers it). None: any number may (a pair is then judged on its other fields alone)."""
    total = sum(WEIGHTS.values())
    best = [round((WEIGHTS["number"] * v + total - WEIGHTS["number"]) / total, 4) for v in (*NUMBER_BY_SLIPS, 0.0)]
    reach = [slips for slips, score in enumerate(best) if score >= min_score]
    return None if len(reach) == len(best) else (max(reach) if reach else -1)


def name_similarity(first_a, last_a, first_b, last_b) -> tuple[float | None, str]:
    a, b = _plain(f"{first_a or ''} {last_a or ''}"), _plain(f"{first_b or ''} {last_b or ''}")
    if not a or not b:
        return None, "name: absent"
    whole = fuzz.token_sort_ratio(a, b) / 100
    # the first name weighs apart: twins share the rest (last name, birth date, school)
    first = fuzz.ratio(_plain(first_a), _plain(first_b)) / 100 if first_a and first_b else whole
    score = min(whole, 0.5 + first / 2) if first < 0.8 else whole
    return round(score, 3), f"name: {score:.0%} alike"


DATE_LAYOUTS = ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y", "%Y/%m/%d")  # PowerSchool's, the vendors' and Excel's


@functools.lru_cache(maxsize=1 << 16)
def _date(text: str) -> dt.date | str:
    for layout in DATE_LAYOUTS:
        try:
            return dt.datetime.strptime(text.strip(), layout).date()
        except ValueError:
            continue
    return text.strip()


def date_similarity(a: str | None, b: str | None) -> tuple[float | None, str]:
    if not a or not b:
        return None, "birth date: absent"
    return (1.0, "birth date: same") if _date(a) == _date(b) else (0.0, "birth date: differs")


def email_similarity(a: str | None, b: str | None) -> tuple[float | None, str]:
    if not a or not b:
        return None, "email: absent"
    la, lb = a.strip().lower().split("@")[0], b.strip().lower().split("@")[0]
    score = fuzz.ratio(la, lb) / 100
    return round(score, 3), f"email: {score:.0%} alike"


def score_pair(person: dict, candidate: dict) -> tuple[float, list[str]]:
    """A weighted mean of what both sides carry; a birth date that differs caps the score below MIN_SCORE unless
    everything else agrees."""
    parts = {
        "number": number_similarity(person.get("number"), candidate.get("number")),
        "name": name_similarity(person.get("first_name"), person.get("last_name"),
                                candidate.get("first_name"), candidate.get("last_name")),
        "birth_date": date_similarity(person.get("birth_date"), candidate.get("birth_date")),
        "email": email_similarity(person.get("email"), candidate.get("email")),
    }
    known = {k: v for k, (v, _why) in parts.items() if v is not None}
    if not known or "name" not in known:
        return 0.0, [why for _v, why in parts.values()]
    score = sum(WEIGHTS[k] * v for k, v in known.items()) / sum(WEIGHTS[k] for k in known)
    if known.get("birth_date") == 0.0:
        score *= 0.85
    return round(score, 4), [why for _v, why in parts.values()]


def _first_alike(a: dict, b: dict) -> float:
    return fuzz.ratio(_plain(a.get("first_name")), _plain(b.get("first_name"))) / 100


def _a_sibling_of(person: dict, candidate: dict, candidates: pl.DataFrame, keys: pl.DataFrame) -> bool:
    """Whether `candidate` is the person's twin, not the person: another candidate (of any score: the person's own
    number mistyped twice is too far to be scored) shares the person's last name and birth date as the candidate
    does, and is more alike in first name. A near number outweighed the name (a twin's number one digit from the
    mistyped one): shown alone, accepting it loaded one child's tests under the other. `keys`: as `_block`'s."""
    def family(c: dict) -> bool:
        return (bool(person.get("birth_date")) and bool(c.get("birth_date"))
                and _date(c["birth_date"]) == _date(person["birth_date"])
                and _plain(c.get("last_name")) == _plain(person.get("last_name")))
    mine = _first_alike(person, candidate)
    if mine == 1.0 or not _plain(person.get("last_name")) or not family(candidate):
        return False  # the usual pair: looked no further
    same_name = candidates.filter(keys["last_name"] == (candidate.get("last_name") or "").lower())
    return any(c["id"] != candidate["id"] and family(c) and _first_alike(person, c) > mine
               for c in same_name.to_dicts())


CANDIDATE_SCHEMA = {c: pl.Utf8 for c in ("id", "number", "first_name", "last_name", "birth_date", "school_id",
                                          "email")}


BLOCK_FIELDS = ("birth_date", "last_name", "first_name")


def _block(person: dict, candidates: pl.DataFrame, keys: pl.DataFrame, slips: np.ndarray,
           reachable: np.ndarray | None) -> pl.DataFrame:
    """The candidates worth scoring, found without scoring everyone (a state's roster is a million students):
    those of the person's school (of every school when it names none) who share the birth date, the last name or
    the first name; and, in any school, those whose number is the person's once leading zeros are dropped or one
    slip from it. `keys`: the candidates' BLOCK_FIELDS in lower case and their school, row for row (lowered once
    for every person); `slips`: each candidate's number's slips from the person's; `reachable`: the candidates
    whose pair with the person could score enough (None: every one)."""
    same = pl.lit(False)
    for field in BLOCK_FIELDS:
        if person.get(field):
            same = same | (pl.col(field) == person[field].lower())
    where = same & (pl.col("school_id") == person["school_id"]) if person.get("school_id") else same
    near = np.flatnonzero(slips <= 1).tolist() if (person.get("number") or "").lstrip("0") else []
    by_number = candidates[near] if near else candidates.clear()
    matching = keys.with_columns(where.fill_null(False).alias("matching"))["matching"]  # a bare False: every row
    if reachable is not None:
        matching = matching & pl.Series(reachable)
    return pl.concat([candidates.filter(matching), by_number]).unique("id", keep="first", maintain_order=True)


_PEOPLE_AT_ONCE = 64  # people whose numbers are compared with every candidate's in one call: 64 bytes a candidate


def suggest(people: list[dict], candidates: list[dict] | pl.DataFrame, cause: str, top: int = TOP,
            min_score: float = MIN_SCORE) -> pl.DataFrame:
    """For each unlinked person (keys: id, number, first_name, last_name, birth_date, school_id, email, subjects),
    the `top` candidates (rows: id and the same fields) scoring at least `min_score`, best first. A candidate
    whose number is too many slips from the person's to reach `min_score` (`slips_within`) is not scored: at a
    state's size a shared first name or birth date in a school is thousands of candidates, each scored in Python."""
    frame = candidates if isinstance(candidates, pl.DataFrame) else pl.DataFrame(candidates, schema=CANDIDATE_SCHEMA)
    frame = frame.select([pl.col(c).cast(pl.Utf8) if c in frame.columns else pl.lit(None, pl.Utf8).alias(c)
                          for c in CANDIDATE_SCHEMA])
    numbers = frame["number"].fill_null("").str.strip_chars_start("0").to_list()
    unnumbered = (frame["number"].fill_null("") == "").to_numpy()  # number_similarity: absent, not far
    keys = frame.select(*(pl.col(f).str.to_lowercase() for f in BLOCK_FIELDS), "school_id") if people else frame
    within = slips_within(min_score)
    rows = []
    for first in range(0, len(people), _PEOPLE_AT_ONCE):
        batch = people[first:first + _PEOPLE_AT_ONCE]
        # slips past the cut-off read as cut-off + 1: exact up to what is compared (one slip, or `within`)
        slips = process.cdist([(p.get("number") or "").lstrip("0") for p in batch], numbers, scorer=OSA.distance,
                              score_cutoff=max(1, within or 0), dtype=np.int8, workers=-1)
        for p, mine in zip(batch, slips):
            reachable = None if within is None or not p.get("number") else unnumbered | (mine <= within)
            scored = []
            for c in _block(p, frame, keys, mine, reachable).to_dicts():
                score, evidence = score_pair(p, c)
                if score >= min_score and not _a_sibling_of(p, c, frame, keys):
                    scored.append((score, c["id"], evidence))
            scored.sort(key=lambda s: (-s[0], s[1]))
            rows += [{"cause": cause, "subjects": p.get("subjects") or "", "from_id": p["id"], "to_id": cid,
                      "score": score, "evidence": "; ".join(evidence)} for score, cid, evidence in scored[:top]]
    return pl.DataFrame(rows, schema=SUGGESTION_COLUMNS)


# ---- from a drop's frames ---------------------------------------------------------------------------------------

def unknown_ids(tests: dict[str, pl.DataFrame], linked: Collection[str] | pl.Series) -> dict[str, dict[str, str]]:
    """Each source's identifiers that link to no student -> the subjects they came in ("SR,SM"), by source name
    (`tests`: the drop's common results by file asset; `linked`: the identifiers that link)."""
    known = pl.Series("student_link", linked if isinstance(linked, pl.Series) else list(linked), dtype=pl.Utf8)
    out: dict[str, dict[str, list[str]]] = {}
    for asset, frame in tests.items():
        mine = out.setdefault(SOURCE_OF[asset].name, {})
        # an anti join: a third of the time `is_in` took at a state's size (a million identifiers linked)
        unseen = (frame.select("student_link", "subject").drop_nulls("student_link")
                  .join(known.to_frame(), on="student_link", how="anti", maintain_order="left")
                  .unique(maintain_order=True))
        for value, subject in unseen.iter_rows():  # the few that link to no one, in the file's order
            if subject not in mine.setdefault(value, []):
                mine[value].append(subject or "")
    subjects_max = 20  # dm.LinkSuggestions.Subjects
    return {name: {k: ",".join(v)[:subjects_max] for k, v in ids.items()} for name, ids in out.items() if ids}


def read_people(name: str, data: bytes, source: Source, district) -> pl.DataFrame:
    """An assessment file's identifying columns (the link column and its source's `person` columns), as text, read
    by the source's own reader, as the drop's file was (its encoding, its checks)."""
    from pathlib import Path

    import inspect

    wanted = {district.sources[source.name].link, *source.person.values()}
    wanted |= {alias for alias, header in source.person_aliases.items() if header in wanted}
    if "select" in inspect.signature(source.read).parameters:
        frame = source.read(Path(name), data, district, None, select=lambda header: [h for h in header if h in wanted])
    else:
        whole = source.read(Path(name), data, district, None)  # a reader of the four arguments only: all, then ours
        frame = whole.select([h for h in whole.columns if h in wanted])
    aliases = source.person_aliases
    return frame.rename({a: h for a, h in aliases.items() if a in frame.columns and h not in frame.columns})


def people(raw: list[pl.DataFrame], source: Source, link_column: str, unknown: dict[str, str]) -> list[dict]:
    """The source's unlinked students, once each, as its files describe them (their identifying columns, read
    again for these identifiers only)."""
    found: dict[str, dict] = {}
    for frame in raw:
        if link_column not in frame.columns:
            continue
        wanted = frame.filter(pl.col(link_column).str.strip_chars().is_in(list(unknown)))
        for row in wanted.to_dicts():
            sid = row[link_column].strip()
            if sid not in found:
                found[sid] = {"id": sid, "number": sid, "subjects": unknown[sid],
                              **{ours: (row.get(col) or "").strip() or None for ours, col in source.person.items()}}
    return list(found.values())


def powerschool_candidates(students: pl.DataFrame) -> pl.DataFrame:
    """Every PowerSchool student with a link value as a counterpart: its number is what Star should have carried
    (the link field). One without (an empty state id) could be accepted, and then link nothing."""
    named = {"id": "student_number", "number": "student_link", "first_name": "first_name", "last_name": "last_name",
             "birth_date": "dob", "school_id": "school_id", "email": "email"}
    return students.select([(pl.col(src) if src in students.columns else pl.lit(None, pl.Utf8)).alias(ours)
                            for ours, src in named.items()]).filter(pl.col("number").is_not_null())


def classlink_suggestions(unlinked: pl.DataFrame, free_users: pl.DataFrame, top: int = TOP,
                          min_score: float = 0.85) -> pl.DataFrame:
    """PowerSchool students with no ClassLink account (student_number, email) against the tenant's users no student
    is linked to (classlink_user_id, email_key): the address is what both carry, so it alone is scored."""
    rows = []
    users = free_users.select("classlink_user_id", "email_key").drop_nulls().to_dicts()
    for s in unlinked.select("student_number", "email").to_dicts():
        if not s["email"]:
            continue
        scored = []
        for u in users:
            score, why = email_similarity(s["email"], u["email_key"])
            if score is not None and score >= min_score:
                scored.append((score, u["classlink_user_id"], why))
        scored.sort(key=lambda x: (-x[0], x[1]))
        rows += [{"cause": NO_CLASSLINK, "subjects": "", "from_id": s["student_number"], "to_id": uid,
                  "score": score, "evidence": why} for score, uid, why in scored[:top]]
    return pl.DataFrame(rows, schema=SUGGESTION_COLUMNS)


def _aliases(asset: str, students: pl.DataFrame, accepted: pl.DataFrame) -> tuple[dict[str, str], set[str]]:
    """The file's accepted identifiers -> the link value of the student each was accepted for; and those accepted
    that are now a student's own link value in this roster (a number handed out since): their rows belong to no
    one until a person reviews that link, as two students would claim them. An identifier that is now the accepted
    student's own link (the district corrected it) needs no alias and is no one else's."""
    link_of = dict(zip(students["student_number"], students["student_link"]))
    own = set(students["student_link"].drop_nulls())
    mine = [r for r in accepted.filter(pl.col("cause") == unknown_cause(SOURCE_OF[asset].name)).to_dicts()
            if link_of.get(r["to_id"]) and r["from_id"] != link_of[r["to_id"]]]
    return ({r["from_id"]: link_of[r["to_id"]] for r in mine if r["from_id"] not in own},
            {r["from_id"] for r in mine if r["from_id"] in own})


def claimed_twice(tests: dict[str, pl.DataFrame], students: pl.DataFrame, accepted: pl.DataFrame | None
                  ) -> dict[str, int]:
    """Per file asset, its rows of an accepted identifier that is now a student's own (`_aliases`): not loaded."""
    if accepted is None or accepted.is_empty():
        return {}
    return {asset: int(frame["student_link"].is_in(list(claimed)).sum())
            for asset, frame in tests.items() if (claimed := _aliases(asset, students, accepted)[1])}


def apply_accepted(tests: dict[str, pl.DataFrame], students: pl.DataFrame, classlink: pl.DataFrame,
                   accepted: pl.DataFrame | None, on: str = "email_key") -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The drop's frames with the links a person accepted: an assessment's rows of an accepted identifier (of that
    vendor only) carry the link value of the student it was accepted for; a student accepted for a ClassLink user
    gets that user's key (`on`: its address key, or its sourcedId). Pairs whose student (or user) is not in this
    drop change nothing, nor does a pair whose user's key another student of the drop carries; rows of an accepted
    identifier that is now a student's own link to no one (`_aliases`)."""
    if accepted is None or accepted.is_empty():
        return tests, students
    aliased = {}
    for asset, frame in tests.items():
        aliases, claimed = _aliases(asset, students, accepted)
        link = pl.col("student_link")
        aliased[asset] = frame.with_columns(
            pl.when(link.is_in(list(claimed))).then(None).otherwise(link.replace(list(aliases), list(aliases.values())))
            .alias("student_link")) if aliases or claimed else frame
    cl_links = accepted.filter(pl.col("cause") == NO_CLASSLINK)
    key_of = dict(zip(classlink["classlink_user_id"], classlink[on])) if classlink.height else {}
    keys = {r["from_id"]: key_of[r["to_id"]] for r in cl_links.to_dicts() if key_of.get(r["to_id"])}
    # a user another student of the drop carries the key of (their own address: a student back in the roster since
    # the pair was accepted) stays theirs: given to both, neither would link
    if keys:
        owners = students.filter(pl.col(on).is_in(list(keys.values()))).select("student_number", on).rows()
        taken = {key for number, key in owners if keys.get(number) != key}
        keys = {number: key for number, key in keys.items() if key not in taken}
    if keys:
        students = students.with_columns(pl.col("student_number").replace_strict(
            list(keys), list(keys.values()), default=pl.col(on)).alias(on))
    return aliased, students
