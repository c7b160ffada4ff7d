import numpy as np
import pytest
import torch

from guanxi.features.circles import CircleConfig, build_circles, circle_summary
from guanxi.features.coded import CodedEvents, coded_from_dataset
from guanxi.features.graph import build_graph, event_pairs
from guanxi.features.ids import IdMap
from guanxi.features.load_split import load_split_dir
from guanxi.features.ties import estimate_tie_strength, spearman_with_truth, undirected_pair_codes
from guanxi.training.adjacency import normalized_adjacency


def _truth_codes(world, data):
    ids = IdMap(data.user_ids.to_numpy(zero_copy_only=False), data.item_ids.to_numpy(zero_copy_only=False))
    t = world.truth_ties
    return ids.user_index(t["user_id"]), ids.user_index(t["friend_id"]), t["strength"].to_numpy()


def test_tie_strength_recovers_the_truth_on_a_world(tiny_world):
    data = coded_from_dataset(tiny_world.dataset)
    a, b, strength, report = estimate_tie_strength(data)
    assert report.label == "later_window"
    assert spearman_with_truth(a, b, strength, *_truth_codes(tiny_world, data), data.num_users) > 0.5
    assert report.auc > report.heuristic_auc - 0.01
    assert ((strength >= 0) & (strength <= 1)).all()
    assert len(a) == len(tiny_world.truth_ties)


def test_undirected_pairs_dedupes_and_marks_reciprocated():
    a, b, both = undirected_pair_codes(np.array([0, 1, 0]), np.array([1, 0, 2]), 3)
    assert list(zip(a, b, both)) == [(0, 1, True), (0, 2, False)]


def test_circles_follow_thresholds_and_cap():
    # users a..e = 0..4; pairs a-b .9, a-c .8, a-d .6, a-e .2, b-c .1
    user, contact, strength, inner = build_circles(np.array([0, 0, 0, 0, 1]), np.array([1, 2, 3, 4, 2]),
                                                   np.array([0.9, 0.8, 0.6, 0.2, 0.1]),
                                                   CircleConfig(inner_min_strength=0.5, inner_max_size=2))
    of_a = user == 0
    assert contact[of_a].tolist() == [1, 2, 3, 4]                      # strongest first
    assert inner[of_a].tolist() == [True, True, False, False]          # cap 2, then threshold
    of_b = user == 1
    assert dict(zip(contact[of_b].tolist(), inner[of_b].tolist())) == {0: True, 2: False}
    summary = circle_summary(user, strength, inner, num_users=6)
    # inner sizes: a 2 (b, c), b 1 (a), c 1 (a), d 1 (a), e 0, one user with no contacts 0
    assert summary["inner_mean"] == pytest.approx(5 / 6)
    assert summary["no_inner_share"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="inner_min_strength"):
        CircleConfig(inner_min_strength=2.0)


def test_hetero_graph_of_a_world_is_typed_and_consistent(tiny_world):
    ds = tiny_world.dataset
    data = coded_from_dataset(ds)
    u, v, s = _truth_codes(tiny_world, data)
    g = build_graph(data, build_circles(u, v, s))
    assert {"official_account", "merchant", "content", "user"} <= set(g.node_types)
    assert ("user", "pay", "merchant") in g.edge_types
    assert ("user", "follow", "official_account") in g.edge_types
    assert ("content", "published_by", "official_account") in g.edge_types
    assert ("user", "tie", "user") not in g.edge_types       # circles stand for the ties
    inner = g["user", "inner", "user"]
    assert inner.edge_weight.min() >= 0.5
    n_edges = sum(g[e].edge_index.shape[1] for e in g.edge_types if e[0] == "user" and e[2] != "user")
    assert n_edges == ds.train.groupby(["user_id", "item_id", "type"]).ngroups
    total_items = sum(g[k].num_nodes for k in ("official_account", "merchant", "content"))
    assert total_items == data.num_items
    assert torch.cat([g[k].item_idx for k in ("official_account", "merchant", "content")]).unique().numel() == total_items


def test_graph_builds_without_kinds_types_or_times(tmp_path):
    (tmp_path / "train.tsv").write_text("user\titem\nu1\ti1\nu2\ti1\nu2\ti2\n")
    (tmp_path / "test.tsv").write_text("user\titem\nu1\ti2\n")
    (tmp_path / "social.tsv").write_text("user\tfriend\nu1\tu2\n")
    g = build_graph(coded_from_dataset(load_split_dir(tmp_path)), None)
    assert g.edge_types == [("user", "view", "content"), ("user", "tie", "user")]
    assert g["user", "view", "content"].edge_index.shape == (2, 3)
    assert g["user", "tie", "user"].edge_index.tolist() == [[0, 1], [1, 0]]   # both directions


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


def test_event_pairs_drop_unknown_and_duplicates_and_keep_types():
    ev = CodedEvents(np.array([0, 0, 1, -1, 1]), np.array([1, 1, 0, 0, 0]), np.array([0, 3, 1, 0, 1], np.int8),
                     np.full(5, np.nan))
    u, i, bits = event_pairs(ev, num_items=2)
    assert list(zip(u, i, bits)) == [(0, 1, 0b1001), (1, 0, 0b10)]
