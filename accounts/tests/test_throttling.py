import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory

from accounts.rates import Rate, parse_rate
from accounts.tests.factories import PASSWORD, UserFactory
from accounts.throttling import LoginThrottled, login_attempt_reserve
from kuberca.addresses import client_address

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"


def _fail(post_json, login_id: str = "oncall", **extra: str):  # noqa: ANN001, ANN202
    return post_json(LOGIN, {"id": login_id, "password": "wrong-password"}, **extra)


def test_login_id_is_throttled_after_five_failures(post_json, clock):
    UserFactory(username="oncall")
    for _ in range(5):
        assert _fail(post_json).status_code == 401

    response = _fail(post_json)

    assert response.status_code == 429
    assert response.json() == {"error": "too many requests"}
    assert response["Retry-After"] == "60"


def test_throttled_login_id_refuses_even_the_right_password(post_json, clock):
    UserFactory(username="oncall")
    for _ in range(5):
        _fail(post_json)

    response = post_json(LOGIN, {"id": "oncall", "password": PASSWORD})

    assert response.status_code == 429


def test_throttle_lifts_after_the_window(post_json, clock):
    UserFactory(username="oncall")
    for _ in range(5):
        _fail(post_json)
    clock.advance(seconds=45)
    throttled = _fail(post_json)
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "15"

    clock.advance(seconds=15)

    assert _fail(post_json).status_code == 401
    assert post_json(LOGIN, {"id": "oncall", "password": PASSWORD}).status_code == 200


def test_throttle_answers_unknown_and_known_ids_alike(post_json, clock):
    UserFactory(username="oncall")
    for login_id in ("oncall", "nobody"):
        for _ in range(5):
            _fail(post_json, login_id)

    known, unknown = _fail(post_json, "oncall"), _fail(post_json, "nobody")

    assert known.status_code == unknown.status_code == 429
    assert known.content == unknown.content


def test_login_id_throttle_ignores_case(post_json, clock):
    for login_id in ("oncall", "OnCall", "ONCALL", "oNcall", "onCall"):
        _fail(post_json, login_id)

    assert _fail(post_json, "Oncall").status_code == 429


def test_login_id_throttle_spans_client_addresses(post_json, clock):
    for n in range(5):
        _fail(post_json, REMOTE_ADDR=f"10.0.0.{n}")

    assert _fail(post_json, REMOTE_ADDR="10.0.0.99").status_code == 429


def test_client_is_throttled_after_twenty_failures_across_ids(post_json, clock):
    for n in range(20):
        assert _fail(post_json, f"user{n}").status_code == 401

    assert _fail(post_json, "someone-new").status_code == 429
    assert _fail(post_json, "someone-new", REMOTE_ADDR="10.1.1.1").status_code == 401


def test_clients_behind_a_trusted_proxy_on_a_dual_stack_socket_count_apart(
    post_json,  # noqa: ANN001
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
):
    # Bound to ::, an IPv4 proxy's connections arrive as ::ffff:a.b.c.d.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "::ffff:10.0.0.5"}
    for n in range(20):
        _fail(post_json, f"user{n}", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)

    behind = _fail(post_json, "new", HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy)
    again = _fail(post_json, "new2", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)

    assert behind.status_code == 401
    assert again.status_code == 429


def test_successful_logins_do_not_use_up_the_budget(post_json, clock, settings):
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "2/min"
    UserFactory(username="oncall")
    for _ in range(10):
        assert (
            post_json(LOGIN, {"id": "oncall", "password": PASSWORD}).status_code == 200
        )

    assert _fail(post_json).status_code == 401
    assert _fail(post_json).status_code == 401
    assert _fail(post_json).status_code == 429


def test_throttle_follows_configured_rates(post_json, clock, settings):
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "2/10m"
    _fail(post_json)
    _fail(post_json)

    response = _fail(post_json)

    assert response.status_code == 429
    assert response["Retry-After"] == "600"


def test_throttle_count_zero_turns_the_limit_off(post_json, clock, settings):
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "0/min"
    settings.LOGIN_THROTTLE_PER_CLIENT = "0/min"

    for _ in range(8):
        assert _fail(post_json).status_code == 401


def test_invalid_input_does_not_count_as_a_failure(post_json, clock):
    for _ in range(10):
        post_json(LOGIN, {"id": "oncall", "password": "short"})

    assert _fail(post_json).status_code == 401


def test_register_failures_count_against_the_client(post_json, clock, settings):
    settings.ALLOW_SIGNUP = True
    settings.LOGIN_THROTTLE_PER_CLIENT = "2/min"
    UserFactory(username="oncall")
    for _ in range(2):
        body = {"id": "oncall", "password": PASSWORD}
        assert post_json("/api/v1/auth/register", body).status_code == 409

    response = post_json(
        "/api/v1/auth/register", {"id": "oncall", "password": PASSWORD}
    )

    assert response.status_code == 429


