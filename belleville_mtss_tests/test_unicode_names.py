"""Names in any script reach the warehouse exactly as the district sent them, on SQLite and PostgreSQL (issue 22:
on SQL Server the same columns are NVARCHAR, lib/load/types.py; that a real server keeps them is not shown here)."""
import polars as pl

from belleville_mtss.lib.load.warehouse import make_engine, read_table, student_roster
from belleville_mtss.run import run_drop

from .helpers import SMALL, prepare_drop

NAMES = [("Nguyễn Thị", "Ánh"), ("小明", "王"), ("عبد الله", "محمد"), ("Łukasz", "Żółkiewski"),
         ("Zoë 😀", "Núñez 👩‍👩‍👧"), ("𠮷野", "家")]  # the last: a character outside the BMP, two UTF-16 units


def test_names_in_any_script_round_trip_exactly_through_a_drop(backend):
    folder = prepare_drop(backend, SMALL)
    students = pl.read_csv(folder / "students.csv", infer_schema=False)
    first, last = (pl.Series([n[i] for n in NAMES] + students[c].to_list()[len(NAMES):])
                   for i, c in enumerate(("STUDENTS.FIRST_NAME", "STUDENTS.LAST_NAME")))
    students = students.with_columns(first.alias("STUDENTS.FIRST_NAME"), last.alias("STUDENTS.LAST_NAME"))
    students.write_csv(folder / "students.csv")
    assert run_drop(backend, f"belleville/{SMALL.drop_name}").outcome == "loaded"
    engine = make_engine(backend.warehouse_url)
    try:
        roster = read_table(engine, student_roster)
    finally:
        engine.dispose()
    numbers = students["STUDENTS.STUDENT_NUMBER"].head(len(NAMES)).to_list()
    held = {r["StudentNumber"]: (r["FirstName"], r["LastName"]) for r in roster.iter_rows(named=True)}
    assert [held[n] for n in numbers] == NAMES


def test_a_nul_character_in_a_name_refuses_its_row_naming_file_column_and_row_on_every_backend(backend):
    """A NUL (which PostgreSQL refuses in text, and SQLite would store inside the name) refuses only its row, the
    same on SQLite and PostgreSQL, naming the file, the column and the row number, never the value."""
    import polars as pl
    from belleville_mtss.run import run_drop
    from .helpers import SMALL, errors, prepare_drop, warehouse_counts
    drop = prepare_drop(backend, SMALL)
    students = pl.read_csv(drop / "students.csv", infer_schema=False)
    first = students.columns[[c.upper() for c in students.columns].index("STUDENTS.FIRST_NAME")]
    students.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("Ma\x00ria")).otherwise(pl.col(first))
                          .alias(first)).write_csv(drop / "students.csv")
    report = run_drop(backend)
    assert report.outcome == "loaded", report.render()
    assert warehouse_counts(backend)["roster"] == SMALL.students - 1
    refused = errors(backend).filter(pl.col("Reason") == "text_not_storable")
    assert refused["Message"].to_list() == [
        "students.csv: 1 row(s) rejected: text_not_storable: first_name holds a NUL character, which "
        "dm.StudentRoster.FirstName cannot store (row 5)"]
    assert refused["FileName"].to_list() == ["students.csv"] and refused["RowCount"].to_list() == [1]
