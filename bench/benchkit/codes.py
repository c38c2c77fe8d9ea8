"""Authorization codes minted over HTTP, as a browser and client would.

One pass through /authorize, /login and /authorize/resume signs the bench
user in. The first-party client skips consent, so every further GET of
/authorize with the session cookie redirects at once with a new code.
"""

import base64
import hashlib
import html.parser
import http.client
import os
import threading
import urllib.parse

from .process import BenchError
from .tessera import PASSWORD, REDIRECT_URI, RESOURCE, SCOPE, USERNAME

MINTING_CONNECTIONS = 4


class _HiddenFields(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes.get("name")] = attributes.get("value", "")


class Browser:
    """Cookies and one keep-alive connection to the server."""

    def __init__(self, port):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies = {}

    def request(self, method, path, body=None):
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(body)
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode(errors="replace")
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.headers.get("Location"), text


def pkce_pair():
    """Return a random S256 code verifier and its challenge."""
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_path(client_id, challenge):
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": f"openid {SCOPE}", "resource": RESOURCE, "state": "bench",
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return f"/authorize?{query}"


def code_from(location):
    if not location or not location.startswith(REDIRECT_URI):
        raise BenchError(f"/authorize did not redirect to the client: {location!r}")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if "code" not in query:
        raise BenchError(f"/authorize redirected without a code: {location}")
    return query["code"][0]


def sign_in(port, client_id, challenge):
    """Log the bench user in; return the browser and the first code."""
    browser = Browser(port)
    status, location, _ = browser.request("GET", authorize_path(client_id, challenge))
    if status != 303 or not location or not location.startswith("/login"):
        raise BenchError(f"/authorize did not send the browser to /login: {status} {location}")
    status, _, page = browser.request("GET", location)
    fields = _HiddenFields()
    fields.feed(page)
    if status != 200 or "csrf" not in fields.fields:
        raise BenchError(f"the login page had no CSRF field (status {status})")
    status, location, _ = browser.request("POST", "/login", {
        **fields.fields, "username": USERNAME, "password": PASSWORD})
    if status != 303 or not location:
        raise BenchError(f"login failed with status {status}")
    status, location, _ = browser.request("GET", location)
    return browser, code_from(location)


def mint_codes(port, client_id, count):
    """Return `count` codes with the one code verifier they all share."""
    verifier, challenge = pkce_pair()
    browser, first = sign_in(port, client_id, challenge)
    codes = [first]
    lock = threading.Lock()
    errors = []

    def worker(share):
        mine = Browser(port)
        mine.cookies = dict(browser.cookies)
        try:
            for _ in range(share):
                status, location, _ = mine.request("GET", authorize_path(client_id, challenge))
                if status != 302:
                    raise BenchError(f"/authorize returned {status}, expected 302")
                code = code_from(location)
                with lock:
                    codes.append(code)
        except BenchError as error:
            errors.append(error)

    remaining = count - 1
    shares = [remaining // MINTING_CONNECTIONS + (1 if i < remaining % MINTING_CONNECTIONS else 0)
              for i in range(MINTING_CONNECTIONS)]
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return verifier, codes


def exchange_bodies(codes, verifier):
    """Return one token request body per code, each to be posted once."""
    for code in codes:
        yield urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
            "resource": RESOURCE,
        })
