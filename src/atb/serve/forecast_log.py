"""Every served forecast, appended to a store (SQLite by default, or any SQLAlchemy URL)
before the answer leaves the server, so that realised errors per version and arm can be
computed once the targets are known (`atb models rollout SYMBOL --report`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import sqlalchemy as sa

METADATA = sa.MetaData()
FORECASTS = sa.Table(
    "forecasts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("logged_at", sa.Float, nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("returned", sa.Boolean, nullable=False),  # False: a shadow forecast, logged only
    sa.Column("origin_time", sa.String(40), nullable=False),
    sa.Column("origin_close", sa.Float, nullable=False),
    sa.Column("horizons", sa.Text, nullable=False),  # JSON list of bars
    sa.Column("forecast", sa.Text, nullable=False),  # JSON list of prices, one per horizon
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("bases", sa.Text, nullable=True),  # an ensemble's base forecasts: JSON {base: [log return per horizon]}
)


def default_log_url(directory: Path) -> str:
    return f"sqlite:///{(directory / 'forecasts.db').resolve()}"


class ForecastLog:
    """Append-only forecast store; `append` returns once the rows are committed."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # several uvicorn workers may append to one SQLite file: wait for its lock instead of failing
        self.engine = sa.create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
        if self.engine.dialect.name == "sqlite":
            with self.engine.begin() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        METADATA.create_all(self.engine)
        if "bases" not in {column["name"] for column in sa.inspect(self.engine).get_columns("forecasts")}:  # a log written before
            with self.engine.begin() as connection:
                connection.exec_driver_sql("ALTER TABLE forecasts ADD COLUMN bases TEXT")

    def append(self, request_id: str, symbol: str, input_hash: str, answers: list[tuple[str, bool, dict]]) -> None:
        """One row per arm that forecast: (arm, returned to the client, forecast dict)."""
        now = time.time()
        rows = [
            {
                "request_id": request_id, "logged_at": now, "symbol": symbol, "version": forecast["model"], "arm": arm,
                "returned": returned, "origin_time": forecast["origin_time"], "origin_close": forecast["origin_close"],
                "horizons": json.dumps([row["horizon"] for row in forecast["horizons"]]),
                "forecast": json.dumps([row["forecast"] for row in forecast["horizons"]]), "input_hash": input_hash,
                "bases": json.dumps(forecast["bases"]) if "bases" in forecast else None,
            }
            for arm, returned, forecast in answers
        ]
        with self.engine.begin() as connection:
            connection.execute(FORECASTS.insert(), rows)

    def rows(self, symbol: str | None = None, version: str | None = None) -> list[dict]:
        query = FORECASTS.select().order_by(FORECASTS.c.id)
        if symbol is not None:
            query = query.where(FORECASTS.c.symbol == symbol)
        if version is not None:
            query = query.where(FORECASTS.c.version == version)
        with self.engine.connect() as connection:
            return [
                {**row._asdict(), "horizons": json.loads(row.horizons), "forecast": json.loads(row.forecast),
                 "bases": json.loads(row.bases) if row.bases else None}
                for row in connection.execute(query)
            ]
