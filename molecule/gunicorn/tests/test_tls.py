"""TLS and security headers as they reach a client: sslyze's scan, curl, openssl s_client inside the instance."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from pyweb_verify import http, remote_json

# Mozilla's profiles as sslyze carries them (guidelines 5.7), read on the instance.
MOZILLA = "/opt/sslyze/lib/python3*/site-packages/sslyze/mozilla_tls_profile/5.7.json"
DEFAULTS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}
HSTS = "max-age=63072000"


def scan(host):
    return remote_json(host, "/root/sslyze.json")["server_scan_results"][0]["scan_result"]


def accepted(result, version):
    return {suite["cipher_suite"]["name"] for suite in result[version]["result"]["accepted_cipher_suites"]}


def intermediate(host):
    return json.loads(host.check_output("cat %s" % MOZILLA))["configurations"]["intermediate"]


def nginx_version(host):
    out = host.run("nginx -v").stderr
    return tuple(int(part) for part in re.search(r"nginx/([0-9.]+)", out).group(1).split("."))


def fetch(host, url, *args, name="shop.test"):
    """(status, headers lower-cased) of a curl inside the instance, resolving `name` to 127.0.0.1."""
    cmd = ["curl", "--silent", "--show-error", "--insecure", "--max-time", "10", "--output", "/dev/null"]
    cmd += ["--dump-header", "-", "--resolve", name + ":443:127.0.0.1", "--resolve", name + ":80:127.0.0.1"]
    out = host.check_output(" ".join(shlex.quote(part) for part in [*cmd, *args, url]))
    lines = out.replace("\r\n", "\n").strip().splitlines()
    fields = dict(line.partition(":")[::2] for line in lines[1:])
    return int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, v in fields.items()}


def test_sslyze_says_compliant_with_mozillas_intermediate_profile(host):
    verdict = host.file("/root/sslyze.txt").content_string
    assert 'Checking results against Mozilla\'s "intermediate" configuration' in verdict
    assert "shop.test:443: OK - Compliant." in verdict
    result = scan(host)
    # the profile's certificate checks ran on the scenario's own certificate,
    # trusted as the one anchor (and for the name shop.test)
    (deployment,) = result["certificate_info"]["result"]["certificate_deployments"]
    assert deployment["verified_certificate_chain"] is not None


def test_tls12_offers_exactly_the_profiles_suites_for_the_certificate(host):
    profile = intermediate(host)
    result = scan(host)
    # The profile's forward-secret ECDHE suites, without its DHE ones (left
    # out, as guidelines 5.8 does); the certificate is RSA, so of those the
    # ECDSA half cannot be negotiated: exactly the RSA half is offered.
    wanted = {suite for suite in profile["ciphers"]["iana"] if suite.startswith("TLS_ECDHE_RSA_")}
    assert len(wanted) == 3
    assert accepted(result, "tls_1_2_cipher_suites") == wanted
    assert accepted(result, "tls_1_3_cipher_suites") == set(profile["ciphersuites"])


@pytest.mark.parametrize(
    "version", ["ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites"]
)
def test_no_protocol_below_tls12(host, version):
    assert scan(host)[version]["result"]["is_tls_version_supported"] is False


def test_only_the_profiles_key_exchange_groups(host):
    curves = {curve["name"] for curve in scan(host)["elliptic_curves"]["result"]["supported_curves"]}
    assert curves == {"X25519", "secp256r1", "secp384r1"}
    # OpenSSL 3.5 (Debian 13) also speaks the hybrid post-quantum group, and prefers it
    if host.system_info.codename != "bookworm":
        out = host.check_output("openssl s_client -connect 127.0.0.1:443 -servername shop.test -tls1_3 </dev/null 2>&1")
        assert "Negotiated TLS1.3 group: X25519MLKEM768" in out


def test_session_tickets_as_mozilla_says_for_this_nginx(host):
    out = host.check_output("openssl s_client -connect 127.0.0.1:443 -servername shop.test -tls1_2 </dev/null 2>&1")
    assert re.search(r"Protocol\s*:\s*TLSv1\.2", out), out
    conf = host.file("/etc/nginx/nginx.conf").content_string
    if nginx_version(host) < (1, 23, 2):
        # it would keep one ticket key until the next reload
        assert "ssl_session_tickets off;" in conf and "TLS session ticket:" not in out
    else:
        # nginx rotates the key itself with the shared cache
        assert "ssl_session_tickets" not in conf and "TLS session ticket:" in out


def test_no_ocsp_stapling_for_the_self_signed_certificate_and_why(host):
    site = host.file("/etc/nginx/sites-available/pyweb-shop.conf").content_string
    assert "ssl_stapling on" not in site
    assert "# No OCSP stapling: the certificate names no OCSP responder" in site
    # nginx -t says nothing about stapling (it would warn for a certificate without a responder)
    assert "stapling" not in host.run("nginx -t").stderr


def test_the_self_signed_certificate_fits_the_profile(host):
    text = host.check_output("openssl x509 -in /etc/ssl/pyweb/shop.crt -noout -text")
    assert "Public Key Algorithm: rsaEncryption" in text and "(2048 bit)" in text
    assert "CA:FALSE" in text and "DNS:shop.test" in text and "sha256WithRSAEncryption" in text
    # at most 366 days (the profile's maximum lifespan): 365
    assert host.run("openssl x509 -in /etc/ssl/pyweb/shop.crt -noout -checkend %s", str(366 * 86400)).rc == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),  # the app's answer
        ("/static/hello.txt", 200),
        ("/media/tls-check.txt", 200),
        ("/static/nope.txt", 404),  # nginx's own error pages
        ("/media/nope.txt", 404),
    ],
)
def test_every_response_of_the_tls_app_carries_the_headers_with_its_override(host, path, status):
    got, headers = fetch(host, "https://shop.test" + path)
    assert got == status
    for name, value in DEFAULTS.items():
        assert headers[name] == value, name
    assert headers["strict-transport-security"] == HSTS
    # shop's own: CSP frame-ancestors instead of X-Frame-Options (molecule.yml)
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert "x-frame-options" not in headers


def test_nginx_refusing_a_body_too_large_still_sends_the_headers(host):
    got, headers = fetch(
        host, "https://shop.test/healthz", "--request", "POST", "--header", "Content-Length: 20000000", "--data", "x"
    )
    assert got == 413
    assert headers["x-content-type-options"] == "nosniff" and headers["strict-transport-security"] == HSTS


def test_the_redirect_to_https_carries_the_headers_but_no_hsts(host):
    got, headers = fetch(host, "http://shop.test/healthz")
    assert got == 301 and headers["location"] == "https://shop.test/healthz"
    assert headers["x-content-type-options"] == "nosniff" and headers["content-security-policy"] == "frame-ancestors 'self'"
    # RFC 6797 7.2: never over plain HTTP
    assert "strict-transport-security" not in headers


@pytest.mark.parametrize(("path", "status"), [("/healthz", 200), ("/static/hello.txt", 200), ("/media/nope.txt", 404)])
def test_the_plain_app_keeps_the_defaults_with_its_frame_policy(host, path, status):
    got, headers, _body = http(host, "http://127.0.0.1" + path, body=False)
    assert got == status
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff" and "strict-transport-security" not in headers
    assert "content-security-policy" not in headers


def test_unknown_name_on_443_gets_a_refused_handshake(host):
    out = host.run("openssl s_client -connect 127.0.0.1:443 -servername unknown.test </dev/null 2>&1").stdout
    # ssl_reject_handshake: an unrecognized_name alert, no certificate handed out
    assert "unrecognized name" in out and "no peer certificate available" in out
    assert "BEGIN CERTIFICATE" not in out


def test_a_request_for_another_name_on_shops_connection_is_misdirected_with_headers(host):
    got, headers = fetch(host, "https://shop.test/healthz", "--header", "Host: unknown.test")
    assert got == 421
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "x-pyweb-app" not in headers


def test_gixy_finds_nothing_in_the_nginx_configuration(host):
    assert remote_json(host, "/root/gixy.json") == []
