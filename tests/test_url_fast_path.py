"""The plain-URL fast path (regdb/validation.py `plain_host_port`) against yarl.

Registry URLs are checked, and their default image prefix derived, on every write. The plain
shape skips yarl; these tests hold that for every URL the shape takes, yarl gives the same
answer (accepted, same host and port, same image prefix), and that the shapes it declines still
get yarl's answer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regdb.model import default_image_prefix, image_prefix_of
from regdb.validation import check_http_url, check_http_url_slow, parse_url, plain_host_port

HINT = "put them in container_registry_config.auth"


def _slow(value: str) -> str | None:
    """yarl's verdict: the image prefix of an accepted URL, None for a refused one."""
    try:
        check_http_url_slow(value, credentials_hint=HINT, allow_query=False)
    except ValueError:
        return None
    return image_prefix_of(parse_url(value))


def _fast(value: str) -> str | None:
    try:
        check_http_url(value, credentials_hint=HINT, allow_query=False)
    except ValueError:
        return None
    return default_image_prefix(value)


# Near the shape's edges: upper case, '_', leading/trailing '-', empty and long labels, ports
# with leading zeros or out of range, paths with characters yarl escapes or splits on.
_label = st.text("abcxyzAZ0123456789-_", min_size=0, max_size=70)
_host = st.lists(_label, min_size=1, max_size=5).map(".".join) | st.sampled_from(
    ["127.0.0.1", "127.1", "999.1.1.1", "localhost", "a" * 63 + ".io", "b" * 64 + ".io", "[::1]"]
)
_plain_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_host = _host | st.lists(_plain_label, min_size=1, max_size=4).map(".".join)
_port = st.sampled_from(["", ":", ":0", ":1", ":80", ":5000", ":05000", ":65535", ":65536"])
_path = st.text("/abc09._~!$&'()*+,;=:@%-?# \\é\t", max_size=20).map(lambda p: "/" + p) | st.just(
    ""
)
_scheme = st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/", "http://u:p@"])


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scheme, _host, _port, _path)
def test_the_fast_path_agrees_with_yarl(scheme: str, host: str, port: str, path: str) -> None:
    value = scheme + host + port + path
    plain = plain_host_port(value)
    assert _fast(value) == _slow(value), value
    if plain is not None:
        url = parse_url(value)
        assert (url.raw_host, url.explicit_port) == plain, value


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("http://127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("https://registry.example.com/v2-mirror/", ("registry.example.com", None)),
        ("http://localhost:65535/a%20b", ("localhost", 65535)),
        ("http://Registry.example.com", None),  # yarl lower-cases it
        ("http://127.0.0.1:05000", None),  # yarl reads 5000
        ("http://h:65536", None),  # out of range: yarl's message
        ("http://h:0", None),
        ("http://h/?q=1", None),
        ("http://h/#f", None),
        ("http://u@h", None),
        ("http://[::1]:5000", None),
        ("http://bücher.example", None),  # IDNA: yarl's punycode
        ("http://a_b", None),
    ],
)
def test_what_the_shape_takes(value: str, plain: tuple[str, int | None] | None) -> None:
    assert plain_host_port(value) == plain
    assert _fast(value) == _slow(value)


def test_declined_shapes_still_get_yarls_answers() -> None:
    assert (
        default_image_prefix("http://Registry.Example.com:05000/x") == "registry.example.com:5000"
    )
    assert default_image_prefix("http://[::1]:5000") == "[::1]:5000"
    assert default_image_prefix("http://bücher.example") == "xn--bcher-kva.example"
    for bad, needle in [
        ("http://h:65536", "valid URL"),
        ("http://h:x", "valid URL"),
        ("http://u:p@h", "credentials"),
        ("http://h/#f", "fragment"),
        ("http://h/?q=1", "query"),
        ("ftp://h", "http"),
    ]:
        with pytest.raises(ValueError, match=needle):
            check_http_url(bad, credentials_hint=HINT, allow_query=False)
