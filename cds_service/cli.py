"""Command line: `cds-service serve` (and the trial team's commands)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cds_service.audit import report
from cds_service.config import REPO_ROOT, Config
from cds_service.demo.bundle import transaction_bundles
from cds_service.demo.population import build_population
from cds_service.errors import ConfigError
from cds_service.knowledge.model import load_knowledge
from cds_service.knowledge.publish import publish, publish_site
from cds_service.monitor import run as monitor_command
from cds_service.screen import run as screen_command
from cds_service.security.jwt_auth import check_authentication

GUNICORN_CONF = REPO_ROOT / "deploy" / "gunicorn.conf.py"


def _serve(args: argparse.Namespace) -> int:
    """Start gunicorn with deploy/gunicorn.conf.py; --host/--port override HOST/PORT."""
    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    # Refuse a bad setting, artifact, issuers file or replay store here, by name, before gunicorn starts.
    config = Config.from_env()
    load_knowledge(config.plan_definitions, config.local_valuesets, config.site_artifacts,
                   config.canonical_base)
    check_authentication(config)
    if not GUNICORN_CONF.is_file():
        raise ConfigError(f"{GUNICORN_CONF} is missing; run from a checkout of the repository")
    argv = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed arguments
    return 0  # pragma: no cover - execv does not return


def _publish(args: argparse.Namespace) -> int:
    """Validate every artifact and write the transaction Bundle and the FHIR NPM package."""
    config = Config.from_env()
    knowledge = load_knowledge(config.plan_definitions, config.local_valuesets,
                               config.site_artifacts if args.site else None, config.canonical_base)
    written = publish(knowledge, Path(args.out), args.max_entries)
    print(f"{len(knowledge.artifacts.by_ref)} artifacts of {knowledge.study.nct_id} validated (FHIR R4)")
    for site in args.site or ():
        written.update(publish_site(knowledge, site, Path(args.out)))
        print(f"{len(knowledge.sites.artifacts_of(site))} artifacts of site {site} validated (FHIR R4)")
    for what, path in written.items():
        print(f"{what}: {path}")
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    """Write the demo population as a transaction Bundle (or several, with --max-entries)."""
    config = Config.from_env()
    try:
        today = (date.fromisoformat(args.today) if args.today
                 else datetime.now(ZoneInfo(config.timezone)).date())
    except ValueError:
        raise ConfigError(f"--today {args.today!r} is not a date (YYYY-MM-DD)") from None
    knowledge = load_knowledge(config.plan_definitions, config.local_valuesets, base=config.canonical_base)
    try:
        bundles = transaction_bundles(build_population(knowledge, today), args.max_entries)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if len(bundles) > 1 and not args.out:
        raise ConfigError("--max-entries splits the Bundle into several files: give --out FILE")
    texts = [json.dumps(b, indent=2, ensure_ascii=False) + "\n" for b in bundles]
    if not args.out:
        sys.stdout.write(texts[0])
        return 0
    out = Path(args.out)
    paths = [out] if len(texts) == 1 else [out.with_name(f"{out.stem}-{n}{out.suffix or '.json'}")
                                           for n in range(1, len(texts) + 1)]
    for path, text in zip(paths, texts, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"{path}: {len(json.loads(text)['entry'])} entries", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    """`report`, joined with a monitoring output when --monitor is given."""
    return report.run_with_monitor(args) if args.monitor else report.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the CDS Hooks service (gunicorn)")
    serve.add_argument("--host", help="address to listen on (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT or 8080)")
    serve.set_defaults(handler=_serve)
    publish = commands.add_parser("publish", help="validate plan_definitions/ and write a FHIR transaction "
                                  "Bundle and a FHIR NPM package")
    publish.add_argument("--out", default="build/fhir", help="output folder (default: build/fhir)")
    publish.add_argument("--max-entries", type=int, default=0, metavar="N",
                         help="split the transaction into Bundles of at most N entries, for servers that "
                              "cap a transaction (Medplum: 50)")
    publish.add_argument("--site", action="append", metavar="SITE",
                         help="also write the adaptations of SITE (from CDS_SITE_ARTIFACTS) under "
                              "OUT/sites/SITE/: a transaction Bundle and a package of the site's own "
                              "(repeatable)")
    publish.set_defaults(handler=_publish)
    demo = commands.add_parser("demo-data", help="write the demo patients as a FHIR transaction Bundle")
    demo.add_argument("--out", help="output file (default: standard output)")
    demo.add_argument("--today", help="the day the dates are relative to, YYYY-MM-DD (default: today in "
                                      "CDS_TIMEZONE)")
    demo.add_argument("--max-entries", type=int, default=0, metavar="N",
                      help="split into Bundles of at most N entries, OUT-1.json, OUT-2.json, … (a patient "
                           "is never split), for servers that cap a transaction (Medplum: 50)")
    demo.set_defaults(handler=_demo_data)
    report.add_parser(commands)
    report_parser = commands.choices["report"]
    report_parser.add_argument("--monitor", type=Path, metavar="FILE",
                               help="a cds-service monitor --format json output: show, for each deviation "
                                    "found in the record, how the cards saw it")
    report_parser.set_defaults(handler=_report)
    screen_command.add_parser(commands)
    monitor_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
