"""A built wheel, installed (not editable) into a fresh virtual environment outside the
checkout, serves its pages: templates, static files and migrations travel in the wheel."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import requests

from .servers import ROOT, free_port, wait_for

# What a build of the checkout reads; the rest (tests, docs, local state) stays behind.
NOT_BUILT = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                   "instance", "tests", "bench", "docs", ".*cache", "*.db")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A clean copy of the checkout (no stale build/ of an earlier build) and its wheel."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=NOT_BUILT)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(folder), str(source)],
                   check=True, capture_output=True, cwd=folder)
    return source, next(folder.glob("correlated-*.whl"))


@pytest.fixture(scope="module")
def wheel(built) -> Path:
    return built[1]


def packaged_files(source: Path) -> set[str]:
    """Where the wheel must hold each file of the package, the templates and static files."""
    files = set()
    for folder in ("correlated", "templates", "static"):
        prefix = "correlated" if folder == "correlated" else f"correlated/{folder}"
        files |= {f"{prefix}/{path.relative_to(source / folder).as_posix()}"
                  for path in (source / folder).rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts}
    return files


def test_the_wheel_carries_every_module_and_file(built):
    source, wheel = built
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(packaged_files(source) - names)
    assert missing == [], f"not in the wheel (see setup.cfg packages, package_data): {missing}"
    assert {"correlated/templates/auth/login.html", "correlated/static/vendor/plotly.min.js",
            "correlated/migrations/env.py"} <= names
    assert any(n.startswith("correlated/migrations/versions/0001") for n in names)


@pytest.fixture
def installed(wheel, tmp_path) -> Path:
    """A virtual environment with the wheel installed; its dependencies come from the test
    environment's site-packages (a path entry, so nothing is downloaded)."""
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True, cwd=tmp_path)
    # After the install, so that pip sees no other correlated. A plain path line: the test
    # environment's own .pth files (its editable install of the checkout) are not run.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.stdout.strip()) / "test-dependencies.pth").write_text("\n".join(sorted(paths)))
    return env


def clean_environ(tmp_path: Path) -> dict[str, str]:
    """This process's environment without anything that points imports at the checkout."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
               and not k.startswith("CORRELATED_")}
    # HOME: gunicorn's control socket lives there; parallel runs must not share one.
    return {**environ, "HOME": str(tmp_path)}


def test_an_installed_wheel_serves_pages(installed, tmp_path):
    environ = clean_environ(tmp_path)
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import correlated; print(correlated.__file__)"], cwd=tmp_path,
                           env=environ, check=True, capture_output=True, text=True).stdout
    assert Path(where.strip()).is_relative_to(installed), where
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(installed / "bin" / "correlated"), "serve", "--port",
                                   str(port), "--workers", "1"], cwd=tmp_path, env=environ,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(f"{base}/healthz", 60, server), log.read_text()[-3000:]
        browser = requests.Session()
        login = browser.get(f"{base}/login", timeout=10)
        assert login.status_code == 200 and "csrf_token" in login.text
        css = re.findall(r'<link rel="stylesheet" href="([^"]+)"', login.text)
        assert css and all(_static(browser, base, href) for href in css)
        overview = _sign_in(browser, base, login.text, log.read_text())
        scripts = re.findall(r'<script src="([^"]+)"', overview.text)
        plotly = [s for s in scripts if "plotly" in s]
        assert plotly and all(_static(browser, base, src) for src in scripts)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def _static(browser: requests.Session, base: str, href: str) -> bool:
    response = browser.get(base + href, timeout=10)
    return href.startswith("/static/") and response.status_code == 200 and response.content != b""


def _sign_in(browser: requests.Session, base: str, login_page: str,
             first_run: str) -> requests.Response:
    """Sign in with the credentials the first run printed; the overview page."""
    email = re.search(r"Login:\s+(\S+)", first_run).group(1)
    password = re.search(r"Password:\s+(\S+)", first_run).group(1)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page).group(1)
    response = browser.post(f"{base}/login", data={"email": email, "password": password,
                                                   "csrf_token": token}, timeout=30)
    assert response.status_code == 200 and response.url == f"{base}/", response.text[-2000:]
    return response
