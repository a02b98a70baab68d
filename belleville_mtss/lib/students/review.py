"""The review queue of suggested links, in the warehouse (dm.LinkSuggestions, dm.LinkDecisions): suggestions
recorded once per pair, a person's accept or reject with who and why, and the accepted links every later drop and
replay applies. Nothing is linked without a decision."""
from __future__ import annotations

import datetime as dt

import polars as pl
import sqlalchemy as sa

# now: UTC, as every time stored
from ..load.warehouse import link_decisions, link_suggestions, now as stamp, student_roster
from .suggest import CAUSES, NO_CLASSLINK

DECISIONS = ("accepted", "rejected")


class ReviewError(ValueError):
    """A decision that cannot be recorded (no such suggestion, decided already); the message says why."""


def _latest():
    """Each decided suggestion's latest decision."""
    d = link_decisions.c
    last = sa.select(d.SuggestionId, sa.func.max(d.DecisionId).label("last")).group_by(d.SuggestionId).subquery()
    return (sa.select(d.SuggestionId, d.Decision, d.DecidedBy, d.Reason, d.DecidedAt)
            .join(last, (last.c.SuggestionId == d.SuggestionId) & (last.c.last == d.DecisionId)).subquery())


def record(engine: sa.Engine, account_info_id: int, drop_key: str, suggestions: pl.DataFrame,
           now: dt.datetime | None = None) -> int:
    """Append the pairs never suggested before (whatever became of them: a rejected pair never comes back);
    returns how many were new. Another run of the district recording the same pairs at once (a replay beside a new
    drop) makes the insert clash on the pair's key: read again and retried once; the server's message, which quotes
    the key (two students' identifiers), is never passed on."""
    if suggestions.is_empty():
        return 0
    s = link_suggestions.c
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                known = set(conn.execute(sa.select(s.Cause, s.FromId, s.ToId)
                                         .where(s.AccountInfoId == account_info_id)))
                fresh = [r for r in suggestions.to_dicts() if (r["cause"], r["from_id"], r["to_id"]) not in known]
                if fresh:
                    at = now or stamp()
                    conn.execute(link_suggestions.insert(), [
                        {"AccountInfoId": account_info_id, "Cause": r["cause"], "Subjects": r["subjects"] or None,
                         "FromId": r["from_id"], "ToId": r["to_id"], "Score": r["score"],
                         "Evidence": r["evidence"][:500], "DropId": drop_key, "CreatedAt": at} for r in fresh])
            return len(fresh)
        except sa.exc.IntegrityError:
            if attempt:
                raise ReviewError("link suggestions of this district were being recorded by another run at the same "
                                  "time, twice over; run the drop again") from None
    return 0  # not reached


def listing(engine: sa.Engine, account_info_id: int, status: str | None = "open") -> pl.DataFrame:
    """The district's suggestions with their status (open, accepted, rejected, conflict), best first per identifier."""
    s, latest = link_suggestions.c, _latest()
    stmt = (sa.select(s.SuggestionId, s.Cause, s.Subjects, s.FromId, s.ToId, s.Score, s.Evidence, s.DropId,
                      s.Status, latest.c.DecidedBy, latest.c.Reason)
            .outerjoin(latest, latest.c.SuggestionId == s.SuggestionId)
            .where(s.AccountInfoId == account_info_id).order_by(s.Cause, s.FromId, s.Score.desc(), s.SuggestionId))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
    frame = pl.DataFrame(rows, schema={"SuggestionId": pl.Int64, "Cause": pl.Utf8, "Subjects": pl.Utf8,
                                       "FromId": pl.Utf8, "ToId": pl.Utf8, "Score": pl.Float64, "Evidence": pl.Utf8,
                                       "DropId": pl.Utf8, "Status": pl.Utf8, "DecidedBy": pl.Utf8,
                                       "Reason": pl.Utf8})
    return frame if status is None else frame.filter(pl.col("Status") == status)


def counts(engine: sa.Engine, account_info_id: int) -> dict[str, int]:
    """open / accepted / rejected, and the suggestions of each cause: the figures metadata may show."""
    frame = listing(engine, account_info_id, None)
    out = {status: int((frame["Status"] == status).sum()) for status in ("open", *DECISIONS)}
    out |= {f"suggested/{cause}": int((frame["Cause"] == cause).sum()) for cause in CAUSES}
    return out


