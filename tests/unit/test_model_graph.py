"""The model's edges taken from the typed graph (via ``to_homogeneous``) are the edges the config asks for."""
import numpy as np
import pyarrow as pa
import torch

from guanxi.features.coded import CodedDataset, CodedEvents
from guanxi.features.graph import build_graph
from guanxi.features.schema import ITEM_EVENT_TYPES
from guanxi.training.adjacency import model_graph, normalized_adjacency
from guanxi.training.config import TrainConfig

NO_EVENTS = CodedEvents(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0))
# item 0 an official account, item 1 content it published, item 2 a merchant
TYPES = ["view", "like", "pay", "impression", "follow"]
TRAIN = CodedEvents(np.array([0, 0, 0, 1, 2], np.int32), np.array([1, 1, 2, 2, 0], np.int32),
                    np.array([ITEM_EVENT_TYPES.index(t) for t in TYPES], np.int8), np.full(5, np.nan))


def _data() -> CodedDataset:
    return CodedDataset("t", pa.array(["u0", "u1", "u2"]), pa.array(["oa", "post", "shop"]),
                        np.array([0, 2, 1], np.int8), np.array([False, False, True]), np.array([-1, 0, -1], np.int32),
                        np.array([0, 0], np.int32), np.array([1, 2], np.int32), np.zeros(0, np.int32),
                        np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0), TRAIN, NO_EVENTS, NO_EVENTS)


CIRCLES = (np.array([0, 0, 1, 2]), np.array([1, 2, 0, 0]), np.array([0.8, 0.4, 0.8, 0.4]),
           np.array([True, False, False, False]))   # u0 holds u1 inner, u1 holds u0 outer


def test_guanxi_edges_weigh_types_circles_and_ownership():
    c = TrainConfig()
    got = model_graph(c, build_graph(_data(), CIRCLES))
    assert list(zip(got.pair_user, got.pair_item)) == [(0, 1), (0, 2), (1, 2), (2, 0)]
    # strongest type per pair (like 1.5 over view), an impression-only pair weighs 1
    w = np.array([1.5, 2.0, 1.0, 2.0], np.float32)
    s01 = (c.inner_weight * 0.8 + c.outer_weight * 0.8) / 2      # the mean of the two views of the tie
    s02 = c.outer_weight * 0.4
    want = normalized_adjacency(3, 3, got.pair_user, got.pair_item, w, np.array([0, 0, 1, 2]),
                                np.array([1, 2, 0, 0]), np.array([s01, s02, s01, s02], np.float32),
                                np.array([1]), np.array([0]), np.array([c.owner_weight], np.float32))
    torch.testing.assert_close(got.adjacency.to_dense(), want.to_dense())
    assert got.social[0, 1] == np.float32(s01) and got.social[2, 0] == np.float32(s02)


def test_lightgcn_s_takes_every_tie_once_with_weight_one():
    got = model_graph(TrainConfig(model="lightgcn-s"), build_graph(_data(), None))
    want = normalized_adjacency(3, 3, got.pair_user, got.pair_item, None, np.array([0, 0, 1, 2]),
                                np.array([1, 2, 0, 0]))
    torch.testing.assert_close(got.adjacency.to_dense(), want.to_dense())
    assert got.support is None


def test_support_spreads_contacts_engagement():
    c = TrainConfig(social_score="on")
    got = model_graph(c, build_graph(_data(), CIRCLES))
    support = got.support.toarray()
    # u1 sees u0 (outer, 0.8): u0 engaged with items 1 and 2
    np.testing.assert_allclose(support[1], np.log1p([0, c.outer_weight * 0.8, c.outer_weight * 0.8]), rtol=1e-6)
    assert model_graph(TrainConfig(model="lightgcn"), build_graph(_data(), None)).social.nnz == 0
