"""The trust head of an artifact's ONNX graph: conformal interval and applicability domain.

:func:`attach_trust` appends to a graph with outputs ``<target>`` (and ``<target>_std``)
the outputs ``<target>_lo``, ``<target>_hi`` (float32 [N], target unit), ``domain_code``
(int32 [N], bit mask, 0 = in domain) and ``domain_distance`` (float32 [N], <= 1 near the
calibration points), computed from a few constants of a :class:`calib.trust.TrustSpec`
exactly as :func:`calib.trust.evaluate` does. :func:`strip_trust` removes the head again (a
spot child re-attaches it with its own constants after its correction).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..trust import TrustSpec
from .onnx import drop_prefixed, opset_of

__all__ = ["attach_trust", "strip_trust", "trust_outputs", "aux_interval_outputs", "PREFIX", "DOMAIN_CODE", "DOMAIN_DISTANCE"]

PREFIX = "calib_trust/"
DOMAIN_CODE = "domain_code"
DOMAIN_DISTANCE = "domain_distance"


def trust_outputs(target: str) -> list[str]:
    """Names of the head's outputs for the primary target and the domain, in order."""
    return [f"{target}_lo", f"{target}_hi", DOMAIN_CODE, DOMAIN_DISTANCE]


def aux_interval_outputs(aux: Any) -> list[str]:
    """Names of the head's interval outputs of auxiliary targets (``<aux>_lo``, ``<aux>_hi`` each)."""
    return [f"{a}_{end}" for a in aux for end in ("lo", "hi")]


def strip_trust(proto: Any, target: str, aux: Any = ()) -> Any:
    """Remove the head's nodes, constants and outputs (in place); returns ``proto``."""
    g = drop_prefixed(proto, PREFIX).graph
    outs = set(trust_outputs(target)) | set(aux_interval_outputs(aux))
    keep_out = [o for o in g.output if o.name not in outs]
    del g.output[:]
    g.output.extend(keep_out)
    return proto


