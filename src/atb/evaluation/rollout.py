"""Champion vs challenger on the forecasts a server logged, once their targets are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from atb.evaluation.metrics import diebold_mariano


def rollout_report(rows: list[dict], close: pd.Series) -> list[dict]:
    """Per version, arm and horizon: forecasts with a known target, RMSE over the naive forecast's,
    and (challenger) the Diebold-Mariano p-value against the champion on the same requests."""
    if not rows:
        raise ValueError("the forecast log holds no forecasts for this symbol")
    bar = pd.Series(close.index).diff().mode().iloc[0]
    errors: dict[tuple[str, str, int], dict[str, tuple[float, float]]] = {}
    for row in rows:
        origin = pd.Timestamp(row["origin_time"])
        for h, forecast in zip(row["horizons"], row["forecast"]):
            target_time = origin + h * bar
            if target_time not in close.index:
                continue
            actual = float(close.loc[target_time])
            errors.setdefault((row["version"], row["arm"], h), {})[row["request_id"]] = (forecast - actual, row["origin_close"] - actual)
    champion = {(h): e for (version, arm, h), e in errors.items() if arm == "champion"}
    out = []
    for (version, arm, h), by_request in sorted(errors.items(), key=lambda kv: (kv[0][2], kv[0][1] != "champion", kv[0][0])):
        model, naive = (np.array(v) for v in zip(*by_request.values()))
        rmse_naive = math.sqrt(float(np.mean(naive**2)))
        pvalue = math.nan
        if arm == "challenger" and h in champion:
            shared = sorted(set(by_request) & set(champion[h]))
            if len(shared) > h:
                pvalue = diebold_mariano(np.array([by_request[r][0] for r in shared]), np.array([champion[h][r][0] for r in shared]), h)[1]
        out.append({
            "version": version, "arm": arm, "horizon": h, "n": len(model),
            "rmse_ratio": math.sqrt(float(np.mean(model**2))) / rmse_naive if rmse_naive > 0 else math.nan, "dm_pvalue": pvalue,
        })
    if not out:
        raise ValueError("no logged forecast has a known target yet: give candles that reach past the forecast origins (--data)")
    return out
