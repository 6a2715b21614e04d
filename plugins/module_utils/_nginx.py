# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx's settings, checked before anything is written, and what each site derives from them.

Private to pyweb.stack; the nginx_settings and nginx_plan filters are thin
wrappers. ``nginx_settings`` refuses a bad ``nginx_*`` value with a message
naming the variable, the value and what is allowed (the role calls it before
it installs or writes anything). ``nginx_plan`` turns the checked settings,
the apps, what ``nginx -V`` said and what the host's certificates carry into
the TLS directives of nginx.conf and, per site, its security headers and
whether it staples OCSP answers.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

__all__ = [
    "CURVES",
    "HSTS_PRELOAD_MIN_AGE",
    "SETTINGS",
    "TLS_PROFILES",
    "NginxError",
    "check_headers",
    "nginx_build",
    "nginx_plan",
    "nginx_settings",
    "parse_probe",
]


class NginxError(ValueError):
    """A bad setting; the message names the variable, the value and what is allowed."""


# Mozilla's Server Side TLS guidelines (https://ssl-config.mozilla.org/guidelines/5.7.json,
# the profiles sslyze's --mozilla_config checks against). TLS 1.3 suites stay
# OpenSSL's defaults, which are exactly the three the profiles list.
TLS_PROFILES = {
    "intermediate": {
        "protocols": ("TLSv1.2", "TLSv1.3"),
        # The profile's forward-secret AEAD suites (ECDHE). Its DHE suites are
        # left out, as guidelines 5.8 does: the clients that needed them are
        # gone, and they would need a ssl_dhparam file of their own.
        "ciphers": (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305",
        ),
        # The collection's self-signed certificate (tests, sandboxes): RSA 2048
        # reaches every client the profile names, and a lifespan within the
        # profile's 366 days.
        "self_signed": {"newkey": ["-newkey", "rsa:2048"], "key_algorithm": "rsaEncryption", "days": 365},
    },
    "modern": {
        "protocols": ("TLSv1.3",),
        # TLS 1.3 only: its suites are not set by ssl_ciphers.
        "ciphers": (),
        # The profile takes ECDSA certificates only, living 90 days at most.
        "self_signed": {
            "newkey": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            "key_algorithm": "id-ecPublicKey",
            "days": 90,
        },
    },
}
# Both profiles' key exchange groups. With OpenSSL 3.5 (Debian 13) the hybrid
# post-quantum X25519MLKEM768 goes first (guidelines 5.8 prepends it; browsers
# offer it by default): naming only these three would take it away. The "?"
# lets OpenSSL skip a group it does not know instead of refusing the whole
# list, which stops nginx from starting (gixy-ng's ssl_ecdh_curve check).
CURVES = ("X25519", "prime256v1", "secp384r1")
PQ_HYBRID = "?X25519MLKEM768"
PQ_HYBRID_OPENSSL = (3, 5)
# nginx rotates the session ticket keys itself from 1.23.2 on when the session
# cache is shared (its CHANGES); before, one key lived until the next reload,
# so a stolen key decrypted every session ticketed with it: Mozilla's
# generator writes ssl_session_tickets off for older nginx only.
TICKET_KEY_ROTATION = (1, 23, 2)
# hstspreload.org's conditions for a domain on the browsers' preload list.
HSTS_PRELOAD_MIN_AGE = 31536000
# RFC 9111 1.2.2: a cache treats delta-seconds above 2^31 as 2^31.
MAX_AGE_LIMIT = 2147483648
KEEPALIVE_LIMIT_S = 3600

