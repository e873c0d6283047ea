"""Real peer servers for modelgate's end-to-end tests and benchmarks.

Every server here is a real program (MLServer, KServe, LiteLLM's proxy, nginx,
redis-server, modelgate itself) started as a child process on 127.0.0.1 with
free ports, with its output kept in a log file, waited on until it answers,
and stopped by process group at the end (SIGTERM, then SIGKILL).

Plain functions, usable without pytest (e.g. from bench scripts):

    from peers import start_mlserver, write_iris_model
    d = write_iris_model("/tmp/iris")
    srv = start_mlserver("/tmp/mls", d / "model.joblib")
    ...
    srv.stop()

conftest.py wraps these in fixtures.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELGATE_CACHE", Path.home() / ".cache" / "modelgate"))
LOCALHOST = "127.0.0.1"

# Default readiness timeouts (seconds). Generous but bounded.
MLSERVER_TIMEOUT = float(os.environ.get("MODELGATE_PEER_TIMEOUT", "60"))
KSERVE_TIMEOUT = MLSERVER_TIMEOUT
LITELLM_TIMEOUT = MLSERVER_TIMEOUT
SMALL_TIMEOUT = 15.0
MODELGATE_TIMEOUT = float(os.environ.get("MODELGATE_START_TIMEOUT", "30"))

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
IRIS_LABELS = [1, 1]


class PeerError(RuntimeError):
    """A peer could not be started / did not become ready."""


# ---------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0).

    Never returns the same port twice in one process, so several calls in a
    row give distinct ports even before anything binds them."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOCALHOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise PeerError("could not find a free port")


def free_addr() -> str:
    """'127.0.0.1:PORT' with a free port."""
    return f"{LOCALHOST}:{free_port()}"


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> int | None:
    """HTTP status of a GET (None when nothing answers). Ignores proxy env."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------
_live: dict[int, "Proc"] = {}


def _preexec() -> None:
    # Own process group (so stop() can signal workers too) and die with the
    # test process if it is killed hard (Linux PR_SET_PDEATHSIG).
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Proc:
    """A child process in its own process group, output in log file(s)."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stderr_path: Path | None = None,
    ):
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.log_path = Path(log_path)
        self.stderr_path = Path(stderr_path) if stderr_path else None
        self.cwd = cwd
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        err = open(self.stderr_path, "ab") if self.stderr_path else subprocess.STDOUT
        self.started_at = time.monotonic()
        self.ready_after: float | None = None
        try:
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=str(cwd) if cwd else None,
                env=dict(env) if env is not None else None,
                preexec_fn=_preexec,
            )
        except OSError as e:
            raise PeerError(f"{name}: cannot run {shlex.join(self.cmd)}: {e}") from e
        finally:
            out.close()
            if err is not subprocess.STDOUT:
                err.close()
        self.pid = self.popen.pid
        _live[self.pid] = self

    # -- output -------------------------------------------------------------
    def log(self, since: int = 0) -> str:
        """What the process wrote to its log (stdout+stderr unless split),
        from byte offset `since` (see log_mark())."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    read_log = log

    def log_mark(self) -> int:
        """Current end of the log. Session-scoped peers are shared by many
        tests: take a mark first, then look only at log(since=mark)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def stderr(self) -> str:
        if not self.stderr_path:
            return self.log()
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for label, path in (("log", self.log_path), ("stderr", self.stderr_path)):
            if path is None:
                continue
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {self.name} {label} ({path}), last {lines} lines ---\n{tail}")
        return "\n".join(parts)

    def log_lines(self, containing: str | None = None, since: int = 0) -> list[str]:
        lines = self.log(since).splitlines()
        return [ln for ln in lines if containing is None or containing in ln]

    def saw_path(self, path: str, since: int = 0) -> bool:
        """True if `path` appears in the log (from offset `since`), raw or
        percent-encoded the way uvicorn's access log writes it
        (MLServer/KServe/LiteLLM log `/v1/models/m:predict` as
        `/v1/models/m%3Apredict`)."""
        from urllib.parse import quote

        text = self.log(since)
        return path in text or quote(path) in text

    def wait_for_log(self, text: str, since: int = 0, timeout: float = 5.0) -> None:
        """Wait until `text` (or, for a path, its percent-encoded form) shows
        up in the log; AssertionError with the log tail otherwise. Access log
        lines can land a moment after the client has its response."""
        deadline = time.monotonic() + timeout
        while not self.saw_path(text, since):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {text!r} not in the log after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    # -- lifecycle ----------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `check` until true; raise PeerError (with the log tail) if the
        process exits or `timeout` passes. Returns seconds since start."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            rc = self.popen.poll()
            if rc is not None:
                self.stop()
                raise PeerError(
                    f"{self.name} exited with code {rc} before it was ready ({what})\n"
                    f"command: {shlex.join(self.cmd)}\n{self.log_tail()}"
                )
            try:
                if check():
                    break
            except Exception:  # noqa: BLE001 - a check error means "not yet"
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PeerError(
                    f"{self.name} not ready after {timeout:.0f}s ({what})\n"
                    f"command: {shlex.join(self.cmd)}\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        self.ready_after = time.monotonic() - self.started_at
        return self.ready_after

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process only (not its group)."""
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM the whole process group, wait, then SIGKILL what is left.
        Idempotent. Returns the exit code of the main process."""
        pgid = self.pid  # setsid() in the child: its pid is its group id
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # Workers (MLServer's inference pool, uvicorn children) share the
        # group: give them a moment, then kill whatever is left.
        deadline = time.monotonic() + 3
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _live.pop(self.pid, None)
        return self.popen.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} log={self.log_path}>"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@atexit.register
def _stop_all() -> None:
    for p in list(_live.values()):
        try:
            p.stop(timeout=3)
        except Exception:
            pass


def _venv_bin(tool: str) -> str:
    """A console script next to the running interpreter, else in the cache venv."""
    here = Path(sys.executable).parent / tool
    if here.exists():
        return str(here)
    cached = CACHE / "venv" / "bin" / tool
    if cached.exists():
        return str(cached)
    raise PeerError(f"'{tool}' not found next to {sys.executable} or in {cached}; run scripts/install-deps.sh")


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


# ---------------------------------------------------------------------------
# the iris model
# ---------------------------------------------------------------------------
def write_iris_model(outdir: str | os.PathLike, zipmap: bool = True) -> Path:
    """Train the iris LogisticRegression; write model.joblib + model.onnx."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import iris_model  # scripts/iris_model.py
    finally:
        sys.path.pop(0)
    out = Path(outdir)
    args = [str(out)] + ([] if zipmap else ["--no-zipmap"])
    iris_model.main(args)
    return out


