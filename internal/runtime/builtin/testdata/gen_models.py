#!/usr/bin/env python3
"""Generate the ONNX test models for the builtin interpreter.

Meant to run with Debian's python3 and its python3-onnx / python3-numpy
packages (onnx 1.12, which knows opsets up to 17 and IR version 8).
See README.md; regen.sh runs this script followed by reference.cjs.

For every case this writes:
  cases/<case>.onnx         the model
  cases/<case>.inputs.json  model metadata and the input tensors
reference.cjs then runs each model in onnxruntime, writes cases/<case>.json
(inputs plus reference outputs) and removes the .inputs.json file.

It also writes the benchmark model bench/small_cnn.onnx (no reference data).

With --sample DIR it instead checks DIR/iris.onnx, the sample model written
by `bulwark sample` (internal/sample), and writes DIR/iris.inputs.json for
reference.cjs, which then writes DIR/iris.json.

Everything is deterministic: each case seeds its own numpy generator from
the case's base name, so the _op13 and _op17 variants of a case share
weights and inputs (and therefore reference outputs).
"""

import argparse
import json
import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

DATATYPES = {
    np.dtype(np.float32): ("FP32", TensorProto.FLOAT),
    np.dtype(np.float64): ("FP64", TensorProto.DOUBLE),
    np.dtype(np.int32): ("INT32", TensorProto.INT32),
    np.dtype(np.int64): ("INT64", TensorProto.INT64),
    np.dtype(np.bool_): ("BOOL", TensorProto.BOOL),
}

F = TensorProto.FLOAT


def json_data(arr):
    """Flat row-major JSON list that parses back to exactly the same values."""
    flat = arr.reshape(-1)
    if arr.dtype == np.float32:
        out = [float(str(v)) for v in flat]  # shortest float32 round-trip text
        back = np.array(out, dtype=np.float64).astype(np.float32)
        assert np.array_equal(back, flat), "float32 input does not round-trip"
        return out
    if arr.dtype == np.float64:
        return [float(v) for v in flat]
    if arr.dtype == np.bool_:
        return [bool(v) for v in flat]
    vals = [int(v) for v in flat]
    assert all(abs(v) <= 2**53 for v in vals), "integer input too large for JSON"
    return vals


class Builder:
    """Collects one graph: nodes, graph inputs (with their feed values),
    initializers and outputs."""

    def __init__(self, name, opset, rng):
        self.name = name
        self.opset = opset
        self.rng = rng
        self.nodes = []
        self.inputs = []  # (ValueInfoProto, ndarray)
        self.inits = []
        self.outputs = []
        self.tolerance = None
        self.ir_version = 8
        self._n = 0

    # graph pieces -------------------------------------------------------
    def input(self, name, arr, dims=None):
        arr = np.asarray(arr)
        _, elem = DATATYPES[arr.dtype]
        if dims is None:
            dims = list(arr.shape)
        self.inputs.append((helper.make_tensor_value_info(name, elem, dims), arr))
        return name

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def i64(self, name, vals):
        return self.init(name, np.array(vals, dtype=np.int64))

    def node(self, op, inputs, outputs=None, **attrs):
        self._n += 1
        if outputs is None:
            outputs = ["%s_%d" % (op.lower(), self._n)]
        if isinstance(outputs, str):
            outputs = [outputs]
        self.nodes.append(
            helper.make_node(op, inputs, outputs, name="%s_%d" % (op, self._n), **attrs)
        )
        return outputs[0] if len(outputs) == 1 else outputs

    def output(self, name, elem=F, shape=None):
        """Graph output. The shape is filled in by shape inference in model();
        pass shape (dims may be None) where inference cannot tell."""
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    # random data ----------------------------------------------------------
    def rand(self, *shape, lo=-1.0, hi=1.0, decimals=4):
        """float32 inputs, rounded so the JSON stays short."""
        v = self.rng.uniform(lo, hi, size=shape)
        return np.round(v, decimals).astype(np.float32)

    def distinct(self, *shape, lo=-1.0, hi=1.0):
        """float32 values without ties (for pooling / ordering sensitive ops)."""
        n = int(np.prod(shape))
        v = lo + (hi - lo) * (self.rng.permutation(n) + 0.5) / n
        return np.round(v, 4).astype(np.float32).reshape(shape)

    def weight(self, *shape, scale=0.5):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    # output -------------------------------------------------------------
    def model(self):
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [vi for vi, _ in self.inputs],
            self.outputs,
            initializer=self.inits,
        )
        m = helper.make_model(
            graph,
            producer_name="bulwark-testdata",
            opset_imports=[helper.make_opsetid("", self.opset)],
        )
        # Declare the output shapes as onnx shape inference finds them
        # (dims it cannot know stay symbolic or unset).
        probe = onnx.ModelProto()
        probe.CopyFrom(m)
        probe.ir_version = min(self.ir_version, 8)
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
        for out, inf in zip(m.graph.output, inferred.graph.output):
            assert out.name == inf.name
            if inf.type.tensor_type.HasField("shape"):
                out.type.CopyFrom(inf.type)
            elif not out.type.tensor_type.HasField("shape"):
                raise ValueError("%s: no shape inferred for output %s" % (self.name, out.name))
        m.ir_version = self.ir_version
        return m

    def ops(self):
        seen = []
        for n in self.nodes:
            if n.op_type not in seen:
                seen.append(n.op_type)
        return seen


