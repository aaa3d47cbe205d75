"""int8 quantisation of the suite graph (onnxruntime dynamic quantisation, per channel).

Per-tensor int8 was measured too lossy for MiniLM (embedding cosine vs fp32 mean 0.95, min 0.90);
per channel keeps it at 0.99 mean.
"""

from __future__ import annotations

from pathlib import Path


def quantize(src: Path, dst: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises "pre-processing" on the root logger at every call
    try:
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
