"""Tenant and endpoint management refuses, naming the field, text the database cannot store.

The API's schema refuses such text before it gets here; the command line, whose
arguments may carry a lone surrogate for bytes that are not UTF-8, relies on these.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from app import admin
from app.errors import InputError, InvalidEndpointURL
from app.models import Endpoint, Tenant
from tests.unit.conftest import Harness

URL = "https://receiver.example/hooks"


class TestStoredText:
    """A lone surrogate or NUL never reaches a row; a URL holds no control character either."""

    @pytest.mark.parametrize(("url", "shown"), [
        (URL + "/\udcff", "lone surrogate '\\udcff'"),
        (URL + "/a\x00b", "control character '\\x00'"),
        (URL + "/a\nb", "control character '\\n'"),
    ], ids=["lone-surrogate", "nul", "line-break"])
    def test_an_endpoint_url_with_such_text_is_refused_on_create_and_update(
        self, harness: Harness, url: str, shown: str
    ) -> None:
        tenant = harness.tenant()
        message = "^" + re.escape(f"endpoint URL has the {shown}")
        with pytest.raises(InvalidEndpointURL, match=message):
            admin.add_endpoint(harness.sessions, harness.catalogue, tenant=tenant.id, url=url,
                               events=["*"])
        assert harness.count(Endpoint) == 0
        kept = admin.add_endpoint(harness.sessions, harness.catalogue, tenant=tenant.id, url=URL,
                                  events=["*"]).endpoint
        with pytest.raises(InvalidEndpointURL, match=message):
            admin.update_endpoint(harness.sessions, harness.catalogue, kept.id, {"url": url})
        assert harness.endpoint_row(kept.id).url == URL

    @pytest.mark.parametrize(("description", "refusal"), [
        ("two\nlines", None),
        ("half \ud800", "description has the lone surrogate '\\ud800'"),
        ("nul\x00", "description has the control character '\\x00'"),
    ], ids=["line-break-kept", "lone-surrogate", "nul"])
    def test_a_description_is_free_text_but_storable(self, harness: Harness, description: str,
                                                     refusal: str | None) -> None:
        tenant = harness.tenant()
        add: dict[str, Any] = {"tenant": tenant.id, "url": URL, "events": ["*"]}
        if refusal is None:
            created = admin.add_endpoint(harness.sessions, harness.catalogue, **add,
                                         description=description).endpoint
            assert harness.endpoint_row(created.id).description == description
            return
        with pytest.raises(InputError, match="^" + re.escape(refusal)):
            admin.add_endpoint(harness.sessions, harness.catalogue, **add,
                               description=description)
        assert harness.count(Endpoint) == 0
        kept = admin.add_endpoint(harness.sessions, harness.catalogue, **add,
                                  description="eu").endpoint
        with pytest.raises(InputError, match="^" + re.escape(refusal)):
            admin.update_endpoint(harness.sessions, harness.catalogue, kept.id,
                                  {"description": description})
        assert harness.endpoint_row(kept.id).description == "eu"

    @pytest.mark.parametrize(("name", "shown"), [("acme \udcff", "lone surrogate '\\udcff'"),
                                                 ("ac\nme", "control character '\\n'")],
                             ids=["lone-surrogate", "line-break"])
    def test_a_tenant_name_with_such_text_is_refused(self, harness: Harness, name: str,
                                                     shown: str) -> None:
        with pytest.raises(InputError, match="^" + re.escape(f"tenant name has the {shown}")):
            admin.create_tenant(harness.sessions, name)
        assert harness.count(Tenant) == 0
