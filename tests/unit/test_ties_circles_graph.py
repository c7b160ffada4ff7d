import numpy as np
import pandas as pd
import pytest
import torch

from guanxi.features.circles import CircleConfig, build_circles, circle_summary
from guanxi.features.graph import build_hetero_graph, interaction_pairs, normalized_adjacency
from guanxi.features.ids import IdMap
from guanxi.features.load_split import load_split_dir
from guanxi.features.ties import estimate_tie_strength, undirected_pairs


def test_tie_strength_recovers_the_truth_on_a_world(tiny_world):
    strengths, report = estimate_tie_strength(tiny_world.dataset, truth=tiny_world.truth_ties)
    assert report.label == "later_window"
    assert report.spearman_truth > 0.5
    assert report.auc > report.heuristic_auc - 0.01
    assert strengths["strength"].between(0, 1).all()
    assert len(strengths) == len(tiny_world.truth_ties)


def test_undirected_pairs_dedupes_and_marks_reciprocated():
    from guanxi.features.schema import Dataset, empty_events, empty_pair_events
    users = pd.DataFrame({"user_id": ["a", "b", "c"]})
    ties = pd.DataFrame({"user_id": ["a", "b", "a"], "friend_id": ["b", "a", "c"]})
    ds = Dataset("t", users, None, ties, empty_pair_events(), empty_events(), empty_events(), empty_events())
    a, b, both, _ = undirected_pairs(ds)
    assert list(zip(a, b, both)) == [(0, 1, True), (0, 2, False)]


def test_circles_follow_thresholds_and_cap():
    s = pd.DataFrame({"user_id": ["a"] * 4 + ["b"], "friend_id": ["b", "c", "d", "e", "c"],
                      "strength": [0.9, 0.8, 0.6, 0.2, 0.1]})
    c = build_circles(s, CircleConfig(inner_min_strength=0.5, inner_max_size=2))
    a = c[c["user_id"] == "a"]
    assert a["friend_id"].tolist() == ["b", "c", "d", "e"]            # strongest first
    assert a["circle"].tolist() == ["inner", "inner", "outer", "outer"]  # cap 2, then threshold
    b = c[c["user_id"] == "b"]
    assert dict(zip(b["friend_id"], b["circle"])) == {"a": "inner", "c": "outer"}
    summary = circle_summary(c, num_users=6)
    # inner sizes: a 2 (b, c), b 1 (a), c 1 (a), d 1 (a), e 0, one user with no contacts 0
    assert summary["inner_mean"] == pytest.approx(5 / 6)
    assert summary["no_inner_share"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="inner_min_strength"):
        CircleConfig(inner_min_strength=2.0)


def test_hetero_graph_of_a_world_is_typed_and_consistent(tiny_world):
    ds = tiny_world.dataset
    idmap = IdMap.from_dataset(ds)
    circles = build_circles(tiny_world.truth_ties[["user_id", "friend_id", "strength"]])
    g = build_hetero_graph(ds, idmap, circles)
    assert {"official_account", "merchant", "content", "user"} <= set(g.node_types)
    assert ("user", "pay", "merchant") in g.edge_types
    assert ("user", "follow", "official_account") in g.edge_types
    assert ("content", "published_by", "official_account") in g.edge_types
    inner = g["user", "inner", "user"]
    assert inner.edge_weight.min() >= 0.5
    n_edges = sum(g[e].edge_index.shape[1] for e in g.edge_types if e[0] == "user" and e[2] != "user")
    assert n_edges == ds.train.groupby(["user_id", "item_id", "type"]).ngroups
    total_items = sum(g[k].num_nodes for k in ("official_account", "merchant", "content"))
    assert total_items == idmap.num_items
    assert torch.cat([g[k].item_idx for k in ("official_account", "merchant", "content")]).unique().numel() == total_items


def test_graph_builds_without_kinds_types_or_times(tmp_path):
    (tmp_path / "train.tsv").write_text("user\titem\nu1\ti1\nu2\ti1\nu2\ti2\n")
    (tmp_path / "test.tsv").write_text("user\titem\nu1\ti2\n")
    (tmp_path / "social.tsv").write_text("user\tfriend\nu1\tu2\n")
    ds = load_split_dir(tmp_path)
    idmap = IdMap.from_dataset(ds)
    g = build_hetero_graph(ds, idmap, None)
    assert g.edge_types == [("user", "view", "content")]
    assert g["user", "view", "content"].edge_index.shape == (2, 3)


def test_normalized_adjacency_is_symmetric_and_normalised():
    u = np.array([0, 0, 1])
    i = np.array([0, 1, 1])
    adj = normalized_adjacency(2, 2, u, i, uu_src=np.array([0, 1]), uu_dst=np.array([1, 0]))
    assert adj.layout == torch.sparse_csr
    dense = adj.to_dense()
    assert torch.allclose(dense, dense.T)
    a = np.zeros((4, 4))
    for x, y in [(0, 2), (0, 3), (1, 3), (0, 1)]:
        a[x, y] = a[y, x] = 1
    d = a.sum(1)
    expected = a / np.sqrt(np.outer(d, d))
    assert np.allclose(dense.numpy(), expected, atol=1e-6)


def test_interaction_pairs_drops_unknown_and_duplicates():
    idmap = IdMap(["u1", "u2"], ["a", "b"])
    ev = pd.DataFrame({"user_id": ["u1", "u1", "u2", "zz"], "item_id": ["b", "b", "a", "a"]})
    u, i = interaction_pairs(ev, idmap)
    assert list(zip(u, i)) == [(0, 1), (1, 0)]
