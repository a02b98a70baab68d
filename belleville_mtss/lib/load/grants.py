"""What the runtime login may do, declared once: the grant statements a DBA is given (`belleville-mtss warehouse
grants`, docs/security.md), the test role that runs a whole drop, and `warehouse verify` all come from here.

Each grant is the least the code's statements need (why, beside each). Migrations, `warehouse upgrade` and the DDL
are an owner's: the runtime login holds no DDL right and no grant on another team's table beyond SELECT.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ROLE = "mtss_runtime"


@dataclass(frozen=True)
class Grant:
    schema: str
    table: str
    privileges: tuple[str, ...]  # SELECT, INSERT, DELETE, and "UPDATE" for the whole row
    update_columns: tuple[str, ...] = ()  # UPDATE of these columns only
    database: str = "warehouse"  # or "prod"
    why: str = ""


GRANTS = (
    Grant("dm", "AccountInfo", ("SELECT",), why="the district crosswalk reads it; another team's table"),
    Grant("dm", "StudentRoster", ("SELECT", "INSERT", "DELETE"), ("IsCurrent",),
          why="a load replaces the students a drop lists and marks the others not current"),
    Grant("dm", "AssessmentResults", ("SELECT", "INSERT", "DELETE"),
          why="a load replaces each (assessment, subject, school year; MAP Growth's by term) of the drop; rows "
              "are never updated in place"),
    Grant("dm", "AssessmentScores", ("SELECT", "INSERT", "DELETE"),
          why="the scores of those results beyond the common columns, replaced with them"),
    Grant("dm", "StudentRosterStaging", ("SELECT", "INSERT", "DELETE"),
          why="a load bulk-copies its roster here, applies it from here, and deletes its own rows (never TRUNCATE)"),
    Grant("dm", "AssessmentResultsStaging", ("SELECT", "INSERT", "DELETE"),
          why="the same for its results"),
    Grant("dm", "AssessmentScoresStaging", ("SELECT", "INSERT", "DELETE"),
          why="the same for their scores"),
    Grant("dm", "IngestionErrors", ("SELECT", "INSERT"), why="append-only error log; status and the sensor read it"),
    Grant("dm", "IngestionFiles", ("SELECT", "INSERT"), ("Outcome", "OutcomeAt"),
          why="append-only audit: a file's outcome is set once its run decides it"),
    Grant("dm", "GateAcceptances", ("SELECT", "INSERT"), why="a person's acceptance, appended with the load"),
    Grant("dm", "LinkSuggestions", ("SELECT", "INSERT"), ("Status",),
          why="suggested counterparts of unlinked students, appended after each drop; read by `links review`; a "
              "decision sets Status once (open to accepted or rejected)"),
    Grant("dm", "LinkDecisions", ("SELECT", "INSERT"), why="a person's accept or reject, appended by `links accept` "
                                                           "and `links reject`; read by every later drop"),
    Grant("dm", "MtssSchemaVersion", ("SELECT",), why="a run checks the schema revision; only migrations write it"),
    Grant("dbo", "ClassLinkUsers", ("SELECT",), database="prod", why="students are linked to their ClassLink "
                                                                     "users; another team's table"),
)
# PostgreSQL's SERIAL column (dm.IngestionErrors.ErrorId) draws from a sequence, which needs its own grant
PG_SEQUENCES = ('dm."IngestionErrors_ErrorId_seq"',)


def quoted(dialect: str):
    """How a name of ours is written in that dialect's grant statements (mixed case: quoted on PostgreSQL)."""
    return (lambda n: f'"{n}"') if dialect == "postgresql" else (lambda n: n)


def _privileges(g: Grant, quote) -> str:
    update = [f"UPDATE ({', '.join(quote(c) for c in g.update_columns)})"] if g.update_columns else []
    return ", ".join([*g.privileges, *update])


def role_name(dialect: str, role: str) -> str:
    """A role as the dialect's statements name it: as given where it is a plain name there, else quoted (a
    `svc-mtss`, `DOMAIN\\svc` or mixed-case role made the script fail, or name another role)."""
    if dialect == "postgresql":
        return role if re.fullmatch(r"[a-z_][a-z0-9_]*", role) else '"' + role.replace('"', '""') + '"'
    return role if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", role) else "[" + role.replace("]", "]]") + "]"


def statements(dialect: str, role: str = ROLE, warehouse_db: str = "edu_dw", prod_db: str = "prod") -> str:
    """The grant script for `dialect` ("postgresql" or "mssql"), as the DBA runs it after the migrations."""
    pg = dialect == "postgresql"
    quote, role = quoted(dialect), role_name(dialect, role)
    out = []
    for database, db_name in (("warehouse", warehouse_db), ("prod", prod_db)):
        grants = [g for g in GRANTS if g.database == database]
        label = "EDU Data Warehouse" if database == "warehouse" else "prod db"
        out.append(f"-- {label} ({'PostgreSQL' if pg else 'SQL Server'}), as its owner")
        if pg:
            out.append(f"GRANT CONNECT ON DATABASE {db_name} TO {role};")
            out.append(f"GRANT USAGE ON SCHEMA {grants[0].schema} TO {role};")
        else:
            out.append(f"USE {db_name};")
            out.append(f"CREATE USER {role} FOR LOGIN {role};")
        for g in grants:
            out.append(f"GRANT {_privileges(g, quote)} ON {g.schema}.{quote(g.table)} TO {role};")
        if pg and database == "warehouse":
            out.append(f"GRANT USAGE ON SEQUENCE {', '.join(PG_SEQUENCES)} TO {role};")
    return "\n".join(out) + "\n"


def markdown_table() -> str:
    """The grants per table, with why, as docs/security.md shows them."""
    rows = ["| database | table | grants | why |", "|---|---|---|---|"]
    for g in GRANTS:
        rows.append(f"| {g.database} | {g.schema}.{g.table} | {_privileges(g, quoted('mssql'))} | {g.why} |")
    rows.append(f"| warehouse | sequence {', '.join(PG_SEQUENCES)} | USAGE (PostgreSQL only) | an error row's "
                "ErrorId is drawn from it (SQL Server's IDENTITY and PostgreSQL's identity columns need no grant) |")
    return "\n".join(rows) + "\n"
