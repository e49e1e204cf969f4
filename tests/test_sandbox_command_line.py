"""A command's bwrap command line and environment: pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sandbox.base import ImageRoot
from bot.sandbox.command_line import bwrap_argv, environment, image_workdir


def _image(
    workdir: str = "", env: tuple[tuple[str, str], ...] = (), uid: int = 0, gid: int = 0
) -> ImageRoot:
    return ImageRoot(Path("/images/x"), "sha256:x", env=env, workdir=workdir, uid=uid, gid=gid)


@pytest.mark.parametrize(
    ("workdir", "inside"),
    [
        ("/app", "/app"),
        ("/srv/app/", "/srv/app"),
        ("", ""),
        ("app", ""),  # not absolute
        ("/usr/src", ""),  # the checkout would hide a system folder
        ("/workspace", ""),
        ("/tmp", ""),
        ("/a/../etc", ""),
    ],
)
def test_an_images_workdir_is_where_commands_start_unless_it_hides_something(
    workdir: str, inside: str
) -> None:
    assert image_workdir(_image(workdir=workdir)) == inside
    assert image_workdir(None) == ""


def test_the_command_line_isolates_and_filters_and_ends_with_the_command() -> None:
    argv = bwrap_argv(Path("/s/bwrap"), Path("/s/root"), None, ["sh", "-c", "x"], {"A": "1"})
    assert argv[0] == "/s/bwrap" and argv[-4:] == ["--", "sh", "-c", "x"]
    for flag in ("--unshare-user", "--unshare-pid", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--seccomp") + 1] == "4"
    assert argv[argv.index("--dev-bind") + 1 : argv.index("--dev-bind") + 3] == ["/s/root", "/"]
    assert argv[argv.index("--chdir") + 1] == "/workspace"
    assert argv.index("--clearenv") < argv.index("--setenv")
    image = bwrap_argv(Path("b"), Path("r"), _image(uid=7, gid=8, workdir="/app"), ["true"], {})
    assert image[image.index("--uid") + 1 : image.index("--uid") + 4] == ["7", "--gid", "8"]
    assert image[image.index("--chdir") + 1] == "/app"


def test_an_images_environment_cannot_move_our_private_folders() -> None:
    image = _image(env=(("HOME", "/root"), ("TMPDIR", "/x"), ("PATH", "/opt/bin"), ("J", "1")))
    env = environment(image, {"HTTP_PROXY": "p"}, {"J": "2"})
    assert (env["HOME"], env["TMPDIR"], env["SHIPMATE_SANDBOX"]) == ("/home/sandbox", "/tmp", "1")
    assert (env["PATH"], env["HTTP_PROXY"], env["J"]) == ("/opt/bin", "p", "2")
