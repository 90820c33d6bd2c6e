"""Command line: `python -m pipeline.cli {demo,run,synthetic,kubeflow,...}` (installed as `i2vae`).

The serving tools and the study's commands (bench, reproduce, compare: experiments/commands.py)
are their own modules' command lines, which this one hands the arguments to.

Config comes from defaults, then `--config FILE.json`, then `--set section.field=value`;
the resolved config is written to `<out>/config.json` and printed with the results.
"""
import argparse
import contextlib
import logging
import os
import re
import sys
import time
from typing import Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# before TensorFlow loads, and inherited by Beam's worker processes: no C++ info lines,
# no gRPC chatter, no Python deprecation warnings around the output a user wants
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "PYTHONWARNINGS": "ignore"}

from components.ingest import logic  # noqa: E402  (plain Python: no TensorFlow)
from models import config  # noqa: E402

logger = logging.getLogger("i2vae")
# errors the user can act on: the CLI prints their message as one line and exits with 2
PROJECT_PACKAGES = ("models", "components", "pipeline", "serving")
USER_ERRORS = ("IngestError", "ConfigError", "DataAnomaliesError", "NonFiniteLossError", "AuthorsBenchError")

DEMO_DATA = "data/interactions.csv"
DEMO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.json")


def _add_config_args(parser):
    parser.add_argument("--config", help="JSON file with config overrides (see docs/configuration.md)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one config field, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--no-cache", action="store_true", help="re-run every component instead of reusing outputs")
    parser.add_argument("--beam-arg", action="append", default=None, metavar="FLAG",
                        help="a Beam pipeline flag for every Beam step (repeatable); replaces the config's "
                             "beam_args, e.g. --beam-arg=--runner=FlinkRunner --beam-arg=--flink_master=host:8081")


QUIET_BEAM_ARGS = ["--default_sdk_harness_log_level=CRITICAL"]  # Beam's worker processes log nothing


def _config(args, base=None):
    cfg = config.load_config(args.config, args.set, base=base)
    if getattr(args, "beam_arg", None):
        cfg.beam_args = list(args.beam_arg)
    return cfg


def _summary(paths, cfg, wall):
    print("\n================ i2VAE pipeline finished ================")
    print(f"settings: T={cfg.data.max_len} T'={cfg.data.pseudo_len} d={cfg.model.embedding_dim} "
          f"batch={cfg.train.batch_size} lr={cfg.train.learning_rate} epochs<={cfg.train.epochs} "
          f"(patience {cfg.train.early_stopping_patience} after epoch {cfg.train.early_stopping_start}) lambda_t={cfg.train.lambda_t} "
          f"lambda_a={cfg.train.lambda_a} cross={cfg.model.cross_encoder} "
          f"LightGCN epochs<={cfg.lightgcn.max_epochs}; full config: {os.path.join(paths['out'], 'config.json')}")
    if paths.get("metrics"):
        with open(paths["metrics"]) as f:  # the headline table: test split, full ranking
            tables = f.read().split("### ")
        print("### " + next((t for t in tables if t.startswith("test split, full ranking")), tables[-1]).strip())
        print(f"every split and protocol: {paths['metrics']}")
    else:
        print("no metrics were written (see the log above)")
    verdict = paths.get("verdict")
    if verdict and not verdict["blessed"]:
        print(f"NOT blessed: {verdict['reason']}; nothing pushed, serving keeps "
              f"{paths.get('pushed_model') or 'no model'}")
    else:
        print(f"BLESSED: {verdict['reason']}" if verdict else "no verdict (see the log above)")
        print(f"pushed SavedModel: {paths.get('pushed_model') or 'none'}")
    print(f"TensorBoard: {os.path.join('.venv', 'bin', 'tensorboard')} --logdir {paths['pipeline_root']}")
    print(f"wall time: {wall:.0f}s")


