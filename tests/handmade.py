"""Bundles written by hand (no training) for tests and benchmarks: see :func:`handmade_bundle`."""
from __future__ import annotations

from pathlib import Path


def handmade_bundle(world_dir: Path, out: Path, rank: int, svd: bool = True, intent: str = "filter") -> Path:
    """A bundle written by hand, no training: the world's tables, tie strength and circles as
    training prepares them, and rank-``rank`` truncated-SVD vectors of the train interactions (a
    closed-form ranker, so slates are sensible) in place of learnt embeddings; ``svd=False``: seeded
    random vectors instead (for memory and speed at sizes where the SVD would take long).
    ``intent``: the current-intent estimator, ``filter`` (what training writes) or ``logistic``
    (what older bundles hold)."""
    import numpy as np
    from scipy.sparse.linalg import svds

    from guanxi.bundle import write_bundle
    from guanxi.features.circles import circles_table
    from guanxi.features.datasets import load_coded
    from guanxi.training.bundle import known_history
    from guanxi.training.config import TrainConfig
    from guanxi.training.train import prepare

    config = TrainConfig()
    prep = prepare(load_coded(world_dir), config)
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
    history, bits = known_history(prep)
    meta, arrays = _intent_profile(prep, intent)
    return write_bundle(out, model_name="guanxi", config=config.to_dict(), idmap=prep.idmap, vectors=vectors,
                        items=prep.data.items_frame(), circles=circles_table(prep.data.user_ids, prep.circles),
                        history=history,
                        popularity=prep.popularity.numpy(), metrics={"recall_at_20": 0.0},
                        history_types=bits, extra_meta={"intent": meta}, intent=arrays)


def _intent_profile(prep, estimator: str) -> tuple[dict, dict]:
    """An intent profile as training writes one (training/intent_fit.py), with fixed weights instead
    of fitted ones: long-term mixes and the estimator's state from train + valid."""
    import numpy as np

    from guanxi.features.coded import CodedEvents
    from guanxi.features.intent import IntentTable, counts_toward_mix
    from guanxi.features.intent_filter import IntentFilter
    from guanxi.features.intent_profile import HALF_LIVES_H, decayed_stack, long_term_mix
    from guanxi.training.intent_fit import filtered

    table = IntentTable.load()
    known = CodedEvents.concat([prep.data.train, prep.data.valid])
    known = known.take(counts_toward_mix(known.type))
    intent = table.of_events(known.type, prep.data.item_kind[known.item], prep.data.commercial[known.item])
    user, contact, strength, inner = prep.circles
    mixes = long_term_mix(known.user, intent, prep.idmap.num_users,
                          (user[inner], contact[inner], strength[inner].astype(np.float64)))
    ref = float(np.nanmax(known.ts))
    meta = {"claims": True, "reason": "hand-made", "beta": 1.0, "eps": 0.05, "population": mixes.population,
            "reference_ts": ref, "table": table.to_dict()}
    arrays = {"mix": mixes.mix.astype(np.float32), "source": mixes.source}
    if estimator == "filter":
        flt = IntentFilter(0.05, 0.7, 1 / 21)         # about what a fit finds on a world
        state, last_ts, propensity, _ = filtered(flt, known.user, intent, known.ts, mixes.mix)
        meta.update(flt.to_dict())
        arrays.update(state=state.astype(np.float32), last_ts=last_ts, propensity=propensity.astype(np.float32))
        return meta, arrays
    e, t = decayed_stack(known.user, intent, known.ts, ref, prep.idmap.num_users)
    # weights that read the week's share against the long-term mix, as a validation fit did
    meta.update(coef=[0.5] + [0.0, 0.0, 2.0, 1.5, 0.0] + [0.0] * len(HALF_LIVES_H), intercept=-1.5)
    arrays.update(economic=e.astype(np.float32), total=t.astype(np.float32))
    return meta, arrays
