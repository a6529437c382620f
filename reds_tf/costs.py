"""Exact cost model of a submodel: MACs, parameters, weight bytes, activation memory.

Everything is computed from a ``Graph`` and one width per group, never from constants.
Costs of conv, pointwise and dense layers are bilinear in the widths of consecutive
groups; the solver uses the very same terms (``Graph.*_terms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .graph import BilinearTerm, Graph, LinearTerm
from .plan import WidthPlan


def _width(widths: Sequence[int], g: int | None) -> int:
    return 1 if g is None else int(widths[g])


def eval_bilinear(t: BilinearTerm, widths: Sequence[int]) -> int:
    a = 1 if t.a is None else t.factor("a", int(widths[t.a]))
    b = 1 if t.b is None else t.factor("b", int(widths[t.b]))
    return t.coef * a * b


def eval_linear(t: LinearTerm, widths: Sequence[int]) -> int:
    return t.coef * _width(widths, t.g)


def _check(graph: Graph, widths: Sequence[int]) -> None:
    if len(widths) != len(graph.groups):
        raise ValueError(
            f"Graph '{graph.name}' has {len(graph.groups)} groups; received {len(widths)} widths."
        )


def op_macs(graph: Graph, widths: Sequence[int]) -> dict[str, int]:
    """MACs of every computing op."""
    _check(graph, widths)
    return {name: eval_bilinear(t, widths) for name, t in graph.mac_terms()}


def macs(graph: Graph, widths: Sequence[int]) -> int:
    return sum(op_macs(graph, widths).values())


def params(graph: Graph, widths: Sequence[int]) -> int:
    """Trainable parameters (kernels, biases, BatchNorm gamma and beta)."""
    _check(graph, widths)
    return sum(eval_bilinear(t, widths) for _, t in graph.param_terms())


def weight_bytes(graph: Graph, widths: Sequence[int], dtype: str = "int8") -> int:
    """Deployed weight storage with BatchNorm folded: int8 kernels + int32 biases, or float32."""
    _check(graph, widths)
    wb, bb = {"int8": (1, 4), "float32": (4, 4)}[dtype]
    return sum(eval_bilinear(t, widths) for _, t in graph.weight_byte_terms(wb, bb))


def op_memory(graph: Graph, widths: Sequence[int], bytes_per_element: int = 1) -> dict[str, int]:
    """Bytes of activations live while each deployed op runs."""
    _check(graph, widths)
    return {
        name: sum(eval_linear(t, widths) for t in terms)
        for name, terms in graph.memory_terms(bytes_per_element)
    }


def peak_memory(graph: Graph, widths: Sequence[int], bytes_per_element: int = 1) -> int:
    """Peak activation memory over the deployed ops (int8 activations by default)."""
    return max(op_memory(graph, widths, bytes_per_element).values())


def activation_bytes(graph: Graph, widths: Sequence[int], bytes_per_element: int = 1) -> dict[str, int]:
    """Bytes of every deployed activation tensor."""
    _check(graph, widths)
    return {name: eval_linear(t, widths) for name, t in graph.tensor_terms(bytes_per_element).items()}


@dataclass(frozen=True)
class Cost:
    """Costs of one submodel; fractions are relative to the full-width model."""

    macs: int
    params: int
    weight_bytes_int8: int
    weight_bytes_float32: int
    peak_memory_int8: int
    macs_fraction: float
    params_fraction: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def cost(graph: Graph, widths: Sequence[int]) -> Cost:
    full = graph.full_widths
    m, p = macs(graph, widths), params(graph, widths)
    return Cost(
        macs=m,
        params=p,
        weight_bytes_int8=weight_bytes(graph, widths, "int8"),
        weight_bytes_float32=weight_bytes(graph, widths, "float32"),
        peak_memory_int8=peak_memory(graph, widths),
        macs_fraction=m / macs(graph, full),
        params_fraction=p / params(graph, full),
    )


def plan_costs(graph: Graph, plan: WidthPlan) -> list[Cost]:
    """Costs of every level of a plan (groups matched by name)."""
    if tuple(plan.groups) != graph.group_names:
        raise ValueError(
            f"Plan groups {list(plan.groups)} do not match graph '{graph.name}' groups "
            f"{list(graph.group_names)}. Fix: solve the plan for this model."
        )
    return [cost(graph, plan.level(k)) for k in range(plan.num_levels)]
