"""Playbook documents: the default set parses, and every malformed field is refused by name."""

from __future__ import annotations

import pytest

from tessera.response.playbooks import (
    DEFAULT_YAML,
    PlaybookInvalid,
    default_playbooks,
    parse_document,
    parse_yaml,
)


def test_the_default_playbooks_parse_and_round_trip() -> None:
    books = default_playbooks()
    assert [b.name for b in books] == ["step-up-elevated-risk", "contain-high-risk", "repeated-probing"]
    assert parse_document({"playbooks": [b.to_json() for b in books]}) == books
    contain = books[1]
    assert contain.trigger.risk_at_least == 80
    assert [a.kind for a in contain.actions] == ["revoke_tokens", "quarantine", "notify_owner", "alert"]
    assert parse_yaml(DEFAULT_YAML) == books


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "one key, 'playbooks'"),
        ("playbooks: 3", "must be a list"),
        ("playbooks: [{name: 'Bad Name', when: {risk_at_least: 5}, actions: [alert]}]", "'Bad Name'"),
        ("playbooks: [{name: a, when: {}, actions: [alert]}]", "at least one condition"),
        ("playbooks: [{name: a, when: {risk_at_least: 101}, actions: [alert]}]", "from 1 to 100, got '101'"),
        ("playbooks: [{name: a, when: {risk_at_least: true}, actions: [alert]}]", "got 'True'"),
        (
            "playbooks: [{name: a, when: {detectors: [telepathy]}, actions: [alert]}]",
            "unknown detector 'telepathy'",
        ),
        ("playbooks: [{name: a, when: {risk_at_least: 5}, actions: [explode]}]", "unknown action 'explode'"),
        ("playbooks: [{name: a, when: {risk_at_least: 5}, actions: [require_approval]}]", "needs a value"),
        ("playbooks: [{name: a, when: {risk_at_least: 5}, actions: [{alert: 3}]}]", "takes no value"),
        (
            "playbooks: [{name: a, when: {risk_at_least: 5}, actions: [{cap_token_lifetime: 1}]}]",
            "from 10 to 86400",
        ),
        ("playbooks: [{name: a, when: {risk_at_least: 5}, actions: []}]", "1-10 actions"),
        ("playbooks: [{name: a, when: {risk_at_least: 5}, actions: [alert], cooldown: -1}]", "cooldown"),
        (
            "playbooks: [{name: a, when: {risk_at_least: 5}, actions: [alert], shell: x}]",
            "unknown field 'shell'",
        ),
        (
            "playbooks: [{name: a, when: {count: {detector: new_zone}}, actions: [alert]}]",
            "at_least and within",
        ),
        (
            "playbooks: [{name: a, when: {risk_at_least: 5}, actions: [alert]},"
            " {name: a, when: {risk_at_least: 9}, actions: [alert]}]",
            "'a' is used twice",
        ),
        ("playbooks: [{name: a, when: {risk_at_least: 5}, actions: [alert]", "does not parse"),
        ("!!python/object/apply:os.system ['true']", "does not parse"),
    ],
)
def test_malformed_playbooks_are_refused_with_the_field_named(text: str, message: str) -> None:
    with pytest.raises(PlaybookInvalid, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_yaml(text)


def test_oversized_playbook_files_are_refused() -> None:
    with pytest.raises(PlaybookInvalid, match="at most"):
        parse_yaml("#" * (64 * 1024))


def test_an_empty_set_turns_playbooks_off() -> None:
    assert parse_yaml("playbooks: []") == []
