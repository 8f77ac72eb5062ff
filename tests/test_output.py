"""Output formats: text, full, json, SARIF 2.1.0, GitHub workflow commands, GitLab code
quality, JUnit XML, statistics."""
from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from qlint.finding import Finding
from qlint.output import FORMATS, render
from qlint.output.github import escape_data, escape_property
from qlint.output.diff import unified_diff
from qlint.output.statistics import render_statistics
from qlint.output.text import fixable_line, fixes_list, summary_line
from qlint.registry import SAFE, UNSAFE, all_rules

FINDINGS = [
    Finding("models/resnet.py", 41, 16, 41, 28, "QL301", "tensor-operator", "error",
            "`out + identity` adds two activations: no quantized kernel after convert(); use FloatFunctional.add"),
    Finding("models/resnet.py", 42, 9, 42, 18, "QL401", "module-reused", "warning",
            "self.relu is called a 2nd time (first at line 39): fuse_modules replaces only one use"),
    Finding("models/vit.py", 7, 5, 8, 1, "QL301", "tensor-operator", "error", "x * 0.5 on an activation"),
]
LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<code>QL\d{3}) (?P<name>[a-z0-9-]+): (?P<message>.+)$")


def test_text_lines_are_parseable_and_carry_the_finding():
    lines = render(FINDINGS, "text").splitlines()
    assert lines[0] == (
        "models/resnet.py:41:16: QL301 tensor-operator: `out + identity` adds two activations: "
        "no quantized kernel after convert(); use FloatFunctional.add"
    )
    parsed = [LINE.match(line).groupdict() for line in lines]
    assert [(p["path"], int(p["line"]), int(p["column"]), p["code"]) for p in parsed] == [
        (f.path, f.line, f.column, f.code) for f in FINDINGS
    ]


def test_summary_line_counts_problems_by_severity():
    assert summary_line(FINDINGS) == "Found 3 problems (2 errors, 1 warning)."
    assert summary_line(FINDINGS[1:2]) == "Found 1 problem (0 errors, 1 warning)."
    assert summary_line([]) == "All checks passed!"


# Fix tiers: the first finding has a safe fix, the second an unsafe one, the third none.
TIERED = [FINDINGS[0].__class__(**{**FINDINGS[0].to_dict(), "fix": SAFE}),
          FINDINGS[1].__class__(**{**FINDINGS[1].to_dict(), "fix": UNSAFE}), FINDINGS[2]]


@pytest.mark.parametrize("output_format", ["text", "full"])
def test_text_marks_the_findings_whose_fix_is_in_the_run_s_tiers(output_format):
    def marked(tiers):
        return [line.split()[2] == "[*]" for line in render(TIERED, output_format, fix_tiers=tiers).splitlines()
                if line.startswith("models/")]

    assert marked(frozenset()) == [False, False, False]
    assert marked(frozenset({SAFE})) == [True, False, False]
    assert marked(frozenset({SAFE, UNSAFE})) == [True, True, False]
    line = render(TIERED[:1], "text", fix_tiers=frozenset({SAFE}))
    assert line.startswith("models/resnet.py:41:16: QL301 [*] tensor-operator: ")
    assert "\033[36m*\033[0m" in render(TIERED[:1], "text", colour=True, fix_tiers=frozenset({SAFE}))


def test_fixable_footer_counts_what_fix_would_fix_and_what_unsafe_fixes_would_add():
    assert fixable_line(TIERED, unsafe=False) == "[*] 1 fixable with --fix (1 more with --unsafe-fixes)."
    assert fixable_line(TIERED, unsafe=True) == "[*] 2 fixable with --fix."
    assert fixable_line(TIERED[1:], unsafe=False) == "No fixes available with --fix (1 more with --unsafe-fixes)."
    assert fixable_line(TIERED[:1] * 3, unsafe=False) == "[*] 3 fixable with --fix."
    assert fixable_line(FINDINGS, unsafe=False) == fixable_line([], unsafe=True) == ""


