"""nginx_settings and nginx_plan: every nginx_* knob checked, the TLS profile and each site's headers derived."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.pyweb.stack.plugins.module_utils._apps import AppError, app_layout
from ansible_collections.pyweb.stack.plugins.module_utils._nginx import (
    SETTINGS,
    TLS_PROFILES,
    NginxError,
    check_headers,
    nginx_build,
    nginx_plan,
    nginx_settings,
    parse_probe,
)

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "nginx")
SOURCE = {"type": "path", "path": "/src/demo"}
BOOKWORM = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.22 25 Aug 2026\nTLS SNI support enabled\n"
TRIXIE = "nginx version: nginx/1.26.3\nbuilt with OpenSSL 3.5.10 1 Dec 2026\nTLS SNI support enabled\n"


def defaults(**overrides):
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        values = yaml.safe_load(handle)
    # a Jinja expression in the defaults; the role hands over its result
    values["nginx_ipv6"] = False
    values.update(overrides)
    return values


def refused(**overrides):
    with pytest.raises(NginxError) as caught:
        nginx_settings(defaults(**overrides))
    return str(caught.value)


def apps(*extra):
    base = [
        {"name": "demo", "module": "pyweb_demo.app:application", "source": SOURCE},
        {
            "name": "shop",
            "module": "pyweb_demo.app:application",
            "source": SOURCE,
            "domains": ["shop.test"],
            "tls": {"self_signed": True},
        },
    ]
    return app_layout(base + list(extra))


def test_the_role_defaults_are_every_setting_and_pass():
    values = defaults()
    assert sorted(name for name in values if name.startswith("nginx_")) == sorted(SETTINGS)
    settings = nginx_settings(values)
    assert settings["upstream_retries"] == 3 and settings["tls_profile"] == "intermediate"
    assert settings["hsts"] == "max-age=63072000"
    assert settings["security_headers"] == {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
    }


def test_every_setting_is_in_the_argument_spec_with_the_defaults_value():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    values = defaults()
    for entry in ("main", "validate"):
        options = specs[entry]["options"]
        for name in SETTINGS:
            assert name in options, (entry, name)
            if name != "nginx_ipv6":
                assert options[name]["default"] == values[name], name


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        # accepted before: the sites lost their backup peers and proxy_next_upstream_tries became 0 (unlimited)
        ("nginx_upstream_retries", -1, "nginx_upstream_retries: -1 is not allowed; a whole number from 0 to 10"),
        ("nginx_upstream_retries", 11, "from 0 to 10"),
        ("nginx_upstream_retries", True, "True is not allowed"),
        ("nginx_gzip_level", 0, "nginx_gzip_level: 0 is not allowed; a whole number from 1 to 9"),
        ("nginx_gzip_level", 10, "from 1 to 9"),
        ("nginx_gzip_level", "high", "'high' is not allowed"),
        ("nginx_gzip_min_length", -1, "from 0 to 1048576"),
        ("nginx_upstream_keepalive", -4, "nginx_upstream_keepalive: -4 is not allowed; a whole number from 0 to 1024"),
        ("nginx_static_max_age", 0, "nginx_static_max_age: 0 is not allowed; a whole number from 1 to"),
        ("nginx_static_max_age", -60, "from 1 to"),
        ("nginx_static_hashed_max_age", 0, "nginx_static_hashed_max_age: 0"),
        ("nginx_media_max_age", -1, "nginx_media_max_age: -1"),
        ("nginx_hsts_max_age", -1, "nginx_hsts_max_age: -1 is not allowed; a whole number from 0 to"),
        ("nginx_static_max_age", 2**31 + 1, "from 1 to 2147483648"),
        ("nginx_keepalive_timeout", "forever", "nginx_keepalive_timeout: 'forever' is not allowed; a time from 0 to 3600s"),
        ("nginx_keepalive_timeout", -5, "nginx_keepalive_timeout: -5"),
        ("nginx_keepalive_timeout", "2h", "'2h' is not allowed"),
        ("nginx_keepalive_timeout", "30s1m", "units from the largest to the smallest"),
        ("nginx_keepalive_timeout", "75 s", "'75 s'"),
        ("nginx_unknown_host_status", 404, "nginx_unknown_host_status: 404 is not allowed; one of 444, 421"),
        ("nginx_tls_profile", "old", "nginx_tls_profile: 'old' is not allowed; one of intermediate, modern"),
        ("nginx_brotli", "maybe", "nginx_brotli: 'maybe' is not allowed; true or false"),
        ("nginx_hardening", None, "nginx_hardening: None"),
        ("nginx_compress_types", "text/css", "nginx_compress_types: 'text/css' is not allowed; a list of MIME types"),
        ("nginx_compress_types", ["text/css", "not a type"], "nginx_compress_types[]: 'not a type'"),
        ("nginx_compress_types", ["text/html"], "nginx always compresses it"),
        ("nginx_resolvers", ["dns.example.com"], "nginx_resolvers[]: 'dns.example.com' is not allowed; a list of IP addresses"),
        ("nginx_security_headers", ["X-Frame-Options"], "nginx_security_headers: ['X-Frame-Options'] is not allowed; a dict"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_the_value_and_what_is_allowed(name, value, says):
    assert says in refused(**{name: value})


def test_values_as_extra_vars_strings_are_normalised():
    settings = nginx_settings(
        defaults(
            nginx_upstream_retries="2",
            nginx_keepalive_timeout="31",
            nginx_brotli="false",
            nginx_ipv6="yes",
            nginx_unknown_host_status="421",
            nginx_gzip_level=" 6 ",
        )
    )
    assert settings["upstream_retries"] == 2 and settings["gzip_level"] == 6
    assert settings["keepalive_timeout"] == "31" and settings["unknown_host_status"] == 421
    assert settings["brotli"] is False and settings["ipv6"] is True


@pytest.mark.parametrize("value", [0, 65, "75s", "1m30s", "500ms", "1h", "3600"])
def test_keepalive_times_nginx_understands(value):
    assert nginx_settings(defaults(nginx_keepalive_timeout=value))["keepalive_timeout"] == str(value)


def test_zero_retries_and_no_upstream_keepalive_are_allowed():
    settings = nginx_settings(defaults(nginx_upstream_retries=0, nginx_upstream_keepalive=0))
    assert (settings["upstream_retries"], settings["upstream_keepalive"]) == (0, 0)


def test_a_near_miss_of_a_setting_is_refused_another_roles_variable_is_not():
    assert refused(nginx_hsts_preloaded=True) == (
        "nginx_hsts_preloaded: not a setting of the nginx role; did you mean nginx_hsts_preload?"
    )
    assert nginx_settings(defaults(nginx_vhosts=[{"listen": 80}]))["gzip_level"] == 5


def test_hsts_preload_needs_include_subdomains_and_a_year():
    assert "nginx_hsts_preload: true is not allowed with nginx_hsts_include_subdomains false" in refused(nginx_hsts_preload=True)
    message = refused(nginx_hsts_preload=True, nginx_hsts_include_subdomains=True, nginx_hsts_max_age=86400)
    assert message.startswith("nginx_hsts_preload: true is not allowed with nginx_hsts_max_age 86400")
    assert "at least 31536000" in message
    assert "nginx_hsts_include_subdomains: true is not allowed with nginx_hsts_max_age 0" in refused(
        nginx_hsts_include_subdomains=True, nginx_hsts_max_age=0
    )
    settings = nginx_settings(defaults(nginx_hsts_preload=True, nginx_hsts_include_subdomains=True))
    assert settings["hsts"] == "max-age=63072000; includeSubDomains; preload"
    assert nginx_settings(defaults(nginx_hsts_max_age=0))["hsts"] is None


def test_the_profiles_are_mozillas():
    intermediate = nginx_settings(defaults())["tls"]
    assert intermediate["protocols"] == "TLSv1.2 TLSv1.3"
    suites = intermediate["ciphers"].split(":")
    assert len(suites) == 6 and all(s.startswith("ECDHE-") and ("GCM" in s or "CHACHA20-POLY1305" in s) for s in suites)
    assert intermediate["self_signed"]["days"] <= 366 and intermediate["self_signed"]["newkey"] == ["-newkey", "rsa:2048"]
    modern = nginx_settings(defaults(nginx_tls_profile="modern"))["tls"]
    assert modern["protocols"] == "TLSv1.3" and modern["ciphers"] == ""
    assert modern["self_signed"]["days"] <= 90 and modern["self_signed"]["key_algorithm"] == "id-ecPublicKey"
    assert set(TLS_PROFILES) == {"intermediate", "modern"}


def test_nginx_build_prefers_the_openssl_nginx_runs_with():
    assert nginx_build(BOOKWORM) == {"version": "1.22.1", "openssl": "3.0.22"}
    ran = "nginx version: nginx/1.26.3\nbuilt with OpenSSL 3.5.1 1 Jul 2025 (running with OpenSSL 3.5.10 1 Dec 2026)\n"
    assert nginx_build(ran)["openssl"] == "3.5.10"
    assert nginx_build("nginx version: nginx/1.27.0\nbuilt with BoringSSL\n") == {"version": "1.27.0", "openssl": None}
    assert nginx_build("") == {"version": None, "openssl": None}


def test_tls_directives_follow_nginx_and_openssl():
    settings = nginx_settings(defaults())
    old = nginx_plan(settings, apps(), nginx_v=BOOKWORM)["tls"]
    # nginx 1.22 keeps one ticket key until a reload; OpenSSL 3.0 has no ML-KEM
    assert old["session_tickets"] == "off" and old["curves"] == "X25519:prime256v1:secp384r1"
    new = nginx_plan(settings, apps(), nginx_v=TRIXIE)["tls"]
    assert new["session_tickets"] is None and new["curves"] == "?X25519MLKEM768:X25519:prime256v1:secp384r1"
    assert "self_signed" not in new and new["protocols"] == "TLSv1.2 TLSv1.3"


def headers_of(plan, app):
    return {h["name"]: h["value"] for h in plan["sites"][app]["headers"]}


def test_every_site_gets_the_security_headers_and_tls_sites_hsts():
    plan = nginx_plan(nginx_settings(defaults()), apps(), nginx_v=BOOKWORM)
    assert headers_of(plan, "demo") == {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
    }
    assert headers_of(plan, "shop")["Strict-Transport-Security"] == "max-age=63072000"
    hsts = next(h for h in plan["sites"]["shop"]["headers"] if h["name"] == "Strict-Transport-Security")
    assert hsts["https_only"] and hsts["upstream"] == "upstream_http_strict_transport_security"
    assert hsts["variable"] == "pyweb_strict_transport_security__shop"
    assert plan["default_headers"] == [
        {"name": "X-Content-Type-Options", "value": "nosniff"},
        {"name": "Referrer-Policy", "value": "strict-origin-when-cross-origin"},
        {"name": "X-Frame-Options", "value": "DENY"},
    ]


def test_an_app_overrides_adds_and_removes_headers_case_insensitively():
    (blog,) = app_layout(
        [
            {
                "name": "blog",
                "module": "blog.wsgi:application",
                "source": SOURCE,
                "domains": ["blog.test"],
                "tls": {"self_signed": True},
                "headers": {
                    "x-frame-options": "SAMEORIGIN",
                    "Referrer-Policy": None,
                    "Strict-Transport-Security": "",
                    "Permissions-Policy": "camera=()",
                },
            }
        ]
    )
    assert blog["headers"] == {
        "x-frame-options": "SAMEORIGIN",
        "Referrer-Policy": None,
        "Strict-Transport-Security": None,
        "Permissions-Policy": "camera=()",
    }
    plan = nginx_plan(nginx_settings(defaults()), [blog])
    assert headers_of(plan, "blog") == {
        "X-Content-Type-Options": "nosniff",
        "x-frame-options": "SAMEORIGIN",
        "Permissions-Policy": "camera=()",
    }
    names = [h["variable"] for h in plan["sites"]["blog"]["headers"]]
    assert names == ["pyweb_x_content_type_options__blog", "pyweb_x_frame_options__blog", "pyweb_permissions_policy__blog"]


def test_the_global_headers_can_be_emptied_and_a_plain_app_may_send_hsts_behind_a_tls_proxy():
    settings = nginx_settings(defaults(nginx_security_headers={}))
    (plain,) = app_layout(
        [{"name": "api", "module": "a:b", "source": SOURCE, "headers": {"Strict-Transport-Security": "max-age=300"}}]
    )
    plan = nginx_plan(settings, [plain])
    assert headers_of(plan, "api") == {"Strict-Transport-Security": "max-age=300"} and plan["default_headers"] == []


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ("DENY", "is not allowed; a dict of header names to values"),
        ({"X Frame": "DENY"}, "'X Frame' is not a header name nginx can send"),
        ({"X--Frame": "DENY"}, "is not a header name"),
        ({"X-Frame-": "DENY"}, "is not a header name"),
        ({"X-Frame-Options": "DENY", "x-frame-options": "SAMEORIGIN"}, "X-Frame-Options and x-frame-options are the same header"),
        ({"Cache-Control": "no-store"}, "headers.Cache-Control: not allowed here; the static and media locations set it"),
        ({"Vary": "Cookie"}, "gzip_vary sets it"),
        ({"X-Frame-Options": 1}, "headers.X-Frame-Options: 1 is not allowed; a string"),
        ({"X-Test": 'say "hi"'}, "cannot be written into nginx's configuration"),
        ({"X-Test": "$host"}, "nginx would read $name as a variable"),
        ({"X-Test": "a\nb"}, "no line break"),
        ({"X-Test": " padded"}, "no space at either end"),
        ({"Strict-Transport-Security": "max-age=forever"}, "is not a Strict-Transport-Security value"),
        ({"Strict-Transport-Security": "includeSubDomains"}, "is not a Strict-Transport-Security value"),
        ({"Strict-Transport-Security": "max-age=1; max-age=2"}, "is not a Strict-Transport-Security value"),
        ({"Strict-Transport-Security": "max-age=63072000; preload"}, "preload needs includeSubDomains"),
        ({"Strict-Transport-Security": "max-age=600; includeSubDomains; preload"}, "at least 31536000"),
    ],
)
def test_an_apps_bad_headers_are_refused_naming_the_app_and_the_header(headers, says):
    with pytest.raises(AppError) as caught:
        app_layout([{"name": "shop", "module": "a:b", "source": SOURCE, "headers": headers}])
    assert str(caught.value).startswith("pyweb_apps[shop].headers")
    assert says in str(caught.value)


def test_hsts_is_not_a_global_security_header():
    message = refused(nginx_security_headers={"Strict-Transport-Security": "max-age=1"})
    assert message.startswith("nginx_security_headers.Strict-Transport-Security: not allowed here; set by nginx_hsts_max_age")


def test_check_headers_accepts_what_browsers_get_in_practice():
    assert check_headers(
        {
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
            "Permissions-Policy": "geolocation=(), camera=()",
            "X-Frame-Options": None,
        },
        "x",
    ) == {
        "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
        "Permissions-Policy": "geolocation=(), camera=()",
        "X-Frame-Options": None,
    }


def test_tls_keys_are_checked_and_the_profile_is_the_hosts():
    def layout(tls):
        return app_layout([{"name": "shop", "module": "a:b", "source": SOURCE, "domains": ["shop.test"], "tls": tls}])

    with pytest.raises(AppError, match=r"pyweb_apps\[shop\]\.tls\.profile: the TLS profile is the host's \(nginx_tls_profile\)"):
        layout({"self_signed": True, "profile": "modern"})
    with pytest.raises(AppError, match=r"pyweb_apps\[shop\]\.tls\.sef_signed: unknown key \(known: certificate, enabled, key"):
        layout({"sef_signed": True})
    with pytest.raises(AppError, match=r"tls\.enabled: must be true or false, got 'no'"):
        layout({"enabled": "no", "self_signed": True})
    with pytest.raises(AppError, match=r"tls\.certificate: must be an absolute path on the host"):
        layout({"certificate": "shop.crt", "key": "/etc/ssl/shop.key"})
    with pytest.raises(AppError, match=r"needs certificate and key"):
        layout({"enabled": True})
    (given,) = layout({"certificate": "/etc/ssl/shop/fullchain.pem", "key": "/etc/ssl/shop/privkey.pem"})
    assert given["tls"]["enabled"] is True and given["tls"]["self_signed"] is False


PROBE = (
    "cert\tshop\t2\thttp://ocsp.example.net\n"
    "cert\tself\t1\t\n"
    "nameserver\t192.0.2.53\n"
    "nameserver\tfe80::1%eth0\n"
    "nameserver\t2001:db8::53\n"
    "bundle\t/etc/ssl/certs/ca-certificates.crt\n"
)


def test_parse_probe():
    found = parse_probe(PROBE)
    assert found["certificates"] == {"shop": {"count": 2, "ocsp": "http://ocsp.example.net"}, "self": {"count": 1, "ocsp": None}}
    # a link-local address with its interface is of no use to nginx
    assert found["nameservers"] == ["192.0.2.53", "2001:db8::53"]
    assert found["ca_bundle"] == "/etc/ssl/certs/ca-certificates.crt"
    assert parse_probe("") == {"certificates": {}, "nameservers": [], "ca_bundle": None}


def stapling(probe, settings=None, **tls):
    app = {"name": "shop", "module": "a:b", "source": SOURCE, "domains": ["shop.test"]}
    app["tls"] = tls or {"certificate": "/etc/ssl/shop/fullchain.pem", "key": "/etc/ssl/shop/privkey.pem"}
    plan = nginx_plan(settings or nginx_settings(defaults()), app_layout([app]), probe=probe)
    return plan["sites"]["shop"]["stapling"]


def test_ocsp_stapling_only_when_the_certificate_allows_it():
    on = stapling(PROBE)
    assert on["enabled"] and on["resolvers"] == ["192.0.2.53", "[2001:db8::53]"]
    assert on["trusted_certificate"] == "/etc/ssl/certs/ca-certificates.crt" and "http://ocsp.example.net" in on["reason"]
    given = stapling(PROBE, settings=nginx_settings(defaults(nginx_resolvers=["127.0.0.1"])))
    assert given["resolvers"] == ["127.0.0.1"]
    assert stapling(PROBE, settings=nginx_settings(defaults(nginx_ocsp_stapling=False))) == {
        "enabled": False,
        "reason": "nginx_ocsp_stapling is false",
    }
    # the self-signed certificate: no responder, and nginx would warn at every start
    self_signed = stapling(PROBE.replace("cert\tshop\t2\thttp://ocsp.example.net", "cert\tshop\t1\t"), self_signed=True)
    assert not self_signed["enabled"] and "names no OCSP responder" in self_signed["reason"]
    # a responder but no issuer in the file: nginx cannot ask about the certificate
    alone = stapling(PROBE.replace("cert\tshop\t2", "cert\tshop\t1"))
    assert not alone["enabled"] and "holds no issuer certificate" in alone["reason"]
    assert "no resolver" in stapling("cert\tshop\t2\thttp://ocsp.example.net\nbundle\t/b\n")["reason"]
    assert "no CA bundle" in stapling("cert\tshop\t2\thttp://ocsp.example.net\nnameserver\t192.0.2.1\n")["reason"]
    assert "holds no certificate (yet)" in stapling("")["reason"]
    assert nginx_plan(nginx_settings(defaults()), apps(), probe=PROBE)["sites"]["demo"]["stapling"] is None


def test_the_plan_refuses_what_is_not_the_settings_result():
    with pytest.raises(NginxError, match="nginx_settings' result"):
        nginx_plan(defaults(), apps())
    with pytest.raises(NginxError, match="app_layout's list"):
        nginx_plan(nginx_settings(defaults()), {"demo": {}})
