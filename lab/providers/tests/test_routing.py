"""Which reply a sender gets for which recipient, from the shipped providers.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from bulkmail_providers.config import (
    DEFAULT_CONFIG,
    Behaviour,
    ConfigError,
    ServerConfig,
    load_config,
    parse_config,
)
from bulkmail_providers.overrides import Overrides
from bulkmail_providers.overrides import write as write_override
from bulkmail_providers.routing import (
    choose_behaviour,
    group_by_provider,
    refusal_after_data,
    wants_tarpit,
)


@pytest.fixture(scope="module")
def config() -> ServerConfig:
    return load_config(DEFAULT_CONFIG, env={})


@pytest.mark.parametrize(
    ("recipient", "provider", "behaviour"),
    [
        ("alice@gmail.test", "google", Behaviour.ACCEPT),
        ("bob@acme.test", "google", Behaviour.ACCEPT),  # Workspace domain: Google's MX
        ("carol@outlook.test", "microsoft", Behaviour.ACCEPT),
        ("dave@YAHOO.test", "yahoo", Behaviour.ACCEPT),
        ("user-unknown@gmail.test", "google", Behaviour.REJECT_UNKNOWN),
        ("Defer-42@yahoo.test", "yahoo", Behaviour.DEFER),
        ("tarpit-1@outlook.test", "microsoft", Behaviour.TARPIT),
        ("bounce-7@gmail.test", "google", Behaviour.BOUNCE),
        ("complain-7@yahoo.test", "yahoo", Behaviour.COMPLAIN),
        ("full-1@gmail.test", "google", Behaviour.MAILBOX_FULL),
    ],
)
def test_behaviour_by_local_part_and_domain(
    config: ServerConfig, recipient: str, provider: str, behaviour: Behaviour
) -> None:
    decision = choose_behaviour(recipient, config)
    assert decision.provider is not None and decision.provider.name == provider
    assert decision.behaviour is behaviour


def test_unknown_domains_are_relaying_denied(config: ServerConfig) -> None:
    decision = choose_behaviour("someone@example.test", config)
    refusal = decision.refusal_at_rcpt(config)
    assert decision.provider is None and refusal is not None
    assert refusal.render().startswith("550 5.7.1")


def test_unknown_user_gets_the_providers_own_text(config: ServerConfig) -> None:
    google = choose_behaviour("user-unknown@gmail.test", config).refusal_at_rcpt(config)
    microsoft = choose_behaviour("unknown-1@outlook.test", config).refusal_at_rcpt(config)
    assert google is not None and microsoft is not None
    lines = google.render().split("\r\n")
    assert lines[0].startswith("550-5.1.1 The email account that you tried to reach does not exist")
    assert lines[-1].startswith("550 5.1.1 ") and lines[-1].endswith("- gsmtp")
    assert microsoft.render().startswith(
        "550 5.5.0 Requested action not taken: mailbox unavailable"
    )


def test_yahoo_and_microsoft_defer_at_rcpt_with_the_client_address(config: ServerConfig) -> None:
    yahoo = choose_behaviour("defer-1@yahoo.test", config).refusal_at_rcpt(config)
    microsoft = choose_behaviour("defer-1@outlook.test", config).refusal_at_rcpt(config)
    assert yahoo is not None and microsoft is not None
    assert yahoo.render(ip="198.51.100.10").startswith(
        "421 4.7.0 [TSS04] Messages from 198.51.100.10 temporarily deferred"
    )
    assert microsoft.render(ip="198.51.100.10").startswith(
        "451 4.7.500 Server busy. Please try again later from [198.51.100.10]."
    )


def test_google_defers_after_data_for_the_whole_transaction(config: ServerConfig) -> None:
    decisions = [choose_behaviour(r, config) for r in ("a@gmail.test", "defer-1@gmail.test")]
    assert all(d.refusal_at_rcpt(config) is None for d in decisions)
    refusal = refusal_after_data(decisions)
    assert refusal is not None and refusal.code == 421
    assert "421-4.7.28 [198.51.100.10] Our system has detected" in refusal.render(
        ip="198.51.100.10"
    )


def test_tarpit_and_grouping(config: ServerConfig) -> None:
    decisions = [
        choose_behaviour(r, config) for r in ("tarpit-1@gmail.test", "b@acme.test", "c@yahoo.test")
    ]
    assert wants_tarpit(decisions)
    groups = group_by_provider(decisions)
    assert {name: rcpts for name, (_, rcpts) in groups.items()} == {
        "google": ["tarpit-1@gmail.test", "b@acme.test"],
        "yahoo": ["c@yahoo.test"],
    }


def test_domain_behaviour_overrides_the_provider_default() -> None:
    config = parse_config(
        {
            "providers": {
                "slow": {
                    "hostname": "mx.slow.test",
                    "domains": ["slow.test", "fast.test"],
                    "behaviour": "tarpit",
                    "domain_behaviour": {"fast.test": "accept"},
                }
            }
        }
    )
    assert choose_behaviour("x@slow.test", config).behaviour is Behaviour.TARPIT
    assert choose_behaviour("x@fast.test", config).behaviour is Behaviour.ACCEPT


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"providers": {"g": {"hostname": "mx.g.test", "domains": []}}}, "providers.g.domains"),
        (
            {
                "providers": {
                    "g": {"hostname": "mx.g.test", "domains": ["a.test"], "behaviour": "x"}
                }
            },
            "providers.g.behaviour",
        ),
        (
            {
                "providers": {
                    "g": {"hostname": "mx.g.test", "domains": ["a.test"]},
                    "h": {"hostname": "mx.h.test", "domains": ["a.test"]},
                }
            },
            "providers.h.domains",
        ),
        (
            {
                "providers": {
                    "g": {
                        "hostname": "mx.g.test",
                        "domains": ["a.test"],
                        "replies": {"defer": "421-4.7.0 no last line"},
                    }
                }
            },
            "providers.g.replies.defer",
        ),
    ],
)
def test_config_errors_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(data)


def test_environment_overrides_the_file(config: ServerConfig) -> None:
    env = {
        "PROVIDERS_DNS": "10.25.0.53",
        "PROVIDERS_LISTEN": "127.0.0.1:2525",
        "PROVIDERS_TARPIT_SECONDS": "2",
    }
    loaded = load_config(DEFAULT_CONFIG, env=env)
    assert (loaded.dns_server, loaded.listen_host, loaded.listen_port, loaded.tarpit_seconds) == (
        "10.25.0.53",
        "127.0.0.1",
        2525,
        2.0,
    )
    assert config.dns_server == "198.51.100.53"  # the file's own value, without the environment


def test_a_runtime_override_comes_after_local_parts_and_before_the_configured_behaviour(
    config: ServerConfig, tmp_path: Path
) -> None:
    write_override(tmp_path, "yahoo.test", Behaviour.DEFER)
    overrides = Overrides(tmp_path)
    assert choose_behaviour("dave@yahoo.test", config, overrides.table()).behaviour is (
        Behaviour.DEFER
    )
    assert choose_behaviour("tarpit-1@yahoo.test", config, overrides.table()).behaviour is (
        Behaviour.TARPIT
    )
    assert choose_behaviour("alice@gmail.test", config, overrides.table()).behaviour is (
        Behaviour.ACCEPT
    )
    write_override(tmp_path, "yahoo.test", None)
    assert choose_behaviour("dave@yahoo.test", config, overrides.table()).behaviour is (
        Behaviour.ACCEPT
    )
