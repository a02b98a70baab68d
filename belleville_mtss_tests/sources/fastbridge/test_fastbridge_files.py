"""FastBridge (lib/sources/fastbridge/): a row per student with a column group per screening period; each filled
group is one test event, read with exactly its measures and growth; nothing that says who the student is kept."""
import csv
import re
from pathlib import Path

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.sources.fastbridge import PERIODS, FastBridgeSection

SAMPLES = {"fastbridge_areading": ("assessments/fastbridge__aReading_sample_anonymized.csv", "aReading"),
           "fastbridge_amath": ("assessments/fastbridge__aMath_sample_anonymized.csv", "aMath")}


def _district(**section):
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    return entry.model_copy(update={"sources": {**entry.sources, "fastbridge": FastBridgeSection(**section)}})


def _expected(path: Path, subject: str) -> list[dict]:
    """The events of the file, found with the csv module: one per filled period group, with its measures."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    events = []
    for period in PERIODS:
        for row in rows:
            if row.get(f"{period} {subject} Final Date"):
                measures = {k: v for k, v in row.items() if v and (
                    (k.startswith(f"{period} {subject} ") and not k.endswith("Final Date"))
                    or k.startswith(f"{period} Lexile") or k.startswith(f"{period} Quantile")
                    or re.search(rf"Growth.* to {period}$", k))}
                events.append({"student": row["Local ID"], "period": period, "measures": measures,
                               "theta": float(row[f"{period} {subject} Test Theta"]),
                               "risk": row[f"{period} {subject} Risk Level"]})
    return events


def test_each_public_sample_reads_to_exactly_its_events_and_measures(reference_dir):
    district = _district()
    for asset, (name, subject) in SAMPLES.items():
        path = reference_dir / name
        expected = _expected(path, subject)
        validated, errors = validate_file(ingest_file(asset, path, district), district)
        assert errors == [] and validated.rejected == {}
        assert validated.rows == len(expected) and {"aReading": 3, "aMath": 7}[subject] == len(expected)
        for got, want in zip(validated.frame.iter_rows(named=True), expected):
            assert (got["student_link"], got["screening_window"], got["subject"]) == (want["student"],
                                                                                    want["period"], subject)
            assert got["scaled_score"] == round(want["theta"]) and got["benchmark_category"] == want["risk"]
            assert {s["name"]: s["value"] for s in got["scores"]} == want["measures"]  # the exact theta among them
        kept = {s["name"] for scores in validated.frame["scores"] for s in scores}
        assert not kept & {"First Name", "Last Name", "DOB", "Gender", "Race", "Special Ed. Status", "State ID"}


def test_a_later_period_carries_its_growth_and_a_file_of_the_other_subject_is_refused():
    district = _district()
    header = ("Assessment,District,Local ID,First Name,Fall aReading Test Theta,Fall aReading Risk Level,"
              "Fall aReading Final Date,Winter aReading Test Theta,Winter aReading Final Date,"
              "Growth Score from Fall to Winter\n")
    body = header + "aReading,D,1,Ann,480.4,someRisk,9/10/2025,502.6,1/20/2026,22.2\n"
    validated, _ = validate_file(ingest_file("fastbridge_areading", Path("FastBridge_aReading.csv"), district,
                                             body.encode()), district)
    assert validated.frame["screening_window"].to_list() == ["Fall", "Winter"]
    assert validated.frame["scaled_score"].to_list() == [480, 503]
    winter = {s["name"]: s["value"] for s in validated.frame["scores"][1]}
    assert winter == {"Winter aReading Test Theta": "502.6", "Growth Score from Fall to Winter": "22.2"}
    wrong, _ = validate_file(ingest_file("fastbridge_amath", Path("FastBridge_aMath.csv"), district, body.encode()),
                             district)  # an aReading export under aMath's name
    assert wrong.halted is not None and wrong.halted.reason == "wrong_file"


def test_a_percentile_that_is_not_a_number_refuses_its_event_and_not_available_is_empty():
    """A percentile of text loaded as an empty percentile, unsaid (the other screeners refuse such a row)."""
    district = _district()
    body = ("Assessment,District,Local ID,Fall aReading Test Theta,Fall aReading Percentile at Nation,"
            "Fall aReading Final Date\n"
            "aReading,D,1,480.4,high,9/10/2025\naReading,D,2,480.4,N/A,9/10/2025\naReading,D,3,480.4,45.6,9/10/2025\n")
    validated, _ = validate_file(ingest_file("fastbridge_areading", Path("FastBridge_aReading.csv"), district,
                                             body.encode()), district)
    assert validated.frame.select("student_link", "percentile_rank").rows() == [("2", None), ("3", 46)]
    assert validated.rejected == {"Percentile at Nation is not a number": 1}


def test_a_row_printed_twice_is_one_screening_and_copies_that_disagree_are_refused():
    """Both copies of a repeated row were refused: the child's screening was lost."""
    district = _district()
    body = ("Assessment,District,Local ID,Fall aReading Test Theta,Fall aReading Final Date\n"
            "aReading,D,1,480.4,9/10/2025\naReading,D,1,480.4,9/10/2025\n"
            "aReading,D,2,480.4,9/10/2025\naReading,D,2,490.4,9/10/2025\n")
    validated, _ = validate_file(ingest_file("fastbridge_areading", Path("FastBridge_aReading.csv"), district,
                                             body.encode()), district)
    assert validated.frame.select("student_link", "source_row").rows() == [("1", 2)]
    assert validated.rejected == {"a repeat of an earlier row's screening (student, period and day)": 1,
                                  "copies of one screening (student, period and day) that disagree": 2}