CASES = []  # (base name, builder function, opsets)


def case(name, opsets=(13, 17)):
    def deco(fn):
        CASES.append((name, fn, opsets))
        return fn

    return deco


def add_case(name, fn, opsets=(13, 17)):
    CASES.append((name, fn, opsets))


# --------------------------------------------------------------------------
# MLP operators
# --------------------------------------------------------------------------


@case("gemm_transb_alpha_beta")
def _(b):
    a = b.input("a", b.rand(3, 4))
    b.node("Gemm", [a, b.init("w", b.weight(5, 4)), b.init("c", b.weight(5))], "y",
           transB=1, alpha=0.5, beta=2.0)
    b.output("y")


@case("gemm_noc")
def _(b):
    a = b.input("a", b.rand(3, 4))
    b.node("Gemm", [a, b.init("w", b.weight(4, 5))], "y")
    b.output("y")


@case("gemm_transa")
def _(b):
    # both matrices are graph inputs; A and B transposed; C is a full matrix
    a = b.input("a", b.rand(4, 3))
    w = b.input("b", b.rand(5, 4))
    b.node("Gemm", [a, w, b.init("c", b.weight(3, 5))], "y", transA=1, transB=1, alpha=1.5)
    b.output("y")


@case("gemm_ccol")
def _(b):
    # C of shape [M,1] broadcast along N
    a = b.input("a", b.rand(3, 4))
    b.node("Gemm", [a, b.init("w", b.weight(4, 2)), b.init("c", b.weight(3, 1))], "y", beta=0.5)
    b.output("y")


@case("matmul_2d")
def _(b):
    b.node("MatMul", [b.input("a", b.rand(3, 4)), b.input("b", b.rand(4, 5))], "y")
    b.output("y")


@case("matmul_batched_3d")
def _(b):
    b.node("MatMul", [b.input("a", b.rand(2, 3, 4)), b.input("b", b.rand(2, 4, 5))], "y")
    b.output("y")


@case("matmul_3d_2d")
def _(b):
    b.node("MatMul", [b.input("a", b.rand(2, 3, 4)), b.init("w", b.weight(4, 5))], "y")
    b.output("y")


@case("matmul_broadcast_4d_3d")
def _(b):
    # [2,1,3,4] x [3,4,2] -> [2,3,3,2]
    b.node("MatMul", [b.input("a", b.rand(2, 1, 3, 4)), b.input("b", b.rand(3, 4, 2))], "y")
    b.output("y")


@case("matmul_1d_2d")
def _(b):
    b.node("MatMul", [b.input("a", b.rand(4)), b.input("b", b.rand(4, 5))], "y")
    b.output("y")


@case("matmul_2d_1d")
def _(b):
    b.node("MatMul", [b.input("a", b.rand(3, 4)), b.input("b", b.rand(4))], "y")
    b.output("y")


BROADCASTS = {
    "same": ((2, 3), (2, 3)),
    "scalar": ((2, 3), ()),
    "row": ((2, 3), (3,)),
    "3d_2d": ((2, 3, 4), (3, 4)),
    "bidir": ((2, 1, 4), (3, 1)),
}


def _binary(op, sa, sb):
    def fn(b):
        x = b.rand(*sa)
        if op == "Div":
            # divisors with |d| in [0.5, 2]
            mag = b.rand(*sb, lo=0.5, hi=2.0)
            sign = np.where(b.rng.random(sb) < 0.5, -1.0, 1.0)
            y = (mag * sign).astype(np.float32)
        else:
            y = b.rand(*sb)
        b.node(op, [b.input("a", x), b.input("b", y)], "y")
        b.output("y")

    return fn


