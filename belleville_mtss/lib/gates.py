"""Gates: what a drop must show before it may replace the district's data in the warehouse. Each is a blocking
check with its threshold in the district's registry entry (defaults in registry.Gates); a failed gate says which
gate, the figure and the threshold. A person may accept a failed gate for one drop version (`belleville-mtss run
DISTRICT/DROP --accept GATE --reason TEXT`); the acceptance is kept in dm.GateAcceptances."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .identity import IdentityMap
from .registry import GATES, District  # noqa: F401  (GATES: the gates' names, declared with their thresholds)
from .warehouse import gate_acceptances, now, student_roster



@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    figure: str
    threshold: str

    @property
    def message(self) -> str:
        return f"gate {self.gate}: {self.figure}; {self.threshold}"


def _pct(x: float) -> str:
    return f"{x:.2%}"


def classlink_link_rate(district: District, identity: IdentityMap) -> GateResult:
    cl = identity.stats["classlink_email"]
    floor = district.gates.min_classlink_link_rate
    return GateResult("classlink_link_rate", cl["match_rate"] >= floor,
                      f"{_pct(cl['match_rate'])} of {cl['powerschool_students']:,} students linked to ClassLink",
                      f"at least {_pct(floor)} required (gates.min_classlink_link_rate)")


def star_link_rate(district: District, identity: IdentityMap) -> GateResult:
    ren = identity.stats["renaissance_link"]
    floor = district.gates.min_star_link_rate
    rate = ren["match_rate"] if ren["star_rows"] else 1.0  # no Star row at all: nothing to link (halted files say why)
    return GateResult("star_link_rate", rate >= floor,
                      f"{_pct(rate)} of {ren['star_rows']:,} Star rows linked to a student",
                      f"at least {_pct(floor)} required (gates.min_star_link_rate)")


def star_files_linked(identity: IdentityMap) -> GateResult:
    """Every Star file that was read (identity.files: its data rows, rejected ones included) links a row."""
    dead = [f"{name} ({rows:,} rows, none linked)" for subject, (name, rows) in sorted(identity.files.items())
            if rows and identity.by_subject.get(subject, {}).get("linked", 0) == 0]
    return GateResult("star_files_linked", not dead, "; ".join(dead) or "every Star file with rows has linked rows",
                      "a Star file with rows must link at least one")


def roster_size(district: District, identity: IdentityMap, current: int) -> GateResult:
    new = identity.frame.height
    limit = district.gates.max_roster_change
    if current == 0:
        return GateResult("roster_size", True, f"{new:,} students; no roster loaded yet", "a first roster is exempt")
    change = (new - current) / current
    return GateResult("roster_size", abs(change) <= limit,
                      f"{new:,} students against {current:,} now in dm.StudentRoster ({change:+.1%})",
                      f"within {_pct(limit)} required (gates.max_roster_change)")


def current_roster(engine: sa.Engine, account_info_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(student_roster)
                                .where(student_roster.c.AccountInfoId == account_info_id)).scalar_one())


def acceptance(engine: sa.Engine, drop_id: str, version: str, gate: str) -> dict | None:
    """The recorded acceptance of a failed gate for this drop version, if any."""
    a = gate_acceptances.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(a.AcceptedBy, a.Reason, a.AcceptedAt).where(
            (a.DropId == drop_id) & (a.DropVersion == version) & (a.Gate == gate))
            .order_by(a.AcceptedAt.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def accept(engine: sa.Engine, drop_id: str, version: str, gate: str, reason: str, by: str, figure: str,
           run_id: str | None) -> None:
    if "@" in reason or "@" in by:
        raise ValueError("an acceptance reason or name may not hold an email address")
    with engine.begin() as conn:
        conn.execute(gate_acceptances.insert().values(
            DropId=drop_id, DropVersion=version, Gate=gate, Figure=figure[:500], Reason=reason[:1000],
            AcceptedBy=by[:200], AcceptedAt=now(), RunId=run_id))
