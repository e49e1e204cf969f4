from __future__ import annotations

from pathlib import Path

from bot.security.tree_scan import MAX_FILE_BYTES, scan_tree, text_files

GH = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def test_text_files_skip_git_binaries_big_files_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f"token={GH}\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print(1)\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\0\0" + GH.encode())
    (tmp_path / "huge.txt").write_text(GH + "x" * MAX_FILE_BYTES)
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / ".env").write_text(f"GITHUB_TOKEN={GH}\n")
    assert [path for path, _ in text_files(tmp_path)] == [".env", "src/app.py"]


def test_scan_tree_reports_rule_path_line_and_holds_the_value(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.py").write_text(f"DEBUG = True\nTOKEN = '{GH}'\n")
    found = scan_tree(tmp_path)
    assert [(f.path, f.line, f.rule) for f in found.findings] == [
        ("config/settings.py", 2, "github-token")
    ]
    assert found.values == frozenset({GH})
