"""ClassLink: the student users of the district's tenant(s), read from the prod db (dbo.ClassLinkUsers, filtered
there: lib/read/theirs.py), not a file of the drop. Students link to them by email, or (a OneRoster district whose
ClassLink tenant is rostered from the same export) by sourcedId."""
from __future__ import annotations

import pandera.polars as pa

from ..base import Source

TABLE = "dbo.ClassLinkUsers"


class ClassLinkUsers(pa.DataFrameModel):
    classlink_user_id: str = pa.Field(nullable=False, unique=True, description="dbo.ClassLinkUsers.UserId",
                                      metadata={"header": "UserId"})
    tenant_name: str = pa.Field(nullable=False, description="ClassLink tenant name (the district as ClassLink "
                                                             "names it)", metadata={"header": "TenantName"})
    email_key: str = pa.Field(nullable=True, description="Email trimmed and lower-cased: the roster's join key",
                              metadata={"header": "Email"})
    sourced_id: str = pa.Field(nullable=True, description="The user's OneRoster sourcedId, where the tenant is "
                               "rostered from OneRoster: the join key of a district whose registry says "
                               "student_link.classlink: sourced_id", metadata={"header": "SourcedId"})

    class Config:
        strict = True


SOURCE = Source("classlink", "directory", "ClassLink", (), ClassLinkUsers, district_column="tenant_name")
