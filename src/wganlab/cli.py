"""The ``wganlab`` command line: a thin layer over the library API.

Exit statuses: 0 success; 1 the command ran to its end but part of it failed (a diverged training run,
a failed experiment, sweep task or bench case: see its report); 2 bad input; 3 a computation that could
not give a trustworthy answer (an uncertified exact solve, a diverged run, an unconverged Sinkhorn);
4 the system refused during the work (a full disk, a permission, memory; an output folder refused before any
work is bad input, 2). Errors are one line ``wganlab: error: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from wganlab.config import PRESET_NAMES, RENAMED_KEYS
from wganlab.errors import ComputationFailed, InputError, WganlabError
from wganlab.memory import keep_freed_memory, tensors_on_huge_pages

EXIT_PARTLY_FAILED, EXIT_BAD_INPUT, EXIT_COMPUTATION_FAILED, EXIT_SYSTEM = 1, 2, 3, 4


def _load_set(arg: str, data_root: str | None):
    """A point set from a ``.npy`` file (never unpickled, its header checked first) or a dataset spec."""
    import torch

    from wganlab.data.common import read_npy

    if arg.endswith((".npy", ".npz")):
        return torch.from_numpy(read_npy(arg, "point set"))
    from wganlab import data

    return data.load(arg, data_root).x


def _load_weights(path: str | None):
    from wganlab.data.common import read_npy

    return None if path is None else read_npy(path, "weights")


def _check_output_file(path: str, suffix: str) -> None:
    """Refuse, before any work, an output file of another type or in a folder that cannot be written."""
    from wganlab.runs import check_output_folder

    if Path(path).suffix.lower() != suffix:
        raise InputError(f"{path}: the output must be a {suffix} file")
    check_output_folder(Path(path).parent, min_free_mb=0)


def cmd_distance(args) -> int:
    from wganlab import metrics

    x, y = _load_set(args.a, args.data_root), _load_set(args.b, args.data_root)
    given = {k: getattr(args, k) for k in ("n_projections", "patch_size", "patch_stride", "eps", "seed")
             if getattr(args, k) is not None}
    for k, path in (("a", args.weights_a), ("b", args.weights_b)):
        if path is not None:
            given[k] = _load_weights(path)
    out = metrics.compute(args.metric, x, y, **given)
    if args.json:
        print(json.dumps(out))
    else:
        extra = "  ".join(f"{k}={v}" for k, v in out.items() if k not in ("metric", "value"))
        print(f"{out['metric']} = {out['value']:.6g}" + (f"  ({extra})" if extra else ""))
    return 0


def cmd_data_show(args) -> int:
    from wganlab import data

    _check_output_file(args.out, ".png")
    ds = data.load(args.spec, args.data_root)
    data.save_preview(ds, args.out, n=args.n)
    print(f"{ds.spec}: {tuple(ds.x.shape)} -> {args.out}")
    return 0


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _projections(text: str) -> int:
    """An argparse type: a number of random projections, 1 .. :data:`wganlab.config.MAX_PROJECTIONS`."""
    from wganlab.config import MAX_PROJECTIONS

    n = _at_least_one(text)
    if n > MAX_PROJECTIONS:
        raise argparse.ArgumentTypeError(f"{n:,} projections is too many (at most {MAX_PROJECTIONS:,})")
    return n


def _device(text: str) -> str:
    """An argparse type: auto, cpu, cuda or cuda:N (whether the GPU exists is checked when it is used)."""
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose auto, cpu, cuda or cuda:N")




class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``wganlab: error: ...``), exit status 2."""

    def error(self, message):
        if message.startswith("unrecognized arguments: "):  # an old flag is named with its new name
            old = [f for t in message.split()[2:] if (f := t.split("=")[0][2:]) in RENAMED_KEYS and t.startswith("--")]
            if old:
                message = f"--{old[0]} was renamed --{RENAMED_KEYS[old[0]].replace('_', '-')}"
        self.exit(2, f"wganlab: error: {message} (see '{self.prog} --help')\n")


