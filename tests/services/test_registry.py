"""The registry on its own: loading shipped files at start-up, on a real database file."""

import logging
from pathlib import Path

import pytest

from language.loader import DocumentInvalid
from services.registry import PathwayRegistry, UnknownPathway, source_digest
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import PathwayVersion, utcnow

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


async def test_a_stored_version_that_todays_checks_would_refuse_is_still_read(database):
    """Enrollments keep the version they started on: a literal threshold was allowed when it was deployed."""
    older = SHIPPED.replace("id: shipped", "id: older").replace("version: 1", "version: 2") + (
        "  - kind: questionnaire\n    id: mood\n    instrument: phq-9\n    at: day 2 09:00\n    expire: 3d\n"
        "    template: {en: {subject: Mood, body: '{{ link }}'}}\n    on: [{when: score >= 10, tag: low-mood}]\n")
    async with database.begin() as session:
        session.add(PathwayVersion(pathway_id="older", version=2, title="Older", source=older,
                                   sha256=source_digest(older), deployed_at=utcnow()))

    deployed = await PathwayRegistry(database, SITE.instruments).get("older", 2)

    assert deployed.pathway.step("mood").on[0].when == "score >= 10"
    with pytest.raises(DocumentInvalid, match="make it a parameter|named parameter"):
        await PathwayRegistry(database, SITE.instruments).deploy(older.replace("version: 2", "version: 3"), "older.yaml")


async def test_a_renamed_step_must_replace_a_step_an_earlier_version_has(database):
    registry = PathwayRegistry(database, SITE.instruments)
    renamed = SHIPPED.replace("version: 1", "version: 2").replace("    id: hello\n", "    id: greeting\n    replaces: helo\n")
    # Nothing deployed before: there is nothing to migrate from, so nothing to check against.
    assert (await registry.deploy(renamed.replace("id: shipped", "id: first-ever"), "first.yaml")).created
    await registry.deploy(SHIPPED, "shipped.yaml")

    with pytest.raises(DocumentInvalid) as invalid:
        await registry.deploy(renamed, "shipped-v2.yaml")

    assert [str(problem).splitlines()[0] for problem in invalid.value.problems] == [
        "shipped-v2.yaml:9:5: steps[0].replaces: no earlier version of shipped has a step 'helo' (they have: hello)"]
    assert await registry.versions("shipped") == [1]
    assert (await registry.deploy(renamed.replace("helo", "hello"), "shipped-v2.yaml")).created
