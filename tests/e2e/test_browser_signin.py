"""Browser sign-in (issue 11 item 1): the OIDC authorization-code flow with
PKCE against the real oidc-provider (tests/oidc/server.mjs), whose login form
sits at Dex's /auth/local/login; seed 003's get_istio_auth_session() runs
unmodified against modelgate and its `authservice_session` cookie reaches a
real KServe model server. Then every attack in the issue, one test each."""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from peers import free_addr

NS = "kubeflow-user-example-com"
HOST = f"sklearn-iris.{NS}.example.com"
IRIS_INPUT = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
USER, PASSWORD = "user@example.com", "12341234"
COOKIE_KEY = base64.b64encode(bytes(range(1, 33))).decode()


# ---- seed 003, verbatim ------------------------------------------------------
def get_istio_auth_session(url: str, username: str, password: str) -> dict:
    """
    Determine if the specified URL is secured by Dex and try to obtain a session cookie.
    WARNING: only Dex `staticPasswords` and `LDAP` authentication are currently supported
             (we default to using `staticPasswords` if both are enabled)

    :param url: Kubeflow server URL, including protocol
    :param username: Dex `staticPasswords` or `LDAP` username
    :param password: Dex `staticPasswords` or `LDAP` password
    :return: auth session information
    """
    # define the default return object
    auth_session = {
        "endpoint_url": url,  # KF endpoint URL
        "redirect_url": None,  # KF redirect URL, if applicable
        "dex_login_url": None,  # Dex login URL (for POST of credentials)
        "is_secured": None,  # True if KF endpoint is secured
        "session_cookie": None,  # Resulting session cookies in the form "key1=value1; key2=value2"
    }

    # use a persistent session (for cookies)
    with requests.Session() as s:
        ################
        # Determine if Endpoint is Secured
        ################
        resp = s.get(url, allow_redirects=True)
        if resp.status_code != 200:
            raise RuntimeError(
                f"HTTP status code '{resp.status_code}' for GET against: {url}"
            )

        auth_session["redirect_url"] = resp.url

        # if we were NOT redirected, then the endpoint is UNSECURED
        if len(resp.history) == 0:
            auth_session["is_secured"] = False
            return auth_session
        else:
            auth_session["is_secured"] = True

        ################
        # Get Dex Login URL
        ################
        redirect_url_obj = urlsplit(auth_session["redirect_url"])

        # if we are at `/auth?=xxxx` path, we need to select an auth type
        if re.search(r"/auth$", redirect_url_obj.path):
            #######
            # TIP: choose the default auth type by including ONE of the following
            #######

            # OPTION 1: set "staticPasswords" as default auth type
            redirect_url_obj = redirect_url_obj._replace(
                path=re.sub(r"/auth$", "/auth/local", redirect_url_obj.path)
            )
            # OPTION 2: set "ldap" as default auth type
            # redirect_url_obj = redirect_url_obj._replace(
            #     path=re.sub(r"/auth$", "/auth/ldap", redirect_url_obj.path)
            # )

        # if we are at `/auth/xxxx/login` path, then no further action is needed (we can use it for login POST)
        if re.search(r"/auth/.*/login$", redirect_url_obj.path):
            auth_session["dex_login_url"] = redirect_url_obj.geturl()

        # else, we need to be redirected to the actual login page
        else:
            # this GET should redirect us to the `/auth/xxxx/login` path
            resp = s.get(redirect_url_obj.geturl(), allow_redirects=True)
            if resp.status_code != 200:
                raise RuntimeError(
                    f"HTTP status code '{resp.status_code}' for GET against: {redirect_url_obj.geturl()}"
                )

            # set the login url
            auth_session["dex_login_url"] = resp.url

        ################
        # Attempt Dex Login
        ################
        resp = s.post(
            auth_session["dex_login_url"],
            data={"login": username, "password": password},
            allow_redirects=True,
        )
        if len(resp.history) == 0:
            raise RuntimeError(
                f"Login credentials were probably invalid - "
                f"No redirect after POST to: {auth_session['dex_login_url']}"
            )

        # store the session cookies in a "key1=value1; key2=value2" string
        auth_session["session_cookie"] = "; ".join(
            [f"{c.name}={c.value}" for c in s.cookies]
        )
        auth_session["authservice_session"] = s.cookies.get("authservice_session")

    return auth_session
