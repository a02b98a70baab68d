"""What the gates (lib/checks.py, stage "gate") read from and write to the warehouse: the district's current
roster size, and a person's acceptance of a failed gate (or of an older drop: `drop_is_newest`) for one drop
version (`belleville-mtss run DISTRICT/DROP --accept CHECK --reason TEXT`), kept in dm.GateAcceptances."""
from __future__ import annotations

import re

import sqlalchemy as sa

from ..checks import newer_keys
from ..load.errors import fitted
from ..load.warehouse import gate_acceptances, now, student_roster



def current_roster(engine: sa.Engine, account_info_id: int) -> int:
    r = student_roster.c
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(student_roster)
                                .where((r.AccountInfoId == account_info_id) & (r.IsCurrent == sa.true())))
                   .scalar_one())


def _versions(version: str | tuple[str, ...]) -> tuple[str, ...]:
    return (version,) if isinstance(version, str) else tuple(version)


def acceptance(engine: sa.Engine, drop_id: str, version: str | tuple[str, ...], gate: str,
               figure: str | None = None) -> dict | None:
    """The recorded acceptance of a failed gate for this drop version (any of them: ReceivedDrop.acceptance_keys),
    if any. Of drop_is_newest, given the check's `figure` now (the newer drops holding: checks.newer_figure), only
    an acceptance made against every one of them: a drop newer still is judged afresh (an acceptance that let an old
    drop replace one withdrawn drop let every later replay of it replace the district's newer drops)."""
    a = gate_acceptances.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(a.AcceptedBy, a.Reason, a.AcceptedAt, a.Figure).where(
            (a.DropId == drop_id) & a.DropVersion.in_(_versions(version)) & (a.Gate == gate))
            .order_by(a.AcceptedAt.desc()).limit(1)).first()
    if row is None or (gate == "drop_is_newest" and figure is not None and not _names_all(row.Figure, figure)):
        return None
    return dict(row._mapping)


def _names_all(recorded: str | None, figure: str) -> bool:
    """Whether a recorded figure names each newer drop `figure` names (as checks.newer_figure writes it, or, recorded
    before it, inside the check's message: "... holds the newer KEY (of DATE) ...")."""
    return all(re.search(rf"(?:^|[\s,;(]){re.escape(key)}(?=$|[\s,;)])", recorded or "") for key in newer_keys(figure))


def acceptances(engine: sa.Engine, drop_id: str, version: str | tuple[str, ...]) -> dict[str, str]:
    """Every failed check accepted for this drop version (any of them), with who accepted it."""
    a = gate_acceptances.c
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(a.Gate, a.AcceptedBy).where(
            (a.DropId == drop_id) & a.DropVersion.in_(_versions(version))).order_by(a.AcceptedAt)).all())


def accept(target: sa.Engine | sa.Connection, drop_id: str, version: str, gate: str, reason: str, by: str,
           figure: str, run_id: str | None) -> None:
    """Record an acceptance; on a connection, inside its transaction (applying an older drop records the
    acceptance with the load it allows)."""
    if "@" in reason or "@" in by:
        raise ValueError("an acceptance reason or name may not hold an email address")
    cut = {c: fitted(text, gate_acceptances.c[c].type.length)  # as NVARCHAR counts: an emoji is two
           for c, text in (("Figure", figure), ("Reason", reason), ("AcceptedBy", by))}
    statement = gate_acceptances.insert().values(
        DropId=drop_id, DropVersion=version, Gate=gate, **cut, AcceptedAt=now(), RunId=run_id)
    if isinstance(target, sa.Connection):
        target.execute(statement)
        return
    with target.begin() as conn:
        conn.execute(statement)