def test_summary_after_fixing_counts_fixed_and_remaining():
    assert summary_line(FINDINGS, fixed=2) == "Found 5 problems (2 fixed, 3 remaining)."
    assert summary_line([], fixed=1) == "Found 1 problem (1 fixed, 0 remaining)."
    assert summary_line(FINDINGS, fixed=0) == summary_line(FINDINGS)


def test_fixes_list_is_per_file_then_per_rule_most_first():
    names = {"QL201": "inplace-module", "QL505": "deprecated-namespace", "QL101": "functional-relu"}
    fixed = {"models/b.py": {"QL201": 1}, "models/a.py": {"QL201": 2, "QL505": 12, "QL101": 2}}
    assert fixes_list(fixed, names) == (
        "Fixed 17 problems:\n"
        "- models/a.py:\n    12 × QL505 (deprecated-namespace)\n     2 × QL101 (functional-relu)\n"
        "     2 × QL201 (inplace-module)\n"
        "- models/b.py:\n     1 × QL201 (inplace-module)\n")
    assert fixes_list({"m.py": {"QL201": 1}}, names, applied=False).startswith("Would fix 1 problem:\n")
    assert fixes_list({}, names) == ""


def test_statistics_mark_the_rules_fix_would_fix():
    tiers = frozenset({SAFE})
    assert render_statistics(TIERED, fix_tiers=tiers) == (
        "   2  QL301  [*] tensor-operator\n   1  QL401  [ ] module-reused\n")
    assert [row["fixable"] for row in json.loads(render_statistics(TIERED, "json", tiers))] == [True, False]


def test_diff_is_a_unified_diff_of_the_bytes():
    assert unified_diff("m.py", b"a\nb\n", b"a\nb\n") == b""
    assert unified_diff("m.py", b"a\r\nb", b"a\r\nc") == (
        b"--- m.py\n+++ m.py\n@@ -1,2 +1,2 @@\n a\r\n-b\n\\ No newline at end of file\n"
        b"+c\n\\ No newline at end of file\n")


def test_json_and_sarif_carry_the_fix_tier():
    assert [item["fix"] for item in json.loads(render(TIERED, "json"))] == [SAFE, UNSAFE, ""]
    log = json.loads(render(TIERED, "sarif"))
    assert_valid_sarif(log)
    assert [result.get("properties") for result in log["runs"][0]["results"]] == [
        {"fix": SAFE}, {"fix": UNSAFE}, None]


def test_json_is_a_list_of_finding_dicts():
    assert json.loads(render(FINDINGS, "json")) == [finding.to_dict() for finding in FINDINGS]
    assert json.loads(render([], "json")) == []


def test_github_annotations_carry_position_title_and_level():
    assert render(FINDINGS, "github").splitlines() == [
        "::error file=models/resnet.py,line=41,col=16,endLine=41,endColumn=28,title=QL301 tensor-operator::"
        "`out + identity` adds two activations: no quantized kernel after convert(); use FloatFunctional.add",
        "::warning file=models/resnet.py,line=42,col=9,endLine=42,endColumn=18,title=QL401 module-reused::"
        "self.relu is called a 2nd time (first at line 39): fuse_modules replaces only one use",
        "::error file=models/vit.py,line=7,col=5,endLine=8,endColumn=1,title=QL301 tensor-operator::"
        "x * 0.5 on an activation",
    ]


def test_github_escapes_what_the_runner_decodes():
    assert escape_data("100% sure\r\nnext: a,b") == "100%25 sure%0D%0Anext: a,b"
    assert escape_property("dir,1/a:b%.py") == "dir%2C1/a%3Ab%25.py"
    finding = Finding("we,ird:dir/m.py", 1, 1, 1, 2, "QL301", "tensor-operator", "error", "50% off\nline two")
    assert render([finding], "github") == (
        "::error file=we%2Cird%3Adir/m.py,line=1,col=1,endLine=1,endColumn=2,"
        "title=QL301 tensor-operator::50%25 off%0Aline two\n"
    )