# ---- end of seed 003 ---------------------------------------------------------


def gateway_config(idp, kserve, lifetime: str = "1h") -> str:
    return f"""
listen: {{address: "${{MODELGATE_LISTEN}}"}}
admin: {{address: __ADMIN__}}
auth:
  identity_header: kubeflow-userid
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
  sign_in:
    issuer: {idp.issuer}
    client_id: modelgate-web
    client_secret: "${{WEB_CLIENT_SECRET}}"
    cookie: {{name: authservice_session, key: "{COOKIE_KEY}", lifetime: {lifetime}}}
models:
  - name: sklearn-iris
    protocols: [v1, v2]
    hosts: [{HOST}]
    upstream: {{url: "{kserve.rest_url}"}}
policies:
  - name: any-verified-identity
    rules:
      - from: [{{source: {{requestPrincipals: ["*"]}}}}]
"""


@pytest.fixture
def signin(start_oidc, start_modelgate, kserve_iris):
    """(idp, gateway) factory: the IdP's login page at Dex's path, its
    sign-in client registered for the gateway's callback."""

    def make(lifetime: str = "1h", login: str = "dex", id_token_ttl: int = 3600):
        listen = free_addr()
        idp = start_oidc(login=login, redirect_uris=[f"http://{listen}/oauth2/callback"], id_token_ttl=id_token_ttl)
        mg = start_modelgate(gateway_config(idp, kserve_iris, lifetime), listen=listen,
                             env={"MODELGATE_LISTEN": listen, "WEB_CLIENT_SECRET": "web-secret"})
        return idp, mg

    return make


def predict(mg, cookie: str | None = None, headers: dict | None = None):
    cookies = requests.cookies.cookiejar_from_dict({"authservice_session": cookie}) if cookie else None
    return requests.post(f"{mg.url}/v1/models/sklearn-iris:predict", json=IRIS_INPUT, timeout=20,
                         headers={"Host": HOST, "Content-Type": "application/json", **(headers or {})},
                         cookies=cookies)


def sign_in(mg) -> str:
    session = get_istio_auth_session(url=mg.url, username=USER, password=PASSWORD)
    assert session["is_secured"] is True
    return session["authservice_session"]