for _op in ("Add", "Sub", "Mul", "Div"):
    for _kind, (_sa, _sb) in BROADCASTS.items():
        add_case("%s_%s" % (_op.lower(), _kind), _binary(_op, _sa, _sb))


@case("binary_int64")
def _(b):
    # shape arithmetic as exporters emit it; Div on positive integers only
    a = b.input("a", b.rng.integers(1, 50, size=(2, 3)).astype(np.int64))
    c = b.input("b", b.rng.integers(1, 7, size=(3,)).astype(np.int64))
    for op in ("Add", "Sub", "Mul", "Div"):
        b.node(op, [a, c], op.lower())
        b.output(op.lower(), TensorProto.INT64)


@case("add_const_initializer")
def _(b):
    # one operand is an initializer (bias add)
    b.node("Add", [b.input("x", b.rand(2, 3, 4)), b.init("bias", b.weight(4))], "y")
    b.output("y")


def _unary(op, **attrs):
    def fn(b):
        b.node(op, [b.input("x", b.rand(2, 3, 4, lo=-3.0, hi=3.0))], "y", **attrs)
        b.output("y")

    return fn


add_case("relu", _unary("Relu"))
add_case("leakyrelu", _unary("LeakyRelu", alpha=0.2))
add_case("leakyrelu_default", _unary("LeakyRelu"))
add_case("sigmoid", _unary("Sigmoid"))
add_case("tanh", _unary("Tanh"))
add_case("softmax_last", _unary("Softmax", axis=-1))
add_case("softmax_axis1", _unary("Softmax", axis=1))
add_case("softmax_default", _unary("Softmax"))
add_case("identity", _unary("Identity"))


@case("dropout")
def _(b):
    # inference: ratio given as input, training_mode absent -> identity
    x = b.input("x", b.rand(2, 3, 4))
    b.node("Dropout", [x, b.init("ratio", np.array(0.3, dtype=np.float32))], "y")
    b.output("y")


# --------------------------------------------------------------------------
# CNN operators
# --------------------------------------------------------------------------


def _conv(xshape, wshape, bias=True, **attrs):
    def fn(b):
        ins = [b.input("x", b.rand(*xshape)), b.init("w", b.weight(*wshape))]
        if bias:
            ins.append(b.init("bias", b.weight(wshape[0])))
        b.node("Conv", ins, "y", **attrs)
        b.output("y")

    return fn


add_case("conv_bias", _conv((1, 2, 5, 5), (3, 2, 3, 3)))
add_case("conv_nobias", _conv((2, 2, 5, 5), (3, 2, 3, 3), bias=False))
add_case("conv_group2", _conv((1, 4, 5, 5), (6, 2, 3, 3), group=2))
add_case("conv_depthwise", _conv((1, 3, 5, 5), (3, 1, 3, 3), group=3, pads=[1, 1, 1, 1]))
add_case("conv_stride2", _conv((1, 2, 7, 7), (3, 2, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1]))
add_case("conv_pads_asym", _conv((1, 2, 5, 5), (3, 2, 3, 3), pads=[1, 2, 0, 1]))
add_case("conv_dilation2", _conv((1, 2, 7, 7), (2, 2, 3, 3), dilations=[2, 2]))
# 6x6 input, k3 s2 SAME_UPPER -> 3x3 output, total pad 1 per axis, extra at the end
add_case("conv_same_upper", _conv((1, 2, 6, 6), (3, 2, 3, 3), strides=[2, 2], auto_pad="SAME_UPPER"))
add_case("conv_1x1", _conv((2, 4, 3, 3), (5, 4, 1, 1)))
add_case("conv_rect_kernel", _conv((1, 2, 5, 6), (2, 2, 2, 3), strides=[1, 2]))
add_case("conv_explicit_kernel_shape", _conv((1, 2, 4, 4), (2, 2, 3, 3), kernel_shape=[3, 3]))


def _pool(op, xshape, **attrs):
    def fn(b):
        b.node(op, [b.input("x", b.distinct(*xshape))], "y", **attrs)
        b.output("y")

    return fn


