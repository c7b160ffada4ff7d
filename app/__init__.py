"""The application on top of every layer: the `guanxi` CLI, retraining, operations, the demo."""