def test_seed_003_session_cookie_reaches_kserve(signin):
    _, mg = signin()
    # Seed 003's prediction block, with its variables pointed at modelgate.
    KUBEFLOW_ENDPOINT = mg.url
    _auth_session = get_istio_auth_session(url=KUBEFLOW_ENDPOINT, username=USER, password=PASSWORD)
    assert urlsplit(_auth_session["dex_login_url"]).path == "/auth/local/login"
    cookies = {"authservice_session": _auth_session['authservice_session']}
    jar = requests.cookies.cookiejar_from_dict(cookies)
    res = requests.post(
        url=f"{KUBEFLOW_ENDPOINT}/v1/models/sklearn-iris:predict",
        headers={"Host": HOST, "Content-Type": "application/json"},
        cookies=jar,
        json=IRIS_INPUT,
        timeout=200,
    )
    assert res.status_code == 200, res.text
    assert res.json() == {"predictions": [1, 1]}
    last = mg.wait_decisions(1)[-1]
    assert last["identity"] == USER and last["auth_method"] == "jwt", last
    # The signed-in landing page names the user; the cookie is HttpOnly and SameSite=Lax.
    r = requests.get(mg.url, cookies=jar, timeout=10)
    assert r.status_code == 200 and USER in r.text
    # Without a session the same GET is sent to login, then to the IdP.
    r = requests.get(mg.url, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/oauth2/start?rd=%2F"
    r = requests.get(f"{mg.url}/oauth2/start?rd=/", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    flow = r.headers["set-cookie"]
    assert "HttpOnly" in flow and "SameSite=Lax" in flow and "Secure" not in flow
    assert "code_challenge_method=S256" in r.headers["location"]


def test_wrong_password_gets_no_session(signin):
    _, mg = signin()
    with pytest.raises(RuntimeError, match="credentials were probably invalid"):
        get_istio_auth_session(url=mg.url, username=USER, password="wrong")


def test_tampered_cookie_is_refused(signin):
    _, mg = signin()
    cookie = sign_in(mg)
    assert predict(mg, cookie).status_code == 200
    raw = bytearray(base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4)))
    raw[-1] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    r = predict(mg, tampered)
    assert r.status_code == 401, r.text
    # A browser with the tampered cookie is sent to sign in again.
    r = requests.get(f"{mg.url}/v1/models/sklearn-iris", headers={"Host": HOST, "Accept": "text/html"},
                     cookies={"authservice_session": tampered}, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"].startswith("/oauth2/start?rd=")


def test_expired_session_is_refused(signin):
    _, mg = signin(lifetime="2s")
    cookie = sign_in(mg)
    assert predict(mg, cookie).status_code == 200
    time.sleep(3.1)
    assert predict(mg, cookie).status_code == 401


def sign_out_form(html: str) -> dict:
    """The hidden fields (csrf token, rd) of modelgate's sign-out form."""
    assert '<form method="post" action="/oauth2/sign_out">' in html, html
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def test_sign_out_needs_a_post_with_the_pages_token(signin):
    _, mg = signin()
    cookie = sign_in(mg)
    other = sign_in(mg)
    jar = {"authservice_session": cookie}
    # GET (a link, a prefetch, an <img>) only shows the sign-out page.
    r = requests.get(f"{mg.url}/oauth2/sign_out", cookies=jar, allow_redirects=False, timeout=10)
    assert r.status_code == 200 and USER in r.text and "set-cookie" not in r.headers
    fields = sign_out_form(r.text)
    assert predict(mg, cookie).status_code == 200
    # A POST without the token (a cross-site form), or with another
    # session's token, is refused and the session lives on.
    for data in ({}, {"csrf": sign_out_form(requests.get(
            f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": other}, timeout=10).text)["csrf"]}):
        r = requests.post(f"{mg.url}/oauth2/sign_out", cookies=jar, data=data, allow_redirects=False, timeout=10)
        assert r.status_code == 403 and "set-cookie" not in r.headers, (r.status_code, r.text)
    assert predict(mg, cookie).status_code == 200
    # Without any cookie (a cross-site POST carries no SameSite=Lax cookie)
    # nothing is cleared.
    r = requests.post(f"{mg.url}/oauth2/sign_out", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/" and "set-cookie" not in r.headers
    # With the page's token, by the header too (scripts): signed out.
    r = requests.post(f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": other},
                      headers={"X-CSRF-Token": sign_out_form(requests.get(
                          f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": other}, timeout=10).text)["csrf"]},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "Max-Age=0" in r.headers["set-cookie"]
    assert predict(mg, other).status_code == 401 and predict(mg, cookie).status_code == 200
    # The page's form, as a browser submits it.
    r = requests.post(f"{mg.url}/oauth2/sign_out", cookies=jar, data=fields, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "Max-Age=0" in r.headers["set-cookie"]
    assert predict(mg, cookie).status_code == 401


def test_revoked_cookie_after_sign_out_is_refused(signin):
    _, mg = signin()
    cookie = sign_in(mg)
    assert predict(mg, cookie).status_code == 200
    page = requests.get(f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": cookie}, timeout=10)
    r = requests.post(f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": cookie},
                      data=sign_out_form(page.text), allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert "authservice_session=;" in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    # The old cookie, replayed by someone who kept it, no longer works.
    assert predict(mg, cookie).status_code == 401
    # Signing out again (the session is revoked, so no token is asked and no
    # ID token hinted): the dead cookie is cleared, and home.
    r = requests.post(f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": cookie},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/"
    assert "Max-Age=0" in r.headers["set-cookie"]
    # Its sign-out page now says so, without a form.
    r = requests.get(f"{mg.url}/oauth2/sign_out", cookies={"authservice_session": cookie}, timeout=10)
    assert r.status_code == 200 and "not signed in" in r.text and "<form" not in r.text


def end_session_form(html: str) -> tuple[str, dict]:
    """The action and hidden fields of oidc-provider's logout confirmation form."""
    action = re.search(r'<form[^>]*id="op.logoutForm"[^>]*action="([^"]+)"', html) or \
        re.search(r'<form[^>]*action="([^"]+)"[^>]*id="op.logoutForm"', html)
    assert action, html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return action.group(1), fields


@pytest.mark.parametrize("rd", ["/", "https://evil.example/"])
def test_sign_out_goes_through_the_idps_end_session_endpoint(signin, rd):
    idp, mg = signin()
    s = requests.Session()
    r = s.get(mg.url, timeout=10)  # → the IdP's login form (Dex path)
    assert r.status_code == 200 and "/auth/local/login" in r.url
    r = s.post(r.url, data={"login": USER, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200 and r.url == f"{mg.url}/" and USER in r.text
    cookie = s.cookies.get("authservice_session")
    assert predict(mg, cookie).status_code == 200

    page = s.get(f"{mg.url}/oauth2/sign_out", params={"rd": rd}, timeout=10)
    fields = sign_out_form(page.text)
    assert fields["rd"] == rd, fields
    r = s.post(f"{mg.url}/oauth2/sign_out", data=fields, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "Max-Age=0" in r.headers["set-cookie"]
    end = urlsplit(r.headers["location"])
    discovery = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert f"{end.scheme}://{end.netloc}{end.path}" == discovery["end_session_endpoint"]
    q = dict(parse_qsl(end.query))
    # Back to the gateway only: an rd off the allow-list becomes the landing page.
    assert q["post_logout_redirect_uri"] == f"{mg.url}/", q
    assert q["client_id"] == "modelgate-web" and q["id_token_hint"].count(".") == 2
    # Revoked server-side before the IdP is even asked.
    assert predict(mg, cookie).status_code == 401

    # The IdP's own confirmation page; confirming ends its session and
    # sends the browser back to the gateway.
    r = s.get(r.headers["location"], timeout=10)
    assert r.status_code == 200, r.text
    action, fields = end_session_form(r.text)
    r = s.post(requests.compat.urljoin(r.url, action), data={**fields, "logout": "yes"},
               allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and r.headers["location"] == f"{mg.url}/", r.headers
    # The IdP session is gone too: the next visit asks for the password again.
    r = s.get(mg.url, timeout=10)
    assert r.status_code == 200 and "/auth/local/login" in r.url and 'name="password"' in r.text


def manual_flow(mg, rd: str = "/"):
    """Walks the flow step by step; returns (session, callback URL, flow cookie)."""
    s = requests.Session()
    r = s.get(f"{mg.url}/oauth2/start", params={"rd": rd}, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    flow_cookie = r.headers["set-cookie"].split(";")[0]
    r = s.get(r.headers["location"], timeout=10)
    assert r.status_code == 200 and "/auth/local/login" in r.url
    r = s.post(r.url, data={"login": USER, "password": PASSWORD}, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    url = r.headers["location"]
    while not url.startswith(mg.url):
        r = s.get(url, allow_redirects=False, timeout=10)
        assert r.status_code in (302, 303), r.text
        url = r.headers["location"]
    return s, url, flow_cookie


def test_replayed_state_is_refused(signin):
    _, mg = signin()
    s, callback, flow_cookie = manual_flow(mg)
    r = s.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/"
    assert "authservice_session=" in r.headers["set-cookie"]
    # The same callback, with the same flow cookie, a second time.
    r = requests.get(callback, headers={"Cookie": flow_cookie}, allow_redirects=False, timeout=10)
    assert r.status_code == 400, r.text
    assert "authservice_session" not in r.headers.get("set-cookie", "")
    # A callback whose state is not the browser's own flow (login CSRF).
    _, other_callback, _ = manual_flow(mg)
    r = requests.get(other_callback, headers={"Cookie": flow_cookie}, allow_redirects=False, timeout=10)
    assert r.status_code == 400


OPEN_REDIRECTS = [
    "https://evil.example/", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/%2F%2Fevil.example", "%2F%2Fevil.example", "/%5Cevil.example", "/%252F%252Fevil.example",
    "https://127.0.0.1@evil.example/", "http:evil.example", "javascript:alert(1)", "/x/../..//evil.example",
]


@pytest.mark.parametrize("rd", OPEN_REDIRECTS)
def test_open_redirect_via_rd_is_refused(signin, rd):
    _, mg = signin()
    r = requests.post(f"{mg.url}/oauth2/sign_out", params={"rd": rd}, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/", (rd, r.headers.get("location"))
    # Through a whole sign-in, too: the browser lands on our own landing page.
    s, callback, _ = manual_flow(mg, rd)
    r = s.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/", (rd, r.headers["location"])


def test_allowed_rd_is_kept(signin):
    _, mg = signin()
    s, callback, _ = manual_flow(mg, "/v1/models/sklearn-iris")
    r = s.get(callback, allow_redirects=False, timeout=10)
    assert r.headers["location"] == "/v1/models/sklearn-iris"


def test_bearer_token_decides_not_the_cookie(signin):
    idp, mg = signin()
    cookie = sign_in(mg)
    # A bad Bearer token with a good cookie: 401, the cookie is not consulted.
    r = predict(mg, cookie, {"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    # A good Bearer token with the cookie: the token's identity, not the user's.
    token = idp.token("urn:modelgate:rs256")
    r = predict(mg, cookie, {"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert mg.wait_decisions(2)[-1]["identity"] == "modelgate-test"


def test_api_call_without_credentials_is_401_not_302(signin):
    _, mg = signin()
    r = predict(mg)
    assert r.status_code == 401 and "location" not in r.headers
    r = requests.get(f"{mg.url}/v1/models/sklearn-iris", headers={"Host": HOST}, allow_redirects=False, timeout=10)
    assert r.status_code == 401
    r = requests.get(f"{mg.url}/v1/models/sklearn-iris", headers={"Host": HOST, "Accept": "text/html"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/oauth2/start?rd=%2Fv1%2Fmodels%2Fsklearn-iris"


def test_interactive_login_at_the_providers_own_page(signin):
    """The default IdP configuration (login form at /interaction/UID)."""
    _, mg = signin(login="interaction")
    s = requests.Session()
    r = s.get(mg.url, timeout=10)
    assert r.status_code == 200 and "/interaction/" in r.url
    r = s.post(r.url, data={"login": USER, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200 and r.url == f"{mg.url}/" and USER in r.text
    assert s.cookies.get("authservice_session")


def test_session_is_refreshed_when_the_id_token_expires(signin):
    _, mg = signin(id_token_ttl=2)
    cookie = sign_in(mg)
    r = predict(mg, cookie)
    assert r.status_code == 200 and "set-cookie" not in r.headers
    time.sleep(3.1)
    # The ID token has expired; the session has not, and holds a refresh token.
    r = predict(mg, cookie)
    assert r.status_code == 200, r.text
    renewed = r.headers["set-cookie"]
    assert renewed.startswith("authservice_session=") and "HttpOnly" in renewed and "SameSite=Lax" in renewed
    value = renewed.split(";")[0].split("=", 1)[1]
    assert value != cookie
    r = predict(mg, value)
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert mg.wait_decisions(3)[-1]["identity"] == USER


def test_code_from_another_flow_is_refused(signin):
    """Code injection: the callback of flow B replayed with flow A's state and
    cookie. The state check passes, but B's code is bound to B's PKCE
    verifier (and B's nonce), so the exchange fails and no session is set."""
    _, mg = signin()
    _, callback_a, flow_a = manual_flow(mg)
    _, callback_b, _ = manual_flow(mg)
    state_a = re.search(r"[?&]state=([^&]+)", callback_a).group(1)
    code_b = re.search(r"[?&]code=([^&]+)", callback_b).group(1)
    forged = f"{mg.url}/oauth2/callback?code={code_b}&state={state_a}"
    r = requests.get(forged, headers={"Cookie": flow_a}, allow_redirects=False, timeout=10)
    assert r.status_code in (401, 502), r.text
    assert "authservice_session" not in r.headers.get("set-cookie", "")
