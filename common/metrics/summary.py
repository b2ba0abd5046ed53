"""Summaries over repeated runs, as papers report them (mean ± population std, np.std)."""
import numpy as np


def mean_std(results, count_key="repeats"):
    """[{metric: value}, ...] (one dict per run) -> {metric: mean, metric_std: np.std (several runs only),
    count_key: number of runs}."""
    if not results:
        raise ValueError("no results to summarise")
    out = {}
    for key in results[0]:
        values = np.array([r[key] for r in results], dtype=np.float64)
        out[key] = float(values.mean())
        if len(values) > 1:
            out[f"{key}_std"] = float(values.std())
    out[count_key] = len(results)
    return out