# ---------------------------------------------------------------------------
# MLServer (Seldon) 1.7.1
# ---------------------------------------------------------------------------
class MLServer(Proc):
    model_name: str
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def rest_url(self) -> str:
        return f"http://{LOCALHOST}:{self.http_port}"

    url = rest_url

    @property
    def grpc_addr(self) -> str:
        return f"{LOCALHOST}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOCALHOST}:{self.metrics_port}/metrics"

    def infer_url(self, model: str | None = None) -> str:
        return f"{self.rest_url}/v2/models/{model or self.model_name}/infer"


def start_mlserver(
    workdir: str | os.PathLike,
    joblib_path: str | os.PathLike,
    *,
    model_name: str = "iris",
    parallel_workers: int = 0,
    timeout: float = MLSERVER_TIMEOUT,
    extra_settings: Mapping | None = None,
) -> MLServer:
    """MLServer serving `joblib_path` via mlserver_sklearn.SKLearnModel.

    parallel_workers=0 runs inference in the server process (fastest start,
    one process); >=1 uses MLServer's worker pool (extra processes, same group).
    """
    work = Path(workdir)
    models = work / "models" / model_name
    models.mkdir(parents=True, exist_ok=True)
    target = models / "model.joblib"
    if not target.exists():
        target.write_bytes(Path(joblib_path).read_bytes())
    (models / "model-settings.json").write_text(json.dumps({
        "name": model_name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }, indent=2))
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {
        "debug": True,  # access log lines for every request
        "host": LOCALHOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": parallel_workers,
        "load_models_at_startup": True,
        "metrics_dir": str(work / ".metrics"),
        "environments_dir": str(work / ".envs"),
    }
    settings.update(extra_settings or {})
    (work / "models" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = _clean_env()
    # MLSERVER_* env vars would override settings.json: drop inherited ones.
    for k in list(env):
        if k.startswith("MLSERVER_"):
            del env[k]
    srv = MLServer(
        "mlserver", [_venv_bin("mlserver"), "start", str(work / "models")],
        work / "mlserver.log", cwd=work, env=env,
    )
    srv.model_name, srv.http_port, srv.grpc_port, srv.metrics_port = model_name, http_port, grpc_port, metrics_port

    def ready() -> bool:
        return (http_status(f"{srv.rest_url}/v2/models/{model_name}/ready") == 200
                and port_open(grpc_port))

    srv.wait_ready(ready, timeout, f"GET /v2/models/{model_name}/ready and gRPC port {grpc_port}")
    return srv


# ---------------------------------------------------------------------------
# KServe 0.16 model server
# ---------------------------------------------------------------------------
class KServe(Proc):
    model_name: str
    http_port: int
    grpc_port: int | None

    @property
    def rest_url(self) -> str:
        return f"http://{LOCALHOST}:{self.http_port}"

    url = rest_url

    @property
    def grpc_addr(self) -> str | None:
        return f"{LOCALHOST}:{self.grpc_port}" if self.grpc_port else None

    def predict_url(self, model: str | None = None) -> str:
        return f"{self.rest_url}/v1/models/{model or self.model_name}:predict"

    def infer_url(self, model: str | None = None) -> str:
        return f"{self.rest_url}/v2/models/{model or self.model_name}/infer"


def start_kserve(
    workdir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    model_name: str = "sklearn-iris",
    enable_grpc: bool = True,
    timeout: float = KSERVE_TIMEOUT,
) -> KServe:
    """KServe's ModelServer with an sklearn iris model (tests/e2e/kserve_iris_server.py)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    grpc_port = free_port()
    cmd = [
        sys.executable, str(Path(__file__).with_name("kserve_iris_server.py")),
        "--model_dir", str(model_dir), "--model_name", model_name,
        "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        "--enable_grpc", "true" if enable_grpc else "false",
        "--host", LOCALHOST,
    ]
    srv = KServe("kserve", cmd, work / "kserve.log", cwd=work, env=_clean_env())
    srv.model_name, srv.http_port = model_name, http_port
    srv.grpc_port = grpc_port if enable_grpc else None

    def ready() -> bool:
        ok = http_status(f"{srv.rest_url}/v2/models/{model_name}/ready") == 200
        return ok and (not enable_grpc or port_open(grpc_port))

    srv.wait_ready(ready, timeout, f"GET /v2/models/{model_name}/ready")
    return srv


# ---------------------------------------------------------------------------
# LiteLLM proxy with mock models (OpenAI-compatible API, no network)
# ---------------------------------------------------------------------------
LITELLM_MOCK_TEXT = "Hello from the mock llama3."
# A second chat model, so tests can tell which model actually answered.
LITELLM_SECOND_MODEL = "granite"
LITELLM_SECOND_MOCK_TEXT = "Hello from the mock granite."
LITELLM_EMBEDDING = [0.125, -0.25, 0.5, 1.0]


class LiteLLM(Proc):
    port: int
    model: str
    second_model: str
    second_mock_text: str
    embedding_model: str
    mock_text: str

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """For openai.OpenAI(base_url=...)."""
        return f"{self.url}/v1"


def litellm_bin() -> str:
    override = os.environ.get("MODELGATE_LITELLM_BIN")
    path = Path(override) if override else CACHE / "venv-litellm" / "bin" / "litellm"
    if not path.exists():
        raise PeerError(f"LiteLLM not found at {path}; run scripts/install-deps.sh (venv-litellm)")
    return str(path)


def start_litellm(
    workdir: str | os.PathLike,
    *,
    model: str = "llama3",
    mock_text: str = LITELLM_MOCK_TEXT,
    embedding_model: str = "text-embedding-mock",
    embedding: Sequence[float] = LITELLM_EMBEDDING,
    extra_models: Iterable[Mapping] = (),
    timeout: float = LITELLM_TIMEOUT,
    master_key: str | None = None,
) -> LiteLLM:
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "model_list": [
            {"model_name": model,
             "litellm_params": {"model": f"openai/{model}", "api_key": "sk-mock", "mock_response": mock_text}},
            {"model_name": embedding_model,
             "litellm_params": {"model": f"openai/{embedding_model}", "api_key": "sk-mock",
                                "mock_response": list(embedding)},
             "model_info": {"mode": "embedding"}},
            {"model_name": LITELLM_SECOND_MODEL,
             "litellm_params": {"model": f"openai/{LITELLM_SECOND_MODEL}", "api_key": "sk-mock",
                                "mock_response": LITELLM_SECOND_MOCK_TEXT}},
            *extra_models,
        ],
        "litellm_settings": {"telemetry": False},
    }
    if master_key:  # then every request needs `Authorization: Bearer <master_key>`
        config["general_settings"] = {"master_key": master_key}
    cfg = work / "litellm.yaml"
    cfg.write_text(json.dumps(config, indent=2))  # JSON is YAML
    env = _clean_env({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # don't fetch the cost map
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "INFO",
        "HOME": str(work),  # keep its caches out of the real home
    })
    for k in ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(k, None)
    srv = LiteLLM(
        "litellm",
        [litellm_bin(), "--config", str(cfg), "--host", LOCALHOST, "--port", str(port), "--num_workers", "1"],
        work / "litellm.log", cwd=work, env=env,
    )
    srv.port, srv.model, srv.embedding_model, srv.mock_text = port, model, embedding_model, mock_text
    srv.second_model, srv.second_mock_text = LITELLM_SECOND_MODEL, LITELLM_SECOND_MOCK_TEXT
    srv.wait_ready(lambda: http_status(f"{srv.url}/health/liveliness") == 200, timeout, "GET /health/liveliness")
    return srv


# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------
NGINX_BIN = os.environ.get("MODELGATE_NGINX_BIN", "/usr/sbin/nginx")


class Nginx(Proc):
    port: int
    root: Path
    access_log: Path
    error_log: Path

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def access_lines(self) -> list[str]:
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []


def start_nginx(
    workdir: str | os.PathLike,
    server_block: str,
    *,
    port: int | None = None,
    http_extra: str = "",
    worker_processes: int | str = 1,
    timeout: float = SMALL_TIMEOUT,
) -> Nginx:
    """nginx in the foreground with the caller's `server { ... }` block.

    In `server_block` (and `http_extra`), `__PORT__` becomes the listen port
    (free unless `port` is given), `__ROOT__` a per-instance directory for
    static files, `__WORK__` the work directory. Access log (combined format):
    `.access_log`; error log: `.error_log` (also in `.log()`).
    """
    if not Path(NGINX_BIN).exists():
        raise PeerError(f"{NGINX_BIN} not found; run scripts/install-deps.sh (nginx-light)")
    work = Path(workdir)
    root = work / "root"
    for d in ("root", "tmp", "logs"):
        (work / d).mkdir(parents=True, exist_ok=True)
    port = port or free_port()

    def subst(s: str) -> str:
        return s.replace("__PORT__", str(port)).replace("__ROOT__", str(root)).replace("__WORK__", str(work))

    access_log = work / "logs" / "access.log"
    error_log = work / "logs" / "error.log"
    tmp = work / "tmp"
    user = "user root;\n" if os.geteuid() == 0 else ""  # pytest tmp dirs are 0700
    conf = f"""{user}worker_processes {worker_processes};
pid {work}/nginx.pid;
error_log {error_log} info;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {access_log} combined;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {subst(http_extra)}
{subst(server_block)}
}}
"""
    conf_path = work / "nginx.conf"
    conf_path.write_text(conf)
    cmd = [NGINX_BIN, "-p", str(work), "-e", str(error_log), "-c", str(conf_path), "-g", "daemon off;"]
    check = subprocess.run(cmd[:-2] + ["-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise PeerError(f"nginx config test failed:\n{check.stderr}\n--- {conf_path} ---\n{conf}")
    srv = Nginx("nginx", cmd, work / "nginx.log", cwd=work, env=_clean_env())
    srv.port, srv.root, srv.access_log, srv.error_log = port, root, access_log, error_log
    srv.wait_ready(lambda: port_open(port), timeout, f"TCP port {port}")
    return srv


# ---------------------------------------------------------------------------
# redis
# ---------------------------------------------------------------------------
REDIS_BIN = os.environ.get("MODELGATE_REDIS_BIN", "/usr/bin/redis-server")


class Redis(Proc):
    port: int

    @property
    def addr(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}"

    def command(self, *args: str | bytes | int, timeout: float = 5.0):
        """Send one command (RESP), return the decoded reply (str/int/list/None)."""
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        req = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        with socket.create_connection((LOCALHOST, self.port), timeout=timeout) as s:
            s.sendall(req)
            f = s.makefile("rb")
            return _resp_read(f)

    def ping(self) -> bool:
        return self.command("PING") == "PONG"


def _resp_read(f):
    line = f.readline()
    if not line:
        raise PeerError("redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise PeerError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise PeerError(f"unexpected redis reply {line!r}")


def start_redis(workdir: str | os.PathLike, *, timeout: float = SMALL_TIMEOUT) -> Redis:
    """redis-server on a free port, no persistence (no RDB, no AOF)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        REDIS_BIN, "--port", str(port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no",
        "--dir", str(work), "--daemonize", "no", "--logfile", "", "--protected-mode", "yes",
    ]
    srv = Redis("redis", cmd, work / "redis.log", cwd=work, env=_clean_env())
    srv.port = port
    srv.wait_ready(srv.ping, timeout, "PING")
    return srv


