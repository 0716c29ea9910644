"""One build dir shared by `make run` and `make test`, in either order: `make run` configures
the unit tests as optional (SECKILL_UNIT_TESTS=AUTO, so a bare machine without cmocka
builds the service), `make test` as required (ON), and neither a first `make run` without
cmocka nor a cached BUILD_TESTING=OFF leaves `make test` without its unit tests.

cmocka is hidden by a pkg-config wrapper instead of being uninstalled; only configure runs
(ctest -N lists the tests a configure registered, nothing is compiled)."""

import glob
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Every tests/unit/**/test_*.c, and the fixture that starts and stops the test backends.
EXPECTED_TESTS = len(glob.glob(os.path.join(ROOT, "tests", "unit", "**", "test_*.c"),
                             recursive=True)) + 2

WRAPPER = """#!/bin/sh
# pkg-config without cmocka while $HIDE_CMOCKA is set: a machine where make test never ran.
if [ -n "$HIDE_CMOCKA" ]; then
    for arg in "$@"; do case $arg in *cmocka*) exit 1 ;; esac; done
fi
exec {pkg_config} "$@"
"""


@pytest.fixture
def build_dir(tmp_path):
    if shutil.which("cmake") is None or shutil.which("pkg-config") is None:
        pytest.skip("cmake or pkg-config missing (make deps)")
    wrapper = tmp_path / "pkg-config"
    wrapper.write_text(WRAPPER.format(pkg_config=shutil.which("pkg-config")))
    wrapper.chmod(0o755)
    build = tmp_path / "build"

    def configure(unit_tests, hide_cmocka, *extra):
        env = dict(os.environ, HIDE_CMOCKA="1" if hide_cmocka else "")
        args = ["cmake", "-S", ROOT, "-B", str(build), f"-DPKG_CONFIG_EXECUTABLE={wrapper}",
                f"-DSECKILL_UNIT_TESTS={unit_tests}"] + list(extra)
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)

    return build, configure


def registered_tests(build):
    listing = subprocess.run(["ctest", "-N"], cwd=build, capture_output=True, text=True,
                             timeout=60, check=True).stdout
    return int(re.search(r"^Total Tests: (\d+)$", listing, re.M).group(1))


def test_run_then_test(build_dir):
    build, configure = build_dir
    # make run on a bare machine: configures and builds the service, no unit tests.
    run = configure("AUTO", True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Unit tests not built" in run.stdout
    assert registered_tests(build) == 0
    # make test before cmocka is there: an error, not a pass on no unit tests.
    early = configure("ON", True)
    assert early.returncode != 0
    assert "cmocka" in early.stdout + early.stderr
    # make test once cmocka is installed: the not-found of the first configure is not kept.
    tested = configure("ON", False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert registered_tests(build) == EXPECTED_TESTS
    # make run again: keeps them.
    assert configure("AUTO", False).returncode == 0
    assert registered_tests(build) == EXPECTED_TESTS


def test_test_then_run(build_dir):
    build, configure = build_dir
    assert configure("ON", False).returncode == 0
    assert registered_tests(build) == EXPECTED_TESTS
    assert configure("AUTO", False).returncode == 0
    assert registered_tests(build) == EXPECTED_TESTS
    assert configure("ON", False).returncode == 0
    assert registered_tests(build) == EXPECTED_TESTS


def test_cached_build_testing_off_does_not_drop_unit_tests(build_dir):
    build, configure = build_dir
    assert configure("AUTO", False, "-DBUILD_TESTING=OFF").returncode == 0
    assert registered_tests(build) == EXPECTED_TESTS


def test_unknown_value_is_refused(build_dir):
    _, configure = build_dir
    result = configure("yes", False)
    assert result.returncode != 0
    assert "SECKILL_UNIT_TESTS is 'yes': AUTO, ON or OFF" in result.stderr


def make_dry_run(*targets):
    # -n prints the recipes without running them (sub-makes too), so nothing is installed.
    # Without the variables of a make this runs under (make test's own command line).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-n", "--no-print-directory", "-C", ROOT] + list(targets),
                          capture_output=True, text=True, timeout=60, check=True,
                          env=env).stdout


def test_make_run_configures_unit_tests_optional():
    out = make_dry_run("run")
    assert "cmake --preset release -DSECKILL_UNIT_TESTS=AUTO" in out
    assert "-DSECKILL_UNIT_TESTS=ON" not in out


def test_make_test_requires_unit_tests_and_runs_the_fresh_root_stage_first():
    out = make_dry_run("test")
    lines = out.splitlines()

    def first(prefix):
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    release = first("cmake --preset release -DSECKILL_UNIT_TESTS=ON ")
    first("cmake --preset asan -DSECKILL_UNIT_TESTS=ON ")
    first("cmake --preset tsan -DSECKILL_UNIT_TESTS=ON ")
    assert "-DSECKILL_UNIT_TESTS=AUTO" not in out
    ctests = [line for line in lines if re.search(r"\bctest\b", line)]
    assert len(ctests) == 3 and all("--no-tests=error" in line for line in ctests), ctests
    assert first("tests/fresh/run") < release


def test_makefile_installs_what_run_and_bench_need():
    makefile = open(os.path.join(ROOT, "Makefile")).read()

    def packages(name):
        match = re.search(rf"^{name} := ((?:.*\\\n)*.*)$", makefile, re.M)
        return set(match.group(1).replace("\\\n", " ").split())

    build, test, bench = (packages(n) for n in ("BUILD_PACKAGES", "TEST_PACKAGES",
                                                 "BENCH_PACKAGES"))
    # README's Storage section tells a make run user to run sqlite3.
    assert "sqlite3" in build
    assert "debootstrap" in test
    # Each tool bench/run checks for before it starts comes from make bench's packages.
    assert {"wrk", "nginx-light", "sqlite3", "curl", "python3", "python3-requests",
            "python3-matplotlib", "time", "procps"} <= bench