def attach_trust(proto: Any, spec: TrustSpec, *, input_name: str, target: str, n_out: int,
                 domain_input: str | None = None) -> Any:
    """Append the trust head to ``proto`` (in place) and check the model; returns ``proto``.

    Parameters
    ----------
    proto : onnx.ModelProto
        A graph with input ``input_name`` [N, n_features] and output ``target``
        ([N], or [N, n_out] with auxiliary targets in the matrix layout of schema <= 1.2:
        column 0 is the primary target); with ``spec.aux``, one output [N] per auxiliary
        target, named as it (its interval becomes ``<aux>_lo``, ``<aux>_hi``).
    spec : TrustSpec
    input_name : str
        The raw readings (physical check).
    domain_input : str, optional
        The readings in the model's own input space (a child's mapped readings); default
        ``input_name``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    P = PREFIX
    opset = opset_of(proto)
    c, d = spec.conformal, spec.domain
    xin = domain_input or input_name

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), P + name))
        return P + name

    nodes: list[Any] = []

    def node(op: str, inputs: list[str], out: str, **kw: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [P + out], name=P + out, **kw))
        return P + out

    def reduce(op: str, x: str, out: str, keepdims: int) -> str:
        takes_input = opset >= (13 if op == "ReduceSum" else 18)
        if takes_input:
            return node(op, [x, P + "axis1"], out, keepdims=keepdims)
        return node(op, [x], out, axes=[1], keepdims=keepdims)

    const("axis1", [1], np.int64)
    # primary prediction [N]
    if n_out == 1:
        y = target
    else:
        const("col0", 0, np.int64)
        y = node("Gather", [target, P + "col0"], "y", axis=1)
    # ---- conformal interval (of the primary target, then of each auxiliary target)
    def interval(yv: str, cs: Any, tag: str, lo_out: str, hi_out: str) -> None:
        sig = node("Max", [node("Add", [node("Mul", [yv, const(tag + "b", cs.b)], tag + "by"),
                                        const(tag + "a", cs.a)], tag + "a_by"),
                           const(tag + "floor", cs.floor)], tag + "sigma")
        if cs.edges:
            if cs.bin_on >= 0:
                v = node("Gather", [xin, const(tag + "bin_col", [cs.bin_on], np.int64)], tag + "bin_value", axis=1)
            else:
                v = node("Unsqueeze", [yv, P + "axis1"], tag + "bin_value") if opset >= 13 else \
                    node("Unsqueeze", [yv], tag + "bin_value", axes=[1])
            above = node("Cast", [node("Greater", [v, const(tag + "edges", list(cs.edges))], tag + "above_b")],
                         tag + "above", to=TensorProto.INT64)
            idx = reduce("ReduceSum", above, tag + "bin", 0)
            qsel = node("Gather", [const(tag + "q", list(cs.q)), idx], tag + "q_bin", axis=0)
        else:
            qsel = const(tag + "q", cs.q[0])
        half = node("Mul", [qsel, sig], tag + "half")
        nodes.append(helper.make_node("Sub", [yv, half], [lo_out], name=P + tag + "lo"))
        nodes.append(helper.make_node("Add", [yv, half], [hi_out], name=P + tag + "hi"))

    lo_name, hi_name, code_name, dist_name = trust_outputs(target)
    interval(y, c, "", lo_name, hi_name)
    aux_outs = []
    for j, (aux_name, cs) in enumerate(spec.aux):
        a_lo, a_hi = f"{aux_name}_lo", f"{aux_name}_hi"
        interval(aux_name, cs, f"aux{j}/", a_lo, a_hi)
        aux_outs += [a_lo, a_hi]
    # ---- domain: per-input range (in the model's input space)
    def any_outside(x: str, lo: Any, hi: Any, tag: str) -> str:
        lo_c = const(f"{tag}_lower", [np.float32(v) if np.isfinite(v) else np.float32(-3e38) for v in lo])
        hi_c = const(f"{tag}_upper", [np.float32(v) if np.isfinite(v) else np.float32(3e38) for v in hi])
        out = node("Or", [node("Less", [x, lo_c], f"{tag}_below"), node("Greater", [x, hi_c], f"{tag}_above")],
                   f"{tag}_outside")
        f = node("Cast", [out], f"{tag}_outside_f", to=TensorProto.FLOAT)
        return reduce("ReduceMax", f, f"{tag}_any", 0)

    bit1 = any_outside(xin, d.lower, d.upper, "range")
    bit8 = any_outside(input_name, d.physical_lower, d.physical_upper, "physical")
    # joint: nearest-prototype distance in the standardised space
    protos = np.asarray(d.prototypes, dtype=np.float32)
    z = node("Div", [node("Sub", [xin, const("center", list(d.center))], "centred"), const("scale", list(d.scale))], "z")
    zz = reduce("ReduceSum", node("Mul", [z, z], "z2"), "zz", 0)
    # |z - p|^2 = |z|^2 + (|p|^2 - 2 z.p): the prototype part is one matrix product plus a bias
    # (one fused Gemm over N x prototypes), its minimum per row, then |z|^2 added to N values
    q = node("Add", [node("MatMul", [z, const("protos_t_m2", -2.0 * protos.T)], "cross"),
                     const("pp", (protos * protos).sum(axis=1))], "proto_part")
    mind = node("Add", [zz, reduce("ReduceMin", q, "proto_part_min", 0)], "d2min")
    dist = node("Sqrt", [node("Max", [mind, const("zero", 0.0)], "d2pos")], "dist")
    nodes.append(helper.make_node("Div", [dist, const("threshold", d.threshold)], [dist_name], name=P + "distance"))
    bit2 = node("Cast", [node("Greater", [dist_name, const("one", 1.0)], "far")], "far_f", to=TensorProto.FLOAT)
    bit4 = node("Cast", [node("Or", [node("Less", [y, const("y_lower", d.y_lower)], "y_below"),
                                     node("Greater", [y, const("y_upper", d.y_upper)], "y_above")], "y_outside")],
                "y_outside_f", to=TensorProto.FLOAT)
    s = node("Add", [bit1, node("Mul", [bit2, const("w2", 2.0)], "b2")], "s12")
    s = node("Add", [s, node("Mul", [bit4, const("w4", 4.0)], "b4")], "s124")
    s = node("Add", [s, node("Mul", [bit8, const("w8", 8.0)], "b8")], "s1248")
    nodes.append(helper.make_node("Cast", [s], [code_name], name=P + "code", to=TensorProto.INT32))
    g.node.extend(nodes)
    g.output.extend([
        helper.make_tensor_value_info(lo_name, TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info(hi_name, TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info(code_name, TensorProto.INT32, ["N"]),
        helper.make_tensor_value_info(dist_name, TensorProto.FLOAT, ["N"]),
        *(helper.make_tensor_value_info(a, TensorProto.FLOAT, ["N"]) for a in aux_outs),
    ])
    onnx.checker.check_model(proto, full_check=True)
    return proto
