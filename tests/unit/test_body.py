"""The /recommend body written as text parses to the same JSON as encoding the dict would give."""
from __future__ import annotations

import json

import numpy as np
import pytest

from guanxi.serving.body import SlateEncoder
from guanxi.serving.policy import SlateItem

IDS = np.array(['plain', 'quo"te', 'back\\slash', 'ünïcode 商户', 'tab\there', 'new\nline'], dtype=object)
KINDS = np.array(["content", "merchant", "official_account", "content", "merchant", "content"])
COMMERCIAL = np.array([False, True, False, False, True, False])


BLOCK = {"mix": {"social": 0.7, "economic": 0.3}, "source": "recent", "used": "auto", "filled": 0}


def _expected(user_id: str, version: str, fallback: str | None, slate: list[SlateItem]) -> dict:
    return {"user_id": user_id, "model_version": version, "fallback": fallback, "intent": BLOCK,
            "items": [{"item_id": str(IDS[s.item_idx]), "kind": str(KINDS[s.item_idx]), "score": round(s.score, 6),
                       "commercial": s.commercial, "intent": "economic" if s.commercial else "social",
                       "reason": {"type": s.reason, "contacts_engaged": s.contacts_engaged}}
                      for s in slate]}


@pytest.mark.parametrize("fallback", [None, "circle", "popular"])
def test_encoded_body_equals_the_dict_body(fallback):
    enc = SlateEncoder(IDS, KINDS, COMMERCIAL)
    rng = np.random.default_rng(0)
    slate = [SlateItem(int(i), float(rng.normal() * 10.0 ** rng.integers(-8, 4)), bool(COMMERCIAL[i]),
                       str(rng.choice(["inner_circle", "self_sought", "similar_taste", "popular"])), int(rng.integers(0, 9)))
             for i in rng.permutation(len(IDS))]
    for user, version in (("u1", "3"), ('we"ird\\ user ü', "local:bundle")):
        text = enc.encode(user, version, fallback, slate, BLOCK)
        assert json.loads(text) == _expected(user, version, fallback, slate)
        assert json.loads(enc.encode(user, version, fallback, [], BLOCK)) == _expected(user, version, fallback, [])
    assert enc.ids == [str(i) for i in IDS]
