"""The `ui` section of gateway.yaml as `validate` and `secret list` see it: positions, references, warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from local_mcp_gateway.cli import main


def write(root: Path, text: str) -> Path:
    (root / "profiles").mkdir(exist_ok=True)
    path = root / "gateway.yaml"
    path.write_text(text)
    return path


def test_bad_ui_settings_are_named_with_file_line_and_column(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "version: 1\nui: {admin_keys: nope, extra: 1}\n")
    assert main(["validate", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert f"{path}:2:6: ui.admin_keys: expected a list" in err
    assert "ui.extra: unknown key 'extra'; allowed keys: enabled, loopback, admin_keys" in err


def test_admin_keys_are_secret_references_like_api_keys(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, 'version: 1\nui:\n  admin_keys: ["plain-key", "${secret:ui_admin}"]\n')
    assert main(["validate", "-c", str(path)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"{path}:3:29: ui.admin_keys[1]: secret 'ui_admin' not found" in text
    assert main(["secret", "list", "-c", str(path)]) == 1
    assert "ui_admin  MISSING  gateway ui / admin_keys[1]" in capsys.readouterr().out
    path = write(tmp_path, 'version: 1\nui:\n  admin_keys: ["plain-key"]\n')
    assert main(["validate", "-c", str(path)]) == 0
    out = capsys.readouterr()
    assert "warning: ui.admin_keys[0]: API key written in plain text" in out.out + out.err
