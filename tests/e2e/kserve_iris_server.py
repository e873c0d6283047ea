#!/usr/bin/env python3
"""The real KServe 0.16 model server serving the iris joblib (sklearn).

KServe's own `sklearnserver` is not on PyPI; this is the same thing in ~50
lines: a kserve.Model that loads model.joblib and predicts with the helpers
sklearnserver uses (V1 `instances` -> `predictions`, V2 `inputs` -> `outputs`).

  python kserve_iris_server.py --model_dir DIR --model_name sklearn-iris \
      --http_port 8080 --grpc_port 8081 [--enable_grpc true|false] [--host 127.0.0.1]

KServe 0.16 hard-codes 0.0.0.0 (REST) and [::] (gRPC); --host rebinds both to
the given address (127.0.0.1 by default) so tests never listen outside loopback.
"""

import argparse
import os

import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response

_HOST = os.environ.get("KSERVE_TEST_HOST", "127.0.0.1")


def _bind_loopback(host: str) -> None:
    import grpc.aio
    import uvicorn

    orig_config = uvicorn.Config

    class Config(orig_config):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **kw):
            kw["host"] = host
            super().__init__(*a, **kw)

    uvicorn.Config = Config

    orig_server = grpc.aio.server

    def server(*a, **kw):
        s = orig_server(*a, **kw)
        add = s.add_insecure_port
        s.add_insecure_port = lambda addr: add(f"{host}:{addr.rsplit(':', 1)[1]}")
        return s

    grpc.aio.server = server


class SKLearnIris(kserve.Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self._model = None

    def load(self) -> bool:
        self._model = joblib.load(os.path.join(self.model_dir, "model.joblib"))
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        instances = get_predict_input(payload)
        result = self._model.predict(instances)
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--host", default=_HOST)
    args, _ = parser.parse_known_args()
    _bind_loopback(args.host)
    model = SKLearnIris(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
    ).start([model])
