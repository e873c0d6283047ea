"""The admin web UI in a real headless Chromium (Debian chromium +
chromedriver, driven by Selenium), against the real binary serving the
bundled iris ONNX model, with the admin UI on the public listener behind
browser sign-in (`admin.ui.on_public`).

Flow: open the models page → sent to the real oidc-provider's own login
page → sign in as the admin user (the admin role comes from its `groups`
claim) → back on the models page → create a key in the UI and read its
secret (shown once) → use it with `requests` against the model (200) →
revoke it in the UI → the next call is 401 → find that 401 in the live
decision view, filtered by identity. Every page is saved as a screenshot
into a folder the test prints ($MODELGATE_ARTIFACTS/admin-ui, else a
temporary folder). The policy-page test authenticates with an admin key
(sent by the DevTools protocol), which the admin role also accepts."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from gw import V2_BODY, bearer, create_key
from peers import free_addr

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def artifacts() -> Path:
    base = os.environ.get("MODELGATE_ARTIFACTS")
    d = Path(base) / "admin-ui" if base else Path(tempfile.mkdtemp(prefix="modelgate-admin-ui-"))
    d.mkdir(parents=True, exist_ok=True)
    print(f"\nadmin UI screenshots: {d}")
    return d


@pytest.fixture
def gw(tmp_path, run_modelgate, start_modelgate):
    keys = tmp_path / "keys.json"
    model_dir = tmp_path / "models" / "iris"
    model_dir.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "models" / "iris" / "model.onnx", model_dir / "model.onnx")
    admin_key = create_key(run_modelgate, keys, "ops", "*")
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__", keys: [ops]}}
auth: {{api_keys: {{file: "{keys}"}}}}
models:
  - name: iris
    builtin: {{dir: "{model_dir}"}}
""")
    mg.admin_key = admin_key
    return mg


ADMIN_USER, ADMIN_PASSWORD = "admin@example.com", "admin-password"
USER, PASSWORD = "user@example.com", "12341234"
COOKIE_KEY = base64.b64encode(bytes(range(3, 35))).decode()


@pytest.fixture
def signed_in_gw(tmp_path, run_modelgate, start_modelgate, start_oidc):
    """The admin UI on the public listener, behind sign-in with the real
    oidc-provider (its own interactive login page); admins by claim."""
    keys = tmp_path / "keys.json"
    model_dir = tmp_path / "models" / "iris"
    model_dir.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "models" / "iris" / "model.onnx", model_dir / "model.onnx")
    create_key(run_modelgate, keys, "ops", "*")
    listen = free_addr()
    idp = start_oidc(login="interaction", redirect_uris=[f"http://{listen}/oauth2/callback"])
    mg = start_modelgate(f"""
listen: {{address: "{listen}"}}
admin:
  address: "__ADMIN__"
  keys: [ops]
  roles: {{claim: groups, values: [modelgate-admins]}}
  ui: {{on_public: true}}
auth:
  api_keys: {{file: "{keys}"}}
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
  sign_in:
    issuer: {idp.issuer}
    client_id: modelgate-web
    client_secret: "${{WEB_CLIENT_SECRET}}"
    cookie: {{name: mg_session, key: "{COOKIE_KEY}", lifetime: 1h}}
models:
  - name: iris
    builtin: {{dir: "{model_dir}"}}
""", listen=listen, env={"WEB_CLIENT_SECRET": "web-secret"})
    mg.idp = idp
    return mg