def cmd_run(args, data_path=None, base=None):
    from pipeline.local_runner import run_local

    cfg = _config(args, base)
    if not args.verbose:  # local runs only: a cluster's workers keep their logs
        cfg.beam_args = cfg.beam_args + [a for a in QUIET_BEAM_ARGS if a not in cfg.beam_args]
    cfg.data_path = data_path or args.data
    start = time.time()
    paths = run_local(cfg, args.out, enable_cache=not args.no_cache)
    _summary(paths, cfg, time.time() - start)
    # a candidate that is not blessed is the pipeline working (the served model stays): 0;
    # one that failed the serving check, or wrote no metrics, is a failure to look at
    verdict = paths.get("verdict") or {}
    return 0 if paths.get("metrics") and verdict.get("serving_check_passed", True) else 1


def cmd_demo(args):
    from components.ingest import synthetic

    path = os.path.join(os.path.abspath(args.out), DEMO_DATA)
    synthetic.write_csv(path, synthetic.SyntheticConfig(seed=args.seed))
    logger.info(f"[demo] synthetic interactions written to {path}")
    return cmd_run(args, data_path=path)


def cmd_synthetic(args):
    from components.ingest import synthetic

    cfg = synthetic.SyntheticConfig(num_users=args.users, seed=args.seed)
    print(synthetic.write_csv(args.out, cfg))
    return 0


