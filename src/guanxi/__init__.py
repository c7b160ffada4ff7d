"""guanxi: trust-aware social recommendation.

Layers, each importing only those below it (enforced by import-linter, see pyproject.toml):

    guanxi.app        the CLI, retraining, promote/rollback/status/forget, the demo
    guanxi.serving    the BentoML service and the exposure policy (no torch, no PyG)
    guanxi.training   the graph model, baselines, evaluation, MLflow tracking
    guanxi.bundle, guanxi.registry, guanxi.yaml_config
                      the contracts between them: what training writes and serving reads
    guanxi.features   data: schema, loaders, the synthetic world, tie strength, circles, graph
"""