def cmd_train(args) -> int:
    from wganlab import train
    from wganlab.config import resolve, to_dict

    if not (args.resume or args.preset or args.config or args.set):  # a bare `wganlab train`
        args.parser.print_usage(sys.stderr)
        raise InputError("train needs --preset, --config, --set or --resume (see 'wganlab train --help')")
    if args.resume:
        if args.preset or args.config or args.set or args.dry_run:
            raise InputError("--resume continues a run with its own config; drop --preset/--config/--set/--dry-run")
        result = train.resume(args.resume)
    else:
        cfg = train.validate(resolve(train.TrainConfig, train.PRESETS, args.preset, args.config, args.set))
        if args.dry_run:
            print(json.dumps(to_dict(cfg), indent=2))
            return 0
        result = train.train(cfg)
    print((result.run_dir / "summary.txt").read_text(), end="")
    return 0 if result.status == "done" else EXIT_PARTLY_FAILED


def cmd_list(args) -> int:
    from wganlab import data
    from wganlab.experiments import EXPERIMENTS
    from wganlab.metrics import METRICS
    from wganlab.train import PRESETS as TRAIN_PRESETS

    print(f"experiments (wganlab reproduce NAME --preset {'|'.join(PRESET_NAMES)}):")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:24s} {e.source:28s} {e.title}")
        print(f"  {'':24s} measured on one core of an idle 2-core machine: quick {e.quick_seconds:.0f} s, medium "
              f"{e.medium_seconds:.0f} s; paper preset: {e.paper_time}")
    print("\ntraining presets (wganlab train --preset NAME):\n  " + ", ".join(TRAIN_PRESETS))
    print("\nmetrics (wganlab distance --metric NAME):")
    for m in METRICS.values():
        print(f"  {m.name:16s} {m.description}")
    from wganlab.bench import CASES, describe_sizes

    print("\nbench cases (wganlab bench NAME --set NAME.size=N; defaults, then --full sizes):")
    for c in CASES.values():
        print(f"  {c.name:16s} {c.description}\n  {'':16s} [{describe_sizes(c.sizes)}] [{describe_sizes(c.full)}]")
    print("\ndatasets (spec strings, e.g. fashion-mnist:train:n=5000:size=32):")
    for name, line in data.available(args.data_root).items():
        print(f"  {name:16s} {line}")
    return 0


def cmd_reproduce(args) -> int:
    from wganlab.reproduce import reproduce, unfinished
    from wganlab.runtime import set_threads

    if args.ray_address and args.executor != "ray":
        raise InputError("--ray-address needs --executor ray")

    set_threads(args.threads)
    if args.resume and not args.out:
        raise InputError("--resume needs --out: the folder of the run to continue")
    folder = reproduce(args.names or None, args.preset, out=args.out, resume=args.resume,
                       data_root=args.data_root, seed=args.seed, device=args.device,
                       overrides=_experiment_overrides(args.set), repeats=args.repeats, executor=args.executor,
                       ray_address=args.ray_address, workers=args.workers, threads=args.threads)
    print(f"report: {folder / 'report.html'}")
    failed = unfinished(folder)
    if failed:
        print(f"wganlab: {len(failed)} experiment(s) did not finish: {', '.join(failed)} (see the report)",
              file=sys.stderr)
        return EXIT_PARTLY_FAILED
    return 0


def _experiment_overrides(pairs: list[str] | None) -> dict[str, dict]:
    """``NAME.key=value`` pairs grouped by experiment name."""
    out: dict[str, dict] = {}
    for pair in pairs or []:
        name, dot, rest = pair.partition(".")
        key, eq, value = rest.partition("=")
        if not dot or not eq:
            raise InputError(f"--set {pair!r}: expected NAME.key=value")
        out.setdefault(name, {})[key] = value
    return out


def cmd_sweep(args) -> int:
    from wganlab.config import parse_overrides
    from wganlab.sweep import parse_grid, sweep

    if args.ray_address and args.executor != "ray":
        raise InputError("--ray-address needs --executor ray")

    fixed = parse_overrides(args.set)
    grid = parse_grid(args.experiment, args.preset, args.grid or [], fixed)
    summary = sweep(args.experiment, args.preset, grid=grid, seeds=args.seeds, seed=args.seed, out=args.out,
                    fixed=fixed, resume=args.resume, executor=args.executor, ray_address=args.ray_address,
                    workers=args.workers, threads=args.threads, data_root=args.data_root, device=args.device,
                    metric=args.metric)
    print(f"summary: {Path(args.out) / 'summary.md'}")
    failed = sum(len(c["failed"]) for c in summary["cells"])
    if failed:
        print(f"wganlab: {failed} task(s) failed (listed in summary.md)", file=sys.stderr)
        return EXIT_PARTLY_FAILED
    return 0


