"""The `edgeproxy inject` subcommand: serve the webhook, or with --dry-run patch manifests."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from edgeproxy.config import LOG_LEVELS
from edgeproxy.config_reader import ConfigError

if TYPE_CHECKING:
    from edgeproxy.injector.settings import InjectorSettings

CERT_DIR = "/etc/edgeproxy-injector/tls"


def add_parser(commands: Any) -> None:
    env = os.environ.get
    inject = commands.add_parser(
        "inject",
        help="the sidecar injection webhook (HTTPS); --dry-run prints manifests injected",
    )
    inject.add_argument(
        "--settings",
        default=env("EDGEPROXY_INJECTOR_SETTINGS"),
        help="injector settings YAML (default: $EDGEPROXY_INJECTOR_SETTINGS, else built-in)",
    )
    inject.add_argument(
        "--dry-run",
        action="store_true",
        help="read manifests (a file, or standard input) and print them injected",
    )
    inject.add_argument("manifest", nargs="?", help="with --dry-run: a YAML file (default: stdin)")
    inject.add_argument(
        "--cert",
        default=env("EDGEPROXY_INJECTOR_CERT", f"{CERT_DIR}/tls.crt"),
        help="PEM certificate chain (default: $EDGEPROXY_INJECTOR_CERT, else %(default)s)",
    )
    inject.add_argument(
        "--key",
        default=env("EDGEPROXY_INJECTOR_KEY", f"{CERT_DIR}/tls.key"),
        help="PEM private key (default: $EDGEPROXY_INJECTOR_KEY, else %(default)s)",
    )
    inject.add_argument("--host", default=env("EDGEPROXY_INJECTOR_HOST", "0.0.0.0"))
    inject.add_argument("--port", type=int, default=env("EDGEPROXY_INJECTOR_PORT", "8443"))


def run(args: argparse.Namespace) -> int:
    from edgeproxy.injector.settings import load_settings

    try:
        settings = load_settings(args.settings)
    except ConfigError as err:
        print("edgeproxy inject: invalid settings:", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.dry_run:
        return _dry_run(args.manifest, settings)
    return _serve(args, settings)


def _dry_run(manifest: str | None, settings: InjectorSettings) -> int:
    from edgeproxy.injector.manifests import dump, inject_text

    try:
        text = Path(manifest).read_text(encoding="utf-8") if manifest else sys.stdin.read()
        injected = inject_text(text, settings)
    except OSError as exc:
        print(f"edgeproxy inject: cannot read {manifest}: {exc.strerror}", file=sys.stderr)
        return 1
    except yaml.YAMLError as exc:
        print(f"edgeproxy inject: not valid YAML: {exc}", file=sys.stderr)
        return 1
    for note in injected.notes:
        print(note, file=sys.stderr)
    sys.stdout.write(dump(injected.documents))
    return 0


def _serve(args: argparse.Namespace, settings: InjectorSettings) -> int:
    import uvloop

    from edgeproxy.injector.tls import ReloadingCertificate
    from edgeproxy.injector.webhook import serve
    from edgeproxy.telemetry.logging import configure

    level = os.environ.get("EDGEPROXY_LOG_LEVEL", "info").lower()
    if level not in LOG_LEVELS:
        choices = ", ".join(LOG_LEVELS)
        print(f"edgeproxy inject: EDGEPROXY_LOG_LEVEL must be one of {choices}", file=sys.stderr)
        return 1
    configure(level, "json", ())
    try:
        certificate = ReloadingCertificate(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        print(f"edgeproxy inject: cannot load {args.cert} and {args.key}: {exc}", file=sys.stderr)
        return 1
    uvloop.run(serve(settings, certificate, args.host, args.port))
    return 0
