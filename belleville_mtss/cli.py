"""The `belleville-mtss` command: the demo, and the tools for onboarding a district."""
import argparse
import atexit
import csv
import getpass
import json
import os
import sys
from pathlib import Path

from .lib.config import load_settings


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_HELP = ("Dagster's own console log (DEBUG, INFO, WARNING, ERROR); by default only the report is printed, "
            "problems are in it and in dm.IngestionErrors")


class CliError(Exception):
    """A problem with the command's input: printed as one line, exit status 2."""


def _demo(args: argparse.Namespace) -> int:
    import dataclasses

    import polars as pl

    from .lib.district.registry import DEMO_DISTRICTS_DIR, load_registry
    from .lib.sample import PECAN_VALLEY, SampleSpec, generate_drop, load_databases
    from .run import run_drop

    settings = load_settings()
    _embedded_only(settings, "demo")
    _sample_size(args.students)
    # A made-up district that screens with MAP Growth, i-Ready and DIBELS 8 (no Star), then Belleville: its run is
    # the last, the one the UI's asset pages show first
    if DEMO_DISTRICTS_DIR.resolve() not in {d.resolve() for d in settings.districts_dirs}:  # named already: once
        settings = dataclasses.replace(settings, districts_dirs=(*settings.districts_dirs, DEMO_DISTRICTS_DIR))
    registry = load_registry(settings.districts_dirs)
    missing = [k for k in ("belleville", "pecan-valley") if k not in registry]
    if missing:
        why = [registry.problems[k].message for k in missing if k in registry.problems]
        raise CliError(f"the demo runs the sample districts, and the registry (MTSS_DISTRICTS_DIR) has no usable "
                       f"entry for {', '.join(missing)}" + (f": {'; '.join(why)}" if why else ""))
    belleville = registry["belleville"]
    specs = {"pecan-valley": dataclasses.replace(PECAN_VALLEY, students=min(PECAN_VALLEY.students, args.students)),
             "belleville": SampleSpec(students=args.students, sources=tuple(belleville.sources))}  # what it lists
    print(f"MTSS_HOME {settings.home}")
    users = []
    for key, spec in specs.items():
        drop = settings.drop_dir / registry[key].drop_folder / spec.drop_name
        print(f"Writing the {registry[key].display_name} sample drop to {drop}")
        made = generate_drop(drop, spec)["classlink_users"]
        # Belleville's users come with the other tenants that share the prod table; the second adds only its own
        users.append(made if key == "belleville" else made.filter(pl.col("TenantName") == spec.classlink_tenant))
    load_databases(settings.prod_db_url, settings.warehouse_url, pl.concat(users))
    code = 0
    for key, spec in specs.items():
        print(f"Materializing every asset of drop_job for {key}/{spec.drop_name} ...")
        report = run_drop(settings, f"{key}/{spec.drop_name}", log_level=args.log_level, progress=True)
        print(report.render())
        print(report.verdict())
        code = code or report.exit_code
    return code


def _generate(args: argparse.Namespace) -> int:
    import time

    from .lib.sample import SampleSpec, generate_drop, load_databases, write_tables

    if args.load:
        _embedded_only(load_settings(), "generate --load")
    _sample_size(args.students)
    from .progress import phase

    started = time.perf_counter()
    spec = SampleSpec(students=args.students)
    drop = args.out / "drop"
    phase(f"Generating {args.students:,} students into {drop} ...")
    tables = generate_drop(drop, spec)
    phase(f"Writing the ClassLink and AccountInfo tables to {args.out / 'tables'} ... "
          f"({time.perf_counter() - started:.1f} s so far)")
    write_tables(args.out / "tables", tables["classlink_users"])
    if args.load:
        phase("Loading them into the embedded databases ...")
        settings = load_settings()
        load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    size = sum(p.stat().st_size for p in drop.iterdir())
    print(f"{args.students:,} students: drop in {drop} ({size / 1e6:,.0f} MB), tables in {args.out / 'tables'}"
          f"{', loaded into the configured databases' if args.load else ''} ({time.perf_counter() - started:.1f} s)")
    return 0


def _sample_size(students: int) -> None:
    from .lib.sample import MIN_STUDENTS

    if students < MIN_STUDENTS:
        raise CliError(f"--students {students}: a sample needs at least {MIN_STUDENTS:,} students (its students "
                       "missing from ClassLink and without tests are fixed counts: a smaller drop fails its gates)")


