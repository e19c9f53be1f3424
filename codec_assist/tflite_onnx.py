"""A TFLite model as an ONNX graph, for the few operators MediaPipe's BlazeFace detectors use.

The face detector used to run on LiteRT, beside ONNX Runtime for the OCR: a second runtime in the analysis process
(~26 MiB resident, 16 of them library code). The .tflite file is read with the flatbuffer schema LiteRT ships
(`ai_edge_litert.schema_py_generated`; nothing of LiteRT's runtime is loaded) and rewritten op by op in NCHW, the
layout ONNX's convolutions take: weights are transposed once here, the NHWC input is transposed at the graph's
start, and a tensor goes back to NHWC before a RESHAPE, whose result depends on the memory order. fp16 weights
(DEQUANTIZE of a constant) become fp32 constants, as LiteRT's own kernels compute them. An operator outside the
list raises: the caller falls back to LiteRT.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)


class Unsupported(ValueError):
    """The model uses something this converter does not translate."""


def convert(path: Path):
    """The .tflite at `path` as an onnx.ModelProto (inputs and outputs keep their TFLite names and layouts)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(Path(path).read_bytes(), 0)
    if model.SubgraphsLength() != 1:
        raise Unsupported(f"{Path(path).name}: {model.SubgraphsLength()} subgraphs")
    graph = model.Subgraphs(0)
    ops = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    dtypes = {fb.TensorType.FLOAT32: np.float32, fb.TensorType.FLOAT16: np.float16, fb.TensorType.INT32: np.int32}

    def tensor_name(i: int) -> str:
        return graph.Tensors(i).Name().decode()

    consts: dict[int, np.ndarray] = {}  # tensor index -> its value (fp16 dequantised to fp32)
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() else 0
        if isinstance(data, np.ndarray) and data.size:
            if t.Type() not in dtypes:
                raise Unsupported(f"tensor {t.Name().decode()}: type {t.Type()}")
            consts[i] = data.view(dtypes[t.Type()]).reshape(t.ShapeAsNumpy())

    nodes, initializers = [], []
    nchw: set[str] = set()  # the ONNX names of 4-D tensors held in NCHW (TFLite: NHWC)

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{len(nodes)}", **attrs))
        return output

    def activation(code: int, x: str, output: str) -> str:
        if code == fb.ActivationFunctionType.NONE:
            return node("Identity", [x], output)
        if code == fb.ActivationFunctionType.RELU:
            return node("Relu", [x], output)
        if code == fb.ActivationFunctionType.RELU6:
            return node("Clip", [x, const(output + "/lo", np.float32(0)), const(output + "/hi", np.float32(6))],
                        output)
        raise Unsupported(f"fused activation {code}")

    def options(op, cls):
        table = op.BuiltinOptions()
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return o

    def same_layout(x: str, output: str) -> str:  # an elementwise op's output has its input's layout
        if x in nchw:
            nchw.add(output)
        return output

    def pad_mode(padding: int) -> str:
        return "SAME_UPPER" if padding == fb.Padding.SAME else "VALID"

    inputs = [graph.Inputs(i) for i in range(graph.InputsLength())]
    graph_inputs = []
    for i in inputs:
        t = graph.Tensors(i)
        shape = [int(d) for d in t.ShapeAsNumpy()]
        graph_inputs.append(helper.make_tensor_value_info(tensor_name(i), TensorProto.FLOAT, shape))
        if len(shape) == 4:
            node("Transpose", [tensor_name(i)], tensor_name(i) + "/nchw", perm=NHWC_TO_NCHW)
            nchw.add(tensor_name(i) + "/nchw")
    names = {i: tensor_name(i) + ("/nchw" if tensor_name(i) + "/nchw" in nchw else "") for i in inputs}

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = ops.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = [int(i) for i in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        out_name = tensor_name(out)
        x = names.get(ins[0]) if ins else None
        if kind == "DEQUANTIZE":
            if ins[0] not in consts:
                raise Unsupported("DEQUANTIZE of a computed tensor")
            consts[out] = consts[ins[0]].astype(np.float32)
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = consts[ins[1]].astype(np.float32), consts[ins[2]].astype(np.float32)
            if kind == "CONV_2D":
                o = options(op, fb.Conv2DOptions)
                weight, group = w.transpose(0, 3, 1, 2), 1  # OHWI -> OIHW
            else:
                o = options(op, fb.DepthwiseConv2DOptions)
                weight = w.transpose(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW
                group = int(graph.Tensors(ins[0]).ShapeAsNumpy()[3])
            y = node("Conv", [x, const(out_name + "/w", weight), const(out_name + "/b", b)], out_name + "/conv",
                     strides=[o.StrideH(), o.StrideW()], dilations=[o.DilationHFactor(), o.DilationWFactor()],
                     kernel_shape=list(weight.shape[2:]), auto_pad=pad_mode(o.Padding()), group=group)
            names[out] = activation(o.FusedActivationFunction(), y, out_name)
            nchw.add(out_name)
        elif kind == "RELU":
            names[out] = same_layout(x, node("Relu", [x], out_name))
        elif kind == "ADD":
            o = options(op, fb.AddOptions)
            y = node("Add", [names[ins[0]], names[ins[1]]], out_name + "/add")
            names[out] = same_layout(x, activation(o.FusedActivationFunction(), y, out_name))
        elif kind == "PAD":
            pads = consts[ins[1]].astype(np.int64)  # (4, 2) in NHWC order
            if x in nchw:
                pads = pads[list(NHWC_TO_NCHW)]
            names[out] = same_layout(x, node("Pad", [x, const(out_name + "/pads", np.concatenate(
                [pads[:, 0], pads[:, 1]]))], out_name, mode="constant"))
        elif kind == "MAX_POOL_2D":
            o = options(op, fb.Pool2DOptions)
            y = node("MaxPool", [x], out_name + "/pool", kernel_shape=[o.FilterHeight(), o.FilterWidth()],
                     strides=[o.StrideH(), o.StrideW()], auto_pad=pad_mode(o.Padding()))
            names[out] = activation(o.FusedActivationFunction(), y, out_name)
            nchw.add(out_name)
        elif kind == "RESIZE_BILINEAR":
            o = options(op, fb.ResizeBilinearOptions)
            h, w = (int(v) for v in consts[ins[1]])
            n, _, _, c = (int(v) for v in graph.Tensors(ins[0]).ShapeAsNumpy())
            mode = ("align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric")
            names[out] = node("Resize", [x, "", "", const(out_name + "/sizes", np.array([n, c, h, w], np.int64))],
                              out_name, mode="linear", coordinate_transformation_mode=mode)
            nchw.add(out_name)
        elif kind == "RESHAPE":
            if x in nchw:
                x = node("Transpose", [x], out_name + "/nhwc", perm=NCHW_TO_NHWC)
            shape = np.array([int(d) for d in graph.Tensors(out).ShapeAsNumpy()], np.int64)
            names[out] = node("Reshape", [x, const(out_name + "/shape", shape)], out_name)
        elif kind == "CONCATENATION":
            o = options(op, fb.ConcatenationOptions)
            parts = [names[i] for i in ins]
            axis = o.Axis() % len(graph.Tensors(out).ShapeAsNumpy())
            if all(p in nchw for p in parts):
                axis = NHWC_TO_NCHW.index(axis)
                nchw.add(out_name)
            elif any(p in nchw for p in parts):
                raise Unsupported("CONCATENATION of NHWC and NCHW tensors")
            y = node("Concat", parts, out_name + "/cat", axis=axis)
            names[out] = activation(o.FusedActivationFunction(), y, out_name)
        else:
            raise Unsupported(f"operator {kind}")

    outputs = []
    for i in (graph.Outputs(j) for j in range(graph.OutputsLength())):
        name, shape = tensor_name(i), [int(d) for d in graph.Tensors(i).ShapeAsNumpy()]
        if names[i] in nchw:
            raise Unsupported(f"output {name} is 4-D")
        if names[i] != name:
            node("Identity", [names[i]], name)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    onnx_graph = helper.make_graph(nodes, Path(path).stem, graph_inputs, outputs, initializer=initializers)
    out_model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="codec-assist tflite_onnx")
    onnx.checker.check_model(out_model)
    return out_model
