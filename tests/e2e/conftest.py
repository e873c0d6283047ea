"""pytest fixtures: real peers on 127.0.0.1 (see peers.py for the machinery).

Session-scoped (started on first use, stopped at the end of the session):
  iris_model_dir   Path with model.joblib + model.onnx (ZipMap outputs)
  mlserver_iris    MLServer 1.7.1, model "iris"          (.rest_url .grpc_addr .metrics_url .log())
  kserve_iris      KServe 0.16, model "sklearn-iris"     (.rest_url .grpc_addr .log())
  litellm_mock     LiteLLM proxy, model "llama3" + "text-embedding-mock" (.url .base_url .log())
  redis_server     redis-server, no persistence          (.port .url .command(...) .ping())

Function-scoped factories (everything they start is stopped after the test):
  start_nginx(server_block, port=None, http_extra="")    -> peers.Nginx
  start_modelgate(config_text, extra_args=(), env=None, *, listen=None, admin=None,
                  timeout=30, wait_ready=True)           -> peers.Modelgate
  run_modelgate(args, input=None, env=None, cwd=None, timeout=60, check=False)
                                                         -> subprocess.CompletedProcess

Identity peers (function-scoped factories; see the identity section of peers.py):
  start_oidc(port=None, generation=1)                  -> peers.OidcProvider  (.issuer .token(resource) .revoke(t) .keys)
  start_kube_stub(tokens, gateway_token)               -> peers.KubeStub      (.url; a TokenReview stand-in)

Helpers: `from peers import free_port, free_addr, IRIS_ROWS, IRIS_LABELS`.
Requires the venv from scripts/install-deps.sh; run pytest with its python.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from peers import PeerError  # noqa: E402


def _start(fn, *args, **kwargs):
    """Run a peers.start_* function; turn PeerError into a test failure that
    shows the server's log tail (never a skip)."""
    try:
        return fn(*args, **kwargs)
    except PeerError as e:
        pytest.fail(str(e), pytrace=False)


def _timed(request, proc):
    if proc.ready_after is not None:
        request.config._modelgate_peer_times = getattr(request.config, "_modelgate_peer_times", {})
        request.config._modelgate_peer_times[proc.name] = proc.ready_after
    return proc


@pytest.fixture(scope="session")
def iris_model_dir(tmp_path_factory) -> Path:
    return peers.write_iris_model(tmp_path_factory.mktemp("iris-model"))


@pytest.fixture(scope="session")
def mlserver_iris(request, tmp_path_factory, iris_model_dir):
    srv = _start(peers.start_mlserver, tmp_path_factory.mktemp("mlserver"), iris_model_dir / "model.joblib",
                 model_name="iris")
    yield _timed(request, srv)
    srv.stop()


@pytest.fixture(scope="session")
def kserve_iris(request, tmp_path_factory, iris_model_dir):
    srv = _start(peers.start_kserve, tmp_path_factory.mktemp("kserve"), iris_model_dir,
                 model_name="sklearn-iris")
    yield _timed(request, srv)
    srv.stop()


@pytest.fixture(scope="session")
def litellm_mock(request, tmp_path_factory):
    srv = _start(peers.start_litellm, tmp_path_factory.mktemp("litellm"), model="llama3")
    yield _timed(request, srv)
    srv.stop()


@pytest.fixture(scope="session")
def redis_server(request, tmp_path_factory):
    srv = _start(peers.start_redis, tmp_path_factory.mktemp("redis"))
    yield _timed(request, srv)
    srv.stop()


@pytest.fixture
def start_nginx(request, tmp_path):
    started: list[peers.Nginx] = []

    def factory(server_block: str, **kwargs) -> peers.Nginx:
        work = tmp_path / f"nginx-{len(started)}"
        srv = _start(peers.start_nginx, work, server_block, **kwargs)
        started.append(srv)
        return _timed(request, srv)

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def start_modelgate(tmp_path):
    started: list[peers.Modelgate] = []

    def factory(config_text: str, extra_args=(), env=None, **kwargs) -> peers.Modelgate:
        work = tmp_path / f"modelgate-{len(started)}"
        mg = _start(peers.start_modelgate, work, config_text, extra_args, env, **kwargs)
        started.append(mg)
        return mg

    yield factory
    for mg in started:
        mg.stop()


@pytest.fixture
def run_modelgate():
    def run(args, **kwargs):
        try:
            return peers.run_modelgate(args, **kwargs)
        except PeerError as e:
            pytest.fail(str(e), pytrace=False)

    return run


# --- identity peers (issue 5) -------------------------------------------------
@pytest.fixture
def start_oidc(request, tmp_path):
    started: list[peers.OidcProvider] = []

    def factory(**kwargs) -> peers.OidcProvider:
        srv = _start(peers.start_oidc_provider, tmp_path / "oidc", **kwargs)
        started.append(srv)
        return _timed(request, srv)

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def start_kube_stub(tmp_path):
    started: list[peers.KubeStub] = []

    def factory(tokens, gateway_token, **kw) -> peers.KubeStub:
        srv = _start(peers.start_kube_stub, tmp_path / f"kube-stub-{len(started)}", tokens, gateway_token, **kw)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
# --- end identity peers -------------------------------------------------------


@pytest.fixture
def free_port():
    """The peers.free_port function (also importable: `from peers import free_port`)."""
    return peers.free_port


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    times = getattr(config, "_modelgate_peer_times", None)
    if times:
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(times.items()))
        terminalreporter.write_line(f"peer start times: {parts}")
