"""Packaging conventions: licence, citation, dependencies, Python versions, package data."""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _imported_top_level_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_never_imports_scikit_learn():
    users = [
        p.relative_to(REPO)
        for p in (REPO / "vadkit").rglob("*.py")
        if "sklearn" in _imported_top_level_modules(p)
    ]
    assert not users, f"vadkit imports sklearn in {users}; it is a test-only dependency"
    assert not any(d.startswith("scikit-learn") for d in PROJECT["dependencies"])
    assert any(d.startswith("scikit-learn") for d in PROJECT["optional-dependencies"]["test"])


def test_license_is_the_full_apache_2_text_and_declared():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    # the canonical https://www.apache.org/licenses/LICENSE-2.0.txt
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    )
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]


def test_requires_python_covers_the_interpreter_ci_runs():
    spec = PROJECT["requires-python"]
    assert spec.startswith(">=")
    lowest = tuple(int(x) for x in spec[2:].split("."))
    assert sys.version_info[:2] >= lowest
    classifiers = PROJECT["classifiers"]
    listed = {c.rsplit(":: ", 1)[1] for c in classifiers if c.startswith("Programming Language")}
    assert f"{lowest[0]}.{lowest[1]}" in listed
    assert "License :: OSI Approved :: Apache Software License" not in classifiers  # PEP 639
    assert {"Homepage", "Source", "Issues"} <= set(PROJECT["urls"])


def test_citation_cites_vadkit_and_the_three_papers():
    cff = (REPO / "CITATION.cff").read_text()
    assert cff.startswith("#") and "\ncff-version: 1.2.0\n" in cff
    assert '\ntitle: "vadkit' in cff and "\nlicense: Apache-2.0\n" in cff
    version = ast.literal_eval(
        next(
            ln.split("=", 1)[1].strip()
            for ln in (REPO / "vadkit" / "__init__.py").read_text().splitlines()
            if ln.startswith("__version__")
        )
    )
    assert f"\nversion: {version}\n" in cff
    refs = cff.split("\nreferences:\n", 1)[1]
    for title, first_author in (
        ("Robust Temporal Feature Magnitude Learning", "Tian"),
        ("MGFN: Magnitude-Contrastive Glance-and-Focus Network", "Chen"),
        ("Multi-Scale Integrated Perception for Video Anomaly Detection", "Ye"),
    ):
        entry = refs.split(title, 1)[1]
        assert entry.split("family-names: ", 1)[1].startswith(first_author), title
    assert "\t" not in cff


DESIGN_SECTIONS = [
    "Features",
    "RTFM",
    "MSIP",
    "MGFN",
    "Losses",
    "Training",
    "Scoring",
    "Evaluation",
    "Formats",
]


def test_design_notes_have_the_sections_code_comments_point_at():
    import re

    text = (REPO / "docs" / "DESIGN.md").read_text()
    sections = [ln[3:].strip() for ln in text.splitlines() if ln.startswith("## ")]
    assert sections == DESIGN_SECTIONS
    pointer = re.compile(r"DESIGN\.md[\s,:(§\"'`-]*(?:section\s+)?[\"'`]?([A-Z][A-Za-z-]+)")
    for path in list((REPO / "vadkit").rglob("*.py")) + list((REPO / "scripts").glob("*.py")):
        for m in pointer.finditer(path.read_text()):
            assert m.group(1) in DESIGN_SECTIONS, f"{path}: points at DESIGN.md {m.group(1)!r}"
