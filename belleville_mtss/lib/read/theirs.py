"""Tables other teams own, read as guests: dm.AccountInfo (the warehouse team) and dbo.ClassLinkUsers (the product
team). Never created, altered or written here. Their schema, table and column names are configuration with the
mapping spec's names as defaults, and are found in the case the owner gave them (PostgreSQL folds unquoted names to
lower case: a DBA's `dm.accountinfo` is the same table).

    MTSS_ACCOUNT_INFO_TABLE=edw.Districts  MTSS_ACCOUNT_INFO_COLUMNS="DistrictName=Name,State=StateCode"
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import sqlalchemy as sa

from ..district.names import plain
from ..load.warehouse import account_info, class_link_users


class SourceTableError(Exception):
    """A source table that is missing, lacks a column, or cannot be read; the message says which and how to fix."""


@dataclass(frozen=True)
class SourceTable:
    setting: str  # the environment variable that names it
    schema: str | None
    name: str
    columns: dict[str, str]  # our name -> their column name
    optional: frozenset[str] = field(default_factory=frozenset)  # ours that may be absent (read as nulls)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def column_setting(self) -> str:
        """The columns in the form their environment variable takes (`configured` reads it back)."""
        return ",".join(f"{o}={t}" for o, t in self.columns.items())


def _default(setting: str, table: sa.Table, optional: set[str]) -> SourceTable:
    return SourceTable(setting, table.schema, table.name, {c.name: c.name for c in table.columns}, frozenset(optional))


ACCOUNT_INFO = _default("MTSS_ACCOUNT_INFO_TABLE", account_info, {"NcesId", "County"})
CLASSLINK_USERS = _default("MTSS_CLASSLINK_TABLE", class_link_users,
                           {"TenantId", "GivenName", "FamilyName", "SourcedId"})


def configured(default: SourceTable, table: str | None, columns: str | None) -> SourceTable:
    """The default with `schema.table` and `Ours=Theirs,...` overrides from the environment."""
    schema, name = default.schema, default.name
    if table:
        schema, _, name = table.rpartition(".")
        schema = schema or None
        if not name:
            raise SourceTableError(f"{default.setting} must be 'schema.table' or 'table', not {table!r}")
    mapping = dict(default.columns)
    for pair in filter(None, (p.strip() for p in (columns or "").split(","))):
        ours, _, theirs_ = (x.strip() for x in pair.partition("="))
        if ours not in mapping or not theirs_:
            raise SourceTableError(f"{default.setting.replace('_TABLE', '_COLUMNS')}: {pair!r} is not "
                                   f"'Ours=Theirs' with Ours one of {', '.join(mapping)}")
        mapping[ours] = theirs_
    return SourceTable(default.setting, schema, name, mapping, default.optional)


def _find(name: str, available: list[str]) -> str | None:
    """Exactly as configured, else the one name that differs only by case."""
    if name in available:
        return name
    alike = [a for a in available if a.lower() == name.lower()]
    return alike[0] if len(alike) == 1 else None


def resolve(engine: sa.Engine, spec: SourceTable) -> tuple[sa.TableClause, dict[str, str | None]]:
    """The table as it exists (its own spelling), and our column -> its column (None: an optional one absent)."""
    schema = None if engine.dialect.name == "sqlite" else spec.schema
    try:
        inspector = sa.inspect(engine)
        names = inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
        found = _find(spec.name, names)
        if found is None:
            raise SourceTableError(f"{spec.label} was not found (no table or view of that name, in any case, in "
                                   f"schema {schema or '(default)'}); set {spec.setting} to where it is")
        available = [c["name"] for c in inspector.get_columns(found, schema=schema)]
    except sa.exc.SQLAlchemyError as exc:
        raise SourceTableError(f"{spec.label} cannot be read ({type(getattr(exc, 'orig', None) or exc).__name__}); "
                               "check the connection and the SELECT grant") from None
    mapping = {ours: _find(theirs_, available) for ours, theirs_ in spec.columns.items()}
    missing = [spec.columns[o] for o, c in mapping.items() if c is None and o not in spec.optional]
    if missing:
        raise SourceTableError(f"{spec.label} has no column(s) {', '.join(missing)}; set "
                               f"{spec.setting.replace('_TABLE', '_COLUMNS')} to their names there")
    table = sa.table(found, *[sa.column(c) for c in mapping.values() if c], schema=schema)
    return table, mapping


def _frame(rows: list, wanted: list[str], as_text: bool) -> pl.DataFrame:
    """The driver's rows as a frame, each column typed from all its values. `as_text`: every column text, made so
    as the frame is built (at a million users, in half the time and two thirds of the memory of typing, then
    casting); where that would write a value otherwise than the cast does, typed, then cast: a value polars cannot
    write as text (a date, bytes), or a float (3.0 would come as "3", the cast writes "3.0") in the first rows, where
    a column of a DBA's table of floats shows its type."""
    if as_text and not any(isinstance(v, float) for row in rows[:1000] for v in row):
        try:
            return pl.DataFrame(rows, schema=dict.fromkeys(wanted, pl.Utf8), orient="row", strict=False)
        except pl.exceptions.ComputeError:
            pass  # its message may hold the value: not passed on
    frame = pl.DataFrame(rows, schema=wanted, orient="row", infer_schema_length=None)
    return frame.with_columns(pl.col(c).cast(pl.Utf8) for c in wanted) if as_text else frame


