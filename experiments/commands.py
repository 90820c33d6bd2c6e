"""The study's command line: `i2vae {bench,reproduce,compare}` (pipeline/cli.py hands these
subcommands here) or `python -m experiments.commands`.

The reproduction study and the benchmarks use every layer, so they sit above the pipeline:
the pipeline's command line names this module instead of importing it.
"""
import argparse
import os
import sys

from models import config
from pipeline import cli


def cmd_bench(args):
    from experiments import bench

    if args.what == "speed":
        ours = bench.speed(args.examples or bench.latest_examples(args.run), epochs=args.epochs)
        authors = None
        if args.authors_code:
            from experiments import authors_bench

            data_dir = args.authors_data or bench.run_data_path(args.run)
            pair = os.path.basename(os.path.normpath(data_dir))
            authors = authors_bench.run(args.authors_code, data_dir, pair, os.path.join(args.work, "authors_code"),
                                        epochs=args.epochs, python=args.authors_python)
        bench.print_speed(ours, authors)
    elif args.what == "scale" and args.catalogue_items:
        bench.print_catalogue(bench.catalogue([int(n) for n in args.catalogue_items.split(",")], args.work,
                                              args.catalogue_users, args.train_steps))
    elif args.what == "scale":
        items = tuple(int(n) for n in args.scale_items.split(","))
        if len(items) != 2:
            raise config.ConfigError(f"--scale-items takes two counts (X,Y), found {args.scale_items!r}")
        bench.print_scale(bench.scale([int(u) for u in args.users.split(",")], args.work, items, args.train_steps))
    elif args.what == "trace":
        bench.print_trace(bench.trace())
    elif args.what == "retrain":
        from experiments import retrain_bench

        retrain_bench.print_retrain(retrain_bench.retrain(args.data, args.work, args.day_one_share, args.set or [],
                                                          args.report_only))
    elif args.what == "recall":
        bench.print_recall(bench.recall([int(n) for n in args.items.split(",")], users=args.recall_users,
                                        nprobes=[int(n) for n in args.nprobe.split(",")]))
    else:
        from experiments import serving_bench

        return serving_bench.main(["--model-base-path", args.model_base_path, "--data", args.data])
    return 0


def cmd_reproduce(args):
    from experiments import reproduce, reproduce_settings

    only = [n.strip() for n in args.only.split(",")] if args.only else None
    unknown = [n for n in only or [] if n not in reproduce_settings.BY_NAME]
    if unknown:
        raise config.ConfigError(f"unknown config setting(s) {unknown} in --only; "
                                 f"known: {sorted(reproduce_settings.BY_NAME)}")
    return reproduce.reproduce(args.pair, args.seeds, args.sweep_seeds, only, args.config, args.data_root,
                               args.work, args.results, args.commit, args.report_only)