def decide(engine: sa.Engine, suggestion_id: int, decision: str, decided_by: str, reason: str,
           now: dt.datetime | None = None, replace: bool = False) -> dict:
    """Record a person's decision. The decision is a conditional UPDATE that only an open suggestion passes, so of
    two people deciding at once one wins and the other is refused; a unique index holds one accepted counterpart
    per identifier. Refused (ReviewError): an unknown id, one decided already, an empty reason, or accepting a
    second counterpart for an identifier that has one (named), unless `replace`: the earlier becomes rejected.
    Rejecting an accepted suggestion withdraws it (a mistaken accept would otherwise link every later drop)."""
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}")
    if not reason.strip():
        raise ReviewError("a decision needs a reason (--reason): why this pair is or is not the same student")
    if "@" in reason:  # kept in dm.LinkDecisions: say why, never whose address
        raise ReviewError("a reason may not hold an email address: say why the pair is or is not the same student "
                          "without writing anyone's address")
    s = link_suggestions.c
    at, why = now or stamp(), reason.strip()
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(s.AccountInfoId, s.Cause, s.FromId, s.ToId, s.Status)
                               .where(s.SuggestionId == suggestion_id)).first()
            if row is None:
                raise ReviewError(f"no suggestion {suggestion_id}")
            if decision == "accepted":
                taken = _accepted_for(conn, row)
                if taken is not None and taken != suggestion_id:
                    if not replace:
                        raise _accepted_already(taken)
                    _set(conn, taken, "accepted", "rejected", decided_by, f"replaced by suggestion {suggestion_id}: "
                         f"{why}", at)
                if row.Cause == NO_CLASSLINK:
                    # one ClassLink user is one student's: both would share the join key, and neither link
                    if (user := _user_accepted_for_another(conn, row)) is not None:
                        raise _user_taken(user)
                    if _user_linked_to_another(conn, row):
                        raise ReviewError("a student of the district's current roster is linked to this ClassLink "
                                          "user by address already: the suggestion would not apply")
            was = row.Status if row.Status == "conflict" else "open"
            if decision == "rejected" and row.Status == "accepted":
                was = "accepted"  # withdrawn: a mistaken accept is undone from the district's next drop or replay
            _set(conn, suggestion_id, was, decision, decided_by, why, at)
    except sa.exc.IntegrityError:  # another accept for the same student (or ClassLink user) committed between our
        # read and write: the unique indexes refused this one
        with engine.connect() as conn:
            row = conn.execute(sa.select(s.AccountInfoId, s.Cause, s.FromId, s.ToId).where(
                s.SuggestionId == suggestion_id)).first()
            taken = _accepted_for(conn, row)
            user = _user_accepted_for_another(conn, row) if row.Cause == NO_CLASSLINK and taken is None else None
        if user is not None:
            raise _user_taken(user) from None
        raise _accepted_already(taken) from None
    return {"suggestion": suggestion_id, "decision": decision, "cause": row.Cause,
            "withdrawn": decision == "rejected" and row.Status == "accepted"}


def _accepted_already(taken: int | None) -> ReviewError:
    return ReviewError(f"suggestion {taken} for the same student was accepted already: reject it first, or accept "
                       "this one with --replace")


def _user_taken(user: int) -> ReviewError:
    return ReviewError(f"suggestion {user} gave this ClassLink user to another student already: reject it first if "
                       "this student is the one")


def _accepted_for(conn: sa.Connection, row) -> int | None:
    s = link_suggestions.c
    return conn.execute(sa.select(s.SuggestionId).where(
        s.AccountInfoId == row.AccountInfoId, s.Cause == row.Cause, s.FromId == row.FromId,
        s.Status == "accepted")).scalar()


def _user_accepted_for_another(conn: sa.Connection, row) -> int | None:
    s = link_suggestions.c
    return conn.execute(sa.select(s.SuggestionId).where(
        s.AccountInfoId == row.AccountInfoId, s.Cause == row.Cause, s.ToId == row.ToId, s.FromId != row.FromId,
        s.Status == "accepted")).scalar()


def _user_linked_to_another(conn: sa.Connection, row) -> bool:
    """Whether another student of the district's current roster is linked to the suggestion's ClassLink user by
    address: not by a pair a person accepted (one withdrawn stops at the next drop)."""
    r, s = student_roster.c, link_suggestions.c
    by_a_pair = sa.exists().where(s.AccountInfoId == row.AccountInfoId, s.Cause == NO_CLASSLINK,
                                  s.FromId == r.StudentNumber, s.ToId == row.ToId)
    return conn.execute(sa.select(r.StudentNumber).where(
        r.AccountInfoId == row.AccountInfoId, r.IsCurrent == sa.true(), r.ClassLinkUserId == row.ToId,
        r.StudentNumber != row.FromId, ~by_a_pair).limit(1)).first() is not None


def _set(conn: sa.Connection, suggestion_id: int, was: str, decision: str, decided_by: str, reason: str,
         at: dt.datetime) -> None:
    """The suggestion's status from `was` to `decision`, only if it still is `was`; its decision row beside it."""
    s = link_suggestions.c
    changed = conn.execute(link_suggestions.update().where(s.SuggestionId == suggestion_id, s.Status == was)
                           .values(Status=decision)).rowcount
    if changed != 1:
        now_is = conn.execute(sa.select(s.Status).where(s.SuggestionId == suggestion_id)).scalar()
        raise ReviewError(f"suggestion {suggestion_id} was {now_is} already")
    conn.execute(link_decisions.insert().values(SuggestionId=suggestion_id, Decision=decision, DecidedBy=decided_by,
                                                Reason=reason, DecidedAt=at))


def accepted(engine: sa.Engine, account_info_id: int) -> pl.DataFrame:
    """The links a person accepted (cause, from_id, to_id): applied to every later drop and replay."""
    frame = listing(engine, account_info_id, "accepted")
    return frame.select(pl.col("Cause").alias("cause"), pl.col("FromId").alias("from_id"),
                        pl.col("ToId").alias("to_id"))
