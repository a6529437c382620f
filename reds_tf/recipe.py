"""Recipes: one YAML file per architecture x dataset under ``models/``, read into a frozen dataclass.

A recipe is data only (like nanoGPT's ``config/``). The top level is the short schedule; an optional
``schedules:`` mapping holds named overrides (e.g. ``full``) that are deep-merged over it. Unknown keys
and bad values raise ``RecipeError`` naming the key, the value and the fix, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import RedsError

IMPORTANCE_METHODS = ("taylor", "magnitude", "random")
MODES = ("reds", "dress")
BASELINES = ("magnitude", "random", "scratch")


class RecipeError(RedsError, ValueError):
    """A recipe file is missing, unreadable, or has an unknown key or a bad value."""


class ScheduleError(RecipeError):
    """The schedule asked for is not one of the recipe's."""


@dataclass(frozen=True)
class DataConfig:
    """Dataset split and batching."""

    validation_fraction: float = 0.1
    limit: int | None = None
    augment: bool = True
    batch_size: int = 128
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportanceConfig:
    """How units are ranked before permutation."""

    method: str = "taylor"
    num_batches: int = 100


@dataclass(frozen=True)
class SolveConfig:
    """Knapsack settings (see reds_tf.solve.solve)."""

    budgets: tuple[float, ...] = (0.25, 0.5, 0.75)
    #: per-level latency budgets in ms at ``clock_mhz`` (the device cost model's prediction, SIMD
    #: build); when given they set the levels, and ``budgets`` (MACs) is [] or one per latency
    latency_ms: tuple[float, ...] = ()
    clock_mhz: float = 64.0
    include_full: bool = True
    peak_memory_bytes: int | None = None
    solver: str = "cbc"
    time_limit: float = 60.0
    gap: float = 0.01
    strategy: str = "bottom_up"
    granularity: int = 1
    #: narrowest width a level may give any layer: a unit count (>= 1), or a fraction in (0, 1) of each
    #: layer's full width (rounded up) -- keeps the MILP from buying MACs with 7-unit bottlenecks
    min_width: float = 1


@dataclass(frozen=True)
class TrainConfig:
    """One training stage: epochs, base learning rate, warm-up and cosine decay to ``final_lr_fraction``."""

    epochs: int = 1
    learning_rate: float = 1e-3
    warmup_epochs: float = 0.0
    final_lr_fraction: float = 0.05
    patience: int | None = None


#: what the nested levels distil from (``FinetuneConfig.distill_teacher``)
DISTILL_TEACHERS = ("full", "pretrained")


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """Joint fine-tuning plus the reference's short gamma/beta-only BN stage.

    ``distill_weight`` w in [0, 1] (0 = off): in-place distillation -- the full level learns the labels,
    every smaller level ``(1 - w) * CE + w * T^2 * KL`` towards the full level's softened predictions at
    temperature ``distill_temperature`` (see ``train.distillation_loss``). ``distill_teacher:
    pretrained`` distils every level, the full one too, from the frozen dense pretrained model instead
    (it is more accurate than the full level becomes under joint fine-tuning).
    """

    bn_epochs: int = 1
    bn_learning_rate: float = 1e-3
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    distill_teacher: str = "full"


@dataclass(frozen=True)
class QATConfig(TrainConfig):
    """Quantisation-aware fine-tuning after the joint fine-tuning (``reds_tf.qat``); 0 epochs = off.

    All levels train through the rounding of their int8 conversion: kernels folded with their BN and
    rounded per channel with the full level's scales, activations rounded over the ranges the
    converter's calibration gives (``convert.activation_ranges``, ``convert.calibration_mode``), with
    the fine-tuning's loss weights and distillation. The float results stay the fine-tuned model's;
    the converter quantises ``model_qat.keras``.
    """

    epochs: int = 0
    learning_rate: float = 1e-4


@dataclass(frozen=True)
class BNConfig:
    """Per-level BN comparisons with the reference's shared, frozen BN.

    ``recalibrate``: copy the fine-tuned model with per-level statistics re-estimated on training
    data (cheap). ``per_level_finetune``: also jointly fine-tune a second copy whose BN layers keep
    per-level statistics and run in training mode (slimmable networks' switchable BN), then
    re-estimate them; costs one more fine-tuning run.
    """

    recalibrate: bool = True
    recalibration_batches: int = 50
    per_level_finetune: bool = False


