"""The real unit under a real systemd: a container booted with systemd-nspawn, digestd installed
as the README's "Run as a service" says, driven with systemctl and the README's admin line.

One boot serves every test here. Inside it, digestd-check.service (a oneshot ordered after
multi-user.target) runs CHECKER: systemctl, and the README's admin line (systemd-run as the
service's user) taken from the README itself. Each step's output and exit status land in the
bound results directory, then the container powers off and the tests read them.

The container is a directory with its own /etc and empty /var, /tmp and /run; /usr is the
host's, read-only. So inside, Python is Debian's /usr/bin/python3 (the interpreter running
these tests may live in /root or /home, which the unit's ProtectHome=yes hides). The venv at
/opt/digestd is made by that Python inside the container from a wheel of this checkout, and
kept between runs under CACHE, keyed by the requirements: a rerun that changed only digestd
reinstalls just the wheel.

Skips, with the reason, where this cannot run: not root, no systemd-nspawn (Debian:
systemd-container), no /usr/bin/python3 with venv, no network for pip and no cached venv,
or a container that does not boot (some CI sandboxes forbid it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "digestd.service"
NSPAWN = shutil.which("systemd-nspawn")
SYSTEM_PYTHON = Path("/usr/bin/python3")
SYSTEMD = Path("/usr/lib/systemd/systemd")
CACHE = Path(os.environ.get("DIGESTD_NSPAWN_CACHE", "/var/tmp/digestd-nspawn-venv"))
BOOT_TIMEOUT = 120.0  # boot, every step below, poweroff
PREPARE_TIMEOUT = 600.0  # a venv from PyPI on a slow link
STOP_GRACE = 15.0  # after a timeout: nspawn's SIGTERM asks the container to power off
MACHINE = f"digestd-test-{os.getpid()}"  # unique: other test runs may boot containers at once
WATCHDOG_S = 4  # WatchdogSec= inside: digestd pings every 2 s, systemd kills after 4 s without
PASSED_ENV = {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "HTTPS_PROXY",
              "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"}


def _cannot_run() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "systemd-nspawn needs root"
    if not NSPAWN:
        return "systemd-nspawn is not installed (Debian: systemd-container)"
    if not SYSTEMD.is_file():
        return f"no systemd to boot at {SYSTEMD}"
    if not SYSTEM_PYTHON.is_file():
        return f"no {SYSTEM_PYTHON} in /usr for the container's venv"
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import venv, ensurepip"],
                           capture_output=True, check=False)
    if probe.returncode:
        return f"{SYSTEM_PYTHON} cannot make a venv with pip (Debian: python3-venv)"
    return None


CANNOT_RUN = _cannot_run()
pytestmark = pytest.mark.skipif(bool(CANNOT_RUN), reason=CANNOT_RUN or "")


# -- the container --------------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in children.read_text().split()]
                found += kids
                todo += kids
    return found


def _run_nspawn(args: list[str], timeout: float, log: Path) -> int | None:
    """systemd-nspawn ARGS, its output into LOG; its exit status, or None after a timeout.
    Whatever happens, nothing of the container is left running: on a timeout nspawn's SIGTERM
    asks it to power off, then every process under nspawn gets SIGKILL (the container's init
    among them, which takes its whole PID namespace along). Its mounts live in its own mount
    namespace and go with it."""
    with log.open("ab") as out:
        proc = subprocess.Popen([NSPAWN, *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                for pid in [*_descendants(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its session: start_new_session
                proc.wait()
        # killed, nspawn leaves its (empty) mount-propagation directory behind
        with contextlib.suppress(OSError):
            (Path("/run/systemd/nspawn/propagate") / MACHINE).rmdir()


def _make_root(root: Path) -> None:
    """The smallest tree systemd boots in: its own /etc, the host's /usr (bound read-only)."""
    for d in ("etc", "usr", "var", "tmp", "run", "opt/digestd", "results"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        (root / link).symlink_to(f"usr/{link}")
    for name in ("passwd", "group", "os-release"):
        src = Path("/etc") / name
        (root / "etc" / name).write_bytes(src.read_bytes() if src.exists()
                                          else Path("/usr/lib/os-release").read_bytes())
    (root / "etc" / "hostname").write_text("digestd-test\n")
    (root / "etc" / "machine-id").write_text("")  # systemd makes a transient one at boot


def _nspawn_args(root: Path, venv: Path, *extra: str) -> list[str]:
    return ["-D", str(root), "-M", MACHINE, "--register=no",
            "--keep-unit", "-q", "--bind-ro=/usr", f"--bind={venv}:/opt/digestd", *extra]


# -- the venv: /usr/bin/python3 -m venv /opt/digestd, then pip install the wheel ----------------

def _wheel_digest(wheel: Path) -> str:
    """A hash of what the wheel holds (its zip timestamps vary between builds)."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            h.update(name.encode() + b"\0" + z.read(name) + b"\0")
    return h.hexdigest()


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return sorted(x for x in lines if x.startswith(("Requires-Dist:", "Requires-Python:")))


def _wheel(work: Path) -> Path:
    """A wheel of this checkout, built from a clean copy: setuptools builds in the source
    tree, and a stale build/ there would put files into the wheel that are gone."""
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "digestd-demo"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(work / "wheels"), str(src)], capture_output=True, text=True,
                           timeout=300, check=False)
    if built.returncode:
        pytest.skip(f"cannot build a wheel of the checkout: {built.stderr.strip()[-500:]}")
    return next((work / "wheels").glob("digestd-*.whl"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Iterator[Path]:
    """/opt/digestd as the README's install makes it, cached in CACHE/KEY between runs.
    The cache stays locked until the boot is over: another run would change the venv."""
    work = tmp_path_factory.mktemp("nspawn-venv")
    wheel = _wheel(work)
    python = subprocess.run([str(SYSTEM_PYTHON), "-VV"], capture_output=True, text=True,
                            check=True).stdout
    key = hashlib.sha256("\n".join([python, *_requirements(wheel)]).encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    cached, stamp = CACHE / key, CACHE / f"{key}.wheel"
    digest = _wheel_digest(wheel)
    root, log = work / "root", work / "nspawn.log"
    _make_root(root)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _run_nspawn(_nspawn_args(root, work, "--pipe", "/bin/true"), 60, log) != 0:
            pytest.skip("systemd-nspawn cannot run here: " + log.read_text(errors="replace"))
        for old in CACHE.iterdir():  # venvs of other requirements
            if re.fullmatch(r"[0-9a-f]{16}(\.wheel)?", old.name) and old not in (cached, stamp):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        fresh = not (cached / "bin" / "digestd").exists()
        if fresh or not stamp.exists() or stamp.read_text() != digest:
            if fresh:  # as the README says
                shutil.rmtree(cached, ignore_errors=True)
                cached.mkdir()
                install = (f"{SYSTEM_PYTHON} -m venv /opt/digestd && /opt/digestd/bin/pip "
                           "install -q --disable-pip-version-check /wheels/" + wheel.name)
            else:  # the same requirements: only digestd itself changed
                install = ("/opt/digestd/bin/pip install -q --disable-pip-version-check "
                           "--no-deps --force-reinstall /wheels/" + wheel.name)
            stamp.unlink(missing_ok=True)
            # the root's /etc is its own: pip needs the host's CA certificates and resolver
            shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
            # and where the host's pip is pointed at an index or a proxy, so is this one
            passed = [f"--setenv={k}={v}" for k, v in os.environ.items() if k in PASSED_ENV]
            code = _run_nspawn(_nspawn_args(root, cached, "--bind-ro=/etc/ssl", *passed,
                                            f"--bind-ro={wheel.parent}:/wheels", "--pipe",
                                            "/bin/sh", "-c", install),
                               PREPARE_TIMEOUT, log)
            if code != 0:
                shutil.rmtree(cached, ignore_errors=True)
                text = log.read_text(errors="replace")
                if code is not None and re.search(r"(?i)connection|resolution|"
                                                  r"no matching distribution", text):
                    pytest.skip("no network for pip and no cached venv: " + text[-300:])
                pytest.fail(f"installing digestd into the container's venv failed ({code}): "
                            + text[-3000:])
            stamp.write_text(digest)
        yield cached


# -- what runs inside: the config, the unit, the checker ------------------------------------------

CONFIG = """\
[store]
path = "/var/lib/digestd/digestd.sqlite3"

[delivery]
from = "Paper digest <digest@example.org>"

[smtp]
host = "127.0.0.1"
port = 2525
security = "none"

[web]
listen = "127.0.0.1:8080"
base_url = "http://127.0.0.1:8080"

[digest]
check_every = "3s"

[[sources]]
name = "sample"
kind = "sample"
"""
# a reload that must apply at once: a second source
CONFIG_RELOAD = CONFIG + '\n[[sources]]\nname = "sample-2"\nkind = "sample"\n'
CONFIG_BROKEN = CONFIG_RELOAD.replace("port = 2525", 'port = "abc"')
BROKEN_LINE = CONFIG_BROKEN.splitlines().index('port = "abc"') + 1

# the SMTP server inside: keeps each message in /results/mail (no aiosmtpd in the
# container's venv, and the stdlib's smtpd is gone from Python 3.12)
SINK = r"""
import itertools, pathlib, socketserver

out = pathlib.Path("/results/mail")
out.mkdir(exist_ok=True)
numbers = itertools.count(1)


class Session(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self):
        self.reply("220 sink")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.reply("250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8")
            elif verb == b"DATA":
                self.reply("354 go ahead")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                (out / f"{next(numbers)}.eml").write_bytes(b"".join(lines))
                self.reply("250 kept")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", 2525), Session).serve_forever()
"""

CHECKER_UNIT = """\
[Unit]
Description=drive digestd through systemctl, then power off
After=multi-user.target
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStart=/bin/bash /etc/digestd-check/check.sh
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

CHECKER = r"""
R=/results
C=/etc/digestd
touch "$R/booted"
step() {  # step NAME COMMAND...: keep its output and exit status
    local name=$1; shift
    echo "step $name: $*"
    timeout 60 "$@" >"$R/$name.out" 2>&1
    echo $? >"$R/$name.rc"
}
wait_log() {  # wait_log NAME COUNT PATTERN: up to 20 s for COUNT digestd journal lines
    local n
    for _ in $(seq 100); do
        n=$(journalctl -q -u digestd -o cat --no-pager | grep -cE "$3")
        [ "$n" -ge "$2" ] && break
        sleep 0.2
    done
    journalctl -q -u digestd -o cat --no-pager | grep -E "$3" >"$R/$1.out"
    [ "$n" -ge "$2" ]; echo $? >"$R/$1.rc"
}

# the admin line before the service ever ran: a subscriber, the sample papers, and a digest
# built for them whose delivery fails (no SMTP server yet) and waits in the outbox
step admin_add "${ADMIN[@]}" /usr/local/bin/digestd subscribers add reader@example.org \
    --rule learning
step admin_poll "${ADMIN[@]}" /usr/local/bin/digestd poll
step admin_send "${ADMIN[@]}" /usr/local/bin/digestd send --now
step admin_credential "${ADMIN[@]}" /bin/sh -c 'cat "$CREDENTIALS_DIRECTORY/smtp-password"'

systemd-run --unit=smtp-sink -q /usr/bin/python3 /etc/digestd-check/sink.py
step start systemctl enable --now digestd  # as the README; enabled, its state stays loaded
step active systemctl is-active digestd
wait_log ready 1 'event=ready'
step web python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:8080/healthz").status)'
step status systemctl status --no-pager --full digestd
step pid_started systemctl show -P MainPID digestd
step watchdog_started systemctl show -P WatchdogTimestampMonotonic digestd

# due now: the daemon's next round (a build child process, then the sender) sends it
step admin_retry "${ADMIN[@]}" /usr/local/bin/digestd outbox retry --no-send
wait_log delivered 1 'event=delivered sent=1'

cp $C/reload.toml $C/config.toml
step reload systemctl reload digestd
wait_log reloaded 1 'event=reloaded'
step status_reloaded systemctl status --no-pager --full digestd

cp $C/broken.toml $C/config.toml
step reload_broken systemctl reload digestd
step status_broken systemctl status --no-pager --full digestd
step active_broken systemctl is-active digestd
step pid_broken systemctl show -P MainPID digestd

cp $C/reload.toml $C/config.toml
step reload_restored systemctl reload digestd
wait_log reloaded_again 2 'event=reloaded'
step active_restored systemctl is-active digestd

sleep 3  # longer than the 2 s between pings: the steps above may all take less
step watchdog_pinged systemctl show -P WatchdogTimestampMonotonic digestd
step stop systemctl stop digestd
step stopped systemctl show digestd \
    -p Result,ExecMainCode,ExecMainStatus,NRestarts,ActiveState,ExecMainPID

# a broken config at start: exit 2, and RestartPreventExitStatus=2 keeps it down
cp $C/broken.toml $C/config.toml
step start_broken systemctl start digestd
step failed systemctl show digestd -p ActiveState,SubState,Result,ExecMainStatus
step status_failed systemctl status --no-pager --full digestd
cp $C/reload.toml $C/config.toml
systemctl reset-failed digestd

step admin_outbox "${ADMIN[@]}" /usr/local/bin/digestd outbox
step state_dir sh -c 'ls -ln /var/lib/private/digestd; stat -c "%a %u" /var/lib/private/digestd'
journalctl -u digestd --no-pager >"$R/journal.txt" 2>&1
touch "$R/done"
"""


def readme_admin_line() -> list[str]:
    """The README's `systemd-run ...` line for admin commands, up to the program it runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^systemd-run (?:.*\\\n)*.*$", readme, re.MULTILINE)
    assert found, "the README's admin line (systemd-run ...) is missing"
    words = shlex.split(found[0].replace("\\\n", " "))
    program = words.index("/usr/local/bin/digestd")
    return words[:program]


def _install(root: Path, results: Path) -> Path:
    """Install as the README says: the unit, /etc/digestd, the symlink in /usr/local/bin."""
    etc = root / "etc"
    (etc / "digestd").mkdir(mode=0o755)
    for name, text in (("config.toml", CONFIG), ("reload.toml", CONFIG_RELOAD),
                       ("broken.toml", CONFIG_BROKEN)):
        (etc / "digestd" / name).write_text(text)
    password = etc / "digestd" / "smtp-password"
    password.write_text("not-a-real-password\n")
    password.chmod(0o600)
    system = etc / "systemd" / "system"
    (system / "multi-user.target.wants").mkdir(parents=True)
    shutil.copy(UNIT, system / "digestd.service")
    # the unit's 60 s would see no ping while the checks run: a shorter one, as a drop-in
    (system / "digestd.service.d").mkdir()
    (system / "digestd.service.d" / "watchdog.conf").write_text(
        f"[Service]\nWatchdogSec={WATCHDOG_S}s\n")
    (system / "digestd-check.service").write_text(CHECKER_UNIT)
    (system / "multi-user.target.wants" / "digestd-check.service").symlink_to(
        "../digestd-check.service")
    (etc / "digestd-check").mkdir()
    admin = " ".join(shlex.quote(w) for w in readme_admin_line())
    (etc / "digestd-check" / "sink.py").write_text(SINK)
    (etc / "digestd-check" / "check.sh").write_text(
        "#!/bin/bash\nADMIN=(" + admin + ")\n" + textwrap.dedent(CHECKER))
    # /usr is the host's and read-only: /usr/local/bin is a directory of its own
    local_bin = results.parent / "local-bin"
    local_bin.mkdir()
    (local_bin / "digestd").symlink_to("/opt/digestd/bin/digestd")
    return local_bin


@pytest.fixture(scope="module")
def booted(venv, tmp_path_factory) -> dict[str, tuple[int | None, str]]:
    """Boot, let the checker run, power off; {step: (exit status, output)}."""
    work = tmp_path_factory.mktemp("nspawn-boot")
    root, results, console = work / "root", work / "results", work / "console.log"
    _make_root(root)
    results.mkdir()
    local_bin = _install(root, results)
    code = _run_nspawn(_nspawn_args(root, venv, f"--bind-ro={local_bin}:/usr/local/bin",
                                    f"--bind={results}:/results", "--private-network",
                                    "--boot"),
                       BOOT_TIMEOUT, console)
    log = console.read_text(errors="replace")
    if not (results / "booted").exists():  # the checker never ran: systemd did not boot
        pytest.skip(f"the container did not boot here (systemd-nspawn exit {code}): "
                    + log[-1500:])
    assert code is not None, f"no poweroff within {BOOT_TIMEOUT:g} s:\n{log[-4000:]}"
    assert (results / "done").exists(), "the checker did not finish:\n" + log[-4000:]
    steps = {}
    for rc in results.glob("*.rc"):
        out = rc.with_suffix(".out")
        steps[rc.stem] = (int(rc.read_text() or -1), out.read_text(errors="replace")
                          if out.exists() else "")
    steps["journal"] = (0, (results / "journal.txt").read_text(errors="replace"))
    steps["mail"] = (0, "".join(p.read_text(errors="replace")
                                for p in sorted((results / "mail").glob("*.eml"))))
    return steps


def _ok(steps, name: str) -> str:
    code, out = steps[name]
    journal = steps["journal"][1][-4000:]
    assert code == 0, f"{name} failed ({code}):\n{out}\n-- journal --\n{journal}"
    return out


# -- the tests ----------------------------------------------------------------------------------

def test_start_waits_for_ready_and_the_web_app_answers(booted):
    _ok(booted, "start")  # Type=notify: returns once READY=1 came
    assert _ok(booted, "active").strip() == "active"
    ready = _ok(booted, "ready")
    assert "event=ready" in ready and f"watchdog_s={WATCHDOG_S / 2:g}" in ready, ready
    assert _ok(booted, "web").strip() == "200"


def test_the_watchdog_gets_its_pings(booted):
    """systemd notes each WATCHDOG=1 it accepts (NotifyAccess=main: from the main process)."""
    started, later = int(_ok(booted, "watchdog_started")), int(_ok(booted, "watchdog_pinged"))
    assert 0 < started < later
    assert "watchdog timeout" not in booted["journal"][1].lower()


def test_status_shows_the_daemons_status_line(booted):
    status = _ok(booted, "status")
    assert re.search(r'Status: "last poll .* sources failing\); outbox \d+ queued', status), status


def test_the_daemon_builds_and_sends_inside_the_sandbox(booted):
    """A digest the admin line built while no SMTP server was up, made due again: the
    daemon's round (its build child process, the sender) delivers it through SMTP."""
    code, out = booted["admin_send"]
    assert code == 1 and "built 1 digest " in out and "1 deferred" in out, out  # no server
    assert "1 message due now" in _ok(booted, "admin_retry")
    assert "event=delivered sent=1" in _ok(booted, "delivered")
    mail = booted["mail"][1]
    assert "To: reader@example.org" in mail and "List-Unsubscribe: " in mail, mail[:2000]
    outbox = _ok(booted, "admin_outbox")
    assert re.search(r"^0 waiting, 0 failed.*, 1 sent in all \(--sent lists the last\)$", outbox,
                     re.MULTILINE), outbox


def test_reload_applies_a_good_config(booted):
    _ok(booted, "reload")
    assert "event=reloaded" in _ok(booted, "reloaded") and "sources=2" in booted["reloaded"][1]
    assert "of 2 sources failing" in _ok(booted, "status_reloaded")


def test_a_broken_config_fails_the_reload_visibly_and_the_daemon_keeps_running(booted):
    code, out = booted["reload_broken"]
    assert code != 0, out
    error = f'/etc/digestd/config.toml:{BROKEN_LINE}: smtp.port must be an integer, got "abc"'
    assert error in booted["status_broken"][1], booted["status_broken"][1]
    assert error in booted["journal"][1]
    assert _ok(booted, "active_broken").strip() == "active"
    assert _ok(booted, "pid_broken") == _ok(booted, "pid_started")
    # fixed again, it reloads again
    _ok(booted, "reload_restored")
    assert _ok(booted, "reloaded_again").count("event=reloaded") == 2
    assert _ok(booted, "active_restored").strip() == "active"


def test_stop_is_clean(booted):
    _ok(booted, "stop")
    shown = dict(line.split("=", 1) for line in _ok(booted, "stopped").split())
    assert shown.pop("ExecMainPID") == _ok(booted, "pid_started").strip()  # its own exit
    assert shown == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0",
                     "NRestarts": "0", "ActiveState": "inactive"}, shown  # 1: CLD_EXITED
    journal = booted["journal"][1]
    assert "event=stopped" in journal
    assert "Traceback" not in journal and "level=error" not in journal, journal[-4000:]