def _read(engine: sa.Engine, spec: SourceTable, wanted: list[str], where=None, as_text: bool = False) -> pl.DataFrame:
    table, mapping = resolve(engine, spec)
    columns = [(table.c[mapping[o]] if mapping[o] else sa.null()).label(o) for o in wanted]
    stmt = sa.select(*columns)
    if where is not None:
        stmt = stmt.where(where(table, mapping))
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt).cursor.fetchall()  # the driver's tuples: no Row objects for a large tenant
    except sa.exc.SQLAlchemyError as exc:
        raise SourceTableError(f"{spec.label} cannot be read ({type(getattr(exc, 'orig', None) or exc).__name__}); "
                               "check the SELECT grant") from None
    return _frame([tuple(r) for r in rows], wanted, as_text)


def read_account_info(engine: sa.Engine, spec: SourceTable = ACCOUNT_INFO) -> pl.DataFrame:
    frame = _read(engine, spec, ["AccountInfoId", "NcesId", "DistrictName", "State", "County"])
    return frame.with_columns(pl.col("AccountInfoId").cast(pl.Int64), *[
        pl.col(c).cast(pl.Utf8) for c in ("NcesId", "DistrictName", "State", "County")])


def _tenants(engine: sa.Engine, spec: SourceTable, listed: list[str]) -> list[str]:
    """The tenant names, as the prod db spells them, that are the registry's names case, spacing and punctuation
    aside (one index-only scan of the tenant column)."""
    table, mapping = resolve(engine, spec)
    column = table.c[mapping["TenantName"]]
    wanted = {plain(n) for n in listed}
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.select(column).distinct()).scalars().all()
    except sa.exc.SQLAlchemyError as exc:
        raise SourceTableError(f"{spec.label} cannot be read ({type(getattr(exc, 'orig', None) or exc).__name__}); "
                               "check the SELECT grant") from None
    return sorted(n for n in names if n is not None and plain(n) in wanted)


def _renamed(engine: sa.Engine, spec: SourceTable, tenant_names: list[str], tenant_ids: list[int]) -> None:
    """No user of the listed names and ids: if the listed ids go by other names, the tenant may have been renamed
    (or the id is another district's): refused, naming them, for a person to decide."""
    table, mapping = resolve(engine, spec)
    if not mapping["TenantId"]:
        return
    with engine.connect() as conn:
        named = sorted(conn.execute(sa.select(table.c[mapping["TenantName"]]).distinct().where(
            table.c[mapping["TenantId"]].in_(tenant_ids))).scalars())
    if named:
        raise SourceTableError(
            f"no ClassLink student users under tenant name(s) {', '.join(map(repr, tenant_names))} with tenant id(s) "
            f"{', '.join(map(str, tenant_ids))}; in {spec.label} tenant id(s) {', '.join(map(str, tenant_ids))} are "
            f"named {', '.join(map(repr, named))}: if that is the district's tenant renamed, add the name to "
            "source_names.classlink in its registry entry")