# What each whole-number setting allows, and why the bounds.
_WHOLE = {
    "nginx_gzip_level": (1, 9, "gzip's compression levels (brotli uses the same)"),
    "nginx_gzip_min_length": (0, 1048576, "bytes; 0 compresses every response"),
    "nginx_upstream_keepalive": (0, 1024, "idle connections per nginx worker and app; 0 opens one per request"),
    "nginx_upstream_retries": (
        0,
        10,
        "each retry is one more backup peer and attempt, 0 none; a negative count would leave "
        "no backup peer and unlimited attempts",
    ),
    "nginx_static_max_age": (1, MAX_AGE_LIMIT, "seconds browsers keep a static file before they revalidate it"),
    "nginx_static_hashed_max_age": (1, MAX_AGE_LIMIT, "seconds, sent with immutable"),
    "nginx_media_max_age": (1, MAX_AGE_LIMIT, "seconds browsers keep an uploaded file"),
    "nginx_hsts_max_age": (0, MAX_AGE_LIMIT, "seconds; 0 sends no Strict-Transport-Security"),
}
_BOOLS = (
    "nginx_brotli",
    "nginx_ipv6",
    "nginx_disable_stock_default",
    "nginx_remove_unmanaged_sites",
    "nginx_hardening",
    "nginx_hsts_include_subdomains",
    "nginx_hsts_preload",
    "nginx_ocsp_stapling",
)
_CHOICES = {
    "nginx_unknown_host_status": (444, 421),
    "nginx_tls_profile": tuple(TLS_PROFILES),
}
SETTINGS = (
    *sorted(_WHOLE),
    *_BOOLS,
    *_CHOICES,
    "nginx_keepalive_timeout",
    "nginx_compress_types",
    "nginx_security_headers",
    "nginx_resolvers",
)

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
# nginx's time syntax: units from the most to the least significant.
_TIME = re.compile(r"^(?:[0-9]+(?:ms|[yMwdhms]))+$|^[0-9]+$")
_TIME_PART = re.compile(r"([0-9]+)(ms|[yMwdhms])")
_TIME_UNITS = {"y": 31536000, "M": 2592000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_MIME = re.compile(r"^(\*|[a-z0-9][a-z0-9!#&^_.+-]*/([a-z0-9][a-z0-9!#&^_.+-]*|\*))$")
# Parts of letters and digits joined by single hyphens: the lower-cased name
# with "_" for "-" is nginx's $upstream_http_ variable and no two names share it.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$")
# Printable ASCII without the characters nginx's configuration would read: a
# quote ends the value, a backslash escapes, $ starts a variable.
_HEADER_VALUE = re.compile(r"^[\x20-\x21\x23\x25-\x5b\x5d-\x7e]*$")
_HSTS = "strict-transport-security"
# Headers nginx or the sites write themselves; a second copy would contradict them.
_OWN_HEADERS = {
    "cache-control": "the static and media locations set it (nginx_static_max_age, nginx_media_max_age)",
    "content-encoding": "nginx sets it when it compresses",
    "content-length": "nginx sets it",
    "content-type": "nginx and the app set it",
    "connection": "a hop-by-hop header nginx manages",
    "date": "nginx sets it",
    "etag": "nginx sets it for files",
    "keep-alive": "a hop-by-hop header nginx manages",
    "last-modified": "nginx sets it for files",
    "location": "redirects set it",
    "server": "nginx sets it (server_tokens off keeps the version out)",
    "transfer-encoding": "a hop-by-hop header nginx manages",
    "vary": "gzip_vary sets it",
}


def _allowed(name, value, allowed):
    return NginxError("%s: %r is not allowed; %s" % (name, value, allowed))


def _whole(name, value):
    low, high, why = _WHOLE[name]
    allowed = "a whole number from %d to %d (%s)" % (low, high, why)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _allowed(name, value, allowed)
    if isinstance(value, str):
        # what `-e name=value` and Jinja hand over
        if not _INTEGER.match(value.strip()):
            raise _allowed(name, value, allowed)
        number = int(value.strip())
    else:
        number = value
    if not low <= number <= high:
        raise _allowed(name, value, allowed)
    return number


def _bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    raise _allowed(name, value, "true or false")


def _choice(name, value):
    choices = _CHOICES[name]
    for choice in choices:
        if value == choice or (isinstance(choice, int) and isinstance(value, str) and value.strip() == str(choice)):
            return choice
    raise _allowed(name, value, "one of %s" % ", ".join(str(c) for c in choices))


def _keepalive(name, value):
    allowed = (
        "a time from 0 to %ds in nginx's syntax (65, 75s, 1m30s; 0 turns client keep-alive off): "
        "longer, idle clients hold the worker connections the sizing counted for requests" % KEEPALIVE_LIMIT_S
    )
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _allowed(name, value, allowed)
    text = str(value).strip()
    if not _TIME.match(text):
        raise _allowed(name, value, allowed)
    if text.isdigit():
        seconds = int(text)
    else:
        parts = _TIME_PART.findall(text)
        order = list(_TIME_UNITS)
        ranks = [order.index(unit) for _number, unit in parts]
        if ranks != sorted(set(ranks)):
            raise _allowed(name, value, allowed + "; units from the largest to the smallest, each once")
        seconds = sum(int(number) * _TIME_UNITS[unit] for number, unit in parts)
    if seconds > KEEPALIVE_LIMIT_S:
        raise _allowed(name, value, allowed)
    return text


def _compress_types(name, value):
    allowed = "a list of MIME types like application/json (text/html is always compressed)"
    if not isinstance(value, list):
        raise _allowed(name, value, allowed)
    seen = []
    for item in value:
        if not isinstance(item, str) or not _MIME.match(item.strip().lower()):
            raise _allowed(name + "[]", item, allowed)
        mime = item.strip().lower()
        if mime == "text/html":
            raise _allowed(name + "[]", item, "anything but text/html: nginx always compresses it and warns when it is listed")
        if mime not in seen:
            seen.append(mime)
    return seen


def _resolvers(name, value):
    allowed = "a list of IP addresses of DNS resolvers (empty: the nameservers in /etc/resolv.conf)"
    if value is None:
        return []
    if not isinstance(value, list):
        raise _allowed(name, value, allowed)
    result = []
    for item in value:
        try:
            address = str(ipaddress.ip_address(str(item).strip()))
        except ValueError:
            raise _allowed(name + "[]", item, allowed) from None
        if "%" in address:
            raise _allowed(name + "[]", item, allowed + "; nginx takes no %interface")
        result.append(address)
    return result


def _sts(where, value):
    """Check a Strict-Transport-Security value: max-age, then includeSubDomains and preload at most once each."""
    parts = [part.strip() for part in value.split(";")]
    if parts and parts[-1] == "":
        parts.pop()
    age = None
    flags = []
    for part in parts:
        match = re.match(r"^max-age=([0-9]+)$", part, re.IGNORECASE)
        if match and age is None:
            age = int(match.group(1))
        elif part.lower() in ("includesubdomains", "preload") and part.lower() not in flags:
            flags.append(part.lower())
        else:
            age = None
            break
    if age is None:
        raise NginxError(
            "%s: %r is not a Strict-Transport-Security value; allowed: max-age=<seconds>, "
            "then optionally '; includeSubDomains' and '; preload'" % (where, value)
        )
    if "preload" in flags:
        _preload_rules(where, age, "includesubdomains" in flags, value)


def _preload_rules(where, age, subdomains, value):
    if not subdomains or age < HSTS_PRELOAD_MIN_AGE:
        raise NginxError(
            "%s: %r is not allowed; preload needs includeSubDomains and a max-age of at least %d "
            "(one year): the browsers' preload list takes no domain without both" % (where, value, HSTS_PRELOAD_MIN_AGE)
        )


def check_headers(headers, where, allow_hsts=True):
    """``headers`` (a dict of header name to value) checked, as {name: value or None}.

    None or "" removes a header (an app's override of a default); ``where`` is
    the variable named in a message. ``allow_hsts`` false refuses
    Strict-Transport-Security (nginx_security_headers: HSTS has knobs of its own).
    """
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise NginxError("%s: %r is not allowed; a dict of header names to values (null or '' removes one)" % (where, headers))
    result = {}
    seen = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise NginxError(
                "%s: %r is not a header name nginx can send; allowed: letters and digits in parts joined "
                "by single '-', like X-Frame-Options" % (where, name)
            )
        lower = name.lower()
        if lower in seen:
            raise NginxError("%s: %s and %s are the same header (names are case-insensitive)" % (where, seen[lower], name))
        seen[lower] = name
        key = "%s.%s" % (where, name)
        if lower in _OWN_HEADERS:
            raise NginxError("%s: not allowed here; %s" % (key, _OWN_HEADERS[lower]))
        if lower == _HSTS and not allow_hsts:
            raise NginxError(
                "%s: not allowed here; set by nginx_hsts_max_age, nginx_hsts_include_subdomains and "
                "nginx_hsts_preload, on TLS sites only (an app's headers may override it)" % key
            )
        if value is None or value == "":
            result[name] = None
            continue
        if not isinstance(value, str):
            raise NginxError("%s: %r is not allowed; a string (quote it), or null or '' to remove the header" % (key, value))
        if not _HEADER_VALUE.match(value) or value != value.strip() or len(value) > 4096:
            raise NginxError(
                "%s: %r cannot be written into nginx's configuration; allowed: printable ASCII without "
                '", \\ or $ (nginx would read $name as a variable), no line break, no space at either end, '
                "at most 4096 characters" % (key, value)
            )
        if lower == _HSTS:
            _sts(key, value)
        result[name] = value
    return result


def nginx_settings(values):
    """Every ``nginx_*`` setting of ``values`` checked and normalised.

    ``values`` maps the variable names to their values (all of SETTINGS, as
    the role's defaults give them); a name starting with ``nginx_`` that is
    not a setting but close to one is refused (a typo is not silently
    ignored; other roles' nginx_* variables are left alone). Returns the
    values under their names without the prefix, plus ``hsts`` (the header's
    value, or None when none is sent) and ``tls`` (the profile's directives).
    """
    if not isinstance(values, dict):
        raise NginxError("nginx settings: a dict of nginx_* variables, got %r" % (values,))
    for name in sorted(str(name) for name in values if str(name).startswith("nginx_") and name not in SETTINGS):
        # Only a near miss: another role's nginx_* variables may share the play.
        close = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=0.8)
        if close:
            raise NginxError("%s: not a setting of the nginx role; did you mean %s?" % (name, close[0]))
    missing = [name for name in SETTINGS if name not in values]
    if missing:
        raise NginxError("%s: missing (the role's defaults define every setting)" % missing[0])
    result = {}
    for name in _WHOLE:
        result[name] = _whole(name, values[name])
    for name in _BOOLS:
        result[name] = _bool(name, values[name])
    for name in _CHOICES:
        result[name] = _choice(name, values[name])
    result["nginx_keepalive_timeout"] = _keepalive("nginx_keepalive_timeout", values["nginx_keepalive_timeout"])
    result["nginx_compress_types"] = _compress_types("nginx_compress_types", values["nginx_compress_types"])
    result["nginx_resolvers"] = _resolvers("nginx_resolvers", values["nginx_resolvers"])
    result["nginx_security_headers"] = check_headers(values["nginx_security_headers"], "nginx_security_headers", allow_hsts=False)

    age = result["nginx_hsts_max_age"]
    subdomains = result["nginx_hsts_include_subdomains"]
    preload = result["nginx_hsts_preload"]
    if age == 0 and (subdomains or preload):
        flag = "nginx_hsts_preload" if preload else "nginx_hsts_include_subdomains"
        raise NginxError(
            "%s: true is not allowed with nginx_hsts_max_age 0 (no Strict-Transport-Security is sent); "
            "give nginx_hsts_max_age a number of seconds or set %s false" % (flag, flag)
        )
    if preload and not subdomains:
        raise NginxError(
            "nginx_hsts_preload: true is not allowed with nginx_hsts_include_subdomains false; the browsers' "
            "preload list takes a domain only with includeSubDomains"
        )
    if preload and age < HSTS_PRELOAD_MIN_AGE:
        raise NginxError(
            "nginx_hsts_preload: true is not allowed with nginx_hsts_max_age %d; preload needs at least %d (one year)"
            % (age, HSTS_PRELOAD_MIN_AGE)
        )
    hsts = None
    if age:
        hsts = "max-age=%d" % age + ("; includeSubDomains" if subdomains else "") + ("; preload" if preload else "")

    settings = {name[len("nginx_") :]: value for name, value in result.items()}
    settings["hsts"] = hsts
    profile = TLS_PROFILES[settings["tls_profile"]]
    settings["tls"] = {
        "protocols": " ".join(profile["protocols"]),
        "ciphers": ":".join(profile["ciphers"]),
        "self_signed": dict(profile["self_signed"]),
    }
    return settings


