"""The JSON shape of a domain, shared by the admin API and ``posthouse domain show --json``."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from posthouse.domains.service import DomainDetail


class DomainCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(
        description="The domain mail is sent from, e.g. example.com: a host name of at least "
        "two labels, not an IP address; international names in IDNA 2008",
        json_schema_extra={"maxLength": 253},
    )
    returnPathDomain: str | None = Field(
        None, description="Where bounces go; a subdomain, by default bounces.<name>"
    )


class DnsRecordRead(BaseModel):
    purpose: str = Field(description="dkim, spf, dmarc, return_path or spf_helo")
    type: str = Field(description="TXT or MX")
    name: str
    value: str
    verified: bool
    required: bool = Field(
        description="False for the DKIM record of an inactive selector and for the "
        "recommended SPF record of the HELO name"
    )
    checkedAt: datetime | None
    detail: str | None = Field(description="What the last lookup saw")


class DkimSelectorRead(BaseModel):
    selector: str
    active: bool
    createdAt: datetime


class DomainRead(BaseModel):
    id: str = Field(description="The domain's UUID: seed 004's setup_id")
    name: str
    returnPathDomain: str
    verified: bool
    verifiedAt: datetime | None
    lastCheckedAt: datetime | None
    dkimSelectors: list[DkimSelectorRead]
    records: list[DnsRecordRead]


def domain_read(detail: DomainDetail) -> DomainRead:
    domain = detail.domain
    required = {id(r) for r in detail.required_records}
    return DomainRead(
        id=str(domain.id),
        name=domain.name,
        returnPathDomain=domain.return_path_domain,
        verified=domain.verified_at is not None,
        verifiedAt=domain.verified_at,
        lastCheckedAt=domain.last_checked_at,
        dkimSelectors=[
            DkimSelectorRead(selector=k.selector, active=k.active, createdAt=k.created_at)
            for k in detail.keys
        ],
        records=[
            DnsRecordRead(
                purpose=r.purpose,
                type=r.type,
                name=r.name,
                value=r.value,
                verified=r.verified,
                required=id(r) in required,
                checkedAt=r.checked_at,
                detail=r.detail,
            )
            for r in detail.records
        ],
    )
