"""The plan's jobs: each a normal qfeat job (keyed, cached, resumable: a rerun answers a
complete job from its files), read back as the features' r and the ΔPPL the search needs."""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.base.errors import QfeatError
from sweep.config.compose import compose_config
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE
from sweep.results.summary import Summary

FEATURE_INDEX = ["sae", "feature"]


@dataclass(frozen=True)
class JobOutcome:
    """One job's result as the search reads it: r of the active features, in `index` order."""

    key: str
    out: Path
    summary: Summary
    r: np.ndarray
    skipped: bool

    @property
    def delta_ppl(self) -> float:
        """The job's ΔPPL."""
        return self.summary.metrics.delta_ppl


class JobRunner:
    """Runs the plan's jobs on one base config, printing one progress line per job."""

    def __init__(self, base_overrides: list[str]) -> None:
        self.base = base_overrides
        self.index: pd.MultiIndex | None = None  # the active features (the FP's: one set)
        self.done = 0

    def __call__(self, compression: list[str], label: str) -> JobOutcome:
        """Run (or read back) the job with these compression overrides."""
        cfg = compose_config([*self.base, *compression])
        plan = plan_job(cfg)
        start = time.perf_counter()
        result = run(cfg, plan)
        frame = pd.read_parquet(plan.out / FEATURES_FILE)
        active = frame[frame["active"]].set_index(FEATURE_INDEX)["r"]
        if self.index is None:
            self.index = active.index
        elif not active.index.equals(self.index):
            raise QfeatError(f"job {plan.key} measured another set of active features")
        r = np.nan_to_num(active.to_numpy(dtype=float), nan=0.0)  # undefined r: no survival
        self.done += 1
        m = result.summary.metrics
        how = "cached" if result.skipped else f"{time.perf_counter() - start:.1f}s"
        print(
            f"[{self.done:3d}] {label:<28} survived {100 * m.frac_survived:5.1f}%  "
            f"min r {r.min():.4f}  ΔPPL {m.delta_ppl:+.4f}  ({how}, {plan.key})",
            flush=True,
        )
        return JobOutcome(plan.key, plan.out, result.summary, r, result.skipped)

    def watched(self, watch: list[int]) -> np.ndarray:
        """[F] bool: the active features whose id is watched (in every SAE)."""
        assert self.index is not None, "run a job first"
        ids = self.index.get_level_values("feature")
        missing = sorted(set(watch) - set(ids))
        if missing:
            raise QfeatError(
                f"watched features {missing} are not active on these tokens; measure more text "
                "(data.n_sequences) or drop them"
            )
        return np.isin(ids, watch)