add_case("maxpool_k2s2", _pool("MaxPool", (1, 2, 4, 4), kernel_shape=[2, 2], strides=[2, 2]))
add_case("maxpool_k3s1p1", _pool("MaxPool", (1, 2, 5, 5), kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
add_case("maxpool_ceil", _pool("MaxPool", (1, 1, 5, 5), kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1))
add_case("avgpool_k2s2", _pool("AveragePool", (1, 2, 4, 4), kernel_shape=[2, 2], strides=[2, 2]))
add_case("avgpool_pad_exclude", _pool("AveragePool", (1, 2, 4, 4), kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], count_include_pad=0))
add_case("avgpool_pad_include", _pool("AveragePool", (1, 2, 4, 4), kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], count_include_pad=1))
add_case("globalavgpool", _pool("GlobalAveragePool", (2, 3, 4, 4)))


@case("batchnorm")
def _(b):
    c = 3
    ins = [
        b.input("x", b.rand(2, c, 4, 4, lo=-2, hi=2)),
        b.init("scale", b.rng.uniform(0.5, 1.5, c).astype(np.float32)),
        b.init("b", b.weight(c)),
        b.init("mean", b.weight(c)),
        b.init("var", b.rng.uniform(0.5, 1.5, c).astype(np.float32)),
    ]
    b.node("BatchNormalization", ins, "y", epsilon=1e-3)
    b.output("y")


def _flatten(axis):
    def fn(b):
        b.node("Flatten", [b.input("x", b.rand(2, 3, 2, 2))], "y", axis=axis)
        b.output("y")

    return fn


add_case("flatten_axis0", _flatten(0))
add_case("flatten_axis1", _flatten(1))
add_case("flatten_axis2", _flatten(2))
add_case("flatten_axis_neg1", _flatten(-1))


@case("flatten_default")
def _(b):
    b.node("Flatten", [b.input("x", b.rand(2, 3, 2))], "y")
    b.output("y")


@case("reshape_zero_neg")
def _(b):
    b.node("Reshape", [b.input("x", b.rand(2, 3, 4)), b.i64("shape", [0, -1])], "y")
    b.output("y")


@case("reshape_neg_first")
def _(b):
    b.node("Reshape", [b.input("x", b.rand(2, 3, 4)), b.i64("shape", [-1, 2, 3])], "y")
    b.output("y")


@case("reshape_shape_input")
def _(b):
    x = b.input("x", b.rand(2, 3, 4))
    s = b.input("shape", np.array([0, -1, 2], dtype=np.int64))
    b.node("Reshape", [x, s], "y")
    b.output("y", shape=[None, None, None])


@case("transpose_perm")
def _(b):
    b.node("Transpose", [b.input("x", b.rand(2, 3, 4))], "y", perm=[1, 2, 0])
    b.output("y")


@case("transpose_nchw_nhwc")
def _(b):
    b.node("Transpose", [b.input("x", b.rand(1, 2, 3, 4))], "y", perm=[0, 2, 3, 1])
    b.output("y")


@case("transpose_default")
def _(b):
    b.node("Transpose", [b.input("x", b.rand(2, 3, 4))], "y")
    b.output("y")


@case("concat_axis1")
def _(b):
    ins = [b.input("a", b.rand(2, 1, 3)), b.input("b", b.rand(2, 2, 3)), b.input("c", b.rand(2, 3, 3))]
    b.node("Concat", ins, "y", axis=1)
    b.output("y")


@case("concat_negaxis")
def _(b):
    b.node("Concat", [b.input("a", b.rand(2, 3)), b.input("b", b.rand(2, 2))], "y", axis=-1)
    b.output("y")


PADS = [0, 0, 1, 2, 0, 0, 2, 1]  # begin N,C,H,W then end N,C,H,W


@case("pad_constant")
def _(b):
    x = b.input("x", b.rand(1, 2, 3, 3))
    b.node("Pad", [x, b.i64("pads", PADS), b.init("value", np.array(1.5, dtype=np.float32))], "y",
           mode="constant")
    b.output("y")


@case("pad_constant_default")
def _(b):
    # no mode attribute, no constant_value input: pads with 0
    b.node("Pad", [b.input("x", b.rand(1, 2, 3, 3)), b.i64("pads", PADS)], "y")
    b.output("y")


@case("pad_reflect")
def _(b):
    b.node("Pad", [b.input("x", b.rand(1, 1, 4, 4)), b.i64("pads", PADS)], "y", mode="reflect")
    b.output("y")


@case("pad_edge")
def _(b):
    b.node("Pad", [b.input("x", b.rand(1, 1, 4, 4)), b.i64("pads", PADS)], "y", mode="edge")
    b.output("y")


