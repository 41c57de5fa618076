"""The Temporal client, the same way for the API, the worker, the CLI and the tests.

Its data converter encrypts every payload (services/payload_codec.py); a worker built on this client
uses the same converter, so workflows and activities see plain values and Temporal only ciphertext."""

from __future__ import annotations

from temporalio.client import Client

from services.payload_codec import data_converter
from services.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.TEMPORAL_ADDRESS, namespace=settings.TEMPORAL_NAMESPACE,
                                data_converter=data_converter(settings))
