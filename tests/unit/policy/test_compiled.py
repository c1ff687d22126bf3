"""compile_bundle and bundles: file:line problems named by @id, duplicates, schema, entities, versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.errors import ValidationFailed
from tessera.policy.bundle import Bundle, Problem, bundle_from_files, load_bundle, write_bundle
from tessera.policy.compiled import BundleInvalid, compile_bundle
from tests.unit.policy.helpers import SCHEMA, bundle

PERMIT = 'permit(principal, action == Action::"read", resource);'


def problems(b: Bundle) -> list[Problem]:
    with pytest.raises(BundleInvalid) as invalid:
        compile_bundle(b)
    return invalid.value.problems


def test_policy_ids_come_from_id_annotations_or_file_and_line() -> None:
    compiled = compile_bundle(
        Bundle(
            {
                "schema.cedarschema": SCHEMA,
                "a.cedar": f'// first\n@id("named")\n@max_ttl("60")\n{PERMIT}\n\n{PERMIT}\n',
                "b.cedar": f"\n\n{PERMIT}",
            }
        )
    )
    assert sorted(compiled.policies) == ["a.cedar:6", "b.cedar:3", "named"]
    named = compiled.policies["named"]
    assert (named.file, named.line, named.effect) == ("a.cedar", 2, "permit")
    assert named.annotations == {"id": "named", "max_ttl": "60"}


def test_policies_sharing_a_line_get_distinct_ids() -> None:
    forbid = 'forbid(principal, action == Action::"write", resource);'
    compiled = compile_bundle(bundle(f"{PERMIT} {forbid} {PERMIT}", f'@id("x") {PERMIT} {PERMIT}'))
    assert sorted(compiled.policies) == [
        "policies.cedar:1",
        "policies.cedar:1#2",
        "policies.cedar:1#3",
        "policies.cedar:2#2",
        "x",
    ]
    assert compiled.policies["policies.cedar:1#2"].effect == "forbid"


def test_a_parse_error_is_reported_at_its_file_and_line() -> None:
    found = problems(
        Bundle(
            {
                "schema.cedarschema": SCHEMA,
                "ok.cedar": PERMIT,
                "broken.cedar": (
                    f'{PERMIT}\n\n// note; here\n@id("bad")\n'
                    "permit(principal, action, resource) when { ) };\n"
                ),
            }
        )
    )
    assert len(found) == 1
    assert (found[0].file, found[0].line) == ("broken.cedar", 4)
    assert str(found[0]).startswith("broken.cedar:4: ")


def test_schema_errors_name_the_policy_by_its_id_at_its_line() -> None:
    text = (
        f'{PERMIT}\n\n@id("reads-missing-attribute")\n'
        'permit(principal, action, resource)\n  when { resource.colour == "red" };\n'
    )
    found = problems(bundle(text))
    # Cedar reports the policy once per resource type it could apply to (Doc, Folder).
    assert {(p.file, p.line) for p in found} == {("policies.cedar", 3)}
    assert any("colour" in p.message and "`Doc`" in p.message for p in found)
    for problem in found:
        assert problem.message.startswith("for policy `reads-missing-attribute`")
        assert "policy1" not in problem.message


def test_schema_errors_without_an_id_name_the_file_and_line() -> None:
    found = problems(bundle(PERMIT, "", 'forbid(principal, action == Action::"fly", resource);'))
    assert {(p.file, p.line) for p in found} == {("policies.cedar", 3)}
    assert 'unrecognized action `Action::"fly"`' in found[0].message
    assert "policy1" not in found[0].message


def test_every_problem_is_reported_not_only_the_first() -> None:
    b = Bundle(
        {
            "schema.cedarschema": SCHEMA,
            "a.cedar": "permit(principal, action, resource) when { ) };",
            "b.cedar": '@id("x")\npermit(principal, action, resource) when { resource.nope };',
        }
    )
    with pytest.raises(BundleInvalid) as invalid:
        compile_bundle(b)
    found = invalid.value.problems
    assert found[0].file == "a.cedar"
    assert {p.file for p in found[1:]} == {"b.cedar"}
    assert invalid.value.description == f"{found[0]} (and {len(found) - 1} more)"
    body = invalid.value.body()
    assert body["error"] == "invalid_request"
    assert [(p["file"], p["line"]) for p in body["problems"]] == [(p.file, p.line) for p in found]


def test_a_duplicate_id_across_files_names_both_places() -> None:
    found = problems(
        Bundle(
            {
                "schema.cedarschema": SCHEMA,
                "a.cedar": f'\n@id("same")\n{PERMIT}',
                "b.cedar": f'{PERMIT}\n@id("same")\n{PERMIT}',
            }
        )
    )
    assert len(found) == 1
    assert (found[0].file, found[0].line) == ("b.cedar", 2)
    assert found[0].message == "duplicate policy id 'same' (also a.cedar:2)"


def test_a_duplicate_id_in_one_file_is_refused() -> None:
    found = problems(bundle(f'@id("twice")\n{PERMIT}', f'@id("twice")\n{PERMIT}'))
    assert [(p.line, p.message) for p in found] == [
        (3, "duplicate policy id 'twice' (also policies.cedar:1)")
    ]


def test_templates_are_refused_at_their_line() -> None:
    found = problems(bundle(PERMIT, "permit(principal == ?principal, action, resource);"))
    assert [(p.file, p.line) for p in found] == [("policies.cedar", 2)]
    assert "templates are not supported" in found[0].message


@pytest.mark.parametrize("value", ["5m", "0", "-60", "", "60 ", "六十"])
def test_a_max_ttl_that_is_not_positive_seconds_is_a_problem(value: str) -> None:
    found = problems(bundle(PERMIT, f'@id("capped")\n@max_ttl("{value}")\n{PERMIT}'))
    assert [(p.file, p.line) for p in found] == [("policies.cedar", 2)]
    assert found[0].message == f"@max_ttl must be a positive number of seconds, not '{value}'"


def test_a_missing_schema_is_a_problem() -> None:
    found = problems(Bundle({"a.cedar": PERMIT}))
    assert [(p.file, p.message) for p in found] == [("schema.cedarschema", "missing schema")]
    with pytest.raises(ValidationFailed, match="no schema"):
        bundle_from_files({"a.cedar": PERMIT})


@pytest.mark.parametrize(
    ("name", "text"), [("schema.cedarschema", "entity Doc {"), ("schema.cedarschema.json", "not json")]
)
def test_a_schema_that_does_not_parse_is_a_problem(name: str, text: str) -> None:
    found = problems(Bundle({name: text, "a.cedar": PERMIT}))
    assert [p.file for p in found] == [name]
    assert "schema does not parse" in found[0].message


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ("[not json", "not valid json"),
        ('{"uid": {"type": "Doc", "id": "d"}}', "expected a json array"),
        ("[1, 2]", "deserialization"),
        (
            '[{"uid": {"type": "Doc", "id": "d"}, "attrs": {"owner": "a", "level": "high"}, "parents": []}]',
            "schema",
        ),
        ('[{"uid": {"type": "Planet", "id": "mars"}, "attrs": {}, "parents": []}]', ""),
    ],
)
def test_bad_entities_json_is_a_problem_of_that_file(entities: str, message: str) -> None:
    found = problems(bundle(PERMIT, files={"entities.json": entities}))
    assert len(found) == 1
    assert found[0].file == "entities.json"
    assert message in found[0].message
    # The file is named once, not twice ("entities.json: entities.json: …").
    assert str(found[0]).count("entities.json") == 1


def test_an_entities_json_syntax_error_has_its_line() -> None:
    found = problems(bundle(PERMIT, files={"entities.json": '[\n  {"uid": 1},\n  oops\n]'}))
    assert [(p.file, p.line) for p in found] == [("entities.json", 3)]
    assert str(found[0]).startswith("entities.json:3: not valid json")


def test_static_entities_are_kept_with_the_compiled_bundle() -> None:
    entities = '[{"uid": {"type": "Folder", "id": "root"}, "attrs": {}, "parents": []}]'
    compiled = compile_bundle(bundle(PERMIT, files={"entities.json": entities}))
    assert compiled.static_entities == [{"uid": {"type": "Folder", "id": "root"}, "attrs": {}, "parents": []}]


def test_the_version_is_a_content_hash_independent_of_file_order() -> None:
    files = {"schema.cedarschema": SCHEMA, "a.cedar": PERMIT, "b.cedar": f"// b\n{PERMIT}"}
    forwards = Bundle(dict(files))
    backwards = Bundle(dict(reversed(list(files.items()))))
    assert list(forwards.files) != list(backwards.files)
    assert forwards.version == backwards.version
    assert len(forwards.version) == 16
    assert compile_bundle(forwards).version == forwards.version


@pytest.mark.parametrize(
    "change",
    [
        {"a.cedar": PERMIT + " "},
        {"tests/t.yaml": "cases: []"},
        {"c.cedar": PERMIT},
    ],
)
def test_the_version_changes_with_any_content(change: dict[str, str]) -> None:
    files = {"schema.cedarschema": SCHEMA, "a.cedar": PERMIT}
    assert Bundle({**files, **change}).version != Bundle(files).version


def test_renaming_a_file_changes_the_version() -> None:
    assert (
        Bundle({"schema.cedarschema": SCHEMA, "a.cedar": PERMIT}).version
        != Bundle({"schema.cedarschema": SCHEMA, "b.cedar": PERMIT}).version
    )


def test_load_bundle_reads_the_wanted_files_and_round_trips(tmp_path: Path) -> None:
    original = bundle(PERMIT, files={"entities.json": "[]", "tests/basic.yaml": "cases: []"})
    write_bundle(original, tmp_path)
    (tmp_path / "README.md").write_text("ignored")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "x.cedar").write_text("ignored too")
    loaded = load_bundle(tmp_path)
    assert loaded.files == original.files
    assert loaded.version == original.version
    assert loaded.test_files == ["tests/basic.yaml"]


def test_bundles_without_policies_or_with_unexpected_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"no \*\.cedar"):
        bundle_from_files({"schema.cedarschema": SCHEMA})
    with pytest.raises(ValidationFailed, match=r"unexpected bundle file '\.\./x\.cedar'"):
        bundle_from_files({"schema.cedarschema": SCHEMA, "../x.cedar": PERMIT})
    with pytest.raises(ValidationFailed, match="not a directory"):
        load_bundle(tmp_path / "missing")
