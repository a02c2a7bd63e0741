"""Delivery to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from digestd.cli import main


def test_send_over_smtp_to_a_real_server(tmp_path, smtp_sink, capsys):
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f"""
[delivery]
from = "Digest <digest@example.org>"

[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
security = "none"

[[sources]]
name = "sample"
kind = "sample"
""")
    assert main(["-c", str(cfg), "poll"]) == 0
    assert main(["-c", str(cfg), "subscribers", "add", "a@example.org", "--rule", "diffusion"]) == 0
    assert main(["-c", str(cfg), "subscribers", "add", "b@example.org", "--rule", "segmentation"]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "send", "--now"]) == 0
    assert "2 sent, 0 deferred, 0 failed" in capsys.readouterr().out
    got = sorted(smtp_sink.received, key=lambda r: r.rcpt_tos)
    assert [r.rcpt_tos for r in got] == [["a@example.org"], ["b@example.org"]]
    assert got[0].mail_from == "digest@example.org"
    msg = got[0].message
    assert msg["To"] == "a@example.org" and msg.get_body(("plain",)) is not None