def test_statistics_count_per_code_by_count_then_code():
    findings = FINDINGS + [FINDINGS[1]] * 2 + [FINDINGS[0]] * 10
    assert render_statistics(findings) == "  12  QL301  tensor-operator\n   3  QL401  module-reused\n"
    tie = [FINDINGS[1], FINDINGS[0]]
    assert render_statistics(tie).splitlines() == ["   1  QL301  tensor-operator", "   1  QL401  module-reused"]
    assert json.loads(render_statistics(findings, "json")) == [
        {"count": 12, "code": "QL301", "name": "tensor-operator", "fixable": False},
        {"count": 3, "code": "QL401", "name": "module-reused", "fixable": False},
    ]
    assert render_statistics([]) == ""


def test_every_format_renders_nothing_or_an_empty_document_for_no_findings():
    assert {fmt: render([], fmt) for fmt in FORMATS if fmt not in ("sarif", "junit")} == {
        "text": "", "full": "", "json": "[]\n", "github": "", "gitlab": "[]\n"}
    assert json.loads(render([], "sarif"))["runs"][0]["results"] == []
    suites = ElementTree.fromstring(render([], "junit"))
    assert (suites.get("tests"), suites.get("failures")) == ("1", "0")


# SARIF 2.1.0: the parts of the schema (sarif-schema-2.1.0.json) and the spec's consistency
# rules that our output uses, checked by hand (no network, no jsonschema dependency).
LEVELS = {"none", "note", "warning", "error"}
ALLOWED_KEYS = {  # each object's keys must be properties the schema defines for it
    "log": {"$schema", "version", "runs", "inlineExternalProperties", "properties"},
    "run": {"tool", "results", "originalUriBaseIds", "columnKind", "invocations", "artifacts", "properties"},
    "driver": {"name", "version", "semanticVersion", "informationUri", "rules", "fullName", "organization"},
    "rule": {"id", "name", "shortDescription", "fullDescription", "help", "helpUri", "defaultConfiguration",
             "properties"},
    "result": {"ruleId", "ruleIndex", "level", "message", "locations", "kind", "fingerprints",
               "partialFingerprints", "properties"},
    "physicalLocation": {"artifactLocation", "region"},
    "artifactLocation": {"uri", "uriBaseId", "index"},
    "region": {"startLine", "startColumn", "endLine", "endColumn"},
}


def assert_keys(obj: dict, kind: str, required: set[str]) -> None:
    assert isinstance(obj, dict), f"{kind}: expected an object, found {obj!r}"
    assert required <= obj.keys(), f"{kind}: missing required {required - obj.keys()}"
    assert obj.keys() <= ALLOWED_KEYS[kind], f"{kind}: properties not in the schema: {obj.keys() - ALLOWED_KEYS[kind]}"


def assert_message(obj: dict, where: str) -> None:
    assert isinstance(obj, dict) and isinstance(obj.get("text"), str) and obj["text"], f"{where}: needs a text"


def assert_valid_sarif(log: dict) -> None:
    assert_keys(log, "log", {"version", "runs"})
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    assert_keys(run, "run", {"tool"})
    assert run["columnKind"] in {"utf16CodeUnits", "unicodeCodePoints"}
    for base_id, location in run["originalUriBaseIds"].items():
        assert location["uri"].startswith("file:///") and location["uri"].endswith("/"), (base_id, location)
        assert location.keys() <= {"uri", "uriBaseId", "description", "properties"}
    driver = run["tool"]["driver"]
    assert_keys(driver, "driver", {"name"})
    assert re.match(r"^https?://", driver["informationUri"])
    rules = driver["rules"]
    assert len({rule["id"] for rule in rules}) == len(rules), "rule ids must be unique"
    for rule in rules:
        assert_keys(rule, "rule", {"id"})
        for key in ("shortDescription", "fullDescription", "help"):
            assert_message(rule[key], f"rule {rule['id']} {key}")
        assert isinstance(rule["help"].get("markdown", ""), str)
        assert rule["defaultConfiguration"]["level"] in LEVELS
        assert re.match(r"^https?://[^#\s]+#[a-z0-9-]+$", rule["helpUri"]), rule["helpUri"]  # an absolute URI
    for result in run["results"]:
        assert_keys(result, "result", {"message"})
        assert_message(result["message"], "result")
        assert result["level"] in LEVELS
        # SARIF 3.27.7: ruleIndex points at the rule whose id is ruleId.
        assert isinstance(result["ruleIndex"], int) and result["ruleIndex"] >= 0
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert all(isinstance(v, str) for v in result.get("partialFingerprints", {}).values())
        assert "primaryLocationLineHash" not in result.get("partialFingerprints", {})  # GitHub computes it
        for location in result["locations"]:
            physical = location["physicalLocation"]
            assert_keys(physical, "physicalLocation", {"artifactLocation"})
            artifact = physical["artifactLocation"]
            assert_keys(artifact, "artifactLocation", {"uri"})
            assert "\\" not in artifact["uri"] and " " not in artifact["uri"]
            assert artifact.get("uriBaseId", "%SRCROOT%") in run["originalUriBaseIds"]
            region = physical["region"]
            assert_keys(region, "region", {"startLine"})
            assert all(isinstance(value, int) and value >= 1 for value in region.values()), region
            assert (region["endLine"], region["endColumn"]) >= (region["startLine"], region["startColumn"])


