"""Experiment tracking in MLflow: the store, the link from a run (or sweep) directory to its MLflow run, what
training, evaluation and reports log there. Imported only where `logger=mlflow` (or a linked run) asks for it;
every failure to reach the tracker is one warning line, never a failed run."""
