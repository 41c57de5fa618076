"""The Temporal client, the same way for the API, the worker, the CLI and the tests.

Its data converter encrypts every payload (services/payload_codec.py); a worker built on this client
uses the same converter, so workflows and activities see plain values and Temporal only ciphertext."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import TLSConfig

from services.payload_codec import data_converter
from services.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to Temporal as the settings ask (docs/deploy.md), or False for a plain connection."""
    files = (settings.TEMPORAL_TLS_CA_FILE, settings.TEMPORAL_TLS_CERT_FILE, settings.TEMPORAL_TLS_KEY_FILE)
    if not settings.TEMPORAL_TLS and not any(files):
        return False
    ca, certificate, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(server_root_ca_cert=ca, client_cert=certificate, client_private_key=key,
                     domain=settings.TEMPORAL_TLS_SERVER_NAME)


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.TEMPORAL_ADDRESS, namespace=settings.TEMPORAL_NAMESPACE,
                                data_converter=data_converter(settings), tls=tls_config(settings))