def _version(text):
    return tuple(int(part) for part in text.split(".")) if text else None


def nginx_build(text):
    """nginx's version and the OpenSSL it runs with, from what ``nginx -V`` printed."""
    text = text or ""
    version = re.search(r"nginx/([0-9]+\.[0-9]+\.[0-9]+)", text)
    openssl = re.search(r"running with OpenSSL ([0-9]+\.[0-9]+\.[0-9]+)", text) or re.search(
        r"built with OpenSSL ([0-9]+\.[0-9]+\.[0-9]+)", text
    )
    return {
        "version": version.group(1) if version else None,
        "openssl": openssl.group(1) if openssl else None,
    }


def parse_probe(text):
    """What the role's certificate probe printed, as a dict.

    Lines, tab-separated: ``cert <app> <certificates in the file> <OCSP URL>``,
    ``nameserver <address>`` (from /etc/resolv.conf), ``bundle <path>`` (the
    CA bundle that verifies an OCSP answer).
    """
    result = {"certificates": {}, "nameservers": [], "ca_bundle": None}
    for line in (text or "").splitlines():
        fields = line.split("\t")
        if fields[0] == "cert" and len(fields) >= 3:
            count = int(fields[2]) if fields[2].isdigit() else 0
            ocsp = fields[3].strip() if len(fields) > 3 else ""
            result["certificates"][fields[1]] = {"count": count, "ocsp": ocsp or None}
        elif fields[0] == "nameserver" and len(fields) == 2:
            try:
                address = ipaddress.ip_address(fields[1].strip())
            except ValueError:
                continue
            # a link-local address with its %interface: nginx cannot use it
            if "%" not in str(address):
                result["nameservers"].append(str(address))
        elif fields[0] == "bundle" and len(fields) == 2 and fields[1].strip():
            result["ca_bundle"] = fields[1].strip()
    return result


