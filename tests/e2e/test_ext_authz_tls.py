"""The ext_authz listener over TLS and mTLS, and its certificate reloaded on
SIGHUP like the gateway listeners' (issue 15 loose ends).

Envoy cannot run here: the client is Python's TLS stack speaking the
ext_authz HTTP flavour (Istio's `envoyExtAuthzHttp`), which shares the port
and the TLS setup with the gRPC `Check` service.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest
import requests

from peers import free_port
from test_identity import _certs

CONFIG = """
listen:
  - address: "__LISTEN__"
    istio_compat: true
admin: {{address: "__ADMIN__"}}
models:
  - name: iris
    upstream: {{url: "http://127.0.0.1:9"}}
policies:
  - name: badge
    action: ALLOW
    rules: [{{when: [{{key: "request.headers[x-ext-authz]", values: [allow]}}]}}]
ext_authz:
  address: "127.0.0.1:{port}"
  http_path_prefix: /authz
  tls:
    cert: {cert}
    key: {key}
    client_ca: {ca}
    require_client_cert: true
"""


def served_cert(port: int, c) -> bytes:
    ctx = ssl.create_default_context(cafile=str(c["ca"][0]))
    ctx.load_cert_chain(*map(str, c["good"]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def test_ext_authz_over_mtls_and_certificate_reload(tmp_path, start_modelgate):
    c = _certs(tmp_path)
    port = free_port()
    mg = start_modelgate(CONFIG.format(port=port, cert=c["server"][0], key=c["server"][1], ca=c["ca"][0]))
    url = f"https://localhost:{port}/authz/v2/models/iris/ready"
    ca, good = str(c["ca"][0]), tuple(map(str, c["good"]))
    r = requests.get(url, headers={"x-ext-authz": "allow"}, cert=good, verify=ca, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.get(url, headers={"x-ext-authz": "no"}, cert=good, verify=ca, timeout=10)
    assert r.status_code == 403
    # mTLS is required: no client certificate, or one from another CA, is refused.
    for cert in (None, tuple(map(str, c["rogue"]))):
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(url, headers={"x-ext-authz": "allow"}, cert=cert, verify=ca, timeout=10)
    # Plain HTTP on the TLS port is refused too.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/authz/v2/models/iris/ready", timeout=10)

    # SIGHUP reloads the ext_authz certificate.
    before = served_cert(port, c)
    new_cert, new_key = reissue_server(c)  # same CA, so the client still trusts it
    c["server"][0].write_bytes(new_cert)
    c["server"][1].write_bytes(new_key)
    reloads = mg.stderr().count("TLS certificate reloaded")
    mg.reload()
    deadline = time.monotonic() + 10
    while mg.stderr().count("TLS certificate reloaded") == reloads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mg.stderr().count("TLS certificate reloaded") > reloads, mg.stderr()
    while (after := served_cert(port, c)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after != before, "SIGHUP did not reload the ext_authz certificate"
    r = requests.get(url, headers={"x-ext-authz": "allow"}, cert=good, verify=ca, timeout=10)
    assert r.status_code == 200


def reissue_server(c) -> tuple[bytes, bytes]:
    """A new server certificate for localhost from the same test CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(c["ca"][0].read_bytes())
    ca_key = serialization.load_pem_private_key(c["ca"][1].read_bytes(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