def _clip(lo, hi):
    def fn(b):
        ins = [b.input("x", b.rand(2, 3, 4, lo=-2, hi=2))]
        if lo is not None or hi is not None:
            ins.append(b.init("min", np.array(lo, dtype=np.float32)) if lo is not None else "")
        if hi is not None:
            ins.append(b.init("max", np.array(hi, dtype=np.float32)))
        b.node("Clip", ins, "y")
        b.output("y")

    return fn


add_case("clip_minmax", _clip(-0.5, 0.75))
add_case("clip_max_only", _clip(None, 0.5))
add_case("clip_min_only", _clip(0.0, None))
add_case("clip_none", _clip(None, None))


# --------------------------------------------------------------------------
# Shape operators (as emitted by exporters)
# --------------------------------------------------------------------------


@case("shape")
def _(b):
    b.node("Shape", [b.input("x", b.rand(2, 3, 4))], "y")
    b.output("y", TensorProto.INT64)


@case("shape_start_end", opsets=(17,))
def _(b):
    # Shape-15 start/end attributes
    x = b.input("x", b.rand(2, 3, 4, 5))
    b.node("Shape", [x], "mid", start=1, end=-1)
    b.node("Shape", [x], "tail", start=-2)
    b.output("mid", TensorProto.INT64)
    b.output("tail", TensorProto.INT64)


@case("gather_shape_axis0")
def _(b):
    s = b.node("Shape", [b.input("x", b.rand(2, 3, 4))])
    b.node("Gather", [s, b.init("i0", np.array(0, dtype=np.int64))], "dim0", axis=0)
    b.node("Gather", [s, b.i64("idx", [2, 0])], "dims", axis=0)
    b.output("dim0", TensorProto.INT64)
    b.output("dims", TensorProto.INT64)


@case("gather_axis1_2d_indices")
def _(b):
    x = b.input("x", b.rand(3, 4))
    b.node("Gather", [x, b.init("idx", np.array([[0, 2], [3, 1]], dtype=np.int64))], "y", axis=1)
    b.output("y")


@case("gather_negative_indices")
def _(b):
    x = b.input("x", b.rand(5, 2))
    i = b.input("idx", np.array([-1, 0, -3], dtype=np.int64))
    b.node("Gather", [x, i], "y")
    b.output("y")


@case("unsqueeze_axes")
def _(b):
    b.node("Unsqueeze", [b.input("x", b.rand(3, 4)), b.i64("axes", [0, -1])], "y")
    b.output("y")


@case("unsqueeze_mid")
def _(b):
    b.node("Unsqueeze", [b.input("x", b.rand(3, 4)), b.i64("axes", [1])], "y")
    b.output("y")


@case("squeeze_axes")
def _(b):
    b.node("Squeeze", [b.input("x", b.rand(1, 3, 1, 4)), b.i64("axes", [0, -2])], "y")
    b.output("y")


@case("squeeze_noaxes")
def _(b):
    b.node("Squeeze", [b.input("x", b.rand(1, 3, 1, 4))], "y")
    b.output("y")


@case("slice_steps_int64max")
def _(b):
    x = b.input("x", b.rand(4, 5))
    b.node("Slice", [x, b.i64("starts", [1, 0]), b.i64("ends", [3, INT64_MAX]),
                     b.i64("axes", [0, 1]), b.i64("steps", [1, 2])], "y")
    b.output("y")


@case("slice_negative_steps")
def _(b):
    # axis 1 reversed completely (end = INT64_MIN), axis 0 from 3 down by 2
    x = b.input("x", b.rand(4, 5))
    b.node("Slice", [x, b.i64("starts", [-1, 3]), b.i64("ends", [INT64_MIN, 0]),
                     b.i64("axes", [1, 0]), b.i64("steps", [-1, -2])], "y")
    b.output("y")


@case("slice_default_axes")
def _(b):
    # no axes/steps; out of range start is clamped
    x = b.input("x", b.rand(3, 4, 5))
    b.node("Slice", [x, b.i64("starts", [1, -100]), b.i64("ends", [-1, 3])], "y")
    b.output("y")


@case("slice_negative_axis")
def _(b):
    x = b.input("x", b.rand(3, 4, 5))
    b.node("Slice", [x, b.i64("starts", [0]), b.i64("ends", [1000000000]),
                     b.i64("axes", [-1]), b.i64("steps", [3])], "y")
    b.output("y")


