"""Security checks: what the handshake and the masking keys give away.

Sans-I/O: performs no I/O.

Every connection wspcap can read is unencrypted (a TLS connection shows no
upgrade and no frames), so ``sec_plaintext_ws`` is a fact about each, and
credentials seen in the request target or the subprotocol list are exposed
to anyone on the path. Origin checks follow RFC 6455 section 10.2 ("servers
that are not intended to process input from any web page ... SHOULD verify
the |Origin| field"); cross-site WebSocket hijacking (CSWSH) is an upgrade a
browser authenticated with ambient credentials, accepted for another site's
page. Masking keys must be unpredictable (RFC 6455 section 10.3).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import numpy as np

from wspcap.http.upgrade import read_authorization
from wspcap.rules.context import C2S, S2C, Context, check, preview

if TYPE_CHECKING:
    from wspcap.http.upgrade import HttpHead

__all__ = [
    "credential_name",
    "credentials",
    "is_browser",
    "masking_keys",
    "origin",
    "origin_cross_site",
    "plaintext",
]

_BROWSER = re.compile(r"^Mozilla/5\.0 \(.*\b(?:Chrome|Firefox|Safari|Edg|OPR|Gecko)/")

#: Words that name a secret in a query parameter or a subprotocol.
SECRET_WORDS = frozenset((
    "token", "tokens", "accesstoken", "password", "passwd", "pwd", "pass", "pw", "secret",
    "jwt", "bearer", "auth", "authorization", "credential", "credentials", "sig",
    "signature", "apikey", "otp", "ticket",
))
#: Whole (squashed) names that are secrets although no single word is.
SECRET_NAMES = frozenset(("key", "apikey", "accesskey", "secretkey", "privatekey",
                          "authkey", "clientsecret"))
#: Words of anti-CSRF tokens (proof of the page's intent, not ambient).
CSRF_WORDS = frozenset(("csrf", "xsrf", "nonce", "state"))
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_OPAQUE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def is_browser(user_agent: str | None) -> bool:
    """Whether a User-Agent is a web browser's (they always send Origin)."""
    return bool(user_agent and _BROWSER.match(user_agent))


