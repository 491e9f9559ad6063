"""The server's zone is read as the C library reads it: TZ, then /etc/localtime, then UTC."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from jeeves_site.timezone import ZONEINFO_ROOT, configured_time_zone, server_time_zone

ROOT = Path(__file__).resolve().parent.parent
TOKYO_FILE = ZONEINFO_ROOT / "Asia" / "Tokyo"

pytestmark = pytest.mark.skipif(not TOKYO_FILE.is_file(), reason="needs the system tzdata")


# Under a directory nobody creates: "/nonexistent" may exist (useradd's home for
# system users).
MISSING_LOCALTIME = Path(tempfile.gettempdir(), f"jeeves-no-zone-{uuid.uuid4().hex}", "localtime")


def zone_of(environ, localtime=MISSING_LOCALTIME):
    return server_time_zone(environ, localtime=localtime)


@pytest.mark.parametrize(
    ("tz", "name"),
    [
        ("Japan", "Japan"),
        (":Japan", "Japan"),
        ("Europe/Berlin", "Europe/Berlin"),
        (":Europe/Berlin", "Europe/Berlin"),
        ("/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"),
        (":/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"),
        ("/usr/share/zoneinfo/posix/Asia/Tokyo", "Asia/Tokyo"),
        ("UTC", "UTC"),
        ("", "UTC"),  # glibc: TZ set but empty is UTC
        (":", "UTC"),
        ("JST-9", "Etc/GMT-9"),  # a POSIX fixed offset, west-positive like Etc/GMT
        ("ABC+3", "Etc/GMT+3"),
    ],
)
def test_tz_in_the_environment_wins(tz, name):
    assert zone_of({"TZ": tz}) == server_time_zone({"TZ": tz})
    assert zone_of({"TZ": tz}).name == name
    assert zone_of({"TZ": tz}).problem == ""


def test_tz_naming_a_localtime_link_follows_it(tmp_path):
    link = tmp_path / "localtime"
    link.symlink_to(TOKYO_FILE)
    assert zone_of({"TZ": f":{link}"}).name == "Asia/Tokyo"


def test_tz_is_read_before_etc_timezone_and_localtime(tmp_path):
    link = tmp_path / "localtime"
    link.symlink_to(ZONEINFO_ROOT / "Europe" / "Berlin")
    assert zone_of({"TZ": "Japan"}, localtime=link).name == "Japan"


def test_without_tz_a_localtime_symlink_names_the_zone(tmp_path):
    link = tmp_path / "localtime"
    link.symlink_to(ZONEINFO_ROOT / "America" / "New_York")
    assert zone_of({}, localtime=link).name == "America/New_York"


def test_without_tz_a_copied_localtime_is_recognised_by_its_content(tmp_path):
    copy = tmp_path / "localtime"
    shutil.copyfile(TOKYO_FILE, copy)
    assert zone_of({}, localtime=copy).name == "Asia/Tokyo"


def test_without_tz_or_localtime_the_zone_is_utc(tmp_path):
    assert zone_of({}) == server_time_zone({}, localtime=tmp_path / "no-localtime")
    assert zone_of({}).name == "UTC" and zone_of({}).problem == ""


@pytest.mark.parametrize(
    "tz",
    [
        "Nowhere/Atlantis",
        "/tmp/not-a-zone-file",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "../etc/passwd",
        "Europe/" + "b" * 300,  # a part longer than a file name may be: OSError, not a crash
    ],
)
def test_a_tz_that_names_no_zone_is_a_problem_and_falls_back_to_utc(tz):
    zone = zone_of({"TZ": tz})
    assert zone.name == "UTC"
    assert f"TZ={tz}" in zone.problem and "JEEVES_TIME_ZONE" in zone.problem


def test_a_localtime_that_is_no_zone_file_is_a_problem(tmp_path):
    junk = tmp_path / "localtime"
    junk.write_bytes(b"not a zone")
    zone = zone_of({}, localtime=junk)
    assert zone.name == "UTC" and str(junk) in zone.problem


def test_jeeves_time_zone_overrides_tz_and_must_be_a_zone():
    assert configured_time_zone({"JEEVES_TIME_ZONE": "Europe/Berlin", "TZ": "x"}).name == (
        "Europe/Berlin"
    )
    bad = configured_time_zone({"JEEVES_TIME_ZONE": "Mars/Base"})
    assert bad.name == "UTC" and "JEEVES_TIME_ZONE=Mars/Base" in bad.problem


def manage(tmp_path: Path, command: str, tz: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "JEEVES_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "jeeves_site.settings",
        "TZ": tz,
    }
    args = ["check"] if command == "check" else ["shell", "-c", command]
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tz", "name"),
    [
        (":/etc/localtime", None),
        ("/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"),
        ("Japan", "Japan"),
    ],
)
def test_manage_py_works_with_every_form_of_tz(tmp_path, tz, name):
    expected = name or server_time_zone({}).name
    shown = manage(tmp_path, "from django.conf import settings; print(settings.TIME_ZONE)", tz)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[-1] == expected
    assert manage(tmp_path, "check", tz).returncode == 0


@pytest.mark.slow
def test_manage_py_check_says_when_the_zone_cannot_be_known(tmp_path):
    result = manage(tmp_path, "check", "Nowhere/Atlantis")
    assert result.returncode != 0
    assert "runner.E004" in result.stderr and "TZ=Nowhere/Atlantis" in result.stderr