@case("slice_runtime_inputs")
def _(b):
    x = b.input("x", b.rand(4, 6))
    st = b.input("starts", np.array([1, -4], dtype=np.int64))
    en = b.input("ends", np.array([4, -1], dtype=np.int64))
    b.node("Slice", [x, st, en, b.i64("axes", [0, 1])], "y")
    b.output("y", shape=[None, None])


CAST_FLOATS = np.array([1.7, -2.3, 0.2, -0.9, 3.99, -4.01, 0.0, 7.25], dtype=np.float32).reshape(2, 4)


def _cast(name, arr, to):
    def fn(b):
        b.node("Cast", [b.input("x", arr)], "y", to=to)
        b.output("y", to)

    add_case(name, fn)


_cast("cast_float_to_int64", CAST_FLOATS, TensorProto.INT64)
_cast("cast_float_to_int32", CAST_FLOATS, TensorProto.INT32)
_cast("cast_float_to_bool", CAST_FLOATS, TensorProto.BOOL)
_cast("cast_float_to_double", CAST_FLOATS, TensorProto.DOUBLE)
_cast("cast_int64_to_float", np.array([[3, -7, 0], [123456, -1, 42]], dtype=np.int64), TensorProto.FLOAT)
_cast("cast_int32_to_int64", np.array([5, -6, 0, 2147483647], dtype=np.int32), TensorProto.INT64)
_cast("cast_int64_to_int32", np.array([5, -6, 0, 1000], dtype=np.int64), TensorProto.INT32)
_cast("cast_bool_to_float", np.array([[True, False, True], [False, False, True]]), TensorProto.FLOAT)
_cast("cast_double_to_float", np.array([0.1, -2.5, 1e-3, 12345.678], dtype=np.float64), TensorProto.FLOAT)


@case("constant_tensor")
def _(b):
    c = b.node("Constant", [], value=numpy_helper.from_array(b.weight(3, 4), "c"))
    b.node("Add", [b.input("x", b.rand(2, 3, 4)), c], "y")
    b.output("y")


@case("constant_value_float")
def _(b):
    c = b.node("Constant", [], value_float=2.5)
    b.node("Mul", [b.input("x", b.rand(2, 3)), c], "y")
    b.output("y")


@case("constant_value_ints")
def _(b):
    c = b.node("Constant", [], value_ints=[3, -1])
    b.node("Reshape", [b.input("x", b.rand(2, 3, 2)), c], "y")
    b.output("y", shape=[3, 4])


@case("constant_value_floats_int")
def _(b):
    f = b.node("Constant", [], "floats", value_floats=[0.5, -1.25, 3.0])
    i = b.node("Constant", [], "int", value_int=7)
    b.output(f)
    b.output(i, TensorProto.INT64)


@case("constantofshape_value")
def _(b):
    s = b.input("shape", np.array([2, 3], dtype=np.int64))
    b.node("ConstantOfShape", [s], "y", value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5]))
    b.node("ConstantOfShape", [s], "yi", value=helper.make_tensor("v", TensorProto.INT64, [1], [-4]))
    b.output("y")
    b.output("yi", TensorProto.INT64)


@case("constantofshape_default")
def _(b):
    s = b.node("Shape", [b.input("x", b.rand(2, 1, 3))])
    b.node("ConstantOfShape", [s], "y")
    b.output("y")


# --------------------------------------------------------------------------
# Composite models
# --------------------------------------------------------------------------


def mlp_graph(b, batch):
    x = b.input("x", b.rand(batch, 4, lo=-2, hi=2), dims=["batch", 4])
    h = b.node("Gemm", [x, b.init("w1", b.weight(16, 4)), b.init("b1", b.weight(16))], transB=1)
    h = b.node("Relu", [h])
    h = b.node("Gemm", [h, b.init("w2", b.weight(3, 16)), b.init("b2", b.weight(3))], transB=1)
    b.node("Softmax", [h], "y", axis=1)
    b.output("y")


@case("mlp")
def _(b):
    mlp_graph(b, 5)
    b.tolerance = 1e-4