def _words(name: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", name).lower()) if w]


def credential_name(name: str) -> bool:
    """Whether a parameter name says its value is a secret (``token``, ``api_key``...)."""
    words = _words(name)
    return any(w in SECRET_WORDS for w in words) or "".join(words) in SECRET_NAMES


def _token_like(value: str) -> bool:
    """A bearer token, a JWT or another long opaque secret."""
    if _JWT.search(value):
        return True
    words = _words(value)
    if any(w in SECRET_WORDS for w in words):
        return True
    for m in _OPAQUE.finditer(value):
        s = m.group()
        if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
            return True
    return False


def _host_port(authority: str) -> tuple[str, int | None] | None:
    try:
        u = urlsplit("//" + authority.strip())
        host, port = u.hostname, u.port
    except ValueError:
        return None
    return (host, port) if host else None


def origin_cross_site(origin: str, host: str | None) -> bool | None:
    """Whether ``origin`` names another host than the ``Host`` header.

    Host names are compared case-insensitively; ports only when both sides
    give one (or the Origin's default port differs from an explicit Host
    port). Returns None when there is nothing to compare (no Host), True when
    the Origin cannot be read as ``scheme://host[:port]``.
    """
    if not host:
        return None
    hp = _host_port(host)
    try:
        u = urlsplit(origin.strip())
        ohost, oport = u.hostname, u.port
    except ValueError:
        return True
    if not u.scheme or not ohost or hp is None:
        return True
    if ohost != hp[0]:
        return True
    hport = hp[1]
    if hport is not None:
        oport = oport if oport is not None else _DEFAULT_PORTS.get(u.scheme.lower())
        if oport is not None and oport != hport:
            return True
    return False


@check("sec")
def plaintext(ctx: Context) -> None:
    """RFC 6455 section 10.6: every connection wspcap can read is unencrypted."""
    for conn in ctx.conns:
        if conn.tls:
            continue
        hs = conn.handshake
        if hs is not None and hs.request is not None:
            target = f"ws://{hs.host or conn.server_ip}{_shown(hs.uri)}"
            what = "handshake and frames" if conn.established else "handshake"
            ctx.report(conn.conn_id, conn.ts_request, C2S, None, "sec_plaintext_ws",
                       f"{target}: {what} in cleartext", conn.request_packet)
        elif conn.established:
            ctx.report(conn.conn_id, conn.ts_start, None, None, "sec_plaintext_ws",
                       f"frames to {conn.server_ip}:{conn.server_port} in cleartext "
                       "(no handshake captured)")


@check("sec")
def origin(ctx: Context) -> None:
    """Origin missing (from a browser), null, cross-site, and the CSWSH pattern."""
    for conn in ctx.conns:
        hs = conn.handshake
        if hs is None or hs.request is None:
            continue
        org = hs.origin
        cross: bool | None = None
        if org is None:
            if is_browser(hs.user_agent):
                ua = hs.user_agent or ""
                ctx.report(conn.conn_id, conn.ts_request, C2S, None, "sec_origin_missing",
                           f"browser User-Agent {preview(ua, 60)} but no Origin",
                           conn.request_packet)
            continue
        if org.strip().lower() == "null":
            ctx.report(conn.conn_id, conn.ts_request, C2S, None, "sec_origin_null",
                       "Origin: null", conn.request_packet)
            cross = True
        else:
            cross = origin_cross_site(org, hs.host)
            if cross:
                ctx.report(conn.conn_id, conn.ts_request, C2S, None, "sec_origin_cross_site",
                           f"Origin {preview(org, 60)} is not Host {preview(hs.host or '', 60)}",
                           conn.request_packet)
        if cross and hs.accepted and (hs.cookie or hs.authorization):
            if _has_intent_token(hs.uri, _offered(hs.request)):
                continue
            ambient = " and ".join(n for n, on in (("Cookie", hs.cookie),
                                                   ("Authorization", hs.authorization)) if on)
            ctx.report(conn.conn_id, conn.ts_response, S2C, None, "sec_cswsh_risk",
                       f"{ambient} sent, Origin {preview(org, 60)} is cross-site for Host "
                       f"{preview(hs.host or '', 60)}, accepted with 101, no token in the "
                       "URL or subprotocol", conn.response_packet)


def _has_intent_token(uri: str, protocols: list[str]) -> bool:
    """A token that a cross-site page could not know: in the query or a subprotocol."""
    for name, value in _query(uri):
        words = _words(name)
        if value and (credential_name(name) or any(w in CSRF_WORDS for w in words)):
            return True
    return any(_token_like(p) for p in protocols)


def _offered(request: HttpHead) -> list[str]:
    """The offered subprotocols as sent (case kept)."""
    return [p.strip() for v in request.get_all("Sec-WebSocket-Protocol")
            for p in v.split(",") if p.strip()]


def _query(uri: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(urlsplit(uri).query, keep_blank_values=True)
    except ValueError:
        return []


def _shown(uri: str) -> str:
    """``uri`` for a detail: the values of query parameters that name a
    credential, and a password in the user information, left out (the
    finding that reports them, sec_credentials_in_url, shows a preview)."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if password:
        uri = uri.replace(f":{password}@", ":...@", 1)
    if not any(value and credential_name(name) for name, value in _query(uri)):
        return uri
    path, _, query = uri.partition("?")
    query, hash_, fragment = query.partition("#")
    kept = [(f"{name}=..." if "=" in item and credential_name(name) else item)
            for item in query.split("&") for name in [unquote_plus(item.partition("=")[0])]]
    return f"{path}?{'&'.join(kept)}{hash_}{fragment}"


def _secret_preview(value: str) -> str:
    """Enough of a secret to recognise it, not enough to use it."""
    return f"{len(value)} chars, {value[:4]!r}..." if len(value) > 4 else f"{len(value)} chars"


#: Header fields the secret-header check leaves to others: the proxy's
#: credentials (sec_proxy_credentials, found by the engine), the cookie
#: (sec_plaintext_ws says it is in cleartext; sec_cswsh_risk reads it).
_OTHER_HEADERS = frozenset(("proxy-authorization", "cookie", "authorization"))


def _header_secrets(request: HttpHead) -> list[str]:
    """What the request's header fields give away: ``Authorization`` Basic
    (a user and password, RFC 7617 section 4) or a bearer token (RFC 6750),
    and fields whose name says they hold a secret (``X-Api-Key``,
    ``X-Auth-Token``...)."""
    found = []
    for value in request.get_all("Authorization"):
        scheme, token, pair = read_authorization(value)
        if scheme == "basic":
            found.append(f"Authorization Basic: user {pair[0]!r}, a password of {len(pair[1])} "
                         "characters" if pair else "Authorization Basic: an undecodable token")
        elif scheme not in ("digest", "negotiate", "ntlm") and token:
            found.append(f"Authorization {value.strip().partition(' ')[0]} "
                         f"({_secret_preview(token)})")
    for name, value in request.headers:
        bare = name[2:] if name[:2].lower() == "x-" else name  # (X-Api-Key: "api key")
        if (value and name.lower() not in _OTHER_HEADERS and bare.lower() != "key"
                and credential_name(bare)):  # ("Key" alone names many things)
            found.append(f"header {name!r} ({_secret_preview(value)})")
    return found


@check("sec")
def credentials(ctx: Context) -> None:
    """Secrets in the request target or the offered subprotocols (all cleartext here)."""
    for conn in ctx.conns:
        hs = conn.handshake
        if hs is None or hs.request is None:
            continue
        found = []
        try:
            user = urlsplit(hs.uri).password
        except ValueError:
            user = None
        if user:
            found.append(f"a password in the URL's user information ({_secret_preview(user)})")
        for name, value in _query(hs.uri):
            if value and credential_name(name):
                found.append(f"query parameter {name!r} ({_secret_preview(value)})")
        if found:
            ctx.report(conn.conn_id, conn.ts_request, C2S, None, "sec_credentials_in_url",
                       "; ".join(found) + " in the request target", conn.request_packet)
        if not conn.tls:
            in_headers = _header_secrets(hs.request)
            if in_headers:
                ctx.report(conn.conn_id, conn.ts_request, C2S, None,
                           "sec_credentials_in_header",
                           "; ".join(in_headers) + " in cleartext", conn.request_packet)
        secrets = [p for p in _offered(hs.request) if _token_like(p)]
        if secrets:
            shown = ", ".join(f"{p[:24]!r}... ({len(p)} chars)" if len(p) > 24 else repr(p)
                              for p in secrets)
            ctx.report(conn.conn_id, conn.ts_request, C2S, None,
                       "sec_credentials_in_subprotocol",
                       f"offered subprotocol {shown} carries a credential",
                       conn.request_packet)


@check("sec")
def masking_keys(ctx: Context) -> None:
    """RFC 6455 section 5.3: "The masking key needs to be unpredictable".

    Every connection's client frames at once, with NumPy: zero keys counted,
    and the connections whose keys repeat or step evenly picked out
    (:func:`_suspects`); only those are looked at key by key.
    """
    mine = [ctx.positions(conn, C2S) for conn in ctx.conns]
    lengths = np.fromiter(map(len, mine), np.int64, len(mine))
    if not lengths.any():
        return
    at = np.concatenate(mine)
    which = np.repeat(np.arange(len(mine)), lengths)  # (the connection of each frame)
    nulls = ctx.nulls("mask_key")  # unmasked frames
    keys = ctx.array("mask_key")[at].astype(np.int64)
    keyed = np.ones(len(at), bool) if nulls is None else ~nulls[at]
    zero = np.flatnonzero(keyed & (keys == 0))
    zeros = np.bincount(which[zero], minlength=len(mine))
    firsts = np.flatnonzero(np.diff(which[zero], prepend=-1))
    first_zero = dict(zip(which[zero[firsts]].tolist(), at[zero[firsts]].tolist(), strict=True))
    nonzero = keyed & (keys != 0)  # unmasked frames and zero keys left out
    used, used_at, used_by = keys[nonzero], at[nonzero], which[nonzero]
    suspects = _suspects(used, used_by, len(mine))
    for n in np.flatnonzero((zeros > 0) | suspects).tolist():
        conn = ctx.conns[n]
        count = int(zeros[n])
        if count:
            _, index, _, frame = ctx.frame_at(first_zero[n])
            ctx.report_frame(conn, index, C2S, frame, "sec_mask_zero",
                             f"masking key 0x00000000 on {count} client frame"
                             + ("s" if count != 1 else ""))
        if not suspects[n]:
            continue  # the common case, decided without a Python loop over the frames
        own = used_by == n
        found = _predictable(list(zip(used_at[own].tolist(), used[own].tolist(), strict=True)))
        if found is not None:
            where, detail = found
            _, index, _, frame = ctx.frame_at(where)
            ctx.report_frame(conn, index, C2S, frame, "sec_mask_predictable", detail)


def _suspects(keys: np.ndarray, owner: np.ndarray, owners: int) -> np.ndarray:
    """Which owners' keys are worth a closer look: at least two keys that
    equal an earlier one of the same owner, or three consecutive steps
    between an owner's keys (mod 2**32) that are equal.

    Args:
        keys: non-zero 32-bit keys, each owner's in order.
        owner: the owner of each key (0 .. ``owners`` - 1), owners one after
            the other.
        owners: how many owners.
    """
    ordered = np.sort((owner << 32) | keys)  # (repeats sorted next to each other)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]] >> 32
    suspects: np.ndarray = np.bincount(repeated, minlength=owners) >= 2
    steps = (keys[1:] - keys[:-1]) & 0xFFFFFFFF
    same = steps[1:] == steps[:-1]
    even = same[1:] & same[:-1] & (owner[:-3] == owner[3:])  # (four keys of one owner)
    suspects[owner[:-3][even]] = True
    return suspects


#: Probability of a false alarm that sec_mask_predictable accepts, per connection.
CHANCE = 1e-9


def _poisson_tail(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam): the chance of k or more repeats among random keys."""
    if lam <= 0:
        return 0.0 if k > 0 else 1.0
    term = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
    total, j = 0.0, k
    while term > total * 1e-12 and term > 1e-300:
        total += term
        j += 1
        term *= lam / j
    return total


def _predictable(keys: list[tuple[int, int]]) -> tuple[int, str] | None:
    """Repeated, constant or sequential keys, beyond what chance explains.

    Args:
        keys: ``(position, key)`` of a connection's client frames with a
            non-zero key, in order.

    Returns:
        ``(position of the frame where it shows, detail)`` or None.

    Random 32-bit keys collide too (the birthday bound: about n**2 / 2**33
    repeats among n keys), so at least two repeats are needed, and more than
    chance gives with probability :data:`CHANCE`; three equal steps in a row
    happen by chance with probability about n / 2**64.
    """
    n = len(keys)
    if n < 2:
        return None
    step_run = 0
    for i in range(1, n):
        step = (keys[i][1] - keys[i - 1][1]) & 0xFFFFFFFF
        if i >= 2 and step and step == (keys[i - 1][1] - keys[i - 2][1]) & 0xFFFFFFFF:
            step_run += 1
            if step_run >= 2:
                start = keys[i - 3][1]
                return keys[i][0], (f"sequential masking keys: 0x{start:08x} then +{step} "
                                    f"per frame ({step_run + 2} frames in a row)")
        else:
            step_run = 0
    seen: set[int] = set()
    repeats = 0
    first_repeat: tuple[int, int] | None = None
    for where, key in keys:
        if key in seen:
            repeats += 1
            if first_repeat is None:
                first_repeat = (where, key)
        else:
            seen.add(key)
    expected = n * (n - 1) / 2 ** 33
    needed = 2
    while _poisson_tail(needed, expected) > CHANCE:
        needed += 1
    if first_repeat is not None and repeats >= needed:
        where, key = first_repeat
        if len(seen) == 1:
            return where, f"masking key 0x{key:08x} used by all {n} client frames"
        return where, (f"{repeats} of {n} client frames reuse an earlier masking key "
                       f"(first 0x{key:08x}; {expected:.2g} expected by chance)")
    return None
