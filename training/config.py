"""Training config: a frozen pydantic model filled from YAML and ``--set key=value`` overrides.

The defaults ship inside the package (``training/default.yaml``), so they do not depend on the
working directory. An unknown key is a ``ValueError`` listing the valid keys.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from guanxi.yaml_config import FrozenConfig, load_yaml_config

MODELS = ("guanxi", "lightgcn", "lightgcn-s", "bpr", "popular", "ease", "itemknn")
ITEM_MODELS = ("ease", "itemknn")      # item-item baselines (training/item_models.py): not servable


def _numbers(text: object, cast: type) -> tuple:
    """A comma-separated config value (``"1, 2,4"``) as a tuple of ``cast``; empty text gives ()."""
    return tuple(cast(f) for f in str(text).replace(" ", "").split(",") if f)


class TrainConfig(FrozenConfig):
    """Every key is documented in ``training/default.yaml`` and docs/model.md."""

    model: str = "guanxi"
    dim: int = 64
    layers: int = 3
    loss: str = "auto"
    negatives: int = 1024
    temperature: float = 0.15
    item_bias: bool = True
    lr: float = 0.01
    weight_decay: float = 1e-4
    batch_size: int = 1024
    max_epochs: int = 300
    patience: int = 5
    eval_every: int = 1
    valid_fraction: float = 0.1
    valid_max_per_user: int = 0
    valid_max_users: int = 20_000
    seed: int = 0
    inner_weight: float = 1.0
    outer_weight: float = 0.3
    use_social: bool = True
    use_tie_strength: bool = True
    use_circles: bool = True
    use_event_types: bool = True
    social_gate: bool = False
    social_score: str = "auto"
    owner_weight: float = 0.5
    inner_min_strength: float = 0.5
    inner_max_size: int = 15
    time_budget: float = 1440.0
    device: str = "cpu"
    fanouts: str = ""
    ease_max_items: int = 20_000
    user_batch: int = 0
    sample_items: int = 0
    support_scales: str = "1,2,4,8,16,32"
    support_kind_guard: float = 0.0
    listed_weights: str = "0,0.1,0.2,0.4,0.8,1.6,3.2"
    intent: bool = True
    intent_table: str = ""

    @property
    def support_scale_list(self) -> tuple[float, ...]:
        """``support_scales`` as numbers (empty: keep the learnt support weight)."""
        return _numbers(self.support_scales, float)

    @property
    def listed_weight_list(self) -> tuple[float, ...]:
        """``listed_weights`` as numbers."""
        return _numbers(self.listed_weights, float)

    @property
    def fanout_list(self) -> tuple[int, ...]:
        """``fanouts`` as integers (empty: full-graph steps)."""
        return _numbers(self.fanouts, int)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        if self.loss not in ("auto", "bpr", "softmax", "multinomial"):
            raise ValueError(f"loss must be auto, bpr, softmax or multinomial, got {self.loss!r}")
        for name in ("dim", "batch_size", "max_epochs", "patience", "eval_every", "negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0, got {self.layers}")
        if self.sample_items < 0:
            raise ValueError(f"sample_items must be >= 0 (0 = the whole catalogue while it fits), got {self.sample_items}")
        if self.user_batch < 0:
            raise ValueError(f"user_batch must be >= 0 (0 = sized to the catalogue), got {self.user_batch}")
        if self.valid_max_users < 0:
            raise ValueError(f"valid_max_users must be >= 0 (0 = every validation user), got {self.valid_max_users}")
        if self.valid_max_per_user < 0:
            raise ValueError(f"valid_max_per_user must be >= 0 (0 = no cap), got {self.valid_max_per_user}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError(f"lr and temperature must be > 0, got {self.lr}, {self.temperature}")
        if self.social_score not in ("auto", "on", "off", "listed"):
            raise ValueError(f"social_score must be auto, on, off or listed, got {self.social_score!r}")
        try:
            listed = self.listed_weight_list
        except ValueError:
            raise ValueError(f"listed_weights must be comma-separated numbers such as 0,0.5,1, got {self.listed_weights!r}") from None
        if not listed or any(not w >= 0 for w in listed):
            raise ValueError(f"listed_weights must be one or more numbers >= 0, got {self.listed_weights!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be cpu, cuda or auto, got {self.device!r}")
        try:
            scales = self.support_scale_list
        except ValueError:
            raise ValueError(f"support_scales must be comma-separated numbers such as 1,2,4, got {self.support_scales!r}") from None
        if any(not s > 0 for s in scales):
            raise ValueError(f"support_scales must all be > 0, got {self.support_scales!r}")
        if not 0.0 <= self.support_kind_guard <= 1.0:
            raise ValueError(f"support_kind_guard must be in [0, 1] (recall@20, absolute), got {self.support_kind_guard}")
        try:
            fanouts = self.fanout_list
        except ValueError:
            raise ValueError(f"fanouts must be comma-separated integers such as 15,10,5, got {self.fanouts!r}") from None
        if fanouts and self.resolved_loss == "multinomial":
            raise ValueError("fanouts (sampled sub-graph steps) train pair losses; use loss: softmax or drop fanouts")
        if fanouts and self.social_gate:
            raise ValueError("social_gate gates full-graph propagation; drop fanouts or set social_gate: false")
        if fanouts and (len(fanouts) != self.layers or min(fanouts) < 1):
            raise ValueError(f"fanouts needs one integer >= 1 per layer ({self.layers}), got {self.fanouts!r}")
        return self

    def users_per_step(self, num_users: int) -> int:
        """Users per multinomial step: ``user_batch``, or (0) a sixteenth of the users with training
        items (sixteen steps an epoch), at least 32."""
        if self.user_batch:
            return self.user_batch
        return int(max(32, -(-num_users // 16)))

    def items_per_step(self, users_per_step: int, num_items: int) -> int:
        """Catalogue items a multinomial step scores: ``sample_items`` when set, else all of them
        while the ``[B, I]`` score block stays within 2^25 floats (128 MB), else a shared uniform
        sample that fits (at least 1,024)."""
        if self.sample_items:
            return min(self.sample_items, num_items)
        if users_per_step * num_items <= 2**25:
            return num_items
        return int(min(num_items, max(1024, 2**25 // users_per_step)))

    @property
    def resolved_loss(self) -> str:
        if self.loss != "auto":
            return self.loss
        if self.model != "guanxi":
            return "bpr"
        return "softmax" if self.fanouts else "multinomial"   # sampled sub-graphs train pair losses


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``key=value`` overrides."""
    return load_yaml_config(TrainConfig(), "guanxi.training", "default.yaml", path, overrides, what="config")
