"""Where alerts go."""

import dagster as dg
from pydantic import Field


class AlertingResource(dg.ConfigurableResource):
    webhook_url: str = Field(default="", description="POSTed a JSON alert; empty: record only")
