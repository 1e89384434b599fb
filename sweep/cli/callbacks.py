"""Hydra callbacks of every launch (conf/config.yaml): the output directory is checked before
Hydra writes its logs there, and a multirun ends with one table of every job's outcome and an
exit status that tells the truth."""

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweep.base.atomic import check_writable
from sweep.base.errors import QfeatError
from sweep.job.outcomes import FAILED, outcome_table, read_outcomes
from sweep.results.files import OUTCOME_FILE

log = logging.getLogger("qfeat")


def check_output(config: DictConfig) -> None:
    """One line and exit 2 when the sweep's directory cannot be written (a read-only out_root,
    a directory without permission): before Hydra fails creating its log directory there."""
    try:
        check_writable(Path(str(config.out_root)) / str(config.sweep_name))
    except QfeatError as err:
        log.error("qfeat: error: %s", err)
        raise SystemExit(2) from err


class OutcomeReport(Callback):
    """Checks the output directory first; after a multirun, prints every job's outcome and
    exits 1 if any failed."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output(config)
        for stale in Path(str(config.hydra.sweep.dir)).glob(f"*/{OUTCOME_FILE}"):
            stale.unlink()  # a reused sweep dir must not report an earlier launch's jobs

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        outcomes = read_outcomes(sweep_dir)
        if not outcomes:
            log.error("qfeat: no job of this launch reported an outcome under %s", sweep_dir)
            raise SystemExit(1)
        failed = [o for o in outcomes if o.status == FAILED]
        log.info("outcomes of %d jobs (%s):\n%s", len(outcomes), sweep_dir, outcome_table(outcomes))
        if failed:
            log.error("qfeat: %d of %d jobs failed", len(failed), len(outcomes))
            raise SystemExit(1)
