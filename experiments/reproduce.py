"""The paper's comparison on its real data, resumable: `i2vae reproduce --pair cloth_sport --seeds 5`.

Every (pair, setting, seed) is one run of the local pipeline and leaves one result file,
`docs/results/<pair>/runs/<setting>-seed<k>.json`; a run whose file exists is skipped, so
the command can be stopped and started again (or run in the background over several
sessions). After every run `docs/results/<pair>.md` and its plots are rewritten from all
result files present, so partial results are always readable.

Settings share one pipeline directory per data variant, so TFX's cache reuses ingest and
the pseudo-sequence generator across models and seeds; the seed varies the model's
initialisation and batch order (`train.seed`), not the data split or LightGCN.

This module wires the parts: `reproduce_settings` (the named runs and their overrides),
`reproduce_runner` (run order, pipeline runs, result files, git) and `reproduce_report`
(tables, page, plots).
"""
from __future__ import annotations

import logging
import os
from typing import List, Optional

from experiments import reproduce_report, reproduce_runner
from models import config

logger = logging.getLogger(__name__)


def reproduce(pair: str, seeds: int, sweep_seeds: int, only: Optional[List[str]], base_config: Optional[str],
              data_root: str, work_root: str, results_root: str, commit: bool, report_only: bool) -> int:
    results_dir = os.path.join(results_root, pair)
    command = (f"i2vae reproduce --pair {pair} --seeds {seeds} --sweep-seeds {sweep_seeds}"
               + (f" --only {','.join(only)}" if only else "") + (f" --config {base_config}" if base_config else ""))
    if report_only:
        logger.info(reproduce_report.write_report(pair, results_dir, command, base_config))
        return 0
    data_path = os.path.join(data_root, pair)
    if not os.path.isdir(data_path):
        raise config.ConfigError(f"{data_path}: no such pair folder (expected train.csv and test.csv)")

    def planned():  # every pair's results read once: this pair's picks and the default's across pairs
        results_by_pair = reproduce_runner.load_results_by_pair(results_root)
        return reproduce_runner.plan(seeds, sweep_seeds, only, results_by_pair.get(pair, {}), results_by_pair)

    todo = planned()
    done = [(s, k) for s, k in todo if os.path.exists(reproduce_runner.result_path(results_dir, s, k))]
    logger.info(f"[reproduce] {pair}: {len(todo)} runs planned, {len(done)} already done")
    while True:  # planned again after every run: a tuning candidate selected on seed 1 earns more seeds
        todo = planned()
        pending = [(i, s, k) for i, (s, k) in enumerate(todo, 1)
                   if not os.path.exists(reproduce_runner.result_path(results_dir, s, k))]
        if not pending:
            break
        i, setting, seed = pending[0]
        logger.info(f"[reproduce] ({i}/{len(todo)}) {pair} {setting.name} seed {seed}")
        result = reproduce_runner.run_one(pair, data_path, setting, seed, base_config, os.path.join(work_root, pair),
                                          results_dir)
        logger.info(f"[reproduce] {setting.name} seed {seed} done in {result['seconds']:.0f}s")
        md = reproduce_report.write_report(pair, results_dir, command, base_config)
        if commit:
            reproduce_runner.commit_results(md, pair, setting, seed)
    logger.info(f"[reproduce] report: {reproduce_report.write_report(pair, results_dir, command, base_config)}")
    return 0