def cnn_graph(b, batch, hw):
    x = b.input("x", b.rand(batch, 3, hw, hw), dims=["N", 3, hw, hw])
    h = b.node("Conv", [x, b.init("conv1.w", b.weight(8, 3, 3, 3, scale=0.3)),
                        b.init("conv1.b", b.weight(8, scale=0.1))],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    h = b.node("BatchNormalization", [
        h,
        b.init("bn.scale", b.rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        b.init("bn.b", b.weight(8, scale=0.1)),
        b.init("bn.mean", b.weight(8, scale=0.1)),
        b.init("bn.var", b.rng.uniform(0.5, 1.5, 8).astype(np.float32)),
    ], epsilon=1e-5)
    h = b.node("Relu", [h])
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Conv", [h, b.init("conv2.w", b.weight(16, 4, 3, 3, scale=0.3)),
                        b.init("conv2.b", b.weight(16, scale=0.1))],
               kernel_shape=[3, 3], group=2)
    h = b.node("Relu", [h])
    h = b.node("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    h = b.node("Gemm", [h, b.init("fc.w", b.weight(10, 16)), b.init("fc.b", b.weight(10, scale=0.1))],
               transB=1)
    b.node("Softmax", [h], "y", axis=1)
    b.output("y")


@case("cnn")
def _(b):
    cnn_graph(b, 2, 16)
    b.tolerance = 1e-4


@case("exporter_reshape")
def _(b):
    # the flatten pattern PyTorch emits for x.view(x.size(0), -1)
    x = b.input("x", b.rand(2, 3, 4), dims=["N", 3, 4])
    s = b.node("Shape", [x])
    i0 = b.node("Constant", [], value=numpy_helper.from_array(np.array(0, dtype=np.int64), "i0"))
    n = b.node("Gather", [s, i0], axis=0)
    n = b.node("Cast", [n], to=TensorProto.INT64)
    n = b.node("Unsqueeze", [n, b.i64("axes0", [0])])
    m1 = b.node("Constant", [], value=numpy_helper.from_array(np.array([-1], dtype=np.int64), "m1"))
    shp = b.node("Concat", [n, m1], axis=0)
    b.node("Reshape", [x, shp], "y")
    b.output("y", shape=["N", 12])


def _dynbatch(batch):
    def fn(b):
        b.name = "dynbatch"
        w = b.init("w", b.weight(6, 3))  # weights first: same for every batch size
        bias = b.init("bias", b.weight(3))
        x = b.input("x", b.rand(batch, 6), dims=["batch", 6])
        h = b.node("MatMul", [x, w])
        h = b.node("Add", [h, bias])
        b.node("Sigmoid", [h], "y")
        b.output("y")

    return fn


# The two dynbatch cases build byte-identical models (the seed comes from the
# shared base name "dynbatch") and feed different batch sizes.
add_case("dynbatch_b1", _dynbatch(1))
add_case("dynbatch_b7", _dynbatch(7))


def _ir(version):
    def fn(b):
        b.name = "ir"
        x = b.input("x", b.rand(2, 4))
        h = b.node("Gemm", [x, b.init("w", b.weight(3, 4)), b.init("c", b.weight(3))], transB=1)
        b.node("Tanh", [h], "y")
        b.output("y")
        b.ir_version = version

    return fn


add_case("ir7", _ir(7), opsets=(13,))  # opset 13 is the newest opset of IR 7
add_case("ir8", _ir(8), opsets=(13, 17))
add_case("ir9", _ir(9), opsets=(17,))  # IR 9 is newer than this onnx; checker skipped


# --------------------------------------------------------------------------


def seed_for(base):
    if base.startswith("dynbatch_"):
        base = "dynbatch"
    if base in ("ir7", "ir8", "ir9"):
        base = "ir"
    return zlib.crc32(base.encode())


