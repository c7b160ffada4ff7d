"""guanxi: trust-aware social recommendation.

Layers, each importing only those below it (enforced by import-linter, see pyproject.toml), each a
top-level folder of the checkout mapped into this namespace:

    guanxi.app        app/        the CLI, retraining, promote/rollback/status/forget, the demo
    guanxi.serving    serving/    the BentoML service and the exposure policy (no torch, no PyG)
    guanxi.training   training/   the graph model, baselines, evaluation, MLflow tracking
    guanxi.bundle, guanxi.registry, guanxi.yaml_config
                      contracts/  the contracts between them: what training writes and serving reads
                                  (this package's own folder)
    guanxi.features   features/   data: schema, loaders, the synthetic world, tie strength, circles, graph
"""
