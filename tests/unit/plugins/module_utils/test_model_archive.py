"""bulkmail_log_archive: the S3 log archive in the model, and the filter the role reads."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.filter.log_archive import (
    FilterModule,
    log_archive_settings,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    MODEL_VARIABLES,
    model_summary,
    parse_model,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.archive import (
    LogArchive,
    parse_archive_config,
    parse_log_archive,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from model_inventory import lab_inventory, lab_model, lab_variables, problem, problems

KEY_ID = "AKIA-Lab-Key-Id-7Qw"
SECRET = "Lab-Secret-Access-Key-x9Rt4"
ARCHIVE: dict[str, Any] = {
    "endpoint": "https://s3.eu-central-1.amazonaws.com",
    "bucket": "bulkmail-logs",
    "access_key_id": KEY_ID,
    "secret_access_key": SECRET,
}


def archive(**changes: Any) -> dict[str, Any]:
    return {**ARCHIVE, **changes}


def test_it_is_a_model_variable_and_optional() -> None:
    assert "bulkmail_log_archive" in MODEL_VARIABLES
    model = lab_model()
    assert model.log_archive is None
    assert model_summary(model)["log_archive"] is None
    assert log_archive_settings(lab_inventory()) == {}
    assert lab_model(bulkmail_log_archive=None).log_archive is None


def test_defaults() -> None:
    assert lab_model(bulkmail_log_archive=archive()).log_archive == LogArchive(
        endpoint="https://s3.eu-central-1.amazonaws.com",
        bucket="bulkmail-logs",
        region="us-east-1",
        prefix="postfix/",
        addressing_style="path",
        chunk_lines=50000,
        interval_minutes=15,
    )


def test_every_setting_and_the_filter_s_exact_shape() -> None:
    raw = archive(
        endpoint="http://10.25.0.200:5000/",
        region="eu-central-1",
        prefix="lab/postfix/",
        addressing_style="virtual",
        interval_minutes="5",  # templating hands numbers over as text
        chunk_lines=100,
    )
    inputs = lab_inventory(bulkmail_log_archive=raw)
    assert log_archive_settings(inputs) == {
        "config": {
            "endpoint": "http://10.25.0.200:5000",
            "bucket": "bulkmail-logs",
            "region": "eu-central-1",
            "prefix": "lab/postfix/",
            "addressing_style": "virtual",
            "chunk_lines": 100,
            "interval_minutes": 5,
        },
        "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
    }
    assert FilterModule().filters() == {"log_archive_settings": log_archive_settings}


def test_the_model_and_its_summary_hold_no_credential() -> None:
    model = lab_model(bulkmail_log_archive=archive(endpoint="http://10.25.0.200:5000"))
    for text in (repr(model), repr(model.log_archive), repr(model_summary(model))):
        assert KEY_ID not in text and SECRET not in text
    summary = model_summary(model)["log_archive"]
    assert summary.startswith("s3 bulkmail-logs/postfix/<host>/ at http://10.25.0.200:5000")
    assert "production uses https" in summary
    https = model_summary(lab_model(bulkmail_log_archive=archive()))["log_archive"]
    assert https.endswith("every 15 min")


def test_an_empty_prefix_keeps_the_keys_at_the_bucket_s_root() -> None:
    assert lab_model(bulkmail_log_archive=archive(prefix="")).log_archive.prefix == ""


@pytest.mark.parametrize(
    ("endpoint", "canonical"),
    [
        ("https://S3.Example.com", "https://s3.example.com"),
        ("https://minio.internal:9000", "https://minio.internal:9000"),
        ("http://[2001:db8::5]:9000", "http://[2001:db8::5]:9000"),
        ("http://localhost:5000", "http://localhost:5000"),
    ],
)
def test_endpoints(endpoint: str, canonical: str) -> None:
    assert lab_model(bulkmail_log_archive=archive(endpoint=endpoint)).log_archive.endpoint == (
        canonical
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint": None}, "bulkmail_log_archive.endpoint: missing"),
        (
            {"endpoint": "s3.amazonaws.com"},
            "bulkmail_log_archive.endpoint: 's3.amazonaws.com' must start with https://",
        ),
        ({"endpoint": "ftp://s3.example.com"}, "bulkmail_log_archive.endpoint: 'ftp://"),
        (
            {"endpoint": "https://s3.example.com/bulkmail-logs"},
            "bulkmail_log_archive.endpoint: 'https://s3.example.com/bulkmail-logs' has a path",
        ),
        ({"endpoint": "https://s3.example.com?x=1"}, "has a path, query or fragment"),
        ({"endpoint": "https://s3.example.com:99999"}, "is not a URL"),
        ({"endpoint": "https://"}, "names no host"),
        ({"endpoint": "https://s3_example.com"}, "bulkmail_log_archive.endpoint: 's3_example"),
        ({"endpoint": 443}, "bulkmail_log_archive.endpoint: 443 (int) is not an http(s) URL"),
        ({"bucket": None}, "bulkmail_log_archive.bucket: missing"),
        ({"bucket": "ab"}, "bulkmail_log_archive.bucket: 'ab' is not 3 to 63 characters long"),
        ({"bucket": "b" * 64}, "is not 3 to 63 characters long"),
        (
            {"bucket": "Bulkmail-Logs"},
            "bulkmail_log_archive.bucket: 'Bulkmail-Logs' is not a bucket",
        ),
        ({"bucket": "-logs"}, "starting and ending with a letter or digit"),
        ({"bucket": "logs_2026"}, "is not a bucket name"),
        ({"bucket": "bulk..logs"}, "a dot must stand between letters or digits"),
        ({"bucket": "bulk.-logs"}, "a dot must stand between letters or digits"),
        ({"bucket": "192.168.5.4"}, "looks like an IP address"),
        ({"bucket": "xn--logs"}, "a prefix or suffix S3 reserves"),
        ({"bucket": "logs-s3alias"}, "a prefix or suffix S3 reserves"),
        ({"region": "EU-Central-1"}, "bulkmail_log_archive.region: 'EU-Central-1' is not a region"),
        ({"region": ""}, "bulkmail_log_archive.region: '' is not a region"),
        ({"prefix": "/postfix/"}, "bulkmail_log_archive.prefix: '/postfix/' must not start"),
        ({"prefix": "postfix"}, "bulkmail_log_archive.prefix: 'postfix' must end with '/'"),
        ({"prefix": "a//b/"}, "has an empty, '.' or '..' part"),
        ({"prefix": "a/../"}, "has an empty, '.' or '..' part"),
        ({"prefix": "post fix/"}, "may contain only letters, digits"),
        ({"prefix": "p" * 600 + "/"}, "is longer than 512 characters"),
        (
            {"addressing_style": "auto"},
            "bulkmail_log_archive.addressing_style: 'auto' is not one of path, virtual",
        ),
        (
            {"addressing_style": "virtual", "bucket": "logs.example.com"},
            "bulkmail_log_archive.addressing_style: virtual with the dotted bucket",
        ),
        ({"interval_minutes": 0}, "bulkmail_log_archive.interval_minutes: 0 is out of range"),
        ({"interval_minutes": 1441}, "give 1 to 1440"),
        ({"interval_minutes": "often"}, "'often' is not a whole number"),
        ({"interval_minutes": True}, "True (bool) is not a whole number"),
        ({"chunk_lines": 99}, "bulkmail_log_archive.chunk_lines: 99 is out of range; give 100"),
        ({"chunk_lines": 1_000_001}, "give 100 to 1000000"),
        ({"access_key_id": None}, "bulkmail_log_archive.access_key_id: missing or empty"),
        (
            {"secret_access_key": "change-me"},
            "bulkmail_log_archive.secret_access_key: is a placeholder",
        ),
        ({"secret_access_key": "two words"}, "contains whitespace or control characters"),
        ({"secret_access_key": 1234}, "bulkmail_log_archive.secret_access_key: is a int"),
        ({"bucketname": "x"}, "bulkmail_log_archive: unknown key(s) bucketname; known keys"),
    ],
)
def test_each_error_names_its_field(changes: dict[str, Any], message: str) -> None:
    found = problem(lab_inventory(bulkmail_log_archive=archive(**changes)))
    assert message in found
    assert found.startswith("bulkmail_log_archive")


def test_credentials_in_the_endpoint_are_refused_without_being_echoed() -> None:
    found = problem(
        lab_inventory(bulkmail_log_archive=archive(endpoint="https://key:Pw-In-Url@s3.test"))
    )
    assert found.startswith("bulkmail_log_archive.endpoint: holds credentials")
    assert "Pw-In-Url" not in found


def test_secrets_never_appear_in_errors() -> None:
    found = problems(
        lab_inventory(bulkmail_log_archive=archive(bucket="X", secret_access_key=SECRET + " \n"))
    )
    assert len(found) == 2
    assert all(SECRET not in text for text in found)


def test_every_problem_at_once() -> None:
    found = problems(lab_inventory(bulkmail_log_archive={"endpoint": "ftp://x"}))
    assert [text.split(":")[0] for text in found] == [
        "bulkmail_log_archive.endpoint",
        "bulkmail_log_archive.bucket",
        "bulkmail_log_archive.access_key_id",
        "bulkmail_log_archive.secret_access_key",
    ]


def test_not_a_mapping() -> None:
    assert problem(lab_inventory(bulkmail_log_archive="s3://bulkmail-logs")).startswith(
        "bulkmail_log_archive: 's3://bulkmail-logs' is not a mapping"
    )


def test_the_filter_fails_naming_the_field() -> None:
    with pytest.raises(AnsibleFilterError, match=r"bulkmail_log_archive\.bucket: missing"):
        log_archive_settings(lab_inventory(bulkmail_log_archive=archive(bucket=None)))


def test_the_runtime_s_config_file_is_checked_alike_naming_the_key_alone() -> None:
    config = parse_log_archive(archive()).config()
    assert parse_archive_config(config) == parse_log_archive(archive())
    with pytest.raises(ModelError, match=r"^bucket: 'ab' is not 3 to 63"):
        parse_archive_config({**config, "bucket": "ab"})
    with pytest.raises(ModelError, match=r"^unknown key\(s\) secret_access_key"):
        parse_archive_config({**config, "secret_access_key": SECRET})
    with pytest.raises(ModelError, match="is not a JSON object"):
        parse_archive_config([config])


def test_a_model_without_hosts_parses_the_archive_too() -> None:
    # A filter that knows only the variables passes them alone (parse_model's docstring).
    variables = lab_variables(bulkmail_log_archive=archive(), bulkmail_lanes=None)
    assert parse_model({"variables": variables}).log_archive is not None