def write_case(outdir, name, model, meta, inputs, check=True):
    if check:
        onnx.checker.check_model(model, full_check=True)
    path = os.path.join(outdir, name + ".onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    write_inputs_json(outdir, name, meta, inputs)


def write_inputs_json(outdir, name, meta, inputs):
    meta = dict(meta)
    meta["inputs"] = [
        {
            "name": vi.name,
            "datatype": DATATYPES[arr.dtype][0],
            "shape": [int(d) for d in arr.shape],
            "data": json_data(arr),
        }
        for vi, arr in inputs
    ]
    with open(os.path.join(outdir, name + ".inputs.json"), "w") as f:
        json.dump(meta, f)
        f.write("\n")


def build(base, fn, opset):
    b = Builder(base, opset, np.random.default_rng(seed_for(base)))
    fn(b)
    return b


# The sample model's class means (internal/sample/data.go, classMeans); the
# first three rows fed to the model are sample.Example(), the float32 of each.
SAMPLE_CLASS_MEANS = [
    [5.006, 3.428, 1.462, 0.246],
    [5.936, 2.770, 4.260, 1.326],
    [6.588, 2.974, 5.552, 2.026],
]


def write_sample_inputs(sample_dir):
    """Check <sample_dir>/iris.onnx (written by `bulwark sample`) and write
    <sample_dir>/iris.inputs.json for reference.cjs.

    Inputs: one batch of 6 rows, sample.Example() (the three class means)
    followed by points between the classes: the setosa/versicolor and
    versicolor/virginica midpoints and the centre of all three means.
    """
    path = os.path.join(sample_dir, "iris.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    means = np.array(SAMPLE_CLASS_MEANS, dtype=np.float64)
    rows = np.concatenate([
        means,
        [(means[0] + means[1]) / 2, (means[1] + means[2]) / 2, means.mean(axis=0)],
    ]).astype(np.float32)
    ops = []
    for n in model.graph.node:
        if n.op_type not in ops:
            ops.append(n.op_type)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    (vi,) = model.graph.input
    meta = {
        "model": "iris.onnx",
        "opset": int(opset),
        "ir_version": int(model.ir_version),
        "ops": ops,
    }
    write_inputs_json(sample_dir, "iris", meta, [(vi, rows)])
    print("onnx %s: checked iris.onnx, wrote iris.inputs.json (%d rows)" % (onnx.__version__, len(rows)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=here, help="testdata directory (default: this script's directory)")
    ap.add_argument("--sample", metavar="DIR",
                    help="instead of the cases: check DIR/iris.onnx (from `bulwark sample`) "
                         "and write DIR/iris.inputs.json")
    args = ap.parse_args()

    if args.sample:
        write_sample_inputs(args.sample)
        return

    cases_dir = os.path.join(args.out, "cases")
    bench_dir = os.path.join(args.out, "bench")
    os.makedirs(cases_dir, exist_ok=True)
    os.makedirs(bench_dir, exist_ok=True)

    names = []
    for base, fn, opsets in CASES:
        for opset in opsets:
            b = build(base, fn, opset)
            name = "%s_op%d" % (base, opset)
            meta = {
                "model": name + ".onnx",
                "opset": opset,
                "ir_version": b.ir_version,
                "ops": b.ops(),
            }
            if b.tolerance is not None:
                meta["tolerance"] = b.tolerance
            # onnx 1.12's checker does not know IR 9; onnxruntime checks it.
            write_case(cases_dir, name, b.model(), meta, b.inputs, check=b.ir_version <= 8)
            names.append(name)

    # Negative fixture 1: an operator the builtin runtime does not support.
    b = Builder("bad_unsupported_op", 13, np.random.default_rng(seed_for("bad_unsupported_op")))
    x = b.input("x", b.rand(2, 3))
    w = b.input("w", b.rand(3, 4))
    b.node("Einsum", [x, w], "y", equation="ij,jk->ik")
    b.output("y")
    write_case(cases_dir, "bad_unsupported_op", b.model(),
               {"model": "bad_unsupported_op.onnx", "opset": 13, "ir_version": 8,
                "ops": b.ops(), "expect_load_error": "Einsum"}, b.inputs)
    names.append("bad_unsupported_op")

    # Negative fixture 2: the first half of a valid model's bytes.
    b = build("gemm_transb_alpha_beta", dict((n, f) for n, f, _ in CASES)["gemm_transb_alpha_beta"], 13)
    full = b.model().SerializeToString()
    half = full[: len(full) // 2]
    try:
        onnx.load_model_from_string(half)
    except Exception:
        pass
    else:
        sys.exit("truncated model unexpectedly parses")
    with open(os.path.join(cases_dir, "bad_truncated.onnx"), "wb") as f:
        f.write(half)
    with open(os.path.join(cases_dir, "bad_truncated.inputs.json"), "w") as f:
        json.dump({"model": "bad_truncated.onnx", "opset": 13, "ir_version": 8, "ops": [],
                   "expect_load_error": "", "inputs": []}, f)
        f.write("\n")
    names.append("bad_truncated")

    # Benchmark model: the cnn architecture on 1x3x32x32 (batch dynamic).
    b = Builder("small_cnn", 13, np.random.default_rng(seed_for("small_cnn")))
    cnn_graph(b, 1, 32)
    m = b.model()
    onnx.checker.check_model(m, full_check=True)
    with open(os.path.join(bench_dir, "small_cnn.onnx"), "wb") as f:
        f.write(m.SerializeToString())

    print("onnx %s: wrote %d cases and bench/small_cnn.onnx" % (onnx.__version__, len(names)))


if __name__ == "__main__":
    main()