def _embedded_only(settings, command: str) -> None:
    """Sample tables go only into the embedded databases under MTSS_HOME: never into databases others own."""
    other = [name for name, embedded in (("MTSS_WAREHOUSE_URL", settings.embedded_warehouse),
                                         ("MTSS_PROD_DB_URL", settings.embedded_prod_db)) if not embedded]
    if other:
        names, them = ("names", "it") if len(other) == 1 else ("name", "them")
        raise CliError(f"{command} writes sample tables, and only into the embedded SQLite databases under "
                       f"MTSS_HOME; {' and '.join(other)} {names} another database, so nothing was changed (unset "
                       f"{them} to try the demo; run real drops with `belleville-mtss run`)")


def _run(args: argparse.Namespace) -> int:
    from .lib.receive.untrusted import BadName, parse_drop_key
    from .run import run_drop

    settings = load_settings()
    try:
        key = str(parse_drop_key(args.drop))
    except BadName as exc:
        if not args.dry_run:  # a dry run writes nothing, not even its refusal
            _record_refusal(settings, args.drop, "bad_drop_name", str(exc))
        raise CliError(f"refused: {exc}") from None
    if args.reason and not args.accept:
        raise CliError("--reason goes with --accept CHECK: it says why a failed check may be passed for this drop")
    _known_district(settings, key.split("/", 1)[0])
    if args.dry_run:
        from .dry_run import dry_run
        if args.accept:
            raise CliError("--dry-run writes nothing, so it accepts nothing: leave out --accept")
        found = dry_run(settings, key)
        print("\n".join(found.lines))
        return found.exit_code
    tags = {}
    if args.accept:
        if not (args.reason or "").strip():
            raise CliError("--accept needs --reason: why this drop version may load although the check failed")
        tags = {"mtss/accept": ",".join(args.accept), "mtss/accept_reason": args.reason.strip(),
                "mtss/accepted_by": getpass.getuser()}
    report = run_drop(settings, key, log_level=args.log_level, tags=tags, progress=True)
    print(report.render())
    print(report.verdict())
    return report.exit_code


def _known_district(settings, district: str) -> None:
    """A district the registry names (usable or not: a broken entry's drop fails saying why); else refused before
    anything is written (a typo was kept as a district of its own: a partition, error rows, a line of `status`)."""
    import difflib

    from .lib.district.registry import RegistryError, load_registry
    try:
        registry = load_registry(settings.districts_dirs)
    except RegistryError:
        return  # the run says what is wrong with the registry
    known = sorted({*registry, *registry.problems})
    if district not in known:
        if registry.problems:  # an entry that could not be read may be this district's, under its file's name
            raise CliError(f"no district '{district}' in the registry (MTSS_DISTRICTS_DIR); entries that cannot be "
                           "used: " + "; ".join(p.message for p in registry.problems.values()))
        near = difflib.get_close_matches(district, known, n=1)
        raise CliError(f"no district '{district}' in the registry (MTSS_DISTRICTS_DIR)"
                       + (f": did you mean '{near[0]}'?" if near else f"; it has {', '.join(known)}"))


def _record_refusal(settings, key: str, reason: str, message: str) -> None:
    """An error row for a drop refused before any run exists (stage receive)."""
    from .lib.load.errors import ErrorRecord, drop_ids, record_errors
    from .lib.load.migrations import open_warehouse
    from .lib.district.registry import RegistryError, load_registry

    try:
        registry = load_registry(settings.districts_dirs)
    except RegistryError:
        registry = {}
    district_id, drop_id = drop_ids(key, registry)
    engine = open_warehouse(settings.warehouse_url, settings.embedded_warehouse)
    try:
        record_errors(engine, [ErrorRecord("receive", reason, message)], district_id=district_id, drop_id=drop_id,
                      run_id=None)
    finally:
        engine.dispose()


