"""The `belleville-mtss` command."""
import argparse
import sys

from .lib.config import load_settings


def _demo(args: argparse.Namespace) -> int:
    from .lib.sample import SampleSpec, generate_drop, load_databases
    from .lib.registry import load_registry
    from .run import run_drop

    settings = load_settings()
    district = load_registry(settings.districts_dir)["belleville"]
    spec = SampleSpec(students=args.students)
    drop = settings.drop_dir / district.drop_folder / spec.drop_name
    print(f"MTSS_HOME {settings.home}")
    print(f"Writing the Belleville sample drop to {drop}")
    tables = generate_drop(drop, spec)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    print("Materializing every asset of drop_job ...")
    report = run_drop(settings, district="belleville", drop=spec.drop_name)
    print(report.render())
    ok = report.success and report.checks_passed
    print("OK: every blocking check passed." if ok else "FAILED: see the checks and dm.IngestionErrors.")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="belleville-mtss", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="lay out the Belleville sample under MTSS_HOME and run every asset")
    demo.add_argument("--students", type=int, default=4500)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