@dataclass(frozen=True)
class ConvertConfig:
    """Conversion to int8 TFLite / device blob after training (when reds_tf.convert exists)."""

    enabled: bool = True
    calibration_samples: int = 200
    verify: bool = True
    # "shared": every level uses the full level's activation calibration (smaller blob and bundle);
    # "per_level": each level calibrated through itself. See README "Calibration modes".
    calibration_mode: str = "shared"
    # rescale channels so they share each int8 activation range evenly (function-preserving;
    # convert.equalize.channel_factors)
    equalize: bool = False
    # activation ranges: "minmax" (the converter's: min and max seen), "mse" or "percentile" (clipped;
    # convert.ranges.clip_ranges)
    activation_ranges: str = "minmax"


@dataclass(frozen=True)
class DressConfig:
    """DRESS (``mode: dress``) settings: nested row-sparse levels instead of nested widths.

    ``weight_bytes``: optional caps on every budget level's int8 weight bytes including the column
    indices (one per ``solve.budgets`` entry; [] = MACs only). ``min_count``: fewest weights any row
    keeps. Budgets, solver, gap, time limit, strategy and granularity come from ``solve``.
    """

    weight_bytes: tuple[float, ...] = ()
    min_count: int = 1


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. Build it with ``Recipe.load(path)`` or ``Recipe.from_dict(d)``."""

    name: str
    model: str
    dataset: str
    model_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    schedule: str = "short"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)
    solve: SolveConfig = field(default_factory=SolveConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    bn: BNConfig = field(default_factory=BNConfig)
    baselines: tuple[str, ...] = ()
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    mode: str = "reds"
    dress: DressConfig = field(default_factory=DressConfig)
    schedules: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def load(cls, path: str | Path, schedule: str | None = None, **overrides: Any) -> Recipe:
        """Read a recipe YAML; apply the named schedule section and ``overrides`` (dotted keys allowed,
        e.g. ``{"data.limit": 500}``)."""
        path = Path(path)
        if not path.is_file():
            here = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
            raise RecipeError(
                f"Recipe file not found. Received: {path}. Fix: pass one of the recipes under models/ "
                f"(found here: {here or 'none'})."
            )
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise RecipeError(f"Recipe {path} is not valid YAML: {e}") from e
        if not isinstance(d, dict):
            raise RecipeError(f"Recipe {path} must be a YAML mapping. Received: {type(d).__name__}")
        d.setdefault("name", path.stem)
        return cls.from_dict(d, schedule=schedule, **overrides)

    @classmethod
    def from_dict(cls, d: dict[str, Any], schedule: str | None = None, **overrides: Any) -> Recipe:
        d = copy.deepcopy(d)
        schedules = d.pop("schedules", None) or {}
        if not isinstance(schedules, dict):
            raise RecipeError(f"'schedules' must map names to overrides. Received: {schedules!r}")
        schedule = schedule or d.get("schedule", "short")
        if schedule != d.get("schedule", "short") or schedule in schedules:
            if schedule not in schedules:
                raise ScheduleError(
                    f"Unknown schedule. Received: schedule={schedule!r}. Fix: use one of "
                    f"{sorted({d.get('schedule', 'short'), *schedules})}."
                )
            d = _merge(d, schedules[schedule], "schedules." + schedule)
        d["schedule"] = schedule
        for key, value in overrides.items():
            _set_dotted(d, key, value)
        return _build(cls, {**d, "schedules": schedules}, "")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-able) that ``from_dict`` accepts and that reproduces this recipe."""
        d = dataclasses.asdict(self)
        d.pop("schedules")
        if self.mode == "reds":
            # Keys added with DRESS stay out of REDS recipes' dicts: the run fingerprint is this dict,
            # so runs started before them still resume.
            d.pop("mode")
            d.pop("dress")
        if self.convert.activation_ranges == "minmax":
            # Likewise the default activation ranges: fingerprints of runs started before the key match.
            d["convert"].pop("activation_ranges")
        if self.finetune.distill_teacher == "full":
            d["finetune"].pop("distill_teacher")  # likewise: in-place distillation keeps fingerprints
        if self.qat == QATConfig():
            d.pop("qat")  # likewise: runs without quantisation-aware fine-tuning keep their fingerprints
        return _plain(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def levels(self) -> int:
        return len(self.solve.latency_ms or self.solve.budgets) + (1 if self.solve.include_full else 0)


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _merge(base: dict[str, Any], over: Any, where: str) -> dict[str, Any]:
    if not isinstance(over, dict):
        raise RecipeError(f"'{where}' must be a mapping of overrides. Received: {over!r}")
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _merge(out[k], v, f"{where}.{k}") if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    *head, last = key.split(".")
    for h in head:
        d = d.setdefault(h, {})
    d[last] = value


def _build(cls: type, d: Any, where: str) -> Any:
    """Construct dataclass ``cls`` from mapping ``d``, checking keys and value types recursively."""
    label = where or "recipe"
    if not isinstance(d, dict):
        raise RecipeError(f"'{label}' must be a mapping. Received: {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise RecipeError(
            f"Unknown key(s) in {label}: {unknown}. Fix: use only {sorted(fields)} (check for typos)."
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecipeError(f"Missing required key '{where + '.' if where else ''}{name}' in {label}.")
            continue
        kwargs[name] = _value(f, d[name], f"{where}.{name}" if where else name)
    obj = cls(**kwargs)
    _validate(obj, label)
    return obj


def _value(f: dataclasses.Field, v: Any, where: str) -> Any:
    t = str(f.type)
    sub = {
        "DataConfig": DataConfig,
        "ImportanceConfig": ImportanceConfig,
        "SolveConfig": SolveConfig,
        "TrainConfig": TrainConfig,
        "FinetuneConfig": FinetuneConfig,
        "BNConfig": BNConfig,
        "ConvertConfig": ConvertConfig,
        "QATConfig": QATConfig,
        "DressConfig": DressConfig,
    }
    if t in sub:
        return _build(sub[t], v or {}, where)
    if t.startswith("tuple"):
        if v is None:
            v = []
        if not isinstance(v, (list, tuple)):
            raise RecipeError(f"'{where}' must be a list. Received: {v!r}")
        return tuple(_scalar("float" if "float" in t else "str", x, where) for x in v)
    if t.startswith("dict"):
        return v
    if v is None and "None" in t:
        return None
    return _scalar(t.split(" |")[0], v, where)


def _scalar(t: str, v: Any, where: str) -> Any:
    ok = {
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
        "str": isinstance(v, str),
    }[t]
    if not ok:
        raise RecipeError(f"'{where}' must be a {t}. Received: {where.rsplit('.', 1)[-1]}={v!r}")
    return float(v) if t == "float" else v


def _validate(obj: Any, where: str) -> None:
    def bad(msg: str) -> None:
        raise RecipeError(f"In {where}: {msg}")

    if isinstance(obj, DataConfig):
        if not 0.0 < obj.validation_fraction < 1.0:
            bad(f"validation_fraction must be in (0, 1). Received: {obj.validation_fraction}")
        if obj.limit is not None and obj.limit < 1:
            bad(f"limit must be a positive number of samples or null. Received: {obj.limit}")
        if obj.batch_size < 1:
            bad(f"batch_size must be >= 1. Received: {obj.batch_size}")
    elif isinstance(obj, ImportanceConfig):
        if obj.method not in IMPORTANCE_METHODS:
            bad(f"method must be one of {list(IMPORTANCE_METHODS)}. Received: {obj.method!r}")
        if obj.num_batches < 1:
            bad(f"num_batches must be >= 1. Received: {obj.num_batches}")
    elif isinstance(obj, SolveConfig):
        b, lat = obj.budgets, obj.latency_ms
        if (not b and not lat) or any(not 0.0 < x < 1.0 for x in b) or list(b) != sorted(set(b)):
            bad(f"budgets must be increasing MACs fractions in (0, 1). Received: {list(b)}")
        if any(not (0 < x < math.inf) for x in lat) or list(lat) != sorted(set(lat)):
            bad(f"latency_ms must be increasing numbers of milliseconds > 0. Received: {list(lat)}")
        if lat and b and len(b) != len(lat):
            bad(f"budgets and latency_ms need one value per level each, or budgets: []. Received: {obj}")
        if not 0 < obj.clock_mhz < math.inf:
            bad(f"clock_mhz must be > 0. Received: {obj.clock_mhz}")
        if obj.granularity < 1 or obj.time_limit <= 0 or not 0 <= obj.gap < 1:
            bad(f"need granularity >= 1, time_limit > 0, 0 <= gap < 1. Received: {obj}")
        mw = obj.min_width
        if not (0 < mw < 1 or (mw >= 1 and float(mw).is_integer())):
            bad(f"min_width must be a unit count >= 1 or a fraction in (0, 1) of full widths. Received: {mw}")
    elif isinstance(obj, ConvertConfig):
        if obj.calibration_mode not in ("shared", "per_level"):
            bad(f"calibration_mode must be 'shared' or 'per_level'. Received: {obj.calibration_mode!r}")
        if obj.calibration_samples < 1:
            bad(f"calibration_samples must be >= 1. Received: {obj.calibration_samples}")
        if obj.activation_ranges not in ("minmax", "mse", "percentile"):
            bad(
                "activation_ranges must be 'minmax', 'mse' or 'percentile'. "
                f"Received: {obj.activation_ranges!r}"
            )
    elif isinstance(obj, TrainConfig):
        if isinstance(obj, FinetuneConfig) and not 0.0 <= obj.distill_weight <= 1.0:
            bad(f"distill_weight must be in [0, 1] (0 = no distillation). Received: {obj.distill_weight}")
        if isinstance(obj, FinetuneConfig) and obj.distill_teacher not in DISTILL_TEACHERS:
            bad(
                f"distill_teacher must be one of {', '.join(DISTILL_TEACHERS)} (the full level in place, or "
                f"the frozen dense pretrained model). Received: {obj.distill_teacher!r}"
            )
        if isinstance(obj, FinetuneConfig) and not 0.0 < obj.distill_temperature < math.inf:
            bad(f"distill_temperature must be a number > 0 (e.g. 4). Received: {obj.distill_temperature}")
        if obj.epochs < 0 or obj.learning_rate <= 0:
            bad(f"need epochs >= 0 and learning_rate > 0. Received: {obj}")
        if not 0.0 <= obj.final_lr_fraction <= 1.0 or obj.warmup_epochs < 0:
            bad(f"need 0 <= final_lr_fraction <= 1 and warmup_epochs >= 0. Received: {obj}")
    elif isinstance(obj, DressConfig):
        if obj.min_count < 1 or any(not 0 < b < math.inf for b in obj.weight_bytes):
            bad(f"need min_count >= 1 and weight_bytes > 0. Received: {obj}")
    elif isinstance(obj, Recipe):
        if obj.mode not in MODES:
            bad(f"mode must be one of {list(MODES)}. Received: mode={obj.mode!r}")
        if obj.mode == "dress":
            _validate_dress(obj, bad)
        elif obj.dress != DressConfig():
            bad("the 'dress' section applies to mode: dress only. Fix: add 'mode: dress' or remove it.")
        if obj.qat.epochs and (obj.mode != "reds" or not obj.convert.enabled or obj.convert.equalize):
            bad(
                "qat trains through the REDS int8 conversion: it needs mode: reds, convert.enabled: true "
                f"and convert.equalize: false. Received: mode={obj.mode!r}, convert={obj.convert}. "
                "Fix: set qat.epochs: 0 or change those settings."
            )
        bad_b = [b for b in obj.baselines if b not in BASELINES]
        if bad_b:
            bad(f"baselines must be chosen from {list(BASELINES)}. Received: {bad_b}")
        if obj.levels < 2:
            bad(f"a REDS recipe needs at least 2 levels. Received: budgets={list(obj.solve.budgets)}")


def _validate_dress(r: Recipe, bad: Any) -> None:
    """Settings a DRESS run does not use must not be set (they would be silently ignored)."""
    s = r.solve
    if s.latency_ms or s.peak_memory_bytes is not None:
        bad(
            "mode: dress budgets MACs (and optionally dress.weight_bytes); it has no latency or peak-memory "
            f"budget (row sparsity leaves activations unchanged). Received: latency_ms={list(s.latency_ms)}, "
            f"peak_memory_bytes={s.peak_memory_bytes}. Fix: remove them."
        )
    if s.min_width != 1:
        bad(
            f"solve.min_width bounds REDS widths; a DRESS row keeps dress.min_count weights at least. "
            f"Received: min_width={s.min_width}. Fix: set dress.min_count instead."
        )
    if s.strategy not in ("bottom_up", "joint"):
        bad(f"solve.strategy must be 'bottom_up' or 'joint'. Received: {s.strategy!r}")
    if r.dress.weight_bytes and len(r.dress.weight_bytes) != len(s.budgets):
        bad(
            f"dress.weight_bytes needs one cap per solve.budgets entry. Received: "
            f"{list(r.dress.weight_bytes)} for budgets {list(s.budgets)}"
        )
    if r.baselines or r.bn.recalibrate or r.bn.per_level_finetune:
        bad(
            "mode: dress runs no baselines and no per-level BN comparison. Received: "
            f"baselines={list(r.baselines)}, bn.recalibrate={r.bn.recalibrate}, "
            f"bn.per_level_finetune={r.bn.per_level_finetune}. Fix: baselines: [] and "
            "bn: {recalibrate: false}."
        )
    if r.convert.calibration_mode != "shared":
        bad(f"mode: dress converts with shared calibration. Received: {r.convert.calibration_mode!r}")
    if r.convert.activation_ranges != "minmax":
        bad(f"mode: dress converts with minmax activation ranges. Received: {r.convert.activation_ranges!r}")