@pytest.fixture
def browser(tmp_path):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: run scripts/install-deps.sh", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def sign_in_with_key(driver, key: str) -> None:
    """Stand-in for the IdP sign-in: the admin key on every request."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {key}"}})


def assert_labelled(driver) -> None:
    """Every visible form control on the page has a <label for=…>."""
    for el in driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
        el_id = el.get_attribute("id")
        assert el_id and driver.find_elements(By.CSS_SELECTOR, f'label[for="{el_id}"]'), el.get_attribute("outerHTML")


def test_create_use_revoke_and_find_the_denial(signed_in_gw, browser):
    gw = signed_in_gw
    shots = artifacts()
    wait = WebDriverWait(browser, 15, ignored_exceptions=[StaleElementReferenceException])

    # Not signed in: the models page sends the browser to the IdP's login page.
    browser.get(f"{gw.url}/admin/models")
    wait.until(lambda d: d.current_url.startswith(f"{gw.idp.issuer}/interaction/"))
    browser.save_screenshot(str(shots / "0-idp-login.png"))
    browser.find_element(By.NAME, "login").send_keys(ADMIN_USER)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The test IdP grants consent with the login; a consent page, if one
    # were shown, would be confirmed here.
    wait.until(lambda d: d.current_url.startswith(gw.url) or "consent" in d.page_source.lower())
    if not browser.current_url.startswith(gw.url):
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.current_url == f"{gw.url}/admin/models")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Models"
    assert any(c["name"] == "mg_session" and c["httpOnly"] for c in browser.get_cookies())
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-model="iris"]')
    assert "ready" in row.text and "required" in row.text
    assert row.find_elements(By.CSS_SELECTOR, "svg.spark[aria-label]"), "sparklines"
    browser.save_screenshot(str(shots / "1-models.png"))

    browser.get(f"{gw.url}/admin/keys")
    assert_labelled(browser)
    browser.find_element(By.ID, "key-name").send_keys("browser-key")
    models = browser.find_element(By.ID, "key-models")
    models.clear()
    models.send_keys("iris")
    browser.find_element(By.CSS_SELECTOR, "#create-key button").click()
    secret_box = wait.until(EC.presence_of_element_located((By.ID, "new-secret")))
    secret = secret_box.get_attribute("value")
    assert secret.startswith("mgk_")
    browser.save_screenshot(str(shots / "2-key-created.png"))

    infer = f"{gw.url}/v2/models/iris/infer"
    r = requests.post(infer, json=V2_BODY, headers=bearer(secret), timeout=10)
    assert r.status_code == 200, r.text

    # Shown once: the keys page no longer has it.
    browser.get(f"{gw.url}/admin/keys")
    assert secret not in browser.page_source
    assert not browser.find_elements(By.ID, "new-secret")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-key="browser-key"]')
    row.find_element(By.XPATH, ".//button[normalize-space()='Revoke browser-key']").click()
    wait.until(EC.staleness_of(row))
    wait.until(lambda d: "revoked" in d.find_element(By.CSS_SELECTOR, 'tr[data-key="browser-key"] td.status').text)
    browser.save_screenshot(str(shots / "3-key-revoked.png"))

    r = requests.post(infer, json=V2_BODY, headers=bearer(secret), timeout=10)
    assert r.status_code == 401, r.text

    # The live view, filtered by identity through its form.
    browser.get(f"{gw.url}/admin/decisions")
    browser.find_element(By.ID, "f-identity").send_keys("browser-key")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait.until(lambda d: "identity=browser-key" in d.current_url)
    wait.until(lambda d: "Live" in d.find_element(By.ID, "live-status").text)
    assert_labelled(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")
    statuses = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows]
    assert "401" in statuses and "200" in statuses, statuses
    assert all(r.get_attribute("data-identity") == "browser-key" for r in rows)
    browser.save_screenshot(str(shots / "4-decisions-filtered.png"))

    # A new denial arrives live, over the event stream.
    before = len(rows)
    requests.post(infer, json=V2_BODY, headers=bearer(secret), timeout=10)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")) > before)
    top = browser.find_element(By.CSS_SELECTOR, "#decisions tbody tr")
    assert "401" in top.text and "deny" in top.text
    browser.save_screenshot(str(shots / "5-decisions-live.png"))

    # Sign out: the sign-out page's button (a GET alone signs nobody out),
    # then the IdP's end-session page (confirmed there), which sends the
    # browser back to the gateway, which no longer knows it.
    browser.get(f"{gw.url}/oauth2/sign_out")
    assert "Sign out of modelgate?" in browser.page_source
    assert any(c["name"] == "mg_session" for c in browser.get_cookies())
    browser.find_element(By.CSS_SELECTOR, 'form[action="/oauth2/sign_out"] button[type="submit"]').click()
    wait.until(lambda d: d.current_url.startswith(f"{gw.idp.issuer}/session/end"))
    browser.save_screenshot(str(shots / "6-idp-sign-out.png"))
    browser.find_element(By.CSS_SELECTOR, 'button[name="logout"][value="yes"]').click()
    wait.until(lambda d: d.current_url.startswith(f"{gw.idp.issuer}/interaction/"))
    assert not any(c["name"] == "mg_session" for c in browser.get_cookies())
    browser.get(f"{gw.url}/admin/models")
    wait.until(lambda d: d.current_url.startswith(f"{gw.idp.issuer}/interaction/"))
    assert browser.find_elements(By.NAME, "password"), "the IdP asks for the password again"


def test_policy_page_explains_and_switch_saves(gw, browser):
    shots = artifacts()
    wait = WebDriverWait(browser, 15, ignored_exceptions=[StaleElementReferenceException])
    sign_in_with_key(browser, gw.admin_key)
    browser.get(f"{gw.admin_url}/admin/policies")
    assert_labelled(browser)
    path = browser.find_element(By.ID, "x-path")
    path.clear()
    path.send_keys("/v2/models/iris/infer")
    browser.find_element(By.ID, "x-identity").send_keys("nobody")
    browser.find_element(By.CSS_SELECTOR, "#explain button").click()
    # Wait for the answer itself, not just the element (it may be re-rendered).
    wait.until(EC.text_to_be_present_in_element((By.ID, "answer"), "DENY (401)"))
    assert "DENY (401)" in browser.find_element(By.ID, "answer").text
    browser.save_screenshot(str(shots / "8-policies-why.png"))

    # The seed-001 switch: off makes inference public, through a config reload.
    infer = f"{gw.url}/v2/models/iris/infer"
    assert requests.post(infer, json=V2_BODY, timeout=10).status_code == 401
    browser.get(f"{gw.admin_url}/admin/keys")
    box = browser.find_element(By.ID, "require-iris")
    assert box.is_selected()
    box.click()  # JS submits the form on change; the server redirects back
    wait.until(EC.staleness_of(box))
    wait.until(lambda d: not d.find_element(By.ID, "require-iris").is_selected())
    browser.save_screenshot(str(shots / "9-require-token-off.png"))
    # The reload is asynchronous: wait on the condition itself, not a fixed time.
    WebDriverWait(browser, 15, poll_frequency=0.1).until(
        lambda _: requests.post(infer, json=V2_BODY, timeout=10).status_code == 200,
        "inference did not become public",
    )


def sign_in_with_requests(gw, user: str, password: str, path: str = "/admin/models") -> requests.Session:
    """The IdP's login form, posted by `requests` (no browser)."""
    s = requests.Session()
    r = s.get(f"{gw.url}{path}", headers={"Accept": "text/html"}, timeout=10)
    assert r.status_code == 200 and r.url.startswith(f"{gw.idp.issuer}/interaction/"), r.url
    r = s.post(r.url, data={"login": user, "password": password}, allow_redirects=False, timeout=10)
    url = r.headers["location"]
    while not url.startswith(gw.url):
        r = s.get(url, allow_redirects=False, timeout=10)
        url = r.headers["location"]
    r = s.get(url, allow_redirects=False, timeout=10)  # the callback sets the session
    assert r.status_code == 302 and s.cookies.get("mg_session"), r.text
    assert r.headers["location"] == path
    return s


