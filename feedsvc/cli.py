"""The `feedsvc` command: `serve` runs the service, `check` lints a content folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import FeedsvcError
from .fields import Limits
from .loader import load_folder


def check(folder: Path, limits: Limits = Limits()) -> int:
    """Print every problem as `PATH[:LINE]: error|warning: message`; 1 when a file would be skipped."""
    from .catalog import Catalog

    try:
        result = load_folder(folder, limits)
    except FeedsvcError as exc:
        print(f"{folder}: error: {exc}", file=sys.stderr)
        return 1
    catalog = Catalog(result.articles, result.problems)
    for problem in sorted(catalog.problems, key=lambda p: (p.path, p.line or 0)):
        print(problem)
    errors = len(catalog.skipped)
    print(f"{len(catalog.articles)} articles, {errors} files skipped", file=sys.stderr)
    return 1 if errors else 0


def serve(
    seeds: Path | None,
    host: str,
    port: int,
    workers: int,
    idle_timeout: float | None = None,
    max_connections: int | None = None,
) -> int:
    """Run the service under granian, a production HTTP server (feedsvc.server); 1 if it cannot start."""
    from . import server

    config = {"SEEDS_DIR": str(seeds)} if seeds else None
    try:
        return server.run(config, host, port, workers, idle_timeout=idle_timeout, max_connections=max_connections)
    except FeedsvcError as exc:
        print(f"feedsvc serve: error: {exc}", file=sys.stderr)
        return 1


def build_site(outdir: Path, base_url: str, seeds: Path | None, strict: bool) -> int:
    """Write every public route as files under `outdir` (see feedsvc.build)."""
    from . import create_app
    from .build import BuildRefused, build

    config = {"BASE_URL": base_url, "RELOAD_INTERVAL": 0, "FEED_PAGING": False}
    if seeds:
        config["SEEDS_DIR"] = str(seeds)
    try:
        report = build(create_app(config), outdir, strict=strict)
    except (BuildRefused, FeedsvcError) as exc:
        print(f"feedsvc build: error: {exc}", file=sys.stderr)
        return 1
    print(f"{outdir}: {report.written} files written, {report.unchanged} unchanged", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    parser = argparse.ArgumentParser(prog="feedsvc", description="Publish news-article files as RSS and Atom feeds.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the feed service")
    serve_cmd.add_argument("--seeds", type=Path, help="folder of article files (default: FEEDSVC_SEEDS_DIR or seeds/)")
    serve_cmd.add_argument("--host", default=os.environ.get("FEEDSVC_HOST", "127.0.0.1"))
    serve_cmd.add_argument("--port", type=int, default=int(os.environ.get("FEEDSVC_PORT", "8000")))
    serve_cmd.add_argument("--workers", type=int, default=int(os.environ.get("FEEDSVC_WORKERS", "2")))
    serve_cmd.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                           default=float(os.environ.get("FEEDSVC_IDLE_TIMEOUT", "0")) or None,
                           help="close a connection that has not sent a complete request head in this time: new, "
                                "half-sent or kept alive (default: FEEDSVC_IDLE_TIMEOUT or 15)")
    serve_cmd.add_argument("--max-connections", type=int, metavar="N",
                           default=int(os.environ.get("FEEDSVC_MAX_CONNECTIONS", "0")) or None,
                           help="open connections per worker; more wait in the listen backlog "
                                "(default: FEEDSVC_MAX_CONNECTIONS or 4096)")
    build_cmd = commands.add_parser("build", help="write every public route as static files")
    build_cmd.add_argument("outdir", type=Path)
    build_cmd.add_argument("--base-url", default=os.environ.get("FEEDSVC_BASE_URL", "http://localhost:8000/"),
                           help="absolute URL the files will be served from (links and ids use it)")
    build_cmd.add_argument("--seeds", type=Path, help="folder of article files (default: FEEDSVC_SEEDS_DIR or seeds/)")
    build_cmd.add_argument("--strict", action="store_true", help="exit 1, keeping the old tree, when any file has errors")
    check_cmd = commands.add_parser("check", help="report every problem in a folder of article files")
    check_cmd.add_argument("folder", nargs="?", type=Path, default=None, help="default: the configured seeds folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from . import create_config, limits_of

        config = create_config()
        return check(args.folder or Path(config["SEEDS_DIR"]), limits_of(config))
    if args.command == "build":
        return build_site(args.outdir, args.base_url, args.seeds, args.strict)
    return serve(args.seeds, args.host, args.port, args.workers, args.idle_timeout, args.max_connections)


if __name__ == "__main__":
    sys.exit(main())
