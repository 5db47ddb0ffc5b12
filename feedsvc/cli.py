"""The `feedsvc` command: `serve` runs the service, `check` lints a content folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedsvc.config import create_config, limits_of
from feedsvc.errors import FeedsvcError

if TYPE_CHECKING:  # imported where used: a build over unchanged files loads no parser (feedsvc.manifest)
    from feedsvc.content.fields import Limits

BUILD_BASE_URL = "http://localhost:8000/"  # `feedsvc build` without BASE_URL: links for a local preview


def counted(number: int, noun: str) -> str:
    """`1 file`, `2 files`, `0 files`: a count with its noun in the right number."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def check(folder: Path, limits: Limits | None = None) -> int:
    """Print every problem once, as `PATH[:LINE]: error|warning: message` on stdout, then a one-line
    summary on stderr; 1 when a file would be skipped."""
    from feedsvc.content.fields import Limits
    from feedsvc.feeds.catalog import Catalog
    from feedsvc.runtime.loader import load_folder

    try:
        result = load_folder(folder, limits or Limits())
    except FeedsvcError as exc:
        print(f"{folder}: error: {exc}", file=sys.stderr)
        return 1
    catalog = Catalog(result.articles, result.problems)
    problems = sorted(catalog.problems, key=lambda p: (p.path, p.line or 0))
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    summary = [counted(len(catalog.articles), "article"), f"{counted(len(catalog.skipped), 'file')} skipped"]
    summary += [counted(errors, "error"), counted(len(problems) - errors, "warning")]
    print(", ".join(summary), file=sys.stderr)
    return 1 if catalog.skipped else 0


def serve(settings: dict[str, Any]) -> int:
    """Run the service under granian, a production HTTP server (feedsvc.server); 1 if it cannot start."""
    from feedsvc import server

    try:
        return server.run(settings)
    except FeedsvcError as exc:
        print(f"feedsvc serve: error: {exc}", file=sys.stderr)
        return 1


def build_site(outdir: Path, settings: dict[str, Any], strict: bool) -> int:
    """Write every public route as files under `outdir` (see feedsvc.build), unless the last build
    of `outdir` was made from the same sources, settings and code (see feedsvc.manifest); render
    again only the feeds whose entries changed since (see feedsvc.keptrenders)."""
    from feedsvc import manifest
    from feedsvc.runtime.scan import scan

    # A build answers each route once: the fast path's replay cache would only hold a second copy of
    # each body. The render cache keeps its bound (RENDER_CACHE_SIZE, RENDER_CACHE_BYTES): keeping
    # every body made a 10,000-article build's memory 249 -> 388 MB (BENCHMARKS.md).
    settings = {**settings, "RELOAD_INTERVAL": 0, "FAST_PATH": False}
    cache_dir = Path(settings["CACHE_DIR"]) if settings["CACHE_DIR"] else None
    try:
        if cache_dir is not None:
            environment = manifest.environment_digest(settings, strict)
            inputs = manifest.inputs_digest(scan(Path(settings["SEEDS_DIR"])), environment)
            last = manifest.unchanged(manifest.manifest_file(cache_dir, outdir), inputs, outdir)
            if last is not None:
                print(f"feedsvc build: sources, settings and code as at the last build of {outdir}: nothing to do"
                      + (f" ({last['skipped']} file(s) skipped: run feedsvc check)" if last["skipped"] else ""),
                      file=sys.stderr)  # fmt: skip
                print(f"{outdir}: 0 files written, {last['files']} unchanged", file=sys.stderr)
                return 0
        log_to_stderr()
        from feedsvc import keptrenders
        from feedsvc.build import build
        from feedsvc.web import create_app

        app = create_app(settings)
        renders = app.extensions["feedsvc"].cache
        if cache_dir is not None:
            keptrenders.restore(keptrenders.renders_file(cache_dir, outdir), environment, renders, outdir)
        report = build(app, outdir, strict=strict)
    except FeedsvcError as exc:
        print(f"feedsvc build: error: {exc}", file=sys.stderr)
        return 1
    if cache_dir is not None:
        try:
            keptrenders.keep(keptrenders.renders_file(cache_dir, outdir), environment, renders, report.files)
            manifest.record(manifest.manifest_file(cache_dir, outdir), inputs, outdir,
                            report.written + report.unchanged, report.skipped_sources)  # fmt: skip
        except OSError as exc:  # what is not kept costs the next build time, nothing more
            import logging

            logging.getLogger(__name__).warning("cannot keep this build's record in %s: %s", cache_dir, exc)
    print(f"{outdir}: {report.written} files written, {report.unchanged} unchanged", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    parser = argparse.ArgumentParser(prog="feedsvc", description="Publish news-article files as RSS and Atom feeds.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the feed service")
    # Every option is a setting (feedsvc.config): its default is the FEEDSVC_* variable's value, or
    # the setting's own default; an option given on the command line overrides both.
    serve_cmd.add_argument("--seeds", type=Path, dest="SEEDS_DIR", help="folder of article files (SEEDS_DIR)")
    serve_cmd.add_argument("--host", dest="HOST", help="address to listen on (HOST, 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, dest="PORT", help="port to listen on (PORT, 8000)")
    serve_cmd.add_argument("--workers", type=int, dest="WORKERS", help="worker processes (WORKERS, 2)")
    serve_cmd.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        dest="IDLE_TIMEOUT",
        help="close a connection that has not sent a complete request head in this time: new, "
        "half-sent or kept alive (IDLE_TIMEOUT, 15)",
    )
    serve_cmd.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        dest="MAX_CONNECTIONS",
        help="open connections per worker; more wait in the listen backlog (MAX_CONNECTIONS, 4096)",
    )
    build_cmd = commands.add_parser("build", help="write every public route as static files")
    build_cmd.add_argument("outdir", type=Path)
    build_cmd.add_argument(
        "--base-url",
        dest="BASE_URL",
        help=f"absolute URL the files will be served from; links and ids use it (BASE_URL, {BUILD_BASE_URL})",
    )
    build_cmd.add_argument("--seeds", type=Path, dest="SEEDS_DIR", help="folder of article files (SEEDS_DIR)")
    build_cmd.add_argument(
        "--strict", action="store_true", help="exit 1, keeping the old tree, when any file has errors"
    )
    check_cmd = commands.add_parser("check", help="report every problem in a folder of article files")
    check_cmd.add_argument("folder", nargs="?", type=Path, default=None, help="default: the configured seeds folder")
    return parser


def log_to_stderr(level: str = "INFO") -> None:
    """Log `level` and above to stderr, with the time and the logger's name."""
    import logging

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: settings from defaults, FEEDSVC_* variables, then options."""
    args = build_parser().parse_args(argv)
    options = {key: str(value) if isinstance(value, Path) else value
               for key, value in vars(args).items() if key.isupper() and value is not None}  # fmt: skip
    settings = create_config(options)
    if args.command == "check":
        # `check` reports every problem on stdout itself: the loader's log lines about the same files
        # ("skipped bad.md: ...") would print each one a second time, so only errors are logged there.
        log_to_stderr("ERROR")
    elif args.command != "build":
        log_to_stderr()  # a build does when it has more to do than its manifest's check (7 ms of 80)
    if args.command == "check":
        return check(args.folder or Path(settings["SEEDS_DIR"]), limits_of(settings))
    if args.command == "build":
        return build_site(args.outdir, {**settings, "BASE_URL": settings["BASE_URL"] or BUILD_BASE_URL}, args.strict)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
