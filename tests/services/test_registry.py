"""The registry on its own: loading shipped files at start-up, on a real database file."""

import asyncio
import logging
from pathlib import Path

import pytest

from store.db import create_engine, migrate, session_factory
from services.registry import PathwayRegistry, UnknownPathway
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")

SHIPPED = """\
id: shipped
version: 1
title: Shipped
anchor: surgery_date
locales: [en]
steps:
  - kind: message
    id: hello
    at: day 1 09:00
    template:
      en: {subject: "Hello", body: "Dear {{ patient.first_name }}"}
"""


@pytest.fixture
async def database(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "pathways"
    (folder / "instruments").mkdir(parents=True)
    (folder / "shipped.yaml").write_text(SHIPPED)
    (folder / "instruments" / "elsewhere.yaml").write_text(SHIPPED.replace("id: shipped", "id: elsewhere"))
    (folder / "broken.yaml").write_text(SHIPPED.replace("id: shipped", "id: broken").replace("day 1 09:00", "soon"))
    return folder


async def test_every_valid_file_directly_in_the_folder_is_registered(database, shipped, caplog):
    registry = PathwayRegistry(database, SITE.instruments)
    with caplog.at_level(logging.INFO, logger="services.registry"):
        await registry.load_directory(shipped)
    assert [deployed.pathway.id for deployed in await registry.latest()] == ["shipped"]
    [broken] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert "broken.yaml was not loaded; it has 1 problem(s)" in broken.getMessage()
    assert "broken.yaml:9:5: steps[0].at:" in broken.getMessage()
    with pytest.raises(UnknownPathway, match="no pathway 'elsewhere' is deployed"):
        await registry.get("elsewhere")


async def test_loading_again_is_harmless(database, shipped):
    await PathwayRegistry(database, SITE.instruments).load_directory(shipped)
    restarted = PathwayRegistry(database, SITE.instruments)
    await restarted.load_directory(shipped)
    assert await restarted.versions("shipped") == [1]


async def test_a_changed_file_does_not_overwrite_its_deployed_version(database, shipped, caplog):
    await PathwayRegistry(database, SITE.instruments).load_directory(shipped)
    (shipped / "shipped.yaml").write_text(SHIPPED.replace("Hello", "Changed"))

    restarted = PathwayRegistry(database, SITE.instruments)
    with caplog.at_level(logging.ERROR, logger="services.registry"):
        await restarted.load_directory(shipped)
    assert any("shipped.yaml was not loaded" in record.getMessage() and "raise 'version'" in record.getMessage()
               for record in caplog.records)
    deployed = await restarted.get("shipped")
    assert deployed.source == SHIPPED
    assert deployed.pathway.steps[0].template["en"].subject == "Hello"


async def test_a_raised_version_is_deployed_beside_the_old_one(database, shipped):
    await PathwayRegistry(database, SITE.instruments).load_directory(shipped)
    (shipped / "shipped.yaml").write_text(SHIPPED.replace("Hello", "Changed").replace("version: 1", "version: 2"))
    restarted = PathwayRegistry(database, SITE.instruments)
    await restarted.load_directory(shipped)
    assert await restarted.versions("shipped") == [1, 2]
    assert (await restarted.get("shipped")).pathway.version == 2
    assert (await restarted.get("shipped", 1)).pathway.steps[0].template["en"].subject == "Hello"


async def test_a_missing_folder_loads_nothing(database, tmp_path):
    registry = PathwayRegistry(database, SITE.instruments)
    await registry.load_directory(tmp_path / "absent")
    assert await registry.latest() == []
