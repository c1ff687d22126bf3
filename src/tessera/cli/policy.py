"""``tessera policy …``: write, validate and test bundles locally; apply, list, diff, roll back, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.audit import admin_stream
from tessera.cli.client import CliError, admin_client, describe_os_error
from tessera.cli.output import JsonFlag, emit_json, fields, line, note, one_line, table, text
from tessera.cli.resources import parse_ref
from tessera.errors import ValidationFailed
from tessera.policy.bundle import Bundle, Problem, load_bundle, write_bundle
from tessera.policy.compiled import BundleInvalid, CompiledBundle, compile_bundle
from tessera.policy.service import starter_bundle
from tessera.policy.testing import CaseResult, run_tests

app = typer.Typer(help="Write, test and apply Cedar policy bundles; explain decisions.", no_args_is_help=True)

BundleDir = Annotated[Path, typer.Argument(metavar="DIR", help="The bundle directory.")]
VersionArg = Annotated[str, typer.Argument(metavar="VERSION", help="A version (or a unique prefix of one).")]
VERSION_COLUMNS = ("active", "version", "created_at", "activated_at", "files")
EXPLAIN_FIELDS = (
    "decision", "determining_policies", "errors", "obligations", "policy_version", "decision_id", "context",
)  # fmt: skip


def require_empty(directory: Path) -> None:
    """Refuse to write into a directory that holds anything (a file, or a non-empty directory)."""
    if directory.exists() and not directory.is_dir():
        raise CliError(f"'{directory}' exists and is not a directory")
    try:
        if directory.is_dir() and any(directory.iterdir()):
            raise CliError(f"refusing to write into '{directory}': it is not empty")
    except OSError as exc:
        raise CliError(f"cannot read '{directory}': {describe_os_error(exc)}") from None


def write_files(bundle: Bundle, directory: Path) -> None:
    require_empty(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_bundle(bundle, directory)
    except OSError as exc:
        raise CliError(f"cannot write to '{directory}': {describe_os_error(exc)}") from None


def read_bundle(directory: Path) -> Bundle:
    try:
        return load_bundle(directory)
    except ValidationFailed as exc:
        raise CliError(exc.description) from None
    except OSError as exc:
        raise CliError(f"cannot read bundle '{directory}': {describe_os_error(exc)}") from None


def located(directory: Path, problem: Problem) -> str:
    """``DIR/file:line: message``, one line, so editors and terminals can jump to it."""
    where = (directory / problem.file).as_posix()
    return one_line(
        f"{where}:{problem.line}: {problem.message}" if problem.line else f"{where}: {problem.message}"
    )


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"file": p.file, "line": p.line, "message": p.message} for p in problems]


def compile_or_report(bundle: Bundle, directory: Path, json_output: bool) -> CompiledBundle:
    """Compile the bundle; on problems print each as ``file:line: message`` and exit non-zero."""
    try:
        return compile_bundle(bundle)
    except BundleInvalid as exc:
        if json_output:
            emit_json({"ok": False, "problems": problems_json(exc.problems)})
        else:
            for problem in exc.problems:
                line(located(directory, problem))
        raise CliError(f"{len(exc.problems)} problem(s) in bundle '{directory}'") from None
    except ValidationFailed as exc:
        raise CliError(exc.description) from None


@app.command("init")
def init(directory: BundleDir, json_output: JsonFlag = False) -> None:
    """Write the starter bundle (policies, schema, entities, tests) into a new or empty DIR."""
    bundle = starter_bundle()
    write_files(bundle, directory)
    if json_output:
        emit_json({"directory": str(directory), "version": bundle.version, "files": sorted(bundle.files)})
        return
    for name in sorted(bundle.files):
        line((directory / name).as_posix())
    note(f"starter bundle written; next: tessera policy test {directory}")


@app.command("validate")
def validate(directory: BundleDir, json_output: JsonFlag = False) -> None:
    """Check a bundle against its schema, locally; print each problem as file:line: message."""
    compiled = compile_or_report(read_bundle(directory), directory, json_output)
    if json_output:
        emit_json({"ok": True, "version": compiled.version, "policies": sorted(compiled.policies)})
    else:
        line(f"ok: {len(compiled.policies)} policies, version {compiled.version}")


def case_line(result: CaseResult) -> str:
    outcome = "PASS" if result.passed else "FAIL"
    detail = ""
    if not result.passed:
        reasons = [result.message]
        if result.determining:
            reasons.append(f"determined by {', '.join(result.determining)}")
        if result.errors:
            reasons.append(f"errors: {'; '.join(result.errors)}")
        detail = " - " + "; ".join(reasons)
    return f"{outcome}  " + one_line(f"{result.file}: {result.name}{detail}")


@app.command("test")
def run_test_cases(directory: BundleDir, json_output: JsonFlag = False) -> None:
    """Run the bundle's tests/*.yaml cases, locally; exit non-zero on any failure or on no cases."""
    bundle = read_bundle(directory)
    compile_or_report(bundle, directory, json_output)
    try:
        report = run_tests(bundle)
    except ValidationFailed as exc:
        raise CliError(exc.description) from None
    if json_output:
        emit_json(
            {
                "passed": report.passed,
                "failed": report.failed,
                "cases": [
                    {
                        "file": r.file,
                        "name": r.name,
                        "passed": r.passed,
                        "expected": r.expected,
                        "actual": r.actual,
                        "determining_policies": list(r.determining),
                        "errors": list(r.errors),
                        "message": r.message,
                    }
                    for r in report.results
                ],
            }
        )
    else:
        for result in report.results:
            line(case_line(result))
        if report.results:
            line(f"{report.passed} passed, {report.failed} failed")
    if not report.results:
        raise CliError(f"no test cases in '{directory / 'tests'}' (*.yaml with a 'cases' list)")
    if report.failed:
        raise CliError(f"{report.failed} of {len(report.results)} case(s) failed")


