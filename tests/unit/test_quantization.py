"""The shipped int8 graph computes the same integers on every x86-64 CPU, with and without VNNI.

Dynamic int8 multiplies u8 activations (0..255) by s8 weights. x86 CPUs without VNNI add pairs of those
products in a signed 16-bit lane (vpmaddubsw), which saturates above 32,767; CPUs with VNNI accumulate in
32 bits and do not. With 7-bit weights (|w| <= 64) a pair is at most 2 * 255 * 64 = 32,640, so both kinds
of CPU compute exact integers, and the same scores (convmon_dev/modelsuite/graph.py).
"""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from convmon_dev.modelsuite.graph import quantize

MODELS = Path(__file__).resolve().parents[2] / "models"
PAIR_LIMIT = 32767  # the 16-bit lane of the non-VNNI kernel


def _matmul_integer_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {i.name: i for i in model.graph.initializer}
    return {n.input[1]: numpy_helper.to_array(inits[n.input[1]])
            for n in model.graph.node if n.op_type == "MatMulInteger" and n.input[1] in inits}


def test_every_int8_weight_of_the_shipped_suite_leaves_room_for_a_pair_of_products():
    weights = _matmul_integer_weights(onnx.load(str(MODELS / "suite.onnx")))
    assert len(weights) >= 30  # the encoder's linear layers and the heads, all quantised
    for name, w in weights.items():
        assert w.dtype == np.int8, name
        assert 2 * 255 * int(np.abs(w.astype(np.int32)).max()) <= PAIR_LIMIT, f"{name}: weights use all 8 bits"


def test_the_build_quantization_computes_exact_integers_on_this_cpu(tmp_path):
    """Inputs at the top of the u8 range against weights at the top of their range: the case a non-VNNI
    CPU would saturate with full-range weights. The project's quantisation must give exact integer math."""
    k, n = 256, 32
    rng = np.random.default_rng(0)
    w = np.sign(rng.normal(size=(k, n))).astype(np.float32)  # every weight at +-max after quantisation
    x = np.full((4, k), 10.0, dtype=np.float32)
    x[:, 0] = 0.0  # activation range [0, 10]: zero point 0, 10.0 -> 255
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
        [numpy_helper.from_array(w, "w")])
    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    quantize(src, dst)

    q = onnx.load(str(dst))
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    (wname, wq), = _matmul_integer_weights(q).items()
    scale = next(v for name, v in inits.items() if name != wname and v.dtype == np.float32 and v.shape == (n,))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    y = ort.InferenceSession(str(dst), opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    xs = 10.0 / 255
    xq = np.clip(np.round(x / xs), 0, 255).astype(np.int64)
    exact = (xq @ wq.astype(np.int64)) * xs * scale
    # the probe drives a pair of products to the top of the 16-bit lane (where full-range weights would overflow)
    assert 2 * int(xq.max()) * int(np.abs(wq.astype(np.int32)).max()) > 30000
    np.testing.assert_allclose(y, exact, rtol=1e-5)
