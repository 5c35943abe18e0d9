"""The README's Python API example runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_python_api_example_runs(workdir):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    forecaster = namespace["forecaster"]
    assert set(namespace["metrics"]) == {"lstm", "lstm_raw", "naive", "drift"}
    assert (workdir / "loss.png").stat().st_size > 5000
    assert namespace["same"].predict()["horizons"] == forecaster.predict()["horizons"]
    assert namespace["model"].model_type == "tcn"
    assert namespace["tcn"].config.model.model_type == "tcn" and not namespace["tcn"].config.output.mlflow