def test_sign_ups_that_make_accounts_count_against_the_client(
    post_json,  # noqa: ANN001
    clock,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.ALLOW_SIGNUP = True
    settings.LOGIN_THROTTLE_PER_CLIENT = "2/min"
    made = [
        post_json("/api/v1/auth/register", {"id": f"user{n}", "password": PASSWORD})
        for n in range(3)
    ]

    assert [r.status_code for r in made] == [200, 200, 429]
    assert not get_user_model().objects.filter(username="user2").exists()


def test_reserve_gives_back_its_slot_when_throttled(settings):
    settings.LOGIN_THROTTLE_PER_CLIENT = "3/min"
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "1/min"
    login_attempt_reserve(client="10.0.0.1", login_id="a", now=1000.0)
    with pytest.raises(LoginThrottled):
        login_attempt_reserve(client="10.0.0.1", login_id="a", now=1001.0)

    login_attempt_reserve(client="10.0.0.1", login_id="b", now=1002.0)
    login_attempt_reserve(client="10.0.0.1", login_id="c", now=1003.0)

    with pytest.raises(LoginThrottled) as raised:
        login_attempt_reserve(client="10.0.0.1", login_id="d", now=1004.0)
    assert raised.value.retry_after == 16  # the minute 960-1020 ends at 1020


def test_released_reservation_frees_its_slots(settings):
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "1/min"
    first = login_attempt_reserve(client="10.0.0.1", login_id="a", now=1000.0)

    first.release()

    login_attempt_reserve(client="10.0.0.1", login_id="a", now=1001.0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_attempts_cannot_pass_the_limit(settings):
    settings.LOGIN_THROTTLE_PER_CLIENT = "0/min"
    settings.LOGIN_THROTTLE_PER_LOGIN_ID = "5/min"
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            login_attempt_reserve(client="10.0.0.1", login_id="race", now=5000.0)
            outcomes.append("claimed")
        except LoginThrottled:
            outcomes.append("throttled")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert outcomes.count("claimed") == 5
        assert outcomes.count("throttled") == 7
    finally:
        cache.clear()


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("5/min", Rate(5, 60)),
        ("20/m", Rate(20, 60)),
        ("20/minute", Rate(20, 60)),
        ("3/s", Rate(3, 1)),
        ("100/hour", Rate(100, 3600)),
        ("100/h", Rate(100, 3600)),
        ("9/day", Rate(9, 86400)),
        ("20/10m", Rate(20, 600)),
        ("10/30", Rate(10, 30)),
        ("0/min", Rate(0, 60)),
        ("0", Rate(0, 60)),
    ],
)
def test_parse_rate_reads_documented_forms(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["5", "five/min", "5/", "5/fortnight", "/min", "-1/m"])
def test_parse_rate_rejects_other_text(text):
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


def test_client_address_ignores_forwarded_for_from_untrusted_peer(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get(
        "/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.1"
    )

    assert client_address(request) == "203.0.113.9"


def test_client_address_reads_forwarded_for_from_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.168.1.1"]
    request = RequestFactory().get(
        "/",
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7, 192.168.1.1",
    )

    assert client_address(request) == "198.51.100.7"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        # Azure Application Gateway writes each hop as address:port.
        ("198.51.100.7:50123, 10.0.0.9:443", "198.51.100.7"),
        ("[2001:db8::7]:50123", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
    ],
)
def test_client_address_reads_forwarded_for_hops_that_carry_a_port(
    settings,  # noqa: ANN001
    forwarded: str,
    client: str,
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR=forwarded
    )

    assert client_address(request) == client


def test_clients_behind_a_proxy_writing_ports_count_apart(post_json, clock, settings):  # noqa: ANN001
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "10.0.0.5"}
    for n in range(20):
        forwarded = f"198.51.100.1:{40000 + n}"
        _fail(post_json, f"user{n}", HTTP_X_FORWARDED_FOR=forwarded, **proxy)

    behind = _fail(post_json, "new", HTTP_X_FORWARDED_FOR="198.51.100.2:1", **proxy)
    again = _fail(post_json, "new2", HTTP_X_FORWARDED_FOR="198.51.100.1:2", **proxy)

    assert behind.status_code == 401
    assert again.status_code == 429


def test_client_address_without_trusted_proxies_is_the_peer(settings):
    settings.TRUSTED_PROXIES = []
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )

    assert client_address(request) == "10.1.2.3"


def test_forwarded_for_from_trusted_proxy_throttles_the_real_client(
    post_json, clock, settings
):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    settings.LOGIN_THROTTLE_PER_CLIENT = "1/min"
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    _fail(post_json, "first", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)

    blocked = _fail(post_json, "second", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)
    other = _fail(post_json, "third", HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy)

    assert blocked.status_code == 429
    assert other.status_code == 401
