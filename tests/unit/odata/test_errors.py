"""decode_error against every error body shape documented in shared/reference/apis.md."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime

import pytest

from shared.odata.errors import (
    AuthFailed,
    ChangeTokenExpired,
    Conflict,
    Fatal,
    NotFound,
    RecordRejected,
    SyncError,
    Throttled,
    Transient,
    decode_error,
    parse_retry_after,
    scrub,
)


def dv(code: str, message: str, **extra: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


FO_ALREADY_EXISTS = json.dumps(
    {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {
                "message": "Write failed for table row of type 'CustCustomerGroupEntity'. "
                "Infolog: Info: Cannot create a record in Customer groups (CustGroup). "
                "Customer group: Batch2, Batch 2 Test group T1.\nThe record already exists..",
                "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
                "stacktrace": "   at Microsoft.Dynamics.Platform.Integration.Services.OData.Update."
                "UpdateProcessor.CreateEntity_Save(...)",
            },
        }
    }
).encode()


def fo_inner(
    message: str, type_: str = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
) -> bytes:
    return json.dumps(
        {
            "error": {
                "code": "",
                "message": "An error has occurred.",
                "innererror": {"message": message, "type": type_, "stacktrace": "at X.Y()"},
            }
        }
    ).encode()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds."),
        (
            "0x80072321",
            "Combined execution time of incoming requests exc"
            "eeded limit of 1,200,000  milliseconds over time "
            "window of 300 seconds. Decrease number of concur"
            "rent requests or reduce the duration of requests "
            "and try again later.",
        ),
        ("0x80072326", "Number of concurrent requests exceeded the limit of 52."),
    ],
)
def test_dataverse_throttling_codes(code: str, message: str) -> None:
    err = decode_error(429, {"Retry-After": "17"}, dv(code, message), "dataverse")
    assert isinstance(err, Throttled)
    assert err.retryable
    assert err.retry_after == 17.0
    assert err.code == code
    assert err.status == 429


def test_throttling_code_wins_even_without_429() -> None:
    err = decode_error(
        503, {}, dv("0x80072326", "Number of concurrent requests exceeded the limit of 52."), "dataverse"
    )
    assert isinstance(err, Throttled)
    assert err.retry_after is None


def test_retry_after_http_date() -> None:
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_retry_after("Tue, 02 Jan 2024 03:04:35 GMT", now=now) == 30.0
    assert parse_retry_after("Tue, 02 Jan 2024 03:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("nonsense") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after(" 2 ") == 2.0
    assert parse_retry_after("-5") == 0.0


@pytest.mark.parametrize(
    "message",
    [
        "This request could not be processed at this time du"
        "e to system experiencing high resource utilization.",
        "Number of requests exeeded the limit of 6000 over the time window of 300 seconds.",
        "Number of concurrent requests exceeded the limit of 52.",
    ],
)
def test_finops_throttling(message: str) -> None:
    body = json.dumps({"error": {"code": "", "message": message}}).encode()
    err = decode_error(429, {"retry-after": "30"}, body, "finops")
    assert isinstance(err, Throttled)
    assert err.retry_after == 30.0


def test_429_with_empty_body() -> None:
    err = decode_error(429, {}, b"", "finops")
    assert isinstance(err, Throttled)
    assert err.retry_after is None


def test_dataverse_not_found_live_body() -> None:
    body = dv(
        "0x80040217",
        "Entity 'account' With Id = 5b4ced1c-88e1-ee11-904c-6045bd05e9d4 Does Not Exist",
    )
    err = decode_error(404, {}, body, "dataverse")
    assert isinstance(err, NotFound)
    assert err.code == "0x80040217"
    assert "5b4ced1c" in err.message
    assert str(err).endswith("[0x80040217]")


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (412, "0x80040237", "Operation failed due to a SQL integrity violation."),
        (400, "0x80040237", "Cannot insert duplicate key."),
        (
            412,
            "0x80060892",
            "Entity Key accountnumber_key violated. A record wi"
            "th the same value for accountnumber already exists.",
        ),
        (412, "", "A record with matching key values already exists."),
        (
            412,
            "0x80060882",
            "The version of the existing record doesn't match the RowVersion property provided.",
        ),
    ],
)
def test_dataverse_conflicts(status: int, code: str, message: str) -> None:
    err = decode_error(status, {}, dv(code, message), "dataverse")
    assert isinstance(err, Conflict)
    assert not err.retryable
    assert err.code == (code or None)


def test_dataverse_unknown_property_names_the_field() -> None:
    body = dv(
        "0x80060888",
        "Could not find a property named 'accountnumbr' on type 'Microsoft.Dynamics.CRM.account'.",
    )
    err = decode_error(400, {}, body, "dataverse")
    assert isinstance(err, RecordRejected)
    assert err.field == "accountnumbr"
    assert err.code == "0x80060888"


def test_dataverse_validation_too_long_names_the_field() -> None:
    body = dv(
        "0x80044331",
        "A validation error occurred.  The length of the 'su"
        "bject' attribute of the 'task' entity exceeded the "
        "maximum allowed length of '200'.",
    )
    err = decode_error(400, {"REQ_ID": "abc"}, body, "dataverse")
    assert isinstance(err, RecordRejected)
    assert err.field == "subject"


def test_dataverse_plugin_error_with_annotations_uses_inner_message() -> None:
    body = dv(
        "0x80040265",
        "An unexpected error occurred.",
        **{
            "@Microsoft.PowerApps.CDS.InnerError.Message": "Plug-in refused: credit limit exceeded",
            "@Microsoft.PowerApps.CDS.TraceText": "trace",
        },
    )
    err = decode_error(400, {}, body, "dataverse")
    assert isinstance(err, RecordRejected)
    assert "credit limit" in err.message


def test_dataverse_expired_version_stamp() -> None:
    body = dv(
        "0x80044352", "Version stamp associated with the client has expired. Please perform a full sync."
    )
    err = decode_error(400, {}, body, "dataverse")
    assert isinstance(err, ChangeTokenExpired)
    assert isinstance(err, Fatal)


def test_dataverse_invalid_alternate_key_is_fatal() -> None:
    body = dv(
        "0x80060888",
        "The key in the request URI is not valid for resourc"
        "e 'Microsoft.Dynamics.CRM.account'. Ensure that the "
        "names and number of key properties match the declared or alternate key properties for the resource "
        "'Microsoft.Dynamics.CRM.account'.",
    )
    assert isinstance(decode_error(400, {}, body, "dataverse"), Fatal)


@pytest.mark.parametrize(
    "message",
    ["Generic SQL error. Sql Number: 1205 CRM ErrorCode: -2147204784", "SQL timeout expired."],
)
def test_dataverse_sql_deadlock_and_timeout_are_transient(message: str) -> None:
    assert isinstance(decode_error(500, {}, dv("0x80044150", message), "dataverse"), Transient)


@pytest.mark.parametrize("status", [401, 403])
def test_auth(status: int) -> None:
    err = decode_error(
        status, {}, dv("0x80040220", "Principal user is missing prvReadAccount privilege"), "dataverse"
    )
    assert isinstance(err, AuthFailed)


def test_finops_already_exists_500_is_conflict() -> None:
    err = decode_error(500, {}, FO_ALREADY_EXISTS, "finops")
    assert isinstance(err, Conflict)
    assert "already exists" in err.message
    assert "stacktrace" not in err.message and "UpdateProcessor" not in err.message
    assert err.code is None


def test_finops_no_resources_found_is_not_found() -> None:
    body = fo_inner("No resources were found when selecting for update.")
    assert isinstance(decode_error(400, {}, body, "finops"), NotFound)


def test_finops_validation_500_is_rejected_with_field() -> None:
    body = fo_inner(
        "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Error: Field 'CustomerGroupId' "
        "must be filled in."
    )
    err = decode_error(500, {}, body, "finops")
    assert isinstance(err, RecordRejected)
    assert err.field == "CustomerGroupId"


def test_finops_unknown_property_400() -> None:
    body = fo_inner(
        "The property 'CustomerGroup' does not exist on type 'Microsoft.Dynamics.DataEntities.CustomerV3'.",
        "Microsoft.OData.ODataException",
    )
    err = decode_error(400, {}, body, "finops")
    assert isinstance(err, RecordRejected)
    assert err.field == "CustomerGroup"


def test_finops_unexplained_500_is_transient() -> None:
    body = fo_inner("Object reference not set to an instance of an object.", "System.NullReferenceException")
    assert isinstance(decode_error(500, {}, body, "finops"), Transient)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_html_5xx_is_transient(status: int) -> None:
    html = b"<html><head><title>502 - Web server received an in"
    "valid response</title></head><body>x</body></html>"
    err = decode_error(status, {"Content-Type": "text/html"}, html, "finops")
    assert isinstance(err, Transient)
    assert "502 - Web server" in err.message


def test_503_keeps_retry_after() -> None:
    err = decode_error(503, {"Retry-After": "5"}, b"Service Unavailable", "dataverse")
    assert isinstance(err, Transient)
    assert err.retry_after == 5.0


def test_408_is_transient() -> None:
    assert isinstance(decode_error(408, {}, b"", "dataverse"), Transient)


def test_invalid_json_400_is_rejected_and_other_4xx_fatal() -> None:
    assert isinstance(decode_error(400, {}, b"{not json", "dataverse"), RecordRejected)
    assert isinstance(decode_error(415, {}, b"<html>Unsupported</html>", "finops"), Fatal)
    assert isinstance(decode_error(404, {}, b"", "finops"), NotFound)
    assert isinstance(decode_error(501, {}, dv("", "NotSupported"), "dataverse"), Fatal)


def test_secrets_are_scrubbed_and_messages_truncated() -> None:
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOi.eyJhdWQiOiJodHRwczovL2NvbnRvc28.c2lnbmF0dXJlc2lnbmF0dXJl"
    body = dv("", f"Bad header Authorization: Bearer {token} client_secret=s3cr3t! " + "x" * 5000)
    err = decode_error(400, {"Authorization": f"Bearer {token}"}, body, "dataverse")
    assert token not in str(err)
    assert "s3cr3t" not in str(err)
    assert len(err.message) <= 1000
    assert "Bearer ***" in scrub(f"Bearer {token}")


def test_pickle_round_trip_keeps_attributes() -> None:
    err = RecordRejected("bad", status=400, code="0x1", field="name")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, RecordRejected)
    assert (back.status, back.code, back.field, back.message) == (400, "0x1", "name", "bad")
    assert back.to_dict()["type"] == "RecordRejected"


def test_class_attributes() -> None:
    assert Throttled.retryable and Transient.retryable
    for cls in (RecordRejected, NotFound, Conflict, AuthFailed, Fatal):
        assert not cls.retryable
        assert issubclass(cls, SyncError)


def test_dataverse_option_set_out_of_range_names_the_field() -> None:
    body = dv(
        "0x8004431a",
        "A validation error occurred.  The value 999 of 'industrycode' on record of type 'account' "
        "is outside the valid range.",
    )
    err = decode_error(400, {}, body, "dataverse")
    assert isinstance(err, RecordRejected)
    assert err.field == "industrycode"


def test_finops_missing_related_value_at_500_is_rejected_not_not_found() -> None:
    body = fo_inner(
        "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Error: The value '99' in field "
        "'CustomerGroupId' is not found in the related table 'Customer groups'."
    )
    err = decode_error(500, {}, body, "finops")
    assert isinstance(err, RecordRejected)
    assert err.field == "CustomerGroupId"


def test_dataverse_missing_lookup_target_in_bulk_is_rejected() -> None:
    body = dv("0x80040217", "Contact With Ids = 5b4ced1c-88e1-ee11-904c-6045bd05e9d4 Do Not Exist")
    # the code says ObjectDoesNotExist whatever the status
    assert isinstance(decode_error(400, {}, body, "dataverse"), NotFound)
    assert isinstance(
        decode_error(400, {}, dv("", "Contact With Ids = x Do Not Exist"), "dataverse"), RecordRejected
    )


def test_invalid_segment_is_fatal() -> None:
    body = dv("0x80060888", "Resource not found for the segment 'acounts'.")
    assert isinstance(decode_error(404, {}, body, "dataverse"), Fatal)


def test_odata_v3_style_message_object() -> None:
    body = json.dumps({"odata.error": {"code": "", "message": {"lang": "en-US", "value": "Bad value for X"}}})
    err = decode_error(400, {}, body.encode(), "finops")
    assert isinstance(err, RecordRejected)
    assert err.message == "Bad value for X"
