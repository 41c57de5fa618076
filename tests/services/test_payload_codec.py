"""The payload codec: what Temporal stores is ciphertext under a named key, and keys rotate."""

from __future__ import annotations

import base64
import json
import os

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from services.payload_codec import (
    DEVELOPMENT_KEY_ID,
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    Keyring,
    PayloadKeysInvalid,
    PayloadNotDecrypted,
    UnknownPayloadKey,
    data_converter,
    decode_payloads,
    keyring,
    parse_keys,
)
from services.settings import (
    DEVELOPMENT_SECRET,
    Settings,
    SettingsRefused,
    load_settings,
)
from workflows.contracts import CancelRequest

MARKER = "Wei Li, 2026-03-14, +44 7700 900123"
PRODUCTION_SECRET = "a-private-production-secret-of-enough-length"


def key() -> bytes:
    return os.urandom(32)


def keys_text(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(value).decode()}" for key_id, value in pairs)


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_round_trip_hides_the_data_and_names_the_key():
    codec = EncryptionCodec(Keyring("k1", {"k1": key()}))
    [encoded] = await codec.encode([plain(MARKER)])
    assert encoded.metadata["encoding"] == ENCODING.encode()
    assert encoded.metadata[KEY_ID] == b"k1"
    assert MARKER.encode() not in encoded.SerializeToString()
    assert await codec.decode([encoded]) == [plain(MARKER)]


async def test_the_same_payload_encrypts_differently_each_time():
    codec = EncryptionCodec(Keyring("k1", {"k1": key()}))
    first, second = await codec.encode([plain(MARKER), plain(MARKER)])
    assert first.data != second.data


async def test_rotation_reads_the_old_key_and_writes_the_new_one():
    old, new = key(), key()
    [written_before] = await EncryptionCodec(parse_keys(keys_text(("2026-05", old)))).encode([plain(MARKER)])
    rotated = EncryptionCodec(parse_keys(keys_text(("2026-11", new), ("2026-05", old))))
    assert await rotated.decode([written_before]) == [plain(MARKER)]
    [written_after] = await rotated.encode([plain(MARKER)])
    assert written_after.metadata[KEY_ID] == b"2026-11"
    assert rotated.key_id == "2026-11"


async def test_a_key_no_longer_in_the_keyring_is_named():
    [encoded] = await EncryptionCodec(Keyring("retired", {"retired": key()})).encode([plain(MARKER)])
    with pytest.raises(UnknownPayloadKey, match="'retired'.*CAREPATH_PAYLOAD_KEYS.*current"):
        await EncryptionCodec(Keyring("current", {"current": key()})).decode([encoded])


async def test_tampered_ciphertext_does_not_decrypt():
    codec = EncryptionCodec(Keyring("k1", {"k1": key()}))
    [encoded] = await codec.encode([plain(MARKER)])
    altered = bytearray(encoded.data)
    altered[-1] ^= 1
    encoded.data = bytes(altered)
    with pytest.raises(PayloadNotDecrypted, match="'k1'"):
        await codec.decode([encoded])


async def test_a_different_key_under_the_same_id_does_not_decrypt():
    [encoded] = await EncryptionCodec(Keyring("k1", {"k1": key()})).encode([plain(MARKER)])
    with pytest.raises(PayloadNotDecrypted):
        await EncryptionCodec(Keyring("k1", {"k1": key()})).decode([encoded])


async def test_payloads_recorded_before_encryption_pass_through():
    codec = EncryptionCodec(Keyring("k1", {"k1": key()}))
    assert await codec.decode([plain(MARKER)]) == [plain(MARKER)]


@pytest.mark.parametrize("text, problem", [
    ("k1", "entry 1 is not '<id>:<base64"),
    ("k1:" + base64.b64encode(b"short").decode(), "key 'k1' is 5 bytes; each must be 32"),
    ("k1:not base64!", "key 'k1' is not valid base64"),
    (keys_text(("k1", b"a" * 32), ("k1", b"b" * 32)), "key id 'k1' appears twice"),
    ("bad id:" + base64.b64encode(b"a" * 32).decode(), "entry 1"),
])
def test_unreadable_keys_are_refused_saying_why(text: str, problem: str):
    with pytest.raises(PayloadKeysInvalid, match=problem):
        parse_keys(text)


def test_production_without_payload_keys_refuses_to_start(monkeypatch: pytest.MonkeyPatch):
    for name in ("CAREPATH_ENVIRONMENT", "CAREPATH_PAYLOAD_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAREPATH_SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.chdir(os.path.dirname(__file__))  # no .env file here
    with pytest.raises(SettingsRefused) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith("carepath: refusing to start: CAREPATH_PAYLOAD_KEYS is not set") and "\n" not in message


def test_production_with_a_short_key_refuses_to_start(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CAREPATH_ENVIRONMENT", "production")
    monkeypatch.setenv("CAREPATH_SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("CAREPATH_PAYLOAD_KEYS", keys_text(("k1", b"x" * 16)))
    with pytest.raises(SettingsRefused, match="key 'k1' is 16 bytes; each must be 32"):
        load_settings()


def test_production_uses_the_configured_keys_first_one_current():
    settings = Settings(ENVIRONMENT="production", SECRET_KEY=PRODUCTION_SECRET,
                        PAYLOAD_KEYS=SecretStr(keys_text(("new", key()), ("old", key()))))
    keys = keyring(settings)
    assert keys.current == "new" and set(keys.keys) == {"new", "old"}


def test_development_derives_a_stable_key_from_the_secret():
    first = keyring(Settings(ENVIRONMENT="test", SECRET_KEY=None, PAYLOAD_KEYS=None))
    again = keyring(Settings(ENVIRONMENT="development", SECRET_KEY=DEVELOPMENT_SECRET, PAYLOAD_KEYS=None))
    other = keyring(Settings(ENVIRONMENT="test", SECRET_KEY="another-secret", PAYLOAD_KEYS=None))
    assert first.current == DEVELOPMENT_KEY_ID and first.keys == again.keys != other.keys
    assert len(first.keys[DEVELOPMENT_KEY_ID]) == 32


async def test_the_data_converter_encrypts_values_and_failures():
    converter = data_converter(Settings(ENVIRONMENT="test", SECRET_KEY=None, PAYLOAD_KEYS=None))
    [payload] = await converter.encode([CancelRequest(reason=MARKER)])
    assert payload.metadata["encoding"] == ENCODING.encode() and MARKER.encode() not in payload.data
    assert await converter.decode([payload], [CancelRequest]) == [CancelRequest(reason=MARKER)]

    failure = Failure()
    await converter.encode_failure(ApplicationError(f"refused for {MARKER}"), failure)
    assert MARKER.encode() not in failure.SerializeToString()
    assert MARKER in str(await converter.decode_failure(failure))


async def test_the_codec_server_decode_speaks_temporals_json():
    codec = EncryptionCodec(Keyring("k1", {"k1": key()}))
    [encrypted] = await codec.encode([plain(MARKER)])
    body = {"payloads": [{"metadata": {name: base64.b64encode(value).decode()
                                       for name, value in encrypted.metadata.items()},
                          "data": base64.b64encode(encrypted.data).decode()},
                         {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                          "data": base64.b64encode(b'"plain"').decode()}]}
    decoded = await decode_payloads(codec, json.dumps(body))
    assert decoded == {"payloads": [
        {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
         "data": base64.b64encode(json.dumps(MARKER).encode()).decode()},
        body["payloads"][1]]}
    assert await decode_payloads(codec, {"payloads": []}) == {"payloads": []}