def cmd_kubeflow(args):
    from pipeline.kubeflow_runner import compile_pipeline

    cfg = _config(args)
    cfg.data_path = args.data
    path = compile_pipeline(cfg, args.image, args.pipeline_root, args.output)
    config.write_config(cfg, os.path.dirname(os.path.abspath(args.output)))
    print(f"[kubeflow] pipeline spec written to {path} (image {args.image}, root {args.pipeline_root}); "
          f"parameters: data_path, epochs, lambda_t, lambda_a")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="i2vae", description=__doc__ + "\n--verbose shows Beam, TFX and "
                                     "TensorFlow logs; --debug also shows the traceback of an error.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the full local pipeline on the embedded synthetic data",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--out", default="runs/demo", help="run directory")
    demo.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    demo.set_defaults(config=DEMO_CONFIG)
    _add_config_args(demo)
    run = sub.add_parser("run", help="run the full local pipeline on your data",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--data", required=True, help="paper folder (train.csv, test.csv) or long table .csv/.parquet")
    run.add_argument("--out", default="runs/run", help="run directory")
    _add_config_args(run)
    syn = sub.add_parser("synthetic", help="write the synthetic long table",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    syn.add_argument("--out", default="runs/synthetic.csv")
    syn.add_argument("--users", type=int, default=3000)
    syn.add_argument("--seed", type=int, default=7)
    kfp = sub.add_parser("kubeflow", help="compile the pipeline for Kubeflow Pipelines / Vertex AI (no cluster needed)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    kfp.add_argument("--image", required=True, help="the pipeline image built from the Dockerfile")
    kfp.add_argument("--pipeline-root", required=True, help="artifact root the cluster can write, e.g. gs://bucket/i2vae")
    kfp.add_argument("--data", required=True, help="data path as the cluster sees it (default of a pipeline parameter)")
    kfp.add_argument("--output", default="i2vae_pipeline.json", help="pipeline-spec JSON to write")
    _add_config_args(kfp)
    for name, (module, text, _) in DELEGATED.items():
        sub.add_parser(name, help=f"{text} (same options as python -m {module}; see `i2vae {name} --help`)",
                       add_help=False)
    return parser


DELEGATED = {  # subcommands that are other modules' own command lines (named, not imported)
    "serve": ("serving.server", "serve a pushed model over TF Serving's gRPC API (local PredictionService)", []),
    "recommend": ("serving.client", "top-K items per domain from TF Serving or the local server", ["recommend"]),
    "metadata": ("serving.client", "the served model's signatures", ["metadata"]),
    "config-doc": ("pipeline.config_doc", "regenerate docs/configuration.md from the config dataclasses", []),
    "bench": ("experiments.commands", "benchmarks that print figures: speed, scale, trace, recall, serving",
              ["bench"]),
    "reproduce": ("experiments.commands", "the paper's tables on its real data: i2VAE, baselines, ablations, sweeps "
                  "over seeds; resumable", ["reproduce"]),
    "compare": ("experiments.commands", "two trained runs on the same rows: the paired difference of HR@K and "
                "NDCG@K per domain and user group, with its error", ["compare"]),
}
# the study's commands read --debug and --verbose themselves
WITH_GLOBAL_FLAGS = ("experiments.commands",)


def set_verbosity(verbose: bool) -> None:
    """Progress lines by default; Beam, absl and TensorFlow logs only with --verbose."""
    if not verbose:
        for name, value in QUIET_ENV.items():
            os.environ.setdefault(name, value)
        import warnings

        warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    # the project's own progress lines, one logger per module, on stdout
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("i2vae",) + PROJECT_PACKAGES:
        package_logger = logging.getLogger(name)
        for old in [h for h in package_logger.handlers if getattr(h, "i2vae_cli", False)]:
            package_logger.removeHandler(old)  # a second main() in one process (tests) adds no duplicate
        handler.i2vae_cli = True
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        package_logger.propagate = False
    for name in ("apache_beam", "absl", "tensorflow", "tfx", "ml_metadata"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.FATAL)
    except ImportError:
        pass


@contextlib.contextmanager
def library_output_to(path: Optional[str]):
    """Sends file descriptor 2 (where TensorFlow's C++ logs and Beam's worker processes write
    their tracebacks) to `path` while the command runs; Python's `sys.stderr` keeps the
    terminal for our own messages. Both are restored afterwards. None: no change."""
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    logger.info(f"[i2vae] Beam, TFX and TensorFlow logs: {path} (--verbose shows them here)")
    sys.stderr.flush()
    saved_fd, saved_stream = os.dup(2), sys.stderr
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = os.fdopen(os.dup(saved_fd), "w", buffering=1)
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.stderr = saved_stream


def check_arguments(args) -> None:
    """The config (file, overrides, values) and a local data path, checked before TFX and
    TensorFlow load, so a mistake costs seconds; remote paths are checked by the ingest step."""
    if args.command in ("run", "demo", "kubeflow"):
        _config(args)
    if args.command == "run" and "://" not in args.data:
        logic.detect_format(args.data)


def user_error(error: BaseException):
    """The one-line message of a known error (`USER_ERRORS`), also when a Beam worker or TFX
    raised it and it arrives wrapped in another exception's text; None for anything else."""
    seen = error
    while seen is not None:
        if type(seen).__name__ in USER_ERRORS:
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    found = re.findall(r"(?:[\w.]+\.)?(?:%s): (.+)" % "|".join(USER_ERRORS), str(error))
    if found:
        return re.sub(r"\s*\[while running .*\]\s*$", "", found[-1]).strip()
    return None


def global_flags(argv=None):
    """(argv without them, --debug, --verbose), with the output set up for them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, verbose = "--debug" in argv, "--verbose" in argv
    set_verbosity(verbose or debug)
    return [a for a in argv if a not in ("--debug", "--verbose")], debug, verbose


def run_command(handler, args, log_dir: Optional[str], debug: bool, verbose: bool) -> int:
    """Runs `handler(args)` with the libraries' output in `<log_dir>/pipeline.log` (here with
    --verbose or --debug, or without a log_dir); a known error is one `error:` line and exit
    status 2 (the traceback only with --debug)."""
    log_path = os.path.join(log_dir, "pipeline.log") if log_dir and not (verbose or debug) else None
    try:
        check_arguments(args)
        with library_output_to(log_path):
            return handler(args)
    except Exception as e:
        message = user_error(e)
        if message is None or debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def main(argv=None):
    raw = list(sys.argv[1:] if argv is None else argv)
    argv, debug, verbose = global_flags(raw)
    if argv and argv[0] in DELEGATED:
        import importlib

        module, _, prefix = DELEGATED[argv[0]]
        rest = list(raw) if module in WITH_GLOBAL_FLAGS else list(argv)
        rest.remove(argv[0])
        return importlib.import_module(module).main(prefix + rest)
    args = build_parser().parse_args(argv)
    args.verbose = verbose or debug
    log_dir = {"run": getattr(args, "out", None), "demo": getattr(args, "out", None)}.get(args.command)
    handlers = {"demo": cmd_demo, "run": cmd_run, "synthetic": cmd_synthetic, "kubeflow": cmd_kubeflow}
    return run_command(handlers[args.command], args, log_dir, debug, verbose)


if __name__ == "__main__":
    sys.exit(main())