# ---------------------------------------------------------------------------
# modelgate itself
# ---------------------------------------------------------------------------
def modelgate_bin() -> Path:
    if os.environ.get("MODELGATE_BIN"):
        return Path(os.environ["MODELGATE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or CACHE / "target")
    return target / "debug" / "modelgate"


def require_modelgate_bin() -> Path:
    path = modelgate_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PeerError(
            f"modelgate binary not found at {path}. Build it first: "
            f"`CARGO_TARGET_DIR={path.parent.parent} cargo build -p modelgate` "
            f"(or point MODELGATE_BIN at a built binary)."
        )
    return path


def run_modelgate(
    args: Sequence[str],
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 60.0,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run a modelgate CLI subcommand (`validate`, `keys create`, ...) to completion."""
    cmd = [str(require_modelgate_bin()), *map(str, args)]
    return subprocess.run(
        cmd, input=input, capture_output=True, text=True, timeout=timeout,
        env=_clean_env(env), cwd=str(cwd) if cwd else None, check=check,
    )


class Modelgate(Proc):
    config_path: Path
    listen: str | None
    admin: str

    @property
    def url(self) -> str:
        if not self.listen:
            raise PeerError("no listen address known: pass listen= or use __LISTEN__ in the config")
        return f"http://{self.listen}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin}"

    def stdout(self) -> str:
        return self.log()

    def decisions(self, since: int = 0) -> list[dict]:
        """The decision log: one JSON object per complete stdout line (from
        byte offset `since`, see log_mark()). Raises ValueError on a complete
        line that is not a JSON object."""
        text = self.log(since)
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]  # a line still being written
        out = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"modelgate stdout line {i} is not JSON: {line!r} ({e})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"modelgate stdout line {i} is not a JSON object: {line!r}")
            out.append(obj)
        return out

    def wait_decisions(self, count: int, timeout: float = 5.0, since: int = 0) -> list[dict]:
        """Poll until at least `count` decision lines exist; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.decisions(since)
            if len(d) >= count or time.monotonic() > deadline:
                if len(d) < count:
                    raise AssertionError(f"expected >= {count} decision log lines, got {len(d)}:\n{self.log_tail()}")
                return d
            time.sleep(0.05)

    def reload(self) -> None:
        """SIGHUP (config reload, if modelgate implements it)."""
        self.send_signal(signal.SIGHUP)


def _find_addr(config_text: str, section: str) -> str | None:
    """Best-effort: first `address:` value after a top-level `section:` key."""
    import re

    m = re.search(rf"(?m)^{section}\s*:(.*)$", config_text)
    if not m:
        return None
    rest = config_text[m.start():]
    a = re.search(r"address\s*:\s*[\"']?([0-9A-Za-z.\-\[\]:]+:\d+)", rest)
    return a.group(1) if a else None


def start_modelgate(
    workdir: str | os.PathLike,
    config_text: str,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    listen: str | None = None,
    admin: str | None = None,
    timeout: float = MODELGATE_TIMEOUT,
    wait_ready: bool = True,
    config_name: str = "modelgate.yaml",
) -> Modelgate:
    """`modelgate serve --config FILE` with `config_text`.

    Addresses: `__LISTEN__` / `__ADMIN__` (and `__LISTEN2__`, `__LISTEN3__`)
    in the config text are replaced by fresh 127.0.0.1:PORT addresses;
    otherwise pass listen=/admin=, or they are read from the config's
    `listen: ... address:` and `admin: ... address:`. Waits for
    GET /readyz on the admin address to answer 200 (wait_ready=False to skip,
    e.g. to test start-up failures)."""
    binary = require_modelgate_bin()
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    for token in ("__LISTEN__", "__ADMIN__", "__LISTEN2__", "__LISTEN3__"):
        if token in config_text:
            addr = free_addr()
            config_text = config_text.replace(token, addr)
            if token == "__LISTEN__":
                listen = listen or addr
            elif token == "__ADMIN__":
                admin = admin or addr
    listen = listen or _find_addr(config_text, "listen")
    admin = admin or _find_addr(config_text, "admin")
    if not admin and wait_ready:
        raise PeerError("start_modelgate: cannot tell the admin address; use __ADMIN__ in the config or pass admin=")
    cfg = work / config_name
    cfg.write_text(config_text)
    n = 0
    while (work / f"modelgate-{n}.stdout.jsonl").exists():
        n += 1
    cmd = [str(binary), "serve", "--config", str(cfg), *map(str, extra_args)]
    mg = Modelgate(
        "modelgate", cmd, work / f"modelgate-{n}.stdout.jsonl",
        stderr_path=work / f"modelgate-{n}.stderr.log", cwd=work, env=_clean_env(env),
    )
    mg.config_path, mg.listen, mg.admin = cfg, listen, admin
    if wait_ready:
        mg.wait_ready(lambda: http_status(f"{mg.admin_url}/readyz") == 200, timeout, f"GET {mg.admin_url}/readyz")
    return mg


# ---------------------------------------------------------------------------
# identity peers: the real OpenID provider (panva/oidc-provider, npm) and the
# Kubernetes TokenReview stand-in (tests/e2e/kube_stub.py; no kube-apiserver
# can run here). Used by tests/e2e/test_identity*.py.
# ---------------------------------------------------------------------------
OIDC_SERVER = REPO_ROOT / "tests" / "oidc" / "server.mjs"
OIDC_MODULES = Path(os.environ.get("MODELGATE_OIDC_MODULES", CACHE / "oidc" / "node_modules"))


def write_oidc_keys(path: str | os.PathLike, generation: int = 1) -> dict:
    """A private JWKS for the provider: an RSA-2048 key (`rsa-<generation>`,
    RS256) and an EC P-256 key (`ec-<generation>`, ES256). Returns
    {"RS256": (kid, private_key), "ES256": (kid, private_key)} so tests can sign
    tokens the provider would never issue (nbf in the future, wrong iss)."""
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    e = ec.generate_private_key(ec.SECP256R1())
    k1 = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(r))
    k1.update(kid=f"rsa-{generation}", alg="RS256", use="sig")
    k2 = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(e))
    k2.update(kid=f"ec-{generation}", alg="ES256", use="sig")
    Path(path).write_text(json.dumps({"keys": [k1, k2]}))
    return {"RS256": (k1["kid"], r), "ES256": (k2["kid"], e)}


class OidcProvider(Proc):
    port: int
    keys: dict

    @property
    def issuer(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def token(self, resource: str, client: tuple[str, str] = ("modelgate-test", "test-secret")) -> str:
        """An access token by a real client_credentials grant for `resource`
        (urn:modelgate:rs256 | es256 | short | other | opaque)."""
        import requests

        r = requests.post(f"{self.issuer}/token", auth=client, timeout=10,
                          data={"grant_type": "client_credentials", "resource": resource, "scope": "infer"})
        if r.status_code != 200:
            raise PeerError(f"oidc-provider /token {resource}: {r.status_code} {r.text}")
        return r.json()["access_token"]

    def revoke(self, token: str) -> None:
        import requests

        r = requests.post(f"{self.issuer}/token/revocation", auth=("modelgate-test", "test-secret"),
                          data={"token": token}, timeout=10)
        if r.status_code != 200:
            raise PeerError(f"oidc-provider revocation: {r.status_code} {r.text}")


def start_oidc_provider(workdir: str | os.PathLike, *, port: int | None = None, generation: int = 1,
                        timeout: float = SMALL_TIMEOUT, login: str = "interaction",
                        redirect_uris: Sequence[str] = (), id_token_ttl: int = 3600) -> OidcProvider:
    """`node tests/oidc/server.mjs PORT KEYS LOGIN` with fresh keys of `generation`
    (restart on the same port with a new generation to rotate keys). `login`:
    where the interactive login form sits (`interaction`, or `dex` for Dex's
    /auth/local/login); `redirect_uris`: the browser sign-in client's;
    `id_token_ttl`: seconds its ID tokens live."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    if not (OIDC_MODULES / "oidc-provider").is_dir():
        raise PeerError(f"oidc-provider is not installed in {OIDC_MODULES}: run scripts/install-deps.sh")
    port = port or free_port()
    keys_file = work / f"oidc-keys-{generation}.json"
    keys = write_oidc_keys(keys_file, generation)
    n = 0
    while (work / f"oidc-{n}.log").exists():
        n += 1
    proc = OidcProvider("oidc-provider", ["node", str(OIDC_SERVER), str(port), str(keys_file), login],
                        work / f"oidc-{n}.log", cwd=work,
                        env=_clean_env({"MODELGATE_OIDC_MODULES": str(OIDC_MODULES),
                                        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
                                        "OIDC_ID_TOKEN_TTL": str(id_token_ttl)}))
    proc.port, proc.keys = port, keys
    proc.wait_ready(lambda: http_status(f"{proc.issuer}/.well-known/openid-configuration") == 200, timeout,
                    "GET /.well-known/openid-configuration")
    return proc


class KubeStub(Proc):
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"


def start_kube_stub(workdir: str | os.PathLike, tokens: Mapping[str, Mapping], gateway_token: str,
                    *, timeout: float = SMALL_TIMEOUT, access: list | None = None,
                    sar_delay: float = 0.0) -> KubeStub:
    """The TokenReview stand-in (tests/e2e/kube_stub.py): `tokens` maps a
    bearer token to {"username", "groups", "audiences"}; only requests with
    `Authorization: Bearer <gateway_token>` may create reviews. `access`:
    SubjectAccessReview rules (see kube_stub.py); `sar_delay` holds each review."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "kube-stub-tokens.json"
    spec.write_text(json.dumps({"gateway_token": gateway_token, "tokens": dict(tokens),
                                 "access": access or [], "sar_delay": sar_delay}))
    port = free_port()
    proc = KubeStub("kube-stub", [sys.executable, str(Path(__file__).with_name("kube_stub.py")), str(port), str(spec)],
                    work / "kube-stub.log", cwd=work, env=_clean_env())
    proc.port = port
    proc.wait_ready(lambda: port_open(port), timeout, f"port {port}")
    return proc


# ---------------------------------------------------------------------------
# caddy (Debian package; forward_auth in front of a real upstream)
# ---------------------------------------------------------------------------
CADDY_BIN = os.environ.get("MODELGATE_CADDY_BIN", "/usr/bin/caddy")


class Caddy(Proc):
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"


def start_caddy(
    workdir: str | os.PathLike,
    site_body: str,
    *,
    port: int | None = None,
    timeout: float = SMALL_TIMEOUT,
) -> Caddy:
    """`caddy run` in the foreground with one plain-HTTP site on
    127.0.0.1:PORT whose body is `site_body` (`__PORT__` and `__WORK__` are
    substituted). No admin endpoint, no automatic HTTPS, storage in the work
    directory: nothing listens on :80, :443 or :2019."""
    if not Path(CADDY_BIN).exists():
        raise PeerError(f"{CADDY_BIN} not found; run scripts/install-deps.sh (caddy)")
    work = Path(workdir)
    (work / "data").mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    body = site_body.replace("__PORT__", str(port)).replace("__WORK__", str(work))
    conf = f"""{{
    admin off
    auto_https off
    storage file_system {work}/data
}}

http://{LOCALHOST}:{port} {{
    bind {LOCALHOST}
{body}
}}
"""
    conf_path = work / "Caddyfile"
    conf_path.write_text(conf)
    env = _clean_env({"HOME": str(work), "XDG_DATA_HOME": str(work / "data"),
                      "XDG_CONFIG_HOME": str(work / "config")})
    check = subprocess.run([CADDY_BIN, "validate", "--config", str(conf_path), "--adapter", "caddyfile"],
                           capture_output=True, text=True, env=env)
    if check.returncode != 0:
        raise PeerError(f"caddy config check failed:\n{check.stderr}\n--- {conf_path} ---\n{conf}")
    srv = Caddy("caddy", [CADDY_BIN, "run", "--config", str(conf_path), "--adapter", "caddyfile"],
                work / "caddy.log", cwd=work, env=env)
    srv.port = port
    srv.wait_ready(lambda: port_open(port), timeout, f"TCP port {port}")
    return srv
