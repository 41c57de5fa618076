"""Every list is paged, with a ceiling: no request can make the API read a whole table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy import Select

MAXIMUM_PAGE = 200
# Past this, page by a filter (a date, a team) instead: the database would walk every skipped row.
MAXIMUM_OFFSET = 100_000


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    def apply(self, query: Select) -> Select:
        return query.limit(self.limit).offset(self.offset)

    def of(self, items: list) -> list:
        """For lists assembled in Python (the worklist merges two tables, then sorts)."""
        return items[self.offset:self.offset + self.limit]


def page(limit: Annotated[int, Query(ge=1, le=MAXIMUM_PAGE, description=f"at most {MAXIMUM_PAGE}")] = 50,
         offset: Annotated[int, Query(ge=0, le=MAXIMUM_OFFSET, description="how many to skip")] = 0) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]
