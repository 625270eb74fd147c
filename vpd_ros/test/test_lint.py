# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Lint checks as ordinary tests: ruff, pep257 docstrings, license headers, package manifests.

Each check names every offending file in its failure message, so one run lists all the work.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / 'vpd_ros'
INTERFACES_DIR = REPO / 'vpd_ros_interfaces'
HEADER = ('# Copyright 2026 The vpd_ros Authors', '# SPDX-License-Identifier: Apache-2.0')
SKIPPED_DIRS = {'__pycache__', 'build', 'install', 'log', '.pytest_cache'}


def _python_files() -> list[Path]:
    """Return every tracked or untracked, not ignored, .py file under vpd_ros/."""
    if shutil.which('git') and (REPO / '.git').exists():
        listed = subprocess.run(
            ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z', '--',
             'vpd_ros'],
            cwd=REPO, check=True, capture_output=True, text=True).stdout.split('\0')
        return sorted(REPO / name for name in listed
                      if name.endswith('.py') and (REPO / name).is_file())
    return sorted(path for path in PACKAGE_DIR.rglob('*.py')
                  if not SKIPPED_DIRS.intersection(path.relative_to(PACKAGE_DIR).parts)
                  and not any(part.endswith('.egg-info') for part in path.parts))


def _run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a Python-module tool of this venv from the repository root."""
    return subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True,
                          text=True, timeout=240, check=False)


def test_python_files_found() -> None:
    """The file listing sees this file and the packaging script (guards against empty checks)."""
    files = _python_files()
    assert Path(__file__).resolve() in files
    assert PACKAGE_DIR / 'setup.py' in files


def test_ruff() -> None:
    """Ruff passes over every Python file of vpd_ros/ (line length 100, Python 3.10 syntax)."""
    result = _run_tool('ruff', 'check', '--no-cache', '--output-format', 'concise',
                       '--line-length', '100', '--target-version', 'py310', 'vpd_ros')
    assert result.returncode == 0, result.stdout + result.stderr


def test_pydocstyle() -> None:
    """Docstrings of the library (vpd_ros/vpd_ros) follow pep257 (D105/D107 ignored)."""
    result = _run_tool('pydocstyle', '--convention=pep257', '--add-ignore=D105,D107',
                       'vpd_ros/vpd_ros')
    assert result.returncode == 0, result.stdout + result.stderr


def _header_problem(path: Path) -> str | None:
    """Return what is wrong with ``path``'s license header and module docstring, or None."""
    text = path.read_text(encoding='utf-8')
    lines = text.splitlines()
    if lines and lines[0].startswith('#!'):
        lines = lines[1:]
    if tuple(lines[:2]) != HEADER:
        return 'does not start with the copyright and SPDX lines'
    try:
        module = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        return f'does not parse: {error}'
    if ast.get_docstring(module) is None:
        return 'has no module docstring after the header'
    return None


def test_copyright_headers() -> None:
    """Every .py under vpd_ros/ starts with the copyright and SPDX lines and a docstring."""
    problems = [f'{path.relative_to(REPO)}: {problem}' for path in _python_files()
                if (problem := _header_problem(path)) is not None]
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('package_dir, build_type', [
    (PACKAGE_DIR, 'ament_python'),
    (INTERFACES_DIR, 'ament_cmake'),
])
def test_package_xml(package_dir: Path, build_type: str) -> None:
    """package.xml is well-formed format 3, named after its folder, with the right build type."""
    root = ET.parse(package_dir / 'package.xml').getroot()
    assert root.tag == 'package'
    assert root.get('format') == '3'
    assert root.findtext('name') == package_dir.name
    for required in ('version', 'description', 'maintainer', 'license'):
        assert (root.findtext(required) or '').strip(), f'missing <{required}>'
    assert root.findtext('export/build_type') == build_type
    depends = [element.text for element in root if element.tag.endswith('depend')]
    assert len(depends) == len(set(depends)), f'duplicate dependencies: {depends}'


def test_interface_package_is_a_rosidl_package() -> None:
    """The interfaces package joins rosidl_interface_packages and depends on the runtime."""
    root = ET.parse(INTERFACES_DIR / 'package.xml').getroot()
    assert root.findtext('member_of_group') == 'rosidl_interface_packages'
    assert 'rosidl_default_generators' in [e.text for e in root.findall('buildtool_depend')]
    assert 'rosidl_default_runtime' in [e.text for e in root.findall('exec_depend')]


def _uncommented_fields(path: Path) -> list[str]:
    """Return the field lines of a .msg/.srv file that have no comment on or just above them."""
    missing = []
    previous = ''
    for line in path.read_text(encoding='utf-8').splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        is_field = not stripped.startswith('#') and stripped != '---'
        if is_field and '#' not in stripped and not previous.startswith('#'):
            missing.append(stripped)
        previous = stripped
    return missing


def test_interface_fields_are_documented() -> None:
    """Every field of every .msg/.srv has a comment (unit and frame) on or above its line."""
    files = sorted(INTERFACES_DIR.glob('msg/*.msg')) + sorted(INTERFACES_DIR.glob('srv/*.srv'))
    assert files
    problems = [f'{path.relative_to(REPO)}: {field}'
                for path in files for field in _uncommented_fields(path)]
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('version', ['3.10', '3.12'])
def test_sources_compile_on_other_supported_pythons(version: str, tmp_path: Path) -> None:
    """Humble runs Python 3.10, Jazzy/Kilted 3.12: every source file must at least compile there."""
    exe = shutil.which(f'python{version}')
    if exe is None:
        pytest.skip(f'python{version} is not installed here')
    files = [str(p) for p in _python_files()]
    code = ('import py_compile, sys\n'
            'for f in sys.argv[2:]:\n'
            '    py_compile.compile(f, cfile=sys.argv[1], doraise=True)\n')
    result = subprocess.run([exe, '-c', code, str(tmp_path / 'out.pyc'), *files],
                            capture_output=True, text=True, timeout=240, check=False,
                            env={**os.environ, 'PYENV_VERSION': version})
    assert result.returncode == 0, result.stdout + result.stderr
