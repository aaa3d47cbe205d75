"""The hand-written ONNX encoder graph computes BERT: checked against a plain numpy forward pass,
and (where torch is installed, i.e. for whoever trains) against the torch layers training uses."""

import math

import numpy as np
import pytest

from convmon_dev.modelsuite import bert
from convmon.scoring.suite import Encoder, make_tokenizer
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "models"
_erf = np.vectorize(math.erf)


@pytest.fixture(scope="module")
def weights():
    return bert.load_weights(bert.base_weights_path())


def _ln(x, w, b):
    m = x.mean(-1, keepdims=True)
    v = x.var(-1, keepdims=True)
    return (x - m) / np.sqrt(v + bert.LN_EPS) * w + b


def _layer(x, w, i):
    p = f"encoder.layer.{i}."

    def lin(a, n):
        return a @ w[p + n + ".weight"].T + w[p + n + ".bias"]

    L = x.shape[0]

    def heads(t):
        return t.reshape(L, bert.HEADS, bert.HEAD_DIM).transpose(1, 0, 2)

    q, k, v = (heads(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
    s = q @ k.transpose(0, 2, 1) / math.sqrt(bert.HEAD_DIM)
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    ctx = (s @ v).transpose(1, 0, 2).reshape(L, bert.HIDDEN)
    a = _ln(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"])
    h = lin(a, "intermediate.dense")
    h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
    return _ln(lin(h, "output.dense") + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])


def _numpy_forward(ids, w, frozen, head):
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = _ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    emb = None
    for i in range(bert.LAYERS):
        if i == frozen:
            emb = x.mean(0) / np.linalg.norm(x.mean(0))
        x = _layer(x, w, i)
    pooled = x.mean(0)
    W, b, _ = head
    return emb, 1 / (1 + np.exp(-(pooled @ W + b)))[0]


def test_onnx_graph_matches_a_numpy_bert_forward(tmp_path, weights):
    import onnx

    rng = np.random.default_rng(0)
    head = (rng.normal(0, 0.1, (bert.HIDDEN, 1)).astype(np.float32), np.zeros(1, np.float32), "sigmoid")
    model = bert.suite_graph(weights, 3, {"toxicity": head}, [])
    onnx.save(model, str(tmp_path / "g.onnx"))
    enc = Encoder(tmp_path / "g.onnx", MODELS / "tokenizer.json")
    tok = make_tokenizer(MODELS / "tokenizer.json")
    for text in ("hello there", "The quick brown fox jumps over the lazy dog, twice."):
        got = enc.run([text])
        emb, score = _numpy_forward(np.array(tok.encode(text).ids), weights, 3, head)
        assert np.abs(got["text_embedding"][0] - emb).max() < 1e-4
        assert abs(float(got["toxicity"][0]) - score) < 1e-4


def test_torch_training_layer_matches_the_numpy_layer(weights):
    torch = pytest.importorskip("torch", reason="torch is a train-time extra (make train-deps)")
    from convmon_dev.modelsuite.train import _modules

    layer = _modules(torch)(0.0)
    layer.load(weights, 4)
    layer.eval()
    x = np.random.default_rng(1).normal(size=(1, 7, bert.HIDDEN)).astype(np.float32)
    with torch.no_grad():
        got = layer(torch.from_numpy(x), torch.zeros(1, 1, 1, 7)).numpy()[0]
    assert np.abs(got - _layer(x[0], weights, 4)).max() < 1e-4
