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