def _warehouse(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from .lib.load import migrations
    from .lib.load.warehouse import make_engine

    if args.warehouse_command == "upgrade" and args.sql:
        print(migrations.upgrade_sql(args.dialect, args.start), end="")
        return 0
    if args.warehouse_command == "grants":
        from .lib.load.grants import statements
        print(statements(args.dialect, args.role), end="")
        return 0
    settings = load_settings()
    if args.warehouse_command == "verify":
        return _verify(settings)
    where = sa.engine.make_url(settings.warehouse_url).render_as_string()
    engine = make_engine(settings.warehouse_url)
    try:
        if args.warehouse_command == "current":
            at, wanted = migrations.current(engine), migrations.head()
            state = "up to date" if at == wanted else migrations.ahead(at) or \
                "behind: run `belleville-mtss warehouse upgrade`"
            print(f"warehouse {where}: schema revision {at or 'none'}; this release needs {wanted} ({state})")
            return 0 if at == wanted else 1
        if args.warehouse_command == "rekey":
            return _rekey(engine, where, args)
        if args.warehouse_command == "stamp":
            migrations.stamp(engine, args.revision)
            print(f"warehouse {where}: recorded at schema revision {args.revision} (no table was changed)")
            return 0
        before = migrations.current(engine)
        if past := migrations.ahead(before):
            raise CliError(f"warehouse {where}: {past}")
        migrations.upgrade(engine)
        print(f"warehouse {where}: schema revision {before or 'none'} -> {migrations.current(engine)}")
        return 0
    except sa.exc.SQLAlchemyError as exc:
        raise CliError(f"warehouse {where}: {type(getattr(exc, 'orig', None) or exc).__name__}: "
                       f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}") from None
    finally:
        engine.dispose()


def _verify(settings) -> int:
    """Prints one line per finding; 0 only when every one holds."""
    import sqlalchemy as sa

    from .lib.load.verify import verify
    from .lib.load.warehouse import make_engine

    warehouse, prod = make_engine(settings.warehouse_url), make_engine(settings.prod_db_url)
    try:
        print(f"warehouse {sa.engine.make_url(settings.warehouse_url).render_as_string()}, "
              f"prod db {sa.engine.make_url(settings.prod_db_url).render_as_string()}")
        findings = verify(warehouse, prod, settings.account_info_table, settings.classlink_table)
    except sa.exc.SQLAlchemyError as exc:
        raise CliError(f"verify could not finish: {type(getattr(exc, 'orig', None) or exc).__name__}: "
                       f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}") from None
    finally:
        warehouse.dispose()
        prod.dispose()
    for finding in findings:
        print(finding.line())
    problems = sum(not f.ok for f in findings)
    print(f"{problems} problem(s)" if problems else "all checks hold")
    return 1 if problems else 0


def _rekey(engine, where: str, args: argparse.Namespace) -> int:
    from .lib.district.registry import load_registry
    from .lib.load.warehouse import rekey

    registry = load_registry(load_settings().districts_dirs)
    if args.district not in registry:
        raise CliError(f"no registry entry '{args.district}' (known: {', '.join(sorted(registry))})")
    new = registry[args.district].account_info_id
    try:
        moved = rekey(engine, args.district, args.old, new)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    links = moved.pop("dm.LinkSuggestions")
    said = ", ".join(f"{n:,} row(s) of {table}" for table, n in moved.items())
    print(f"warehouse {where}: {args.district}: moved {said} from AccountInfoId {args.old} to {new}, and copied "
          f"{links:,} link suggestion(s) with their decisions")
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from .lib.columns import lineage_text
    from .lib.district.registry import load_registry

    registry = load_registry(load_settings().districts_dirs)
    if args.district is None and len(registry) != 1:
        raise CliError(f"--district is needed: the registry holds {', '.join(sorted(registry)) or 'no district'} "
                       "(headers differ per district)")
    key = args.district or next(iter(registry))
    if key not in registry:
        raise CliError(f"no registry entry '{key}' (known: {', '.join(sorted(registry))})")
    district = registry[key]
    try:
        text = lineage_text(district, args.column)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    print(f"{args.column} for {district.display_name} (registry entry {key}):\n")
    print(text)
    return 0


def _checks(args: argparse.Namespace) -> int:
    from .lib.checks import markdown_table

    print(markdown_table())
    return 0


def _warehouse_made(settings) -> None:
    """For a command that reads what runs wrote: the embedded warehouse exists (from the wrong folder, or a mistyped
    MTSS_HOME, a new empty one was made, and the command said there was nothing)."""
    import sqlalchemy as sa
    if settings.embedded_warehouse and not Path(sa.engine.make_url(settings.warehouse_url).database).exists():
        raise CliError(f"no warehouse under MTSS_HOME {settings.home}: nothing has run there (is MTSS_HOME the "
                       "home your runs use?)")


def _status(args: argparse.Namespace) -> int:
    from .lib.load.audit import drop_status
    from .lib.load.migrations import WarehouseNotReady, open_warehouse

    settings = load_settings()
    _warehouse_made(settings)
    try:
        engine = open_warehouse(settings.warehouse_url, settings.embedded_warehouse)
    except WarehouseNotReady as exc:
        raise CliError(str(exc)) from None
    try:
        shown = drop_status(engine, args.scope, summary=args.summary, outcome=args.outcome)
    finally:
        engine.dispose()
    district = (args.scope or "").split("/", 1)[0]
    if district and shown.startswith("no drop recorded"):  # a misspelt district is said, not shown as empty
        from .lib.district.registry import load_registry
        registry = load_registry(settings.districts_dirs)
        if district not in registry:
            raise CliError(f"{shown}, and no registry entry '{district}' (known: {', '.join(sorted(registry))})")
    print(shown)
    return 0


def _account_info():
    import sqlalchemy as sa

    from .lib.read.theirs import SourceTableError, read_account_info
    from .lib.load.warehouse import make_engine

    settings = load_settings()
    engine = make_engine(settings.warehouse_url)
    where = sa.engine.make_url(settings.warehouse_url).render_as_string(hide_password=True)
    try:
        frame = read_account_info(engine, settings.account_info_table)
    except SourceTableError as exc:
        raise CliError(f"{exc} (warehouse {where}: set MTSS_WAREHOUSE_URL to your warehouse)") from None
    finally:
        engine.dispose()
    if frame.is_empty():
        raise CliError(f"{settings.account_info_table.label} at {where} is empty")
    return frame


def _resolve_or_fail(reference, queries):
    try:
        return reference.resolve_many(queries)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _suggest(args: argparse.Namespace) -> int:
    from .lib.district.crosswalk import account_reference

    reference = account_reference(_account_info())
    res = _resolve_or_fail(reference, [(args.name, args.state, None)])[0]
    rows = [{"rank": i + 1, "account_info_id": c.account_info_id, "nces_id": c.key, "name": c.name,
             "state": c.state, "score": c.score} for i, c in enumerate(res.candidates[: args.limit])]
    if args.json:
        print(json.dumps({"query": args.name, "state": args.state, "decision": res.decision, "method": res.method,
                          "margin": res.margin, "candidates": rows}, indent=2))
        return 0
    print(f"'{args.name}'{' in ' + args.state if args.state else ' (no state given)'}: {res.decision} "
          f"by {res.method}, margin {res.margin}")
    for r in rows:
        print(f"  {r['rank']}. AccountInfoId {r['account_info_id']}  NcesId {r['nces_id']}  {r['name']} "
              f"({r['state']})  score {r['score']}")
    return 0


def _onboard(args: argparse.Namespace) -> int:
    import yaml

    from .lib.district.onboard import OnboardError, TenantOverlap, onboard
    from .lib.load.warehouse import make_engine
    from .lib.read.theirs import SourceTableError, tenants_of_emails

    settings = load_settings()
    account_info = _account_info()
    state = args.state.strip().upper()
    if state not in set(account_info["State"].drop_nulls()):
        raise CliError(f"no district of state {state!r} in {settings.account_info_table.label}")
    prod = make_engine(settings.prod_db_url)

    def tenants_of(keys: list[str], column: str = "Email") -> list[TenantOverlap]:
        return [TenantOverlap(*row) for row in tenants_of_emails(prod, keys, settings.classlink_table, column=column)]

    try:
        found = onboard(args.sample, state, args.key, account_info, tenants_of, limits=settings.limits)
    except (OnboardError, SourceTableError) as exc:
        raise CliError(str(exc)) from None
    finally:
        prod.dispose()
    text = ("# A DRAFT registry entry, written by `belleville-mtss districts onboard`: its drops are blocked until a\n"
            "# person has checked every value against verification.checked and set verified_by and verified_on.\n"
            + yaml.safe_dump(found.entry, sort_keys=False, allow_unicode=True, width=120))
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        print(json.dumps({"entry": found.entry, "written_to": str(args.out) if args.out else None,
                          "link_pairs": [{"source": name, "column": p.column, "export": p.export_column,
                                          "matched": p.matched, "of": p.of, "rate": round(p.rate, 4)}
                                         for name, a in found.assessed.items() for p in a.pairs],
                          "tenants": [t.__dict__ for t in found.tenants[:10]],
                          "account_info_id": found.account_info_id, "identity": found.identity_note},
                         indent=2, default=str))
        return 0 if found.complete else 1
    held = "; ".join(f"{a.source.title} files {', '.join(t.name for t in a.tables)}" for a in found.assessed.values())
    roster = (f"OneRoster {found.oneroster.version} export {found.oneroster.manifest}" if found.oneroster
              else f"PowerSchool export {found.export.name}")
    print(f"Sample {args.sample}: {roster}; {held or 'no assessment file'}"
          + (f"; not used: {', '.join(found.other_files)}" if found.other_files else ""))
    for line in found.entry["verification"]["checked"][1:]:
        print(f"  {line}")
    for a in found.assessed.values():
        print(f"Link pairs ({a.source.title} identifier = export column: share of its distinct identifiers):")
        for p in a.pairs[:10]:
            print(f"  {p.column} = {p.export_column}: {p.matched:,} of {p.of:,} ({p.rate:.1%})")
    print(f"Draft {'written to ' + str(args.out) if args.out else 'entry'}: AccountInfoId "
          f"{found.account_info_id if found.account_info_id is not None else '(none)'}; "
          "a person must check it and set verification.verified_by and verified_on before its drops load.")
    if not args.out:
        print(text)
    return 0 if found.complete else 1


def _links(args: argparse.Namespace) -> int:
    from .lib.district.registry import RegistryError, load_registry
    from .lib.load.migrations import open_warehouse
    from .lib.sources import ASSESSMENTS
    from .lib.students import review
    from .lib.students.suggest import unknown_cause

    settings = load_settings()
    _warehouse_made(settings)
    engine = open_warehouse(settings.warehouse_url, settings.embedded_warehouse)
    try:
        if args.links_command == "review":
            try:
                district = load_registry(settings.districts_dirs).entry(args.district)
            except RegistryError as exc:
                raise CliError(str(exc)) from None
            frame = review.listing(engine, district.account_info_id, None if args.all else "open")
            if args.json:
                print(json.dumps(frame.to_dicts(), indent=2, default=str))
                return 0
            print(f"{frame.height} {'' if args.all else 'open '}suggestion(s) for {args.district} "
                  f"(accept or reject each: belleville-mtss links accept|reject ID --reason TEXT)")
            vendor = {unknown_cause(s.name): s.title for s in ASSESSMENTS}  # the vendor whose identifier it is
            for r in frame.to_dicts():
                what = (f"{vendor[r['Cause']]} identifier {{FromId}} ({{Subjects}}) is PowerSchool student {{ToId}}"
                        if r["Cause"] in vendor else "PowerSchool student {FromId} is ClassLink user {ToId}")
                status = "" if r["Status"] == "open" else f" [{r['Status']} by {r['DecidedBy']}: {r['Reason']}]"
                print(f"  #{r['SuggestionId']:<6} score {r['Score']:.2f}  {what.format(**r)}{status}")
                print(f"           {r['Evidence']}")
            return 0
        try:
            done = review.decide(engine, args.id, "accepted" if args.links_command == "accept" else "rejected",
                                 getpass.getuser(), args.reason or "", replace=getattr(args, "replace", False))
        except review.ReviewError as exc:
            raise CliError(str(exc)) from None
        print(f"suggestion {done['suggestion']} {done['decision']} by {getpass.getuser()}: "
              + ("applied to the district's next drops and to replays" if done["decision"] == "accepted"
                 else "withdrawn from the district's next drops and replays (replay the latest drop to remove what it "
                      "loaded); this pair is never suggested again" if done["withdrawn"]
                 else "this pair is never suggested again"))
        return 0
    finally:
        engine.dispose()


def _read_csv(path: Path, required: list[str], what: str) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise CliError(f"{what} file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise CliError(f"{what} file {path.name} lacks column(s) {', '.join(missing)} (has: {', '.join(header)})")
        return list(header), list(reader)


def _match(args: argparse.Namespace) -> int:
    import polars as pl

    from .lib.district.crosswalk import account_reference
    from .lib.district.names import Reference
    from .lib.receive.untrusted import csv_safe

    header, rows = _read_csv(args.input, ["name"], "input")
    if args.reference:
        ref_header, ref_rows = _read_csv(args.reference, ["nces_id", "name", "state"], "reference")
        frame = pl.DataFrame(ref_rows, schema={c: pl.Utf8 for c in ref_header}).rename({"nces_id": "key"})
        if "account_info_id" in frame.columns:
            frame = frame.with_columns(pl.col("account_info_id").cast(pl.Int64, strict=False))
        reference = Reference(frame)
        with_aid = "account_info_id" in frame.columns
    else:
        reference, with_aid = account_reference(_account_info()), True
    queries = [(r["name"] or "", (r.get("state") or "").strip() or None, None) for r in rows]
    for i, (_n, state, _c) in enumerate(queries, start=2):
        if state and state.upper() not in reference.states:
            raise CliError(f"{args.input.name} line {i}: unknown state '{state}'")
    results = _resolve_or_fail(reference, queries)
    added = ["decision", "nces_id", "matched_name", "score", "margin"] + (["account_info_id"] if with_aid else [])
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        fields = header + [c for c in added if c not in header]
        writer = csv.writer(out)
        writer.writerow([csv_safe(c) for c in fields])
        for row, res in zip(rows, results):
            best = res.best if res.decision == "resolved" else None
            extra = {"decision": res.decision, "nces_id": best.key if best else "",
                     "matched_name": best.name if best else "", "score": res.best.score if res.best else "",
                     "margin": "" if res.margin is None else res.margin}
            if with_aid:
                extra["account_info_id"] = best.account_info_id if best and best.account_info_id else ""
            merged = {**row, **extra}
            writer.writerow([csv_safe(merged.get(c, "")) for c in fields])
    finally:
        if args.output:
            out.close()
    counts = {d: sum(r.decision == d for r in results) for d in ("resolved", "ambiguous", "unmatched")}
    print(f"{len(results)} names: " + ", ".join(f"{v} {k}" for k, v in counts.items()), file=sys.stderr)
    return 0


def _rows_under_other_ids(entry) -> list[str]:
    """The registry's account_info_id against the warehouse: rows of the district's drops under another id."""
    from .lib.checks import Evidence, account_info_id_unchanged
    from .lib.load.warehouse import make_engine, under_other_ids

    engine = make_engine(load_settings().warehouse_url)
    try:
        found = under_other_ids(engine, entry.district, entry.account_info_id)
    finally:
        engine.dispose()
    if not found:
        return []
    outcome = account_info_id_unchanged(Evidence(entry, other_ids=found))
    return [f"{outcome.why}: belleville-mtss warehouse rekey {entry.district} --from {old}" for old in sorted(found)]


def _migrate(args: argparse.Namespace) -> int:
    """Rewrites registry entries written before `sources:` in today's shape, each only when the rewritten entry
    means exactly what the old one did (both parsed, compared); prints what moved. Comments are not kept."""
    import os
    import tempfile

    import yaml

    from pydantic import ValidationError

    from .lib.district.registry import PACKAGED_DISTRICTS_DIR, District, describe, upgraded

    folders = args.paths or [f for f in load_settings().districts_dirs if f != PACKAGED_DISTRICTS_DIR]
    files = [p for f in folders for p in (sorted(f.glob("*.yaml")) if f.is_dir() else [f])]
    if not files:
        raise CliError("no registry entries to migrate (give a folder or file, or set MTSS_DISTRICTS_DIR)")
    for path in files:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CliError(f"{path.name}: not migrated, not valid YAML ({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise CliError(f"{path.name}: not migrated, not a registry entry (a mapping of fields)")
        new, changes = upgraded(raw)
        if not changes:
            print(f"{path.name}: already in today's shape")
            continue
        try:
            same = District.model_validate(raw) == District.model_validate(new)
        except ValidationError as exc:
            raise CliError(f"{path.name}: not migrated, the entry does not load: {describe(exc)}") from None
        if not same:  # never rewrite an entry into one that means something else
            raise CliError(f"{path.name}: not migrated: the rewritten entry would not mean the same")
        print(f"{path.name}:" + "".join(f"\n  {c}" for c in changes))
        if args.dry_run:
            continue
        text = ("# Rewritten by `belleville-mtss districts migrate` into the `sources:` shape (comments are not "
                "kept).\n" + yaml.safe_dump(new, sort_keys=False, allow_unicode=True))
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as f:
            f.write(text)
        # the entry keeps its mode, owner and group (a temporary file is its writer's alone: the daemon's account
        # could not read it); where they cannot be kept, the entry is left as it was
        st = path.stat()
        try:
            if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(f.name, st.st_uid, st.st_gid)
            os.chmod(f.name, st.st_mode & 0o7777)
        except PermissionError:
            os.unlink(f.name)
            raise CliError(f"{path.name}: not migrated: its owner and group could not be kept (run the migrate as "
                           "the entry's owner)") from None
        os.replace(f.name, path)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .lib.district.crosswalk import account_reference, check_entry
    from .lib.district.registry import RegistryError, load_registry

    settings = load_settings()
    try:
        registry = load_registry(settings.districts_dirs)
    except RegistryError as exc:
        raise CliError(f"registry: {exc}") from None
    known = sorted({*registry, *registry.problems})
    if args.district and args.district not in known:
        raise CliError(f"district '{args.district}' is not in the registry ({', '.join(known)})")
    failed = 0
    # Every file's problems at once: the broken entries first (they need no warehouse), then the others.
    for key in [args.district] if args.district else known:
        problem = registry.problems.get(key)
        if problem:
            print(f"{key}: PROBLEMS ({problem.file}: this district's drops are refused until fixed)")
            for part in problem.message.split(": ", 1)[-1].split("; "):
                print(f"  - {part}")
            failed += 1
    account_info = _account_info() if any(k in registry for k in ([args.district] if args.district else known)) \
        else None
    reference = account_reference(account_info) if account_info is not None else None  # built once for all entries
    for key in [args.district] if args.district else known:
        if key not in registry:
            continue
        entry = registry[key]
        problems = check_entry(entry, account_info, reference) + _rows_under_other_ids(entry)
        print(f"{key}: {'OK' if not problems else 'PROBLEMS'} (AccountInfoId {entry.account_info_id}, "
              f"NcesId {entry.nces_id}, {entry.state})")
        for p in problems:
            print(f"  - {p}")
        failed += bool(problems)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    from .lib.checks import acceptable

    gates = acceptable()
    parser = argparse.ArgumentParser(prog="belleville-mtss", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="lay out the Belleville sample under MTSS_HOME and run every asset")
    demo.add_argument("--students", type=int, default=4500)
    demo.add_argument("--log-level", default="CRITICAL", type=str.upper, choices=LOG_LEVELS, help=LOG_HELP)
    demo.set_defaults(func=_demo)

    gen = sub.add_parser("generate", help="write a large realistic drop (same generator as the demo), scaled")
    gen.add_argument("--students", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True, help="folder: drop files in OUT/drop, tables in OUT/tables")
    gen.add_argument("--load", action="store_true", help="also load ClassLink users and AccountInfo into the "
                     "configured prod db and warehouse")
    gen.set_defaults(func=_generate)

    run = sub.add_parser("run", help="run (or replay) one drop through every asset, e.g. belleville/2026-11-01")
    run.add_argument("drop", help="<district>/<drop name>: fetched from the drop server, or replayed from staging")
    run.add_argument("--log-level", default="CRITICAL", type=str.upper, choices=LOG_LEVELS, help=LOG_HELP)
    run.add_argument("--accept", action="append", choices=gates, metavar="CHECK",
                     help=f"load this drop version although CHECK failed (one of {', '.join(gates)}; "
                          "drop_is_newest: apply an older drop over newer data); recorded in dm.GateAcceptances "
                          "with --reason")
    run.add_argument("--reason", help="with --accept: why (kept in the audit; no student data)")
    run.add_argument("--dry-run", action="store_true", help="run every stage and check and print what would load, "
                     "writing nothing to the warehouse (no rows, audit or error rows) and making no Dagster run")
    run.set_defaults(func=_run)

    warehouse = sub.add_parser("warehouse", help="our tables' schema in the warehouse: migrations a DBA can review")
    wsub = warehouse.add_subparsers(dest="warehouse_command", required=True)
    upgrade = wsub.add_parser("upgrade", help="apply the migrations to MTSS_WAREHOUSE_URL (or print them: --sql)")
    upgrade.add_argument("--sql", action="store_true", help="print the DDL for a DBA instead of applying it")
    # not SQLite: its table rewrites (0011) need the live database; the embedded file upgrades itself
    upgrade.add_argument("--dialect", choices=["postgresql", "mssql"], default="mssql",
                         help="with --sql: the SQL dialect (production is SQL Server)")
    upgrade.add_argument("--from", dest="start", help="with --sql: the revision the database is at (default: empty)")
    wsub.add_parser("current", help="the schema revision MTSS_WAREHOUSE_URL is at, and the one this release needs")
    rekey = wsub.add_parser("rekey", help="move a district's rows from an old AccountInfoId to its registry's "
                            "(after its account_info_id was corrected)")
    rekey.add_argument("district", help="the registry entry, e.g. belleville")
    rekey.add_argument("--from", dest="old", type=int, required=True, help="the AccountInfoId its rows are under")
    wsub.add_parser("verify", help="as the runtime login, once on the real server: schema revision, column types "
                    "and collations, READ_COMMITTED_SNAPSHOT, exactly the documented grants, a Unicode round trip")
    grants = wsub.add_parser("grants", help="print the grant script for the runtime login (docs/security.md)")
    grants.add_argument("--dialect", choices=["postgresql", "mssql"], default="mssql")
    grants.add_argument("--role", default="mtss_runtime", help="the login's name (default: mtss_runtime)")
    stamp = wsub.add_parser("stamp", help="record that tables an earlier release created are at REVISION")
    stamp.add_argument("revision")
    warehouse.set_defaults(func=_warehouse)

    catalogue = sub.add_parser("checks", help="every check, gate and load check: where it runs, what it holds, "
                                              "what to do when it fails (the table in docs/operations.md)")
    catalogue.set_defaults(func=_checks)

    status = sub.add_parser("status", help="each drop's files, outcomes and error counts (no student data)")
    status.add_argument("scope", nargs="?", help="DISTRICT or DISTRICT/DROP (default: every drop)")
    status.add_argument("--summary", action="store_true", help="a total, then one line per drop")
    status.add_argument("--outcome", choices=["received", "loaded", "halted", "blocked", "failed", "duplicate", "not_expected",
                                              "superseded", "interrupted"],
                        help="only drops whose latest receipt has a file with this outcome")
    status.set_defaults(func=_status)

    lineage = sub.add_parser("lineage", help="trace a warehouse column to its source file's column, e.g. "
                                             "dm.AssessmentResults.ScaledScore")
    lineage.add_argument("column", help="TABLE.COLUMN of one of our warehouse tables")
    lineage.add_argument("--district", help="registry entry whose headers to show (needed when there are several)")
    lineage.set_defaults(func=_lineage)

    districts = sub.add_parser("districts", help="district identity tools for onboarding")
    dsub = districts.add_subparsers(dest="districts_command", required=True)
    suggest = dsub.add_parser("suggest", help="ranked candidates from dm.AccountInfo for a district name")
    suggest.add_argument("name")
    suggest.add_argument("--state", help="two-letter state; without it, same-name districts stay ambiguous")
    suggest.add_argument("--json", action="store_true")
    suggest.add_argument("--limit", type=int, default=5)
    suggest.set_defaults(func=_suggest)
    match = dsub.add_parser("match", help="resolve a CSV of names (columns name, optionally state)")
    match.add_argument("input", type=Path)
    match.add_argument("--reference", type=Path, help="CSV with nces_id, name, state (default: dm.AccountInfo)")
    match.add_argument("--output", type=Path, help="output CSV (default: standard output)")
    match.set_defaults(func=_match)
    onboard = dsub.add_parser("onboard", help="draft a registry entry from a sample drop (writes to no database): "
                              "the district's identifiers, export format, header mapping and link pair, measured")
    onboard.add_argument("sample", type=Path, help="a sample drop: a folder or a zip")
    onboard.add_argument("--state", required=True, help="the district's two-letter state")
    onboard.add_argument("--key", required=True, help="the registry key (and drop folder) to give the district")
    onboard.add_argument("--out", type=Path, help="write the draft YAML here (default: print it)")
    onboard.add_argument("--json", action="store_true")
    onboard.set_defaults(func=_onboard)
    check = dsub.add_parser("check", help="check registry entries against dm.AccountInfo")
    check.add_argument("district", nargs="?")
    check.set_defaults(func=_check)
    migrate = dsub.add_parser("migrate", help="rewrite registry entries of an earlier shape into today's "
                                              "(`sources:`), printing what moved; an entry never changes meaning")
    migrate.add_argument("paths", nargs="*", type=Path, help="entries or folders (default: MTSS_DISTRICTS_DIR's "
                                                              "own folders, the packaged one aside)")
    migrate.add_argument("--dry-run", action="store_true", help="print what would move, write nothing")
    migrate.set_defaults(func=_migrate)

    links = sub.add_parser("links", help="suggested counterparts of unlinked students: review, accept, reject")
    lsub = links.add_subparsers(dest="links_command", required=True)
    lreview = lsub.add_parser("review", help="a district's open suggestions, each with an id")
    lreview.add_argument("district")
    lreview.add_argument("--all", action="store_true", help="decided ones too")
    lreview.add_argument("--json", action="store_true")
    lreview.set_defaults(func=_links)
    for verb, what in (("accept", "link the pair from the next drop (and replays) on"),
                       ("reject", "never suggest the pair again")):
        decide = lsub.add_parser(verb, help=what)
        decide.add_argument("id", type=int)
        decide.add_argument("--reason", required=True, help="why (kept in dm.LinkDecisions with who and when)")
        if verb == "accept":
            decide.add_argument("--replace", action="store_true",
                                help="the identifier has an accepted counterpart already: reject it and take this one")
        decide.set_defaults(func=_links)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"belleville-mtss: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # what a database answers: one line, never its statement or parameters (a value)
        from alembic.util import CommandError
        from sqlalchemy.exc import SQLAlchemyError
        from .lib.load.migrations import WarehouseNotReady
        from .lib.alerts import AlertConfigError
        from .lib.config import SettingError
        if isinstance(exc, (WarehouseNotReady, CommandError, SettingError, AlertConfigError)):
            print(f"belleville-mtss: error: {exc}", file=sys.stderr)  # a setting's: named, never its secret
        elif isinstance(exc, OSError) and exc.filename:  # a file given that cannot be read or written
            print(f"belleville-mtss: error: {exc.filename}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        elif isinstance(exc, UnicodeDecodeError):
            print(f"belleville-mtss: error: a file given is not UTF-8 text ({exc.reason} at byte {exc.start}); save "
                  "it as UTF-8", file=sys.stderr)
        elif isinstance(exc, SQLAlchemyError):
            refusal = type(getattr(exc, "orig", None) or exc).__name__
            print(f"belleville-mtss: error: a database refused the command ({refusal}); is the warehouse at this "
                  "release's schema? `belleville-mtss warehouse current` says", file=sys.stderr)
        else:
            raise
        return 2


def console() -> None:
    """The `belleville-mtss` command: `main`, then the process ends without Python freeing every object it made
    (0.5-0.7 s of a 600-student `run` on a 2-core machine: benchmarks/small_drop.py). Each command has committed
    and closed what it wrote before `main` returns; the exit handlers (log handlers, thread pools) still run."""
    try:
        code = main()
    except BrokenPipeError:  # what reads the output stopped (`links review ... | head`): the rest goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
