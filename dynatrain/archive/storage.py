"""Where archives live: local paths and fsspec URLs, storage options and secrets.

An archive is a local path or, for Zarr, an fsspec URL: ``s3://bucket/run.zarr``
(needs ``s3fs``), ``gs://`` (``gcsfs``), ``az://``/``abfs://`` (``adlfs``),
``memory://`` and others. Every URL is opened through :func:`filesystem`, which
applies, in this order (later wins):

1. fsspec's own configuration (``FSSPEC_S3_ENDPOINT_URL=...``, ``FSSPEC_S3='{...}'``)
   and the storage library's environment variables (``AWS_ACCESS_KEY_ID``,
   ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...);
2. the options in effect where the call is made (:func:`use_storage_options`: what
   the command line's ``--storage-option KEY=VALUE`` sets);
3. credentials written in an ``s3://KEY:SECRET@bucket/...`` URL;
4. the options passed explicitly (``storage_options=``).

Within one process, fsspec reuses the file system made for the same options, with
the environment it read then: environment variables changed afterwards are not seen
(give changing credentials as options, or start a new process).

Listings are never cached (``use_listings_cache=False`` unless given): a run that is
still being written shows its new chunks to the next listing. On S3, an object is read
with one request (``max_concurrency=1`` unless given: s3fs would first ask its size).

**Secrets.** Nothing dynatrain prints or writes may show a credential. :func:`redact`
replaces the user information of URLs (``s3://KEY:SECRET@bucket`` becomes
``s3://***@bucket``), credential-like query parameters (``sig=``,
``X-Amz-Signature=``, ``token=``) and the values of credential-like storage
options and environment variables (:data:`SECRET_ENVIRONMENT`) wherever they
appear. The command line passes every message, record and report through it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dynatrain.archive.format import is_url
from dynatrain.errors import InputError

__all__ = [
    "SECRET_ENVIRONMENT",
    "add_secrets",
    "current_storage_options",
    "filesystem",
    "fsspec_arguments",
    "local_path",
    "missing_library",
    "parse_storage_options",
    "redact",
    "redact_data",
    "split_credentials",
    "use_storage_options",
]

#: Environment variables that hold credentials; their values are redacted.
SECRET_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
)
#: Storage option names whose values are credentials (matched anywhere in the name,
#: nested options included: ``client_kwargs={"aws_secret_access_key": ...}``).
_SECRET_NAME = re.compile(
    r"key|secret|token|passw|credential|sas|connection_string|signature|auth|sig$",
    re.IGNORECASE,
)
#: The protocols whose URLs may name a container as ``container@account`` (Azure):
#: there, only ``user:password@`` is taken for credentials.
_AT_IS_NOT_CREDENTIALS = ("az", "abfs", "abfss", "adl")
#: URL user information, ``scheme://<userinfo>@``: ``user:password`` (the password may
#: hold an unescaped ``/``, as AWS secret keys do) or a name or token alone.
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://([^/\s@:?#]+:[^\s@]*|[^/\s@:?#]+)@")
#: Credentials in an S3 URL: ``s3://KEY:SECRET@bucket`` (the key has no ``/``, the
#: secret may; a bucket name is lower-case letters, digits, dots and dashes).
_S3_CREDENTIALS = re.compile(r"(s3a?)://([^/@:]+)(?::([^@]*))?@(?=[a-z0-9][a-z0-9.-]*(?:/|$))")
#: Query parameters whose values are credentials (signed URLs, SAS tokens).
_SECRET_QUERY = re.compile(
    r"([?&][^=&\s#]*(?:sig|signature|token|credential|secret|password|key)[^=&\s#]*=)[^&\s#]*",
    re.IGNORECASE,
)
#: Secret values shorter than this are not searched for (they would redact common words).
_MIN_SECRET_LENGTH = 4
_MASK = "***"

_secrets: set[str] = set()
_ambient: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "dynatrain_storage_options", default=None
)


# -- options ---------------------------------------------------------------------------------------


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` items (``--storage-option``) into fsspec storage options.

    A value is JSON when it is ``true``, ``false``, ``null``, a number, an object or
    a list (``client_kwargs={"region_name": "eu-west-1"}``), else the text itself.
    A credential-like key (``key``, ``secret``, ``token``, ``password``, ...) always
    takes the text as given, so a numeric secret stays a string. Credential values
    are registered for :func:`redact`.

    Raises
    ------
    InputError
        For an item without ``=`` or with an empty key (the message never shows the
        value).
    """
    options: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise InputError(
                f"--storage-option {key or '(empty)'!r}: expected KEY=VALUE"
                + (" (the value is not shown)" if separator else "")
            )
        options[key] = text if _SECRET_NAME.search(key) else _option_value(text)
    add_secrets(options)
    return options