def test_a_broken_config_at_start_exits_2_and_is_not_restarted(booted):
    code, out = booted["start_broken"]
    assert code != 0, out
    shown = dict(line.split("=", 1) for line in _ok(booted, "failed").split())
    # "failed", not "auto-restart": RestartPreventExitStatus=2
    assert shown == {"ActiveState": "failed", "SubState": "failed", "Result": "exit-code",
                     "ExecMainStatus": "2"}, shown
    error = f'/etc/digestd/config.toml:{BROKEN_LINE}: smtp.port must be an integer, got "abc"'
    assert error in booted["status_failed"][1], booted["status_failed"][1]


def test_the_readme_admin_line_runs_as_the_services_user_with_its_credential(booted):
    _ok(booted, "admin_add")
    _ok(booted, "admin_poll")
    assert _ok(booted, "admin_credential").strip() == "not-a-real-password"
    state = _ok(booted, "state_dir")
    owner = state.splitlines()[-1].split()
    assert owner[0] == "700", state  # StateDirectoryMode=0700, the same with the admin line
    files = {line.split()[-1]: line.split()[2] for line in state.splitlines()
             if line.startswith("-")}
    assert {"digestd.sqlite3", "digestd.secret"} <= set(files), state
    assert set(files.values()) == {owner[1]}, state  # one user: the service's
