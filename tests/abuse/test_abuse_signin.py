"""Sign-in against a LAN attacker: no open redirect after sign-in, and guessing is slowed without
locking the owner out (also when the attacker shares the owner's address, as behind one NAT)."""

from __future__ import annotations

import html
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import Hearth, make_settings
from web.signin_throttle import ACCOUNT_BUDGET, FREE_FAILURES, MAX_DELAY_S
from web_support import admin_password

# every loop inside is bounded too; the timeout bounds the module's fixtures
pytestmark = [pytest.mark.timeout(180), pytest.mark.own_hearth, pytest.mark.timing]

REDIRECTS = [
    "//evil.example", "///evil.example", "/\\evil.example", "/%5Cevil.example", "/%5C%5Cevil.example",
    "%5C%5Cevil.example", "/%09/evil.example", "/%0A/evil.example", "/%0D%0A/evil.example", "/%00/evil.example",
    "https:evil.example", "https://evil.example", "http:/evil.example", "javascript:alert(1)",
    "/%2F%2Fevil.example", "%2F%2Fevil.example", "/%252F%252Fevil.example", "/%25252F%25252Fevil.example",
    "/%2F%5Cevil.example", "/%20/evil.example", "%20//evil.example", "/%E2%80%8B/evil.example",
    "/%C2%85/evil.example", "/.%2F/evil.example%2F", "//evil.example%40127.0.0.1", "/@evil.example",
    "/devices?next=//evil.example",
]


