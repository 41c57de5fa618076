"""Everything carepath hands Temporal is encrypted first: inputs, results, update arguments, queries'
answers and failures (message and stack trace included). Temporal's history holds ciphertext only.

AES-256-GCM with a random 12-byte nonce, as in temporalio/samples-python `encryption/`: an encrypted
payload's metadata is `encoding: binary/encrypted` and `encryption-key-id: <id>`; its data is the
nonce followed by the ciphertext of the serialized inner Payload. Keys rotate: the keyring's current
key encrypts, every key in it decrypts, so histories written under an older key still replay.
Payloads recorded before encryption (no `binary/encrypted`) are passed through as they are.

    CAREPATH_PAYLOAD_KEYS="2026-11:<base64 of 32 random bytes>,2026-05:<older one>"   # first one encrypts
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

if TYPE_CHECKING:
    from services.settings import Settings

ENCODING = "binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
DEVELOPMENT_KEY_ID = "dev"
GENERATE = "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PayloadKeysInvalid(ValueError):
    """CAREPATH_PAYLOAD_KEYS cannot be read; the message says which key and how to fix it."""


class UnknownPayloadKey(ValueError):
    """A payload was encrypted with a key that is not in the keyring (removed too early, or another deployment's)."""


class PayloadNotDecrypted(ValueError):
    """The ciphertext does not authenticate under its key: altered, truncated, or a different key of the same id."""


@dataclass(frozen=True)
class Keyring:
    """`current` encrypts; every key in `keys` (current included) decrypts."""

    current: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise PayloadKeysInvalid(f"the current payload key '{self.current}' is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise PayloadKeysInvalid(f"CAREPATH_PAYLOAD_KEYS: key '{key_id}' is {len(key)} bytes; each must be "
                                         f"{KEY_BYTES} (generate one: {GENERATE})")


def parse_keys(text: str) -> Keyring:
    """`<id>:<base64>,<id>:<base64>`, the first one current; PayloadKeysInvalid says what is wrong."""
    keys: dict[str, bytes] = {}
    for number, entry in enumerate((part.strip() for part in text.split(",")), start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not _KEY_ID_PATTERN.fullmatch(key_id):
            raise PayloadKeysInvalid(f"CAREPATH_PAYLOAD_KEYS: entry {number} is not '<id>:<base64 of {KEY_BYTES} "
                                     "bytes>' (ids: letters, digits, '.', '_', '-'); separate keys with ','")
        if key_id in keys:
            raise PayloadKeysInvalid(f"CAREPATH_PAYLOAD_KEYS: key id '{key_id}' appears twice")
        try:
            keys[key_id] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise PayloadKeysInvalid(f"CAREPATH_PAYLOAD_KEYS: key '{key_id}' is not valid base64 "
                                     f"(generate one: {GENERATE})") from None
    return Keyring(current=next(iter(keys)), keys=keys)


def check_payload_keys(value: SecretStr | None, *, required: bool) -> None:
    """The settings' check: readable keys of the right length, and some at all where `required` (production)."""
    if value is None or not value.get_secret_value().strip():
        if required:
            raise PayloadKeysInvalid(f"CAREPATH_PAYLOAD_KEYS is not set: Temporal would store patient data "
                                     f"unencrypted (generate a key: {GENERATE}; set '<id>:<key>')")
        return
    parse_keys(value.get_secret_value())


def development_key(secret: str) -> bytes:
    """A key derived from the signing secret, for development and tests only (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=b"carepath temporal payload key (development)").derive(secret.encode("utf-8"))


def keyring(settings: Settings) -> Keyring:
    """The configured keys; in development and test, if none are, one derived from SECRET_KEY under id `dev`."""
    if settings.PAYLOAD_KEYS is not None and settings.PAYLOAD_KEYS.get_secret_value().strip():
        return parse_keys(settings.PAYLOAD_KEYS.get_secret_value())
    if settings.ENVIRONMENT not in ("development", "test"):
        check_payload_keys(None, required=True)  # the settings refuse this already; never fall through here
    return Keyring(current=DEVELOPMENT_KEY_ID,
                   keys={DEVELOPMENT_KEY_ID: development_key(settings.SECRET_KEY.get_secret_value())})


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Keyring):
        super().__init__()
        self._current = keys.current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    @property
    def key_id(self) -> str:
        """The id new payloads are encrypted under."""
        return self._current

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            encoded.append(Payload(metadata={"encoding": ENCODING.encode(), KEY_ID: self._current.encode()},
                                   data=nonce + cipher.encrypt(nonce, payload.SerializeToString(), None)))
        return encoded

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self._decrypt(payload) if payload.metadata.get("encoding", b"") == ENCODING.encode() else payload
                for payload in payloads]

    def _decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownPayloadKey(f"payload encrypted with key '{key_id}', which is not in CAREPATH_PAYLOAD_KEYS "
                                    f"(it has: {', '.join(sorted(self._ciphers))}); add that key back to read it")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadNotDecrypted(f"payload under key '{key_id}' does not decrypt: altered, or encrypted "
                                      "with a different key of the same id") from None
        return Payload.FromString(plain)


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted; failures' messages and stack traces go into the encrypted part too.

    Every client, worker, replayer and test environment of carepath is built with this converter."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keyring(settings)),
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


async def decode_payloads(codec: PayloadCodec, body: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    """Temporal's codec-server `/decode`: `{"payloads": [{"metadata": {k: base64}, "data": base64}]}` in,
    the same shape decoded out. The Temporal UI and CLI post encrypted payloads here to show them."""
    return await _recode(codec.decode, body)


async def _recode(operation, body: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    payloads = json_format.ParseDict(body, Payloads(), ignore_unknown_fields=True)
    result = Payloads(payloads=await operation(payloads.payloads))
    return json_format.MessageToDict(result) or {"payloads": []}