def test_unauthenticated_browser_on_public_admin_is_sent_to_sign_in(signed_in_gw):
    gw = signed_in_gw
    html = {"Accept": "text/html,application/xhtml+xml"}
    # A browser: 302 to the gateway's login, with the page as a safe `rd`.
    r = requests.get(f"{gw.url}/admin/models", headers=html, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "/oauth2/start?rd=%2Fadmin%2Fmodels"
    r = requests.get(f"{gw.url}/admin/decisions?identity=a%20b", headers=html, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["location"] == "/oauth2/start?rd=%2Fadmin%2Fdecisions%3Fidentity%3Da%2520b"
    # An API client (no text/html), or any client of /admin/api: 401 JSON.
    r = requests.get(f"{gw.url}/admin/models", allow_redirects=False, timeout=10)
    assert r.status_code == 401 and "location" not in r.headers
    for accept in (html, {"Accept": "application/json"}):
        r = requests.get(f"{gw.url}/admin/api/models", headers=accept, allow_redirects=False, timeout=10)
        assert r.status_code == 401 and "location" not in r.headers, r.text
        assert r.headers["content-type"].startswith("application/json")
    # A browser with a bad credential is not bounced to sign-in: its 401 stands.
    r = requests.get(f"{gw.url}/admin/models", headers={**html, "Authorization": "Bearer nope"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 401
    # Signed in as a non-admin: 403, not a redirect loop.
    s = sign_in_with_requests(gw, USER, PASSWORD)
    r = s.get(f"{gw.url}/admin/models", headers=html, allow_redirects=False, timeout=10)
    assert r.status_code == 403, r.text
    # Signed in as the admin (role from the `groups` claim): the page, and the API.
    s = sign_in_with_requests(gw, ADMIN_USER, ADMIN_PASSWORD)
    r = s.get(f"{gw.url}/admin/models", headers=html, allow_redirects=False, timeout=10)
    assert r.status_code == 200 and "<h1>Models</h1>" in r.text, r.text[:300]
    r = s.get(f"{gw.url}/admin/api/models", timeout=10)
    assert r.status_code == 200 and r.json()[0]["name"] == "iris", r.text
