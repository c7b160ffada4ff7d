"""Bundles written by hand (no training) for tests and benchmarks: see :func:`handmade_bundle`."""
from __future__ import annotations

from pathlib import Path


def handmade_bundle(world_dir: Path, out: Path, rank: int, svd: bool = True) -> Path:
    """A bundle written by hand, no training: the world's tables, tie strength and circles as
    training prepares them, and rank-``rank`` truncated-SVD vectors of the train interactions (a
    closed-form ranker, so slates are sensible) in place of learnt embeddings; ``svd=False``: seeded
    random vectors instead (for memory and speed at sizes where the SVD would take long)."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    from guanxi.bundle import write_bundle
    from guanxi.features.datasets import load_dataset
    from guanxi.features.graph import pair_types
    from guanxi.training.config import TrainConfig
    from guanxi.training.train import prepare

    config = TrainConfig()
    prep = prepare(load_dataset(str(world_dir)), config)
    rng = np.random.default_rng(rank)
    if svd:
        u, s, vt = svds(prep.train_csr.astype(np.float64), k=rank, random_state=0)
        root = np.sqrt(s)
        # A little seeded noise, as learnt embeddings have: users with no training rows get distinct
        # vectors too, so no ranking hangs on exact ties.
        users = u * root + rng.normal(0, 1e-3, u.shape)
        items = vt.T * root + rng.normal(0, 1e-3, vt.T.shape)
    else:
        users = rng.normal(0, 1, (prep.idmap.num_users, rank))
        items = rng.normal(0, 1, (prep.idmap.num_items, rank))
    # Unit rows over a temperature, as the model's cosine scores are (GraphRecommender.serving_vectors).
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    vectors = ((unit(users) / config.temperature).astype(np.float32), unit(items).astype(np.float32))
    pu, pi, bits = pair_types(pd.concat([prep.dataset.train, prep.dataset.valid], ignore_index=True), prep.idmap)
    history = sp.csr_matrix((np.ones(len(pu), np.float32), (pu, pi)),
                            shape=(prep.idmap.num_users, prep.idmap.num_items))
    return write_bundle(out, model_name="guanxi", config=config.to_dict(), idmap=prep.idmap, vectors=vectors,
                        items=prep.dataset.items, circles=prep.circles, history=history,
                        popularity=prep.popularity.numpy(), metrics={"recall_at_20": 0.0},
                        history_types=bits)