def _snake(name):
    return name.lower().replace("-", "_")


def _site_headers(settings, app):
    merged = {}
    for name, value in settings["security_headers"].items():
        if value is not None:
            merged[name.lower()] = (name, value)
    if app["tls"]["enabled"] and settings["hsts"]:
        merged[_HSTS] = ("Strict-Transport-Security", settings["hsts"])
    for name, value in (app.get("headers") or {}).items():
        if value is None:
            merged.pop(name.lower(), None)
        else:
            merged[name.lower()] = (name, value)
    return [
        {
            "name": name,
            "value": value,
            # the app's own header, when it sends one
            "upstream": "upstream_http_" + _snake(name),
            # "__" cannot occur in a header's part (no "--"): unique per app
            "variable": "pyweb_%s__%s" % (_snake(name), app["name"]),
            # RFC 6797 7.2: never over plain HTTP (the redirect to HTTPS)
            "https_only": lower == _HSTS,
        }
        for lower, (name, value) in merged.items()
    ]


def _resolver_address(address):
    return "[%s]" % address if ":" in address else address


def _stapling(settings, app, probe):
    if not app["tls"]["enabled"]:
        return None
    off = {"enabled": False}
    cert = probe["certificates"].get(app["name"])
    path = app["tls"]["certificate"]
    if not settings["ocsp_stapling"]:
        return dict(off, reason="nginx_ocsp_stapling is false")
    if not cert or cert["count"] == 0:
        return dict(off, reason="%s holds no certificate (yet)" % path)
    if not cert["ocsp"]:
        return dict(
            off,
            reason="the certificate names no OCSP responder (a self-signed one never does; "
            "Let's Encrypt's have none since 2025): nothing to staple, and nginx would warn at every start",
        )
    if cert["count"] < 2:
        return dict(
            off,
            reason="%s holds no issuer certificate after the server's: nginx needs it to ask %s "
            "(give the full chain)" % (path, cert["ocsp"]),
        )
    resolvers = settings["resolvers"] or probe["nameservers"]
    if not resolvers:
        return dict(off, reason="no resolver to find %s: set nginx_resolvers (/etc/resolv.conf names none)" % cert["ocsp"])
    if not probe["ca_bundle"]:
        return dict(off, reason="no CA bundle (ca-certificates) to verify the responder's answer")
    return {
        "enabled": True,
        "reason": "the certificate names the responder %s and its file holds the issuer" % cert["ocsp"],
        "resolvers": [_resolver_address(address) for address in resolvers],
        "trusted_certificate": probe["ca_bundle"],
    }


