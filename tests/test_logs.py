"""Log lines: key=value, no second time stamp under journald, library chatter kept out."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from digestd.logs import KeyValueFormatter, setup_logging


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("digestd.x", logging.INFO, __file__, 1, msg, (), None)


def test_key_value_lines_with_and_without_a_stamp():
    assert KeyValueFormatter().format(_record("a=1")).endswith(
        " level=info logger=digestd.x a=1")
    assert KeyValueFormatter(stamp=False).format(_record("a=1")) == (
        "level=info logger=digestd.x a=1")


def test_journald_gets_no_second_stamp_and_httpx_stays_quiet(tmp_path):
    # JOURNAL_STREAM names stderr's device:inode (systemd.exec(5)); a file plays the journal
    log = tmp_path / "journal"
    code = ("import logging, os, sys\n"
            "st = os.fstat(2); os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'\n"
            "from digestd.logs import setup_logging\n"
            "setup_logging('info')\n"
            "logging.getLogger('digestd.poll').info('source=a new=1')\n"
            "logging.getLogger('httpx').info('HTTP Request: GET https://x')\n")
    with open(log, "wb") as err:
        subprocess.run([sys.executable, "-c", code], stderr=err, check=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert log.read_text().splitlines() == ["level=info logger=digestd.poll source=a new=1"]


def test_debug_level_still_quiets_libraries_to_warnings():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("debug")
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("digestd.store").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_interactive_commands_are_quiet_unless_asked_and_services_keep_info(tmp_path, capfd):
    from digestd.cli import main
    from digestd.config import LogConfig

    from .conftest import init_offline

    init_offline(tmp_path)
    cfg = tmp_path / "digestd.toml"
    capfd.readouterr()
    # by default: the summary on stdout, no info lines on stderr
    assert main(["-c", str(cfg), "poll"]) == 0
    out, err = capfd.readouterr()
    assert "300 new papers" in out and "level=info" not in err
    # more when asked for, on the command line or in the config
    assert main(["-c", str(cfg), "poll", "--log-level", "info"]) == 0
    out, err = capfd.readouterr()
    assert "0 new papers" in out and "level=info" in err and "source=sample" in err
    cfg.write_text(cfg.read_text() + '\n[log]\nlevel = "info"\n')
    assert main(["-c", str(cfg), "poll"]) == 0
    out, err = capfd.readouterr()
    assert "level=info" in err and "source=sample" in err
    # `run` and `web` log at info unless the config says otherwise
    assert LogConfig().level_for(service=True) == "info"
    assert LogConfig().level_for(service=False) == "warning"
    assert LogConfig(level="debug").level_for(service=False) == "debug"
    assert LogConfig(level="error").level_for(service=True) == "error"