def cmd_compare(args):
    from experiments import compare

    result = compare.compare(args.run_a, args.run_b, args.split, args.k, args.protocol, args.model_a, args.model_b,
                             args.draws, args.seed)
    print(compare.format_comparison(result, compare.domain_names(result["a"][0][0])))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="i2vae", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ben = sub.add_parser("bench", help="benchmarks that print figures: speed, scale, trace, recall, serving, retrain",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ben.add_argument("what", choices=["speed", "scale", "trace", "recall", "serving", "retrain"])
    ben.add_argument("--run", default="runs/cloth_sport", help="speed: a run directory of the paper's data")
    ben.add_argument("--examples", help="speed: an augmented Examples directory (instead of --run)")
    ben.add_argument("--epochs", type=int, default=2, help="speed: epochs per variant (all but the first, which traces, are averaged)")
    ben.add_argument("--authors-code", help="speed: the authors' IM-VAE repository folder (outside this repo), "
                     "timed right after ours on the same data (docs/performance.md)")
    ben.add_argument("--authors-python", help="speed: their Python with PyTorch (default: a venv/ in or beside "
                     "--authors-code)")
    ben.add_argument("--authors-data", help="speed: the paper-format pair folder for their code (default: the "
                     "run's data_path)")
    ben.add_argument("--users", default="50000,200000,800000", help="scale: comma-separated user counts")
    ben.add_argument("--scale-items", default="40000,32000", help="scale: the fixed catalogue, X items,Y items")
    ben.add_argument("--catalogue-items", help="scale: grow the items per domain instead of the users, e.g. "
                     "40000,200000,1000000 (training step, peak RSS, serving latency and recall per size)")
    ben.add_argument("--catalogue-users", type=int, default=50000, help="scale: the fixed users of --catalogue-items")
    ben.add_argument("--train-steps", type=int, default=20, help="scale: training steps timed per size")
    ben.add_argument("--day-one-share", type=float, default=0.9, help="retrain: the share of users on day 1")
    ben.add_argument("--report-only", action="store_true", help="retrain: print the runs already in --work")
    ben.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="retrain: a config override for every run (repeatable)")
    ben.add_argument("--items", default="10000,100000,1000000", help="recall: comma-separated catalogue sizes")
    ben.add_argument("--recall-users", type=int, default=2000, help="recall: fold-in users queried at every size")
    ben.add_argument("--nprobe", default="16,64,128", help="recall: comma-separated IVF cells probed per query")
    ben.add_argument("--work", default="runs/bench", help="scale: where the synthetic rows are written; speed: the authors' scratch folder")
    ben.add_argument("--model-base-path", default="runs/cloth_sport/serving_model/i2vae", help="serving: the model")
    ben.add_argument("--data", default=os.path.join("..", "shared", "data", "amazon-cdsr", "cloth_sport"),
                     help="serving: paper-format folder whose test histories are replayed; retrain: the pair")

    rep = sub.add_parser("reproduce", help="the paper's tables on its real data: i2VAE, baselines, ablations, "
                                           "sweeps over seeds; resumable", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rep.add_argument("--pair", required=True, help="cloth_sport or phone_elec (a folder under --data-root)")
    rep.add_argument("--seeds", type=int, default=5, help="seeds per trained model and ablation")
    rep.add_argument("--sweep-seeds", type=int, default=1, help="seeds per density / overlap setting (0 = skip)")
    rep.add_argument("--only", help="comma-separated settings, e.g. i2vae,sasrec (default: all)")
    rep.add_argument("--config", help="JSON config applied under every setting, on top of the reproduction base")
    rep.add_argument("--data-root", default=os.path.join("..", "shared", "data", "amazon-cdsr"))
    rep.add_argument("--work", default="runs/reproduce", help="pipeline directories (not committed)")
    rep.add_argument("--results", default="docs/results", help="result files and the report")
    rep.add_argument("--commit", action="store_true", help="git-commit docs/results after every finished run")
    rep.add_argument("--report-only", action="store_true", help="rewrite the report from existing results")
    cmp = sub.add_parser("compare", help="two trained runs on the same rows: the paired difference of HR@K and "
                                         "NDCG@K per domain and user group, with its error",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cmp.add_argument("run_a", help="a run directory (the --out of `i2vae run`) or a ranks_<split>.csv file; "
                                   "several, comma-separated (a model's seeds): each row's values averaged over them")
    cmp.add_argument("run_b", help="the other run (or runs), on the same data")
    cmp.add_argument("--split", default="test", choices=["test", "eval"])
    cmp.add_argument("--k", type=int, default=10, help="the cutoff K of HR@K and NDCG@K")
    cmp.add_argument("--protocol", default="full", choices=["full", "sampled"])
    cmp.add_argument("--model-a", help="the model column of run A's ranks (default: its trained model)")
    cmp.add_argument("--model-b", help="the model column of run B's ranks, e.g. popularity")
    cmp.add_argument("--draws", type=int, default=2000, help="bootstrap resamples of the rows")
    cmp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    return parser


def main(argv=None):
    """Runs one study command with the pipeline's output and error conventions."""
    argv, debug, verbose = cli.global_flags(argv)
    args = build_parser().parse_args(argv)
    log_dir = None if args.command != "reproduce" or args.report_only else args.work
    handlers = {"bench": cmd_bench, "reproduce": cmd_reproduce, "compare": cmd_compare}
    return cli.run_command(handlers[args.command], args, log_dir, debug, verbose)


if __name__ == "__main__":
    sys.exit(main())