def _option_value(text: str) -> Any:
    stripped = text.strip()
    if stripped in ("true", "false", "null") or stripped[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.loads(stripped)
    if re.fullmatch(r"[+-]?\d+", stripped):
        return int(stripped)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", stripped):
        return float(stripped)
    return text


@contextlib.contextmanager
def use_storage_options(options: Mapping[str, Any] | None) -> Iterator[None]:
    """Make ``options`` the storage options of every URL opened inside the block.

    For the layers between a command and the archive (an analysis reads its
    archive through :mod:`dynatrain.signals`): what is opened in the block, in this
    thread or task, gets these options unless it is given its own.
    """
    add_secrets(options or {})
    token = _ambient.set(dict(options or {}))
    try:
        yield
    finally:
        _ambient.reset(token)


def current_storage_options() -> dict[str, Any]:
    """The storage options :func:`use_storage_options` set here (empty if none)."""
    return dict(_ambient.get() or {})


# -- URLs ------------------------------------------------------------------------------------------


def local_path(spec: str) -> str | None:
    """The local path an archive names: itself, or what a ``file://`` URL names.

    ``file:///data/run.zarr`` and ``file://localhost/data/run.zarr`` give
    ``/data/run.zarr`` (percent-escapes decoded), as does an fsspec chain ending in
    one (``simplecache::file:///data/run.zarr``); ``None`` for any other URL.
    """
    spec = os.fspath(spec)
    if not is_url(spec):
        return spec
    last = spec.rsplit("::", 1)[-1]  # fsspec chains: the last URL is the storage
    parsed = urllib.parse.urlsplit(last)
    if parsed.scheme.lower() not in ("file", "local"):
        return None
    if parsed.netloc not in ("", "localhost"):
        return None  # another host's file
    from urllib.request import url2pathname

    return url2pathname(parsed.path) or None


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """Take credentials out of an ``s3://KEY:SECRET@bucket/...`` URL.

    Returns the URL without them and the storage options they stand for (``key``
    and ``secret``, percent-decoded; both registered for :func:`redact`). Other
    URLs come back unchanged: HTTP(S) keeps its ``user:password@`` (the HTTP client
    uses it) and is only redacted when shown.
    """
    match = _S3_CREDENTIALS.match(url)
    if match is None:
        return url, {}
    scheme, user, password = match.groups()
    options = {"key": urllib.parse.unquote(user)}
    if password:
        options["secret"] = urllib.parse.unquote(password)
    add_secrets(options)
    return f"{scheme}://{url[match.end() :]}", options


def filesystem(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    asynchronous: bool = False,
) -> tuple[Any, str]:
    """The fsspec file system of a URL and the path in it.

    Parameters
    ----------
    url : str
        ``s3://bucket/run.zarr``, ``gs://...``, ``memory://...``; fsspec chains too.
    storage_options : mapping, optional
        Over the options in effect (see the module notes).
    asynchronous : bool
        An asynchronous file system (what zarr's ``FsspecStore`` needs).

    Raises
    ------
    InputError
        If the protocol is unknown or its library is not installed, or the options
        are refused (one line, without their values).
    """
    from fsspec.core import url_to_fs

    bare, options = fsspec_arguments(url, storage_options)
    if asynchronous:
        options["asynchronous"] = True
    try:
        return url_to_fs(bare, **options)
    except ImportError as exc:
        raise InputError(missing_library(url, exc)) from None
    except (ValueError, TypeError, KeyError) as exc:
        names = ", ".join(sorted(options)) or "none"
        raise InputError(
            f"{redact(url)}: cannot open it with these storage options ({names}):"
            f" {redact(_first_line(exc))}"
        ) from None


def fsspec_arguments(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The URL and storage options to hand to fsspec (or zarr's ``FsspecStore.from_url``).

    The URL loses its credentials, which join the options; the options are merged as
    the module notes say, and listings are not cached unless asked.
    """
    bare, from_url = split_credentials(url)
    options = {**current_storage_options(), **from_url, **dict(storage_options or {})}
    add_secrets(options)
    options.setdefault("use_listings_cache", False)
    if bare.split("://", 1)[0].lower() in ("s3", "s3a"):
        # One GET per object: with more, s3fs first asks each object's size (a HEAD,
        # and a listing when it is absent) to split large objects into ranged reads,
        # which doubles the requests for archive chunks (all far below its 50 MiB parts).
        options.setdefault("max_concurrency", 1)
    return bare, options


def missing_library(url: str, exc: ImportError) -> str:
    """The message for a URL whose storage library is not installed (redacted)."""
    protocol = url.split("://", 1)[0]
    return f"{redact(url)}: {protocol}:// URLs need {_library(exc)}"


def _library(exc: ImportError) -> str:
    """What to install, from fsspec's message ("Install s3fs to access S3")."""
    match = re.search(r"\b[Ii]nstall (\S+) to access", str(exc))
    if match:
        return f"{match.group(1)} (pip install {match.group(1)})"
    return f"a package that is not installed ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


# -- secrets ---------------------------------------------------------------------------------------


def add_secrets(options: Mapping[str, Any]) -> None:
    """Register the values of credential-like options (nested ones too) for :func:`redact`."""
    for key, value in options.items():
        if isinstance(value, Mapping):
            add_secrets(value)
        elif isinstance(value, str) and _SECRET_NAME.search(str(key)):
            if len(value) >= _MIN_SECRET_LENGTH:
                _secrets.add(value)
                quoted = urllib.parse.quote(value, safe="")
                _secrets.add(quoted)  # as it would appear inside a URL


def redact(text: str) -> str:
    """``text`` with every credential it shows replaced by ``***`` (see the module notes)."""
    if not isinstance(text, str):
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _SECRET_QUERY.sub(rf"\1{_MASK}", text)
    secrets = set(_secrets)
    for name in SECRET_ENVIRONMENT:
        value = os.environ.get(name)
        if value and len(value) >= _MIN_SECRET_LENGTH:
            secrets.add(value)
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    if scheme.lower() in _AT_IS_NOT_CREDENTIALS and ":" not in userinfo:
        return match.group(0)  # container@account
    return f"{scheme}://{_MASK}@"


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value
