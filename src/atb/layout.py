"""The files of a registry version directory, named in one place for the writer
(the training workflows) and the reader (serving).

    {version}/model/             the model's own files (params.json + weights)
    {version}/transform.json     selected features, scaler, lookback, target
    {version}/features.json      what inference needs to rebuild the features
    {version}/gate.json          the skill gate of a single model (absent: served ungated)
    {version}/ensemble.json      an ensemble's bases and combination (ensembles only)
    {version}/monitor.json       what monitoring compares against (input, forecast and error references)
    {version}/predictions.parquet  per-origin validation and test forecasts, realised prices and baselines
    {version}/training_report.json
    {version}/plots/*.png
    {version}/metadata.json      written by the registry: metadata and SHA-256 manifest
"""

MODEL_DIR = "model"
TRANSFORM_FILE = "transform.json"
FEATURES_FILE = "features.json"
GATE_FILE = "gate.json"
ENSEMBLE_FILE = "ensemble.json"
REPORT_FILE = "training_report.json"
MONITOR_FILE = "monitor.json"
PREDICTIONS_FILE = "predictions.parquet"
PLOTS_DIR = "plots"
METADATA_FILE = "metadata.json"
