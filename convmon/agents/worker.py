"""`convmon worker`: run the Faust app until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import faust

from ..config import Settings
from ..logs import throttle_kafka_client_logs
from .app import create_app
from ..stream.topics import ensure_topics

log = logging.getLogger(__name__)


def run(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    throttle_kafka_client_logs()
    try:
        ensure_topics(settings)
    except RuntimeError as e:
        raise SystemExit(f"convmon worker: {e}") from None
    app = create_app(settings)
    rt = app.convmon.runtime
    if settings.worker.metrics_port:
        rt.metrics.watch(app)
        rt.metrics.serve(settings.worker.metrics_port)

    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
        console_port=0,
    )
    try:
        worker.execute_from_commandline()  # exits the process: 0 after a clean SIGTERM/SIGINT
    finally:
        rt.sink.close_blocking()
        rt.score_executor.shutdown(wait=False)
        rt.processor.pipeline.close()