def read_classlink_students(engine: sa.Engine, tenant_names: list[str], tenant_ids: list[int],
                            spec: SourceTable = CLASSLINK_USERS) -> pl.DataFrame:
    """Student users of the district's tenant(s) only: the filter runs in the prod db (an index on the tenant
    column makes it one seek), never a read of every tenant's users. The registry's names are matched exactly; when
    none is found so, the tenant names equal to them case, spacing and punctuation aside are used. Tenant ids
    narrow the name match, never widen it: two districts may share a tenant name (Belleville NJ and Belleville WI),
    and a name shared by several tenant ids is refused until the registry lists the district's own."""
    def reader(names: list[str]):
        def where(table, mapping):
            tenant = table.c[mapping["TenantName"]].in_(names)
            if tenant_ids and mapping["TenantId"]:
                tenant = tenant & table.c[mapping["TenantId"]].in_(tenant_ids)
            return tenant & (sa.func.lower(table.c[mapping["Role"]]) == "student")
        return _read(engine, spec, ["UserId", "TenantName", "TenantId", "Email", "SourcedId"], where, as_text=True)

    frame = reader(tenant_names)
    if frame.filter(pl.col("TenantName").is_in(tenant_names)).is_empty():
        spelled = _tenants(engine, spec, tenant_names)
        if spelled and set(spelled) != set(tenant_names):
            frame = reader(spelled)
    if frame.is_empty() and tenant_ids:
        _renamed(engine, spec, tenant_names, tenant_ids)
    shared = sorted(frame["TenantId"].drop_nulls().unique().to_list(), key=lambda t: (len(t), t))  # as numbers
    if not tenant_ids and len(shared) > 1:
        raise SourceTableError(f"the ClassLink tenant name(s) {', '.join(sorted(set(frame['TenantName'])))} are "
                               f"shared by tenants {', '.join(shared)} in {spec.label}: set the district's "
                               "own in classlink_tenant_ids in its registry entry")
    return frame.drop("TenantId")


def tenants_of_emails(engine: sa.Engine, keys: list[str], spec: SourceTable = CLASSLINK_USERS,
                      batch: int = 1000, column: str = "Email") -> list[tuple[str, int | None, int]]:
    """(tenant name, tenant id, how many of the addresses are its student users), for addresses already lower-cased
    and trimmed: which tenant a new district's export belongs to (onboarding). Read in batches of addresses, so no
    other tenant's users leave the prod db; only the counts are kept. `column="SourcedId"`: the same for OneRoster
    sourcedIds (compared trimmed; [] where the table has no such column)."""
    table, mapping = resolve(engine, spec)
    if not mapping[column]:
        return []
    value = sa.func.trim(table.c[mapping[column]])
    value, name = (sa.func.lower(value) if column == "Email" else value), table.c[mapping["TenantName"]]
    tenant_id = table.c[mapping["TenantId"]] if mapping["TenantId"] else sa.null()
    counts: dict[tuple[str, int | None], int] = {}
    try:
        with engine.connect() as conn:
            for start in range(0, len(keys), batch):
                stmt = (sa.select(name, tenant_id, sa.func.count(sa.distinct(value)))
                        .where(value.in_(keys[start:start + batch]),
                               sa.func.lower(table.c[mapping["Role"]]) == "student")
                        # by columns only: SQL Server and PostgreSQL refuse a constant (the missing id's NULL) there
                        .group_by(name, *([tenant_id] if mapping["TenantId"] else [])))
                for tenant, tid, n in conn.execute(stmt):
                    counts[(tenant, tid)] = counts.get((tenant, tid), 0) + n
    except sa.exc.SQLAlchemyError as exc:
        raise SourceTableError(f"{spec.label} cannot be read ({type(getattr(exc, 'orig', None) or exc).__name__}); "
                               "check the SELECT grant") from None
    return sorted(((t, i, n) for (t, i), n in counts.items()), key=lambda r: -r[2])