def test_sarif_is_valid_and_describes_every_registered_rule():
    log = json.loads(render(FINDINGS, "sarif"))
    assert_valid_sarif(log)
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "qlint"
    registry = all_rules()
    assert [rule["id"] for rule in driver["rules"]] == list(registry)
    for descriptor in driver["rules"]:
        rule = registry[descriptor["id"]]
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["defaultConfiguration"]["level"] == rule.severity
        assert rule.bad_example().strip() in descriptor["help"]["markdown"]
        assert rule.good_example().strip() in descriptor["help"]["markdown"]


def test_sarif_results_match_the_findings():
    results = json.loads(render(FINDINGS, "sarif"))["runs"][0]["results"]
    assert [
        (r["ruleId"], r["level"], r["message"]["text"], r["locations"][0]["physicalLocation"]["region"])
        for r in results
    ] == [
        (f.code, f.severity, f.message,
         {"startLine": f.line, "startColumn": f.column, "endLine": f.end_line, "endColumn": f.end_column})
        for f in FINDINGS
    ]


def test_sarif_uris_are_relative_to_the_project_root_with_forward_slashes_or_absolute(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    monkeypatch.chdir(root / "models")
    findings = [
        Finding("my model.py", 1, 1, 1, 2, "QL301", "tensor-operator", "error", "m"),
        Finding(str(tmp_path / "abs.py"), 1, 1, 1, 2, "QL301", "tensor-operator", "error", "m"),
    ]
    log = json.loads(render(findings, "sarif", root=root))
    assert_valid_sarif(log)
    artifacts = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert artifacts == [
        {"uri": "models/my%20model.py", "uriBaseId": "%SRCROOT%"},
        {"uri": (tmp_path / "abs.py").as_uri()},
    ]
    assert log["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == root.as_uri() + "/"


def test_sarif_help_uris_point_at_stable_anchors_of_the_rules_page():
    from qlint.output.docs import RULES_URL, rules_markdown

    rules = json.loads(render([], "sarif"))["runs"][0]["tool"]["driver"]["rules"]
    page = rules_markdown()
    for rule in rules:
        url, anchor = rule["helpUri"].split("#")
        assert url == RULES_URL and anchor == rule["id"].lower()
        assert f'<a id="{anchor}"></a>' in page


def test_the_sarif_checks_reject_broken_logs():
    log = json.loads(render(FINDINGS, "sarif"))
    log["runs"][0]["results"][0]["ruleIndex"] += 1
    with pytest.raises(AssertionError):
        assert_valid_sarif(log)
    log = json.loads(render(FINDINGS, "sarif"))
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startline"] = 3
    with pytest.raises(AssertionError, match="properties not in the schema"):
        assert_valid_sarif(log)


def _sources(tmp_path, text="x = 1\n"):
    from qlint.source import Sources

    return Sources({f.path: text for f in FINDINGS})


def test_full_format_shows_the_code_line_with_a_caret_under_the_span():
    from qlint.source import Sources

    source = "\n" * 40 + "        return out + identity  # ok\n"
    finding = Finding("m.py", 41, 16, 41, 30, "QL301", "tensor-operator", "error", "adds two activations")
    out = render([finding], "full", sources=Sources({"m.py": source}))
    assert out == (
        "m.py:41:16: QL301 tensor-operator: adds two activations\n"
        "   |\n"
        "41 |         return out + identity  # ok\n"
        "   |                ^^^^^^^^^^^^^^\n"
        "\n")
    multi_line = Finding("m.py", 41, 16, 42, 3, "QL301", "tensor-operator", "error", "m")
    assert render([multi_line], "full", sources=Sources({"m.py": source})).splitlines()[3].endswith("^" * 20)


def test_colour_only_when_asked_for():
    plain = render(FINDINGS, "text")
    coloured = render(FINDINGS, "text", colour=True)
    assert "\033[" not in plain and "\033[" in coloured
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == plain


# GitLab's code quality report: the fields GitLab reads (docs.gitlab.com, "Code Quality report
# format"): description, check_name, fingerprint (unique), severity (one of five), location.path
# (relative to the repository) and location.lines.begin.
GITLAB_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def assert_valid_gitlab(issues):
    assert isinstance(issues, list)
    for issue in issues:
        assert isinstance(issue["description"], str) and issue["description"]
        assert isinstance(issue["check_name"], str) and issue["check_name"]
        assert isinstance(issue["fingerprint"], str) and issue["fingerprint"]
        assert issue["severity"] in GITLAB_SEVERITIES
        assert isinstance(issue["location"]["path"], str) and not issue["location"]["path"].startswith("/")
        assert isinstance(issue["location"]["lines"]["begin"], int) and issue["location"]["lines"]["begin"] >= 1
    fingerprints = [issue["fingerprint"] for issue in issues]
    assert len(set(fingerprints)) == len(fingerprints), "GitLab keeps one issue per fingerprint"


def test_gitlab_report_holds_what_gitlab_reads(tmp_path, monkeypatch):
    from qlint.source import Sources

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_PROJECT_DIR", raising=False)
    same_line = [Finding("a.py", 1, 1, 1, 2, "QL301", "tensor-operator", "error", "m"),
                 Finding("a.py", 3, 1, 3, 2, "QL301", "tensor-operator", "error", "m")]
    issues = json.loads(render(FINDINGS + same_line, "gitlab", root=tmp_path,
                               sources=Sources({"a.py": "y = a + b\n\ny = a + b\n"})))
    assert_valid_gitlab(issues)
    assert [(i["check_name"], i["location"]["path"], i["location"]["lines"]["begin"], i["severity"]) for i in issues][:2] == [
        ("QL301", "models/resnet.py", 41, "major"), ("QL401", "models/resnet.py", 42, "minor")]
    # Relative to the checkout GitLab names, when it names one.
    monkeypatch.setenv("CI_PROJECT_DIR", str(tmp_path.parent))
    moved = json.loads(render(FINDINGS, "gitlab", root=tmp_path))
    assert moved[0]["location"]["path"] == f"{tmp_path.name}/models/resnet.py"


def test_junit_report_has_a_failed_testcase_per_finding_in_a_suite_per_file():
    suites = ElementTree.fromstring(render(FINDINGS, "junit"))
    assert suites.tag == "testsuites" and (suites.get("tests"), suites.get("failures")) == ("3", "3")
    assert [suite.get("name") for suite in suites] == ["models/resnet.py", "models/vit.py"]
    for suite in suites:
        cases = suite.findall("testcase")
        assert suite.get("tests") == suite.get("failures") == str(len(cases))
        for case in cases:  # what JUnit readers (GitLab, Jenkins) need: name, classname, a failure
            assert case.get("name") and case.get("classname") == suite.get("name") == case.get("file")
            failure = case.find("failure")
            assert failure is not None and failure.get("message") and failure.get("type", "").startswith("QL")
    first = suites[0].find("testcase")
    assert first.get("name") == "QL301 tensor-operator at 41:16" and first.get("line") == "41"