class FromAddress(HTTPAdapter):
    """requests from a chosen loopback source address (127.0.0.0/8 all reach a 127.0.0.1 server)."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def browser(source: str = "127.0.0.1") -> requests.Session:
    http = requests.Session()
    http.mount("http://", FromAddress(source))
    return http


def attempt(http: requests.Session, base: str, password: str, next_query: str = "") -> requests.Response:
    """One sign-in as a person makes it: the form, then the password (a session from before has ended)."""
    for cookie in [c for c in http.cookies if c.name == "hearth_session"]:
        http.cookies.clear(cookie.domain, cookie.path, cookie.name)
    page = http.get(f"{base}/login" + (f"?next={next_query}" if next_query else ""), timeout=10)
    assert page.status_code == 200, page.text[:200]
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    found = re.search(r'name="next" value="([^"]*)"', page.text)
    data = {"csrf": token, "password": password}
    if found:
        data["next"] = html.unescape(found.group(1))
    return http.post(f"{base}/login", data=data, allow_redirects=False, timeout=30)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    # more connections per address than usual, so that 40 parallel guesses from one address all
    # reach the sign-in check (the normal cap would turn most away before it: tests/abuse/test_abuse_web.py)
    h = Hearth(make_settings(tmp_path_factory.mktemp("abuse-signin"), web={"max_connections_per_address": 64})).start()
    yield h
    h.stop()


def test_every_open_redirect_variant_lands_on_a_local_page(web):
    base, password = web.web_url, admin_password(web)
    here = urlsplit(base)
    landed = {}
    for variant in REDIRECTS + ["/devices"]:
        reply = attempt(browser(), base, password, next_query=variant)
        assert reply.status_code == 303, (variant, reply.status_code, reply.text[:200])
        location = reply.headers["Location"]
        parts = urlsplit(location)
        landed[variant] = location
        assert (parts.scheme, parts.netloc) == (here.scheme, here.netloc), (variant, location)
        assert parts.path.startswith("/") and not parts.path.startswith("//"), (variant, location)
        assert location.isascii() and not re.search(r"[\s\\]", location), (variant, location)
    print(*landed.items(), sep="\n")
    assert urlsplit(landed["/devices"]).path == "/devices"                    # positive control
    assert urlsplit(landed["/devices?next=//evil.example"]).path == "/devices"
    assert sum(urlsplit(landed[v]).path == "/" for v in REDIRECTS) >= len(REDIRECTS) - 3


def test_guessing_is_slowed_but_the_right_password_still_works(web):
    base, password = web.web_url, admin_password(web)
    owner = browser()
    assert attempt(owner, base, password).status_code == 303         # the owner's browser signed in before
    assert "hearth_known" in owner.cookies

    # 40 parallel wrong passwords from the owner's own address (one NAT): at most FREE_FAILURES checked
    def guess(i: int) -> int:
        return attempt(browser(), base, f"guess-{i}").status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(guess, range(40)))
    checked = codes.count(401)
    print("40 parallel guesses:", {c: codes.count(c) for c in set(codes)})
    assert checked <= FREE_FAILURES and set(codes) <= {401, 429}, codes
    assert checked >= 1                                             # positive control: guesses were checked

    # the attacker keeps guessing; meanwhile the owner's known browser gets in, twice
    stop, attacker_codes = threading.Event(), []

    def keep_guessing():
        http = browser()
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            attacker_codes.append(attempt(http, base, "still-guessing").status_code)
            time.sleep(0.05)

    attacker = threading.Thread(target=keep_guessing)
    attacker.start()
    try:
        time.sleep(1.0)
        during = [attempt(owner, base, password).status_code for _ in range(2)]
        fresh = attempt(browser(), base, password)                   # a browser Hearth does not know: slowed
    finally:
        stop.set()
        attacker.join(timeout=30)
    print("attacker during the owner's sign-in:", {c: attacker_codes.count(c) for c in set(attacker_codes)})
    assert during == [303, 303]
    assert attacker_codes.count(429) >= 1 and attacker_codes.count(303) == 0
    assert fresh.status_code == 429 and 0 < int(fresh.headers["Retry-After"]) <= MAX_DELAY_S + 1

    # after the attack: the right password works from a new browser once its wait is over
    newcomer, waited, deadline = browser(), 0.0, time.monotonic() + 20
    while True:
        reply = attempt(newcomer, base, password)
        if reply.status_code != 429 or time.monotonic() > deadline:
            break
        pause = min(float(reply.headers["Retry-After"]), 5.0)
        waited += pause
        time.sleep(pause)
    print(f"a new browser waited {waited:.1f} s after the attack")
    assert reply.status_code == 303 and waited <= MAX_DELAY_S


def test_the_account_budget_holds_across_many_addresses(web):
    base, password = web.web_url, admin_password(web)
    owner = browser()
    assert attempt(owner, base, password).status_code == 303

    def guess(i: int) -> int:
        return attempt(browser(f"127.0.0.{10 + i}"), base, f"guess-{i}").status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(guess, range(ACCOUNT_BUDGET + 15)))
    print(f"{len(codes)} guesses from {len(codes)} addresses:", {c: codes.count(c) for c in set(codes)})
    assert codes.count(401) <= ACCOUNT_BUDGET and codes.count(429) >= 15
    assert attempt(owner, base, password).status_code == 303       # the owner's known browser still gets in


def test_the_throttle_grows_delays_refills_the_budget_and_forgets():
    from web.signin_throttle import FIRST_DELAY_S, FORGET_S, Throttle, Ticket

    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0])
    waits = []
    for _ in range(12):                       # one address guessing as fast as it is let
        ticket = throttle.admit("192.0.2.7")
        while not isinstance(ticket, Ticket):
            waits.append(round(ticket, 1))
            now[0] += ticket
            ticket = throttle.admit("192.0.2.7")
    assert waits[:4] == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S, 8 * FIRST_DELAY_S]
    assert max(waits) == MAX_DELAY_S
    assert isinstance(throttle.admit("2001:db8::1"), Ticket)
    for i in range(4):                        # another host in the same IPv6 /64 shares its record
        throttle.admit(f"2001:db8::{i + 2}")
    assert not isinstance(throttle.admit("2001:db8::99"), Ticket)
    assert isinstance(throttle.admit("2001:db8:0:1::1"), Ticket)
    now[0] += FORGET_S + 1                    # forgotten after a quiet quarter of an hour
    assert isinstance(throttle.admit("192.0.2.7"), Ticket)
    right = throttle.admit("192.0.2.8")
    throttle.succeeded(right)                 # a right password gives its attempt back
    assert isinstance(throttle.admit("192.0.2.8"), Ticket)
