"""The classical physics fits as ONNX nodes, so hybrid and physics models export as one graph.

:func:`attach_physics` takes the ONNX export of a network (input ``readings`` [N, F],
output ``prediction`` [N, K]) and a :class:`~calib.physics.PhysicsModel`, and returns a
graph whose ``prediction`` is the network's output plus the physics fit on the first
target column. Every form of :mod:`calib.physics` is plain arithmetic (SVU, SBE63,
two-site with its closed-form inverse, polynomial), written with standard ONNX ops
(Gather, Add, Sub, Mul, Div, Tan, Sqrt, Max, Pow, ReduceProd, MatMul) that every ONNX
Runtime (C#, MATLAB, LabVIEW, Python) runs. The graph computes in float32; the Python
side (:meth:`PhysicsModel.predict`) in float64; they agree to float32 precision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ArtifactError

__all__ = ["attach_physics", "physics_graph"]


class _Builder:
    def __init__(self, prefix: str, opset: int):
        self.prefix, self.opset = prefix, opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: Any, hint: str = "c", dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # arithmetic helpers on [N, 1] tensors and float constants
    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def div(self, a: str, b: str) -> str:
        return self.op("Div", [a, b])

    def k(self, v: float) -> str:
        return self.const(np.float32(v))

    def poly(self, t: str, coefs: list[float]) -> str:
        """c0 + c1*t + c2*t^2 ... (Horner)."""
        acc = self.k(coefs[-1])
        for c in reversed(coefs[:-1]):
            acc = self.add(self.mul(acc, t), self.k(c))
        return acc

    def column(self, x: str, j: int) -> str:
        idx = self.const(np.array([int(j)], dtype=np.int64), "col", np.int64)
        return self.op("Gather", [x, idx], "x", axis=1)  # [N, 1]


def _svu(b: _Builder, x: str, cols: tuple[int, ...], p: dict[str, Any]) -> str:
    c = [float(p[f"c{i}"]) for i in range(7)]
    ph, t = b.column(x, cols[0]), b.column(x, cols[1])
    num = b.div(b.poly(t, [c[3], c[4]]), b.poly(ph, [c[5], c[6]]))
    return b.div(b.sub(num, b.k(1.0)), b.poly(t, [c[0], c[1], c[2]]))


def _sbe63(b: _Builder, x: str, cols: tuple[int, ...], p: dict[str, Any]) -> str:
    g = {k: float(v) for k, v in p.items()}
    d, t = b.column(x, cols[0]), b.column(x, cols[1])
    v = b.div(d, b.k(g["us_per_volt"]))
    num = b.add(b.poly(t, [g["a0"], g["a1"]]), b.mul(b.k(g["a2"]), b.mul(v, v)))
    den = b.poly(v, [g["b0"], g["b1"]])
    ksv = b.poly(t, [g["c0"], g["c1"], g["c2"]])
    return b.div(b.sub(b.div(num, den), b.k(1.0)), ksv)


def _two_site(b: _Builder, x: str, cols: tuple[int, ...], p: dict[str, Any]) -> str:
    g = {k: float(v) for k, v in p.items()}
    ph, t = b.column(x, cols[0]), b.column(x, cols[1])
    th0 = b.poly(t, [g["theta0_0"], g["theta0_1"]])
    f = b.poly(t, [g["f_0"], g["f_1"]])
    k1 = b.poly(t, [g["ksv1_0"], g["ksv1_1"], g["ksv1_2"]])
    k2 = b.poly(t, [g["ksv2_0"], g["ksv2_1"]])
    rad = b.k(math.pi / 180.0)
    r = b.div(b.op("Tan", [b.mul(ph, rad)]), b.op("Tan", [b.mul(th0, rad)]))
    a = b.mul(b.mul(r, k1), k2)
    bb = b.sub(b.sub(b.mul(r, b.add(k1, k2)), b.mul(f, k2)), b.mul(b.sub(b.k(1.0), f), k1))
    c = b.sub(r, b.k(1.0))
    disc = b.sub(b.mul(bb, bb), b.mul(b.k(4.0), b.mul(a, c)))
    disc = b.op("Max", [disc, b.k(0.0)])
    return b.div(b.mul(b.k(-2.0), c), b.add(bb, b.op("Sqrt", [disc])))


def _poly(b: _Builder, x: str, cols: tuple[int, ...], p: dict[str, Any]) -> str:
    n_in = len(cols)
    center = np.asarray(p["center"], dtype=np.float32).reshape(1, n_in)
    scale = np.asarray(p["scale"], dtype=np.float32).reshape(1, n_in)
    powers = np.asarray(p["powers"], dtype=np.float32).reshape(-1, n_in)
    coef = np.asarray(p["coef"], dtype=np.float32).reshape(-1, 1)
    idx = b.const(np.asarray(cols, dtype=np.int64), "cols", np.int64)
    xs = b.op("Gather", [x, idx], "xs", axis=1)  # [N, F]
    z = b.div(b.sub(xs, b.const(center)), b.const(scale))
    z3 = b.op("Unsqueeze", [z, b.const(np.array([1], dtype=np.int64), "ax", np.int64)]) if b.opset >= 13 \
        else b.op("Unsqueeze", [z], axes=[1])  # [N, 1, F]
    pw = b.op("Pow", [z3, b.const(powers[None, :, :])])  # [N, K, F]
    if b.opset >= 18:
        terms = b.op("ReduceProd", [pw, b.const(np.array([2], dtype=np.int64), "ax", np.int64)], keepdims=0)
    else:
        terms = b.op("ReduceProd", [pw], axes=[2], keepdims=0)  # [N, K]
    yz = b.add(b.op("MatMul", [terms, b.const(coef)]), b.k(float(p["intercept"])))
    return b.add(b.mul(yz, b.k(float(p["y_scale"]))), b.k(float(p["y_center"])))


_FORMS = {"svu": _svu, "sbe63": _sbe63, "two_site": _two_site, "poly": _poly}


def physics_graph(fit: Any, input_name: str, prefix: str = "physics/", opset: int = 15) -> tuple[list, list, str]:
    """ONNX nodes and initializers computing ``fit.predict`` on ``input_name`` [N, F].

    Returns
    -------
    nodes, initializers, output_name
        The output is float32 [N, 1], in the fit's target unit.
    """
    form = _FORMS.get(fit.kind)
    if form is None:
        raise ArtifactError(f"no ONNX form for physics kind {fit.kind!r}")
    b = _Builder(prefix, opset)
    out = form(b, input_name, tuple(int(c) for c in fit.columns), dict(fit.params))
    return b.nodes, b.inits, out


def attach_physics(proto: Any, fit: Any, n_outputs: int, *, output_name: str = "prediction") -> Any:
    """Return a copy of the network ``proto`` whose ``output_name`` is network + physics fit.

    The physics fit is added to the first output column only (the O2 target); further
    columns (auxiliary targets) keep the network's values.
    """
    import onnx
    from onnx import helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    g = model.graph
    if [o.name for o in g.output] != [output_name] or len(g.input) != 1:
        raise ArtifactError(f"cannot attach physics: expected one input and output {output_name!r}")
    nn_out = "network/" + output_name
    for node in g.node:
        node.output[:] = [nn_out if o == output_name else o for o in node.output]
        node.input[:] = [nn_out if i == output_name else i for i in node.input]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=15)
    nodes, inits, phys = physics_graph(fit, g.input[0].name, opset=opset)
    onehot = np.zeros((1, n_outputs), dtype=np.float32)
    onehot[0, 0] = 1.0
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(onehot, "physics/onehot"))
    nodes.append(helper.make_node("Mul", [phys, "physics/onehot"], ["physics/padded"], name="physics/padded"))
    nodes.append(helper.make_node("Add", [nn_out, "physics/padded"], [output_name], name="physics/add"))
    g.node.extend(nodes)
    g.initializer.extend(inits)
    return model
