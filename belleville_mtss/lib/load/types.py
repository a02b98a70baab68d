"""Column types, declared once for every dialect: our table declarations (warehouse.py) and the migrations use them.

- `text(n)`: every text column is Unicode. On SQL Server that is NVARCHAR(n): VARCHAR would convert a name to the
  database's code page on the way in (`Nguyễn` -> `Nguy?n`), and SQLAlchemy binds Unicode parameters as such.
  PostgreSQL and SQLite store VARCHAR as Unicode already, so their DDL does not change.
- `key(n)`: a text column that is part of a key or a join (student numbers, subjects, test keys). On SQL Server
  it has a binary collation: the default collations compare case-insensitively, so two AssessmentIDs differing only
  by case would be one key there and two in our dedup (and on PostgreSQL and SQLite). A binary collation makes all
  three compare the same way, and keeps the key exactly as the source sent it (normalising case would change it).
- `timestamp()`: DATETIME2 on SQL Server (100 ns, from year 1); DATETIME rounds to 1/300 s and starts in 1753.
"""
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

BINARY_COLLATION = "Latin1_General_100_BIN2"


def text(length: int) -> sa.types.TypeEngine:
    return sa.Unicode(length)


def key(length: int) -> sa.types.TypeEngine:
    return sa.Unicode(length).with_variant(mssql.NVARCHAR(length, collation=BINARY_COLLATION), "mssql")


def timestamp() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")
