"""The ``controlkit`` command: ``run``, ``sweep``, ``envs``, ``kinds``.

Exit codes: 0 done; 1 a run (or a sweep point) failed; 2 bad input (one line on stderr, nothing created);
128 + the signal's number when interrupted (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from controlkit.core.errors import EXIT_RUN_FAILED, EXIT_USER_ERROR, ControlkitError


def _parser() -> argparse.ArgumentParser:
    verbosity = argparse.ArgumentParser(add_help=False)
    group = verbosity.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="also show debug messages")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")

    p = argparse.ArgumentParser(prog="controlkit", description="Model-based control and digital twins.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[verbosity], help="run one experiment from a YAML file")
    run.add_argument("file", help="experiment YAML (experiments/NAME.yaml)")
    run.add_argument("overrides", nargs="*", help="dotted.key=value overrides (list items by index: a.0.b=1)")
    run.add_argument("--out", default="runs", help="root folder for run folders (default: runs)")

    sweep = sub.add_parser("sweep", parents=[verbosity], help="run the product of override values, one run per point")
    sweep.add_argument("file", nargs="?", help="experiment YAML (may be left out with --resume)")
    sweep.add_argument("overrides", nargs="*", help="key=v1,v2,... (and plain key=value)")
    sweep.add_argument("--executor", default="local", choices=["local", "ray"])
    sweep.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    sweep.add_argument("--ray-address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    sweep.add_argument("--out", default="runs")
    sweep.add_argument("--resume", default=None, metavar="DIR",
                       help="an earlier sweep folder: run again only its points that did not complete")

    sub.add_parser("envs", help="list controlkit's gymnasium ids with their keyword arguments")
    sub.add_parser("kinds", help="list experiment kinds")
    return p


class _ConsoleHandler(logging.StreamHandler):
    """Log records on stderr, written through tqdm so they do not tear a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else (
        logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    logger = logging.getLogger("controlkit")
    handler = _ConsoleHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(min(level, logging.INFO))
    logger.propagate = False  # the console handler above is the CLI's only output for these records


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 run failed, 2 user error, 128 + signal when interrupted)."""
    args = _parser().parse_args(argv)
    logger = logging.getLogger("controlkit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    if args.command in ("run", "sweep"):
        _setup_logging(args)
    try:
        code = _dispatch(args, argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (``controlkit envs | head``): stop writing, quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def _error(message: str) -> None:
    print("controlkit: error: " + " ".join(str(message).split()), file=sys.stderr)


def _dispatch(args: argparse.Namespace, argv: list[str] | None) -> int:
    from controlkit.runner.signals import exit_code

    try:
        if args.command == "run":
            return _run(args, argv)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "envs":
            from controlkit.envs import describe_envs

            print(describe_envs())
            return 0
        if args.command == "kinds":
            from controlkit.runner.registry import get_kind, kind_names

            for name in kind_names():
                print(f"{name:24s} {get_kind(name).description}")
            return 0
    except ControlkitError as exc:
        _error(str(exc))
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        print(f"controlkit: {exc or 'interrupted'}", file=sys.stderr)
        return exit_code(exc)
    return EXIT_USER_ERROR


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from controlkit.runner import load_config
    from controlkit.runner.registry import get_kind
    from controlkit.runner.run import RunFailed, run_experiment

    config = load_config(args.file, args.overrides)
    try:
        result = run_experiment(config, out=args.out, quiet=args.quiet,
                                argv=["controlkit", *(argv if argv is not None else sys.argv[1:])])
    except RunFailed as exc:
        kept = f"(run folder kept: {exc.run_dir}; traceback in {exc.run_dir / 'traceback.txt'})"
        if exc.user_error:
            _error(f"{exc} {kept}")
            return EXIT_USER_ERROR
        print(f"controlkit: run failed: {exc} {kept}", file=sys.stderr)
        return EXIT_RUN_FAILED
    report = get_kind(config.kind).report
    if report is not None:
        print(report(result.summary))
    print(f"results: {result.run_dir}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from controlkit.runner.signals import exit_code
    from controlkit.runner.sweep import SweepFailed, run_sweep

    try:
        sweep_dir = run_sweep(args.file, args.overrides, args.out, args.executor, args.workers, args.ray_address,
                              args.quiet, resume=args.resume)
    except SweepFailed as exc:
        print(f"controlkit: sweep: {' '.join(str(exc).split())} (table: {exc.sweep_dir / 'sweep.csv'}; run the "
              f"failed points again with: controlkit sweep --resume {exc.sweep_dir})", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt as exc:
        print(f"controlkit: sweep {exc or 'interrupted'}", file=sys.stderr)
        return exit_code(exc)
    print(f"sweep written to {sweep_dir} (table: {sweep_dir / 'sweep.csv'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
