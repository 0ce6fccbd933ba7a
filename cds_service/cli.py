"""Command line: `cds-service serve` (and the trial team's commands)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cds_service.audit import report
from cds_service.config import REPO_ROOT, Config
from cds_service.errors import ConfigError
from cds_service.knowledge.model import load_knowledge
from cds_service.knowledge.publish import publish
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
    load_knowledge(config.plan_definitions, config.local_valuesets)
    check_authentication(config)
    if not GUNICORN_CONF.is_file():
        raise ConfigError(f"{GUNICORN_CONF} is missing; run from a checkout of the repository")
    argv = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed arguments
    return 0  # pragma: no cover - execv does not return


def _publish(args: argparse.Namespace) -> int:
    """Validate every artifact and write the transaction Bundle and the FHIR NPM package."""
    config = Config.from_env()
    knowledge = load_knowledge(config.plan_definitions, config.local_valuesets)
    written = publish(knowledge, Path(args.out), args.max_entries)
    print(f"{len(knowledge.artifacts.by_ref)} artifacts of {knowledge.study.nct_id} validated (FHIR R4)")
    for what, path in written.items():
        print(f"{what}: {path}")
    return 0


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
    publish.set_defaults(handler=_publish)
    report.add_parser(commands)
    screen_command.add_parser(commands)
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