def nginx_plan(settings, apps, nginx_v="", probe=""):
    """What nginx.conf and each app's site carry, from the checked settings.

    ``settings`` is nginx_settings' result, ``apps`` the app layout,
    ``nginx_v`` what ``nginx -V`` printed (stderr), ``probe`` what the role's
    certificate probe printed (see parse_probe).
    """
    if not isinstance(settings, dict) or "tls" not in settings:
        raise NginxError("nginx_plan: the settings must be nginx_settings' result, got %r" % (settings,))
    if not isinstance(apps, list):
        raise NginxError("nginx_plan: the apps must be app_layout's list, got %r" % (apps,))
    build = nginx_build(nginx_v)
    openssl = _version(build["openssl"])
    nginx = _version(build["version"])
    curves = list(CURVES)
    if openssl and openssl >= PQ_HYBRID_OPENSSL:
        curves.insert(0, PQ_HYBRID)
    tls = dict(settings["tls"])
    tls.pop("self_signed", None)
    tls["curves"] = ":".join(curves)
    tls["session_tickets"] = "off" if nginx and nginx < TICKET_KEY_ROTATION else None
    found = parse_probe(probe)
    sites = {app["name"]: {"headers": _site_headers(settings, app), "stapling": _stapling(settings, app, found)} for app in apps}
    # The closed default site answers no app's requests: only the defaults, as
    # literals (HSTS is for a name an app owns).
    default_headers = [{"name": name, "value": value} for name, value in settings["security_headers"].items() if value]
    return {
        "build": build,
        "tls": tls,
        "sites": sites,
        "default_headers": default_headers,
        "long_lived": _long_lived(apps),
    }


def _long_lived(apps):
    """What nginx.conf needs for the apps' WebSockets and streams (websocket_paths, streaming_paths).

    ``websocket``: some app has a WebSocket path (the Connection header map is
    written). ``stream_timeout``: the longest idle timeout of those apps, or
    None: a reload's old workers close what is still open after it at the
    latest (worker_shutdown_timeout), instead of living as long as a socket
    that keeps talking.
    """
    websocket = [app for app in apps if app.get("websocket_paths")]
    streaming = [app for app in apps if app.get("streaming_paths")]
    return {
        "websocket": bool(websocket),
        "stream_timeout": max((app["stream_timeout"] for app in websocket + streaming), default=None),
    }