@app.command("apply")
def apply(
    directory: BundleDir,
    note_text: Annotated[
        str | None, typer.Option("--note", metavar="TEXT", help="Why; kept in the audit record.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Validate a bundle, store it as a new version and make it active everywhere; prints the version."""
    bundle = read_bundle(directory)
    compile_or_report(bundle, directory, json_output)  # report every problem here, file:line
    body: dict[str, Any] = {"files": bundle.to_json()}
    if note_text is not None:
        body["note"] = note_text
    with admin_client() as client:
        result = client.post("/admin/v1/policies", body)
    if json_output:
        emit_json(result)
        return
    line(str(result["version"]))
    note(f"version {result['version']} is active ({len(result.get('policies', []))} policies)")


@app.command("versions")
def versions(json_output: JsonFlag = False) -> None:
    """List stored versions, newest first; * marks the active one."""
    with admin_client() as client:
        result = client.get("/admin/v1/policies")
    if json_output:
        emit_json(result)
        return
    stored = result.get("versions", [])
    rows = [
        ["*" if v.get("active") else "", v.get("version"), v.get("created_at"), v.get("activated_at"),
         len(v.get("files", []))]
        for v in stored
    ]  # fmt: skip
    table(f"{len(stored)} policy version(s)", VERSION_COLUMNS, rows)


@app.command("show")
def show(
    version: Annotated[
        str, typer.Argument(metavar="[VERSION|active]", help="A version or prefix (default: active).")
    ] = "active",
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Write the bundle's files into a new or empty DIR."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Print a stored version's files, or write them out as a bundle directory."""
    with admin_client() as client:
        result = client.get(f"/admin/v1/policies/{quote(version, safe='')}")
    files: dict[str, str] = result.get("files", {})
    if out is not None:
        write_files(Bundle(dict(files)), out)
    if json_output:
        emit_json(result)
        return
    state = "active" if result.get("active") else "inactive"
    if out is not None:
        line(f"{result['version']} ({state}): {len(files)} files written to {out}")
        return
    line(f"# version {result['version']} ({state})")
    for name in sorted(files):
        line(f"\n# ==> {name} <==")
        typer.echo(files[name], nl=not files[name].endswith("\n"))


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="The older version (or prefix).")],
    b: Annotated[str, typer.Argument(metavar="B", help="The newer version (or prefix).")],
    json_output: JsonFlag = False,
) -> None:
    """A unified diff of two stored versions' files."""
    with admin_stream("/admin/v1/policies/diff", {"a": a, "b": b}) as response:
        changes = response.read().decode("utf-8", errors="replace")
    if json_output:
        emit_json({"a": a, "b": b, "diff": changes})
    elif changes:
        typer.echo(changes, nl=not changes.endswith("\n"))
    else:
        note(f"versions {a} and {b} have the same files")


@app.command("rollback")
def rollback(version: VersionArg, json_output: JsonFlag = False) -> None:
    """Make an earlier stored version active again, everywhere."""
    with admin_client() as client:
        result = client.post("/admin/v1/policies/rollback", {"version": version})
    if json_output:
        emit_json(result)
    else:
        line(f"{result['version']}: active")


def parse_context(value: str | None) -> dict[str, Any]:
    """``--context`` as a JSON object, or ``@FILE`` holding one."""
    if value is None:
        return {}
    raw = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read context file '{path}': {describe_os_error(exc)}") from None
    try:
        context = json.loads(raw)
    except ValueError:
        raise CliError("--context is not valid json") from None
    if not isinstance(context, dict):
        raise CliError("--context must be a json object")
    return context


@app.command("explain")
def explain(
    *,
    principal: Annotated[
        str, typer.Option("--principal", metavar="TYPE::ID", help="Who asks (type Agent if only an id).")
    ],
    action: Annotated[str, typer.Option("--action", metavar="ACTION", help="The action, e.g. read.")],
    resource: Annotated[
        str, typer.Option("--resource", metavar="TYPE::ID", help="On what (type Resource if only an id).")
    ],
    context: Annotated[
        str | None,
        typer.Option("--context", metavar="JSON", help="Request context, a json object (or @FILE)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Ask the server's PDP for a decision and show why (the decision is audited)."""
    p_type, p_id = parse_ref(principal, "Agent", "--principal")
    r_type, r_id = parse_ref(resource, "Resource", "--resource")
    body = {
        "principal": {"type": p_type, "id": p_id},
        "action": action,
        "resource": {"type": r_type, "id": r_id},
        "context": parse_context(context),
    }
    with admin_client() as client:
        result = client.post("/admin/v1/decisions", body)
    if json_output:
        emit_json(result)
        return
    why: dict[str, Any] = result.get("context") or {}
    fields(
        {
            "decision": "allow" if result.get("decision") else "deny",
            "determining_policies": ", ".join(why.get("determining_policies") or []) or "-",
            "errors": "; ".join(why.get("errors") or []) or "-",
            "obligations": text(why.get("obligations") or {}),
            "policy_version": why.get("policy_version"),
            "decision_id": why.get("decision_id"),
            "context": json.dumps(result.get("evaluated_context", {}), sort_keys=True),
        },
        EXPLAIN_FIELDS,
    )
