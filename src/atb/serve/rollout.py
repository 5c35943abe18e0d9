"""Champion/challenger: which arm answers a request.

A rollout is stored in the registry beside the symbol's stages (`rollout.json`,
made by `registry.rollout_record`):
`{"challenger": "SYMBOL/type/vNNNN", "mode": "shadow" | "canary", "share": 0.1}`.
Shadow: the challenger is computed and logged, the champion answers. Canary: a
stable share of request keys is answered by the challenger; the same key always
gets the same arm (a hash of symbol and key, not a random draw).
"""

from __future__ import annotations

import hashlib

CHAMPION, CHALLENGER = "champion", "challenger"


def key_fraction(symbol: str, key: str) -> float:
    """A number in [0, 1) fixed by (symbol, key): the sticky draw of a request key."""
    digest = hashlib.sha256(f"{symbol}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def answering_arm(rollout: dict | None, symbol: str, key: str) -> str:
    """The arm whose forecast is returned for this request."""
    if rollout is None or rollout["mode"] != "canary":
        return CHAMPION
    return CHALLENGER if key_fraction(symbol, key) < rollout["share"] else CHAMPION