def cmd_bench(args) -> int:
    from wganlab.bench import run_bench, table

    _check_output_file(args.out, ".json")
    rows = run_bench(args.cases or None, full=args.full, overrides=_experiment_overrides(args.set),
                     repeat=args.repeat, out=args.out, threads=args.threads, isolate=not args.in_process,
                     mem_limit_gib=args.mem_limit_gib, data_root=args.data_root,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(rows), end="")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")
    return EXIT_PARTLY_FAILED if any(r["status"] != "ok" for r in rows) else 0


def cmd_report(args) -> int:
    from wganlab.report.html import build_report, claims_markdown

    if args.claims:
        print(claims_markdown(args.run_dirs), end="")
        return 0
    for folder in args.run_dirs:
        print(build_report(folder))
    return 0


def build_parser(only_report: bool = False) -> argparse.ArgumentParser:
    """The CLI's parser; ``only_report``: just the ``report`` command, whose parser needs no torch (a report
    is rebuilt from a run folder's files alone)."""
    parser = _Parser(prog="wganlab", description="Which Wasserstein distance does a GAN really minimise? "
                     "Exact OT metrics, discrete GANs, the papers' experiments.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only_report:
        _add_report(sub)
        return parser
    from wganlab.metrics import METRICS

    p = sub.add_parser("distance", help="a distance between two sets (.npy files or dataset specs)")
    p.add_argument("a", help="a .npy file (N x D or N x C x H x W) or a dataset spec")
    p.add_argument("b", help="a .npy file or a dataset spec")
    p.add_argument("--metric", default="w1", choices=list(METRICS), help="default: w1")
    p.add_argument("--weights-a", help=".npy file of probability weights for A")
    p.add_argument("--weights-b", help=".npy file of probability weights for B")
    p.add_argument("--n-projections", type=_projections, help="number of random projections (sliced metrics)")
    p.add_argument("--patch-size", type=int, help="patch side in pixels (patch metrics)")
    p.add_argument("--patch-stride", type=int, help="pixels between patches (patch metrics)")
    p.add_argument("--eps", type=float, help="entropic regularisation (sinkhorn)")
    p.add_argument("--seed", type=int, help="seed of the random projections")
    p.add_argument("--data-root", help="folder holding datasets that are not installed system-wide")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_distance)

    p = sub.add_parser("data", help="inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("show", help="save an image grid (or a scatter plot) of a dataset")
    q.add_argument("spec", help="dataset spec, e.g. fashion-mnist:train:n=64:size=32")
    q.add_argument("--out", required=True, help="output .png")
    q.add_argument("--n", type=_at_least_one, default=64, help="how many points to show (default 64)")
    q.add_argument("--data-root", help="folder holding datasets that are not installed system-wide")
    q.set_defaults(func=cmd_data_show)

    from wganlab.train import PRESETS as TRAIN_PRESETS

    p = sub.add_parser("train", help="train a GAN (discrete or continuous) and track exact distances")
    p.add_argument("--preset", help=f"one of: {', '.join(TRAIN_PRESETS)}")
    p.add_argument("--config", help="a .json or .toml file of config keys")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_train, parser=p)

    p = sub.add_parser("list", help="experiments, presets, metrics and the datasets available here")
    p.add_argument("--data-root", help="folder holding datasets that are not installed system-wide")
    p.set_defaults(func=cmd_list)

    from wganlab.executors import EXECUTORS

    p = sub.add_parser("reproduce", help="run the papers' experiments by name and write the HTML report")
    p.add_argument("names", nargs="*", help="experiment names (default: all; see 'wganlab list')")
    p.add_argument("--preset", default="quick", choices=PRESET_NAMES, help="default: quick")
    p.add_argument("--out", help="run folder (default: runs/NNNNN-reproduce-PRESET)")
    p.add_argument("--resume", action="store_true", help="keep the experiments already done in --out")
    p.add_argument("--data-root", help="folder holding MNIST / CIFAR-10 / FFHQ / CelebA for paper presets")
    p.add_argument("--seed", type=int, help="seed for every experiment (default: each preset's)")
    p.add_argument("--device", default="auto", type=_device, help="auto | cpu | cuda (default: auto)")
    p.add_argument("--threads", type=_at_least_one, help="torch threads per experiment (default: the cores shared "
                   "out among the workers; torch's default in-process)")
    p.add_argument("--set", action="append", metavar="NAME.KEY=VALUE", help="override an experiment's config")
    p.add_argument("--repeats", type=_at_least_one, default=1, help="seeds per experiment; the report gives mean ± std")
    p.add_argument("--executor", default="auto", choices=["auto", *EXECUTORS],
                   help="default: auto (a process per core on the CPU, in-process on a GPU)")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local Ray)")
    p.add_argument("--workers", type=_at_least_one, help="parallel experiments (process pool size / local Ray CPUs)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("sweep", help="an experiment over a grid of config values and seeds, aggregated")
    p.add_argument("experiment", help="experiment name (see 'wganlab list')")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="values of a config key (repeatable; cross product; tuple items joined by '|')")
    p.add_argument("--seeds", type=_at_least_one, default=1, help="seeds per cell: SEED .. SEED+N-1 (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a config value fixed for every cell")
    p.add_argument("--preset", default="quick", choices=PRESET_NAMES, help="default: quick")
    p.add_argument("--out", required=True, help="sweep folder (cells/ and the summary go here)")
    p.add_argument("--resume", action="store_true", help="run only the tasks not done in --out")
    p.add_argument("--executor", default="local", choices=list(EXECUTORS), help="default: local")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local Ray)")
    p.add_argument("--workers", type=_at_least_one, help="parallel tasks (process pool size / local Ray CPUs)")
    p.add_argument("--threads", type=_at_least_one, help="torch threads per task (default: torch's)")
    p.add_argument("--metric", help="measurement to plot (default: the first numeric one)")
    p.add_argument("--data-root", help="folder holding datasets that are not installed system-wide")
    p.add_argument("--device", default="auto", type=_device, help="auto | cpu | cuda (default: auto)")
    p.set_defaults(func=cmd_sweep)

    from wganlab.bench import CASES

    p = sub.add_parser("bench", help="time wganlab against plain baselines (POT, torch, numpy), case by case")
    p.add_argument("cases", nargs="*", help=f"cases (default: all): {', '.join(CASES)}")
    p.add_argument("--full", action="store_true", help="the paper-scale sizes (up to ~5 GB per case)")
    p.add_argument("--set", action="append", metavar="CASE.KEY=VALUE", help="a case's size (repeatable), "
                   "e.g. w1-square.n=5000 or w1-batch.ns=10000,60000")
    p.add_argument("--repeat", type=int, default=1, help="runs of each side, best time kept (default 1)")
    p.add_argument("--out", default="runs/bench.json", help="JSON output; the markdown table goes beside it "
                   "(.md) (default: runs/bench.json)")
    p.add_argument("--threads", type=_at_least_one, default=1, help="torch threads (default 1)")
    p.add_argument("--mem-limit-gib", type=float, help="memory limit of each case's process "
                   "(default: 85%% of the memory available at the start)")
    p.add_argument("--in-process", action="store_true", help="run the cases in this process (no memory limit)")
    p.add_argument("--data-root", help="folder holding Fashion-MNIST if it is not installed system-wide")
    p.set_defaults(func=cmd_bench)

    _add_report(sub)
    return parser


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="rebuild the HTML report of (finished or interrupted) reproduce runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--claims", action="store_true",
                   help="print one markdown table of the claims of every RUN_DIR, side by side, instead")
    p.set_defaults(func=cmd_report)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; an error becomes a one-line message and its exit status (see the module docs)."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(only_report=argv[:1] == ["report"]).parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed on one line
        return int(e.code or 0)
    keep_freed_memory()
    tensors_on_huge_pages()
    try:
        return int(args.func(args) or 0)
    except ComputationFailed as e:
        return _fail(f"{type(e).__name__}: {e}", EXIT_COMPUTATION_FAILED)
    except WganlabError as e:  # BadInput, or a bare WganlabError (treated as bad input)
        return _fail(str(e), EXIT_BAD_INPUT)
    except (MemoryError, RuntimeError) as e:  # numpy's MemoryError; torch's allocators raise RuntimeError
        if not (isinstance(e, MemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e)):
            raise
        return _fail(f"out of memory: {e}", EXIT_SYSTEM)
    except BrokenPipeError:  # the reader of our output went away (e.g. `wganlab list | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except OSError as e:  # a full disk, a permission, a vanished folder: the system's answer, on one line
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}", EXIT_SYSTEM)


def _fail(message: str, status: int) -> int:
    print(f"wganlab: error: {' '.join(message.split())}", file=sys.stderr)
    return status
