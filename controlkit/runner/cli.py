"""The ``controlkit`` command: ``run``, ``sweep``, ``envs``, ``kinds``."""

from __future__ import annotations

import argparse
import sys

from controlkit.core.errors import EXIT_RUN_FAILED, EXIT_USER_ERROR, ControlkitError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="controlkit", description="Model-based control and digital twins.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one experiment from a YAML file")
    run.add_argument("file", help="experiment YAML (experiments/NAME.yaml)")
    run.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    run.add_argument("--out", default="runs", help="root folder for run folders (default: runs)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or log echo")

    sweep = sub.add_parser("sweep", help="run the product of override values, one run per point")
    sweep.add_argument("file")
    sweep.add_argument("overrides", nargs="*", help="key=v1,v2,... (and plain key=value)")
    sweep.add_argument("--executor", default="local", choices=["local", "ray"])
    sweep.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    sweep.add_argument("--ray-address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    sweep.add_argument("--out", default="runs")
    sweep.add_argument("--quiet", action="store_true")

    sub.add_parser("envs", help="list controlkit's gymnasium ids with their keyword arguments")
    sub.add_parser("kinds", help="list experiment kinds")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 run failed, 2 user error)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args, argv)
        if args.command == "sweep":
            from controlkit.runner.sweep import run_sweep

            sweep_dir = run_sweep(args.file, args.overrides, args.out, args.executor, args.workers,
                                  args.ray_address, args.quiet)
            print(f"sweep written to {sweep_dir} (table: {sweep_dir / 'sweep.csv'})")
            return 0
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
        print(f"controlkit: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
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
        print(f"controlkit: run failed: {exc} (traceback in {exc.run_dir / 'log.txt'})", file=sys.stderr)
        return EXIT_RUN_FAILED
    report = get_kind(config.kind).report
    if report is not None:
        print(report(result.summary))
    print(f"results: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
