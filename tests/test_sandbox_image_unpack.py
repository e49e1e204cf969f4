"""Unpacking image layers as an attacker would write them: nothing may land outside the target,
no setuid bit or device node survives, whiteouts and links mean what OCI says."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bot.sandbox.image import ImageError
from bot.sandbox.image_unpack import LayerRefused, unpack
from standins.registry import Entry, Layout, layer

MIB = 1 << 20


def _unpack(tmp_path: Path, *layers: list[Entry], config: dict[str, object] | None = None) -> Path:
    layout = Layout(tmp_path / "layout")
    layout.tag(layout.image(list(layers), config))
    target = tmp_path / "root"
    target.mkdir()
    unpack(layout.path, target, max_bytes=64 * MIB)
    return target


def test_layers_apply_in_order_with_links_and_whiteouts(tmp_path: Path) -> None:
    root = _unpack(
        tmp_path,
        [
            Entry("./etc", "dir", mode=0o755),
            Entry("etc/keep", data=b"keep"),
            Entry("etc/gone", data=b"old"),
            Entry("opaque", "dir"),
            Entry("opaque/old", data=b"old"),
            Entry("bin/tool", data=b"#!/bin/sh\n", mode=0o755),
            Entry("bin/same", "hardlink", link="bin/tool"),
            Entry("bin/alias", "symlink", link="/bin/tool"),
        ],
        [
            Entry("etc/.wh.gone"),
            Entry("opaque/.wh..wh..opq"),
            Entry("opaque/new", data=b"new"),
            Entry("etc/keep", data=b"replaced"),
        ],
    )
    assert (root / "etc/keep").read_bytes() == b"replaced"
    assert not (root / "etc/gone").exists()
    assert sorted(os.listdir(root / "opaque")) == ["new"]
    assert (root / "bin/same").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert os.readlink(root / "bin/alias") == "/bin/tool"  # kept as written: inside the image
    assert (root / "bin/tool").stat().st_mode & 0o777 == 0o755


def test_a_dotdot_path_is_refused_and_writes_nothing_outside(tmp_path: Path) -> None:
    with pytest.raises(LayerRefused, match="outside the image"):
        _unpack(tmp_path, [Entry("../escaped", data=b"x")])
    with pytest.raises(LayerRefused, match="outside the image"):
        _unpack(tmp_path / "again", [Entry("a/../../escaped", data=b"x")])
    assert not (tmp_path / "escaped").exists()


def test_absolute_names_and_symlinked_parents_stay_inside(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    root = _unpack(
        tmp_path,
        [
            Entry("/abs.txt", data=b"abs"),
            Entry("hostdir", "symlink", link=str(outside)),  # absolute: the host's folder
            Entry("up", "symlink", link="../../../.."),  # climbs past the root
        ],
        [Entry("hostdir/planted", data=b"x"), Entry("up/planted2", data=b"y")],
    )
    assert (root / "abs.txt").read_bytes() == b"abs"
    assert os.listdir(outside) == []
    # Followed as a chroot would: `/` is the image's root, `..` stops there.
    assert (root / str(outside).lstrip("/") / "planted").read_bytes() == b"x"
    assert (root / "planted2").read_bytes() == b"y"


def test_a_symlink_loop_to_the_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayerRefused, match="symlinks"):
        _unpack(tmp_path, [Entry("etc", "symlink", link="/etc")], [Entry("etc/evil", data=b"x")])


def test_an_existing_symlink_is_replaced_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file")
    root = _unpack(
        tmp_path,
        [Entry("f", "symlink", link=str(victim)), Entry("d", "symlink", link=str(tmp_path))],
        [Entry("f", data=b"image file"), Entry("d", "dir")],
    )
    assert victim.read_text() == "host file"
    assert (root / "f").read_bytes() == b"image file" and not (root / "f").is_symlink()
    assert (root / "d").is_dir() and not (root / "d").is_symlink()


@pytest.mark.parametrize("link", ["../../etc/passwd", "/etc/passwd", "hostdir/secret", "missing"])
def test_a_hard_link_out_of_the_tree_is_refused(tmp_path: Path, link: str) -> None:
    (tmp_path / "secret").write_text("host secret")
    with pytest.raises(LayerRefused):
        _unpack(
            tmp_path,
            [Entry("hostdir", "symlink", link=str(tmp_path))],
            [Entry("stolen", "hardlink", link=link)],
        )
    assert (tmp_path / "secret").stat().st_nlink == 1


def test_setuid_bits_and_device_nodes_do_not_survive(tmp_path: Path) -> None:
    root = _unpack(
        tmp_path,
        [
            Entry("suid", data=b"x", mode=0o4755),
            Entry("sgid", data=b"x", mode=0o2755),
            Entry("sgid-dir", "dir", mode=0o2775),
            Entry("sticky", "dir", mode=0o1777),
            Entry("null", "char"),
            Entry("pipe", "fifo"),
        ],
    )
    assert stat.S_IMODE((root / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "sgid").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "sgid-dir").stat().st_mode) == 0o775
    assert stat.S_IMODE((root / "sticky").stat().st_mode) == 0o1777
    assert not os.path.lexists(root / "null") and not os.path.lexists(root / "pipe")


def test_a_layer_that_is_not_what_its_digest_says_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    descriptor = layout.image([[Entry("a", data=b"a" * 1000)]])
    layout.tag(descriptor)
    manifest = (
        layout.path / "blobs/sha256" / descriptor["digest"].removeprefix("sha256:")
    ).read_text()
    layer_digest = json.loads(manifest)["layers"][0]["digest"].removeprefix("sha256:")
    blob = layout.path / "blobs/sha256" / layer_digest
    blob.write_bytes(layer([Entry("a", data=b"b" * 1000)]))
    (tmp_path / "root").mkdir()
    with pytest.raises(LayerRefused, match="does not match its digest"):
        unpack(layout.path, tmp_path / "root", max_bytes=MIB)


def test_an_image_bigger_than_the_cap_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    layout.tag(layout.image([[Entry("big", data=b"\0" * (2 * MIB))]]))
    (tmp_path / "root").mkdir()
    with pytest.raises(LayerRefused, match="more than 1 MiB"):
        unpack(layout.path, tmp_path / "root", max_bytes=MIB)


def test_the_user_comes_from_the_images_own_passwd(tmp_path: Path) -> None:
    passwd = b"root:x:0:0::/root:/bin/sh\ntester:x:1234:4321::/home/tester:/bin/sh\n"
    layout = Layout(tmp_path / "layout")
    layout.tag(
        layout.image(
            [[Entry("etc/passwd", data=passwd), Entry("etc/group", data=b"staff:x:50:\n")]],
            {"User": "tester:staff", "Env": ["PATH=/opt/bin", "EMPTY="], "WorkingDir": "/src"},
        )
    )
    (tmp_path / "root").mkdir()
    done = unpack(layout.path, tmp_path / "root", max_bytes=MIB)
    assert (done.uid, done.gid) == (1234, 50)
    assert done.config.env == (("PATH", "/opt/bin"), ("EMPTY", ""))
    assert done.config.workdir == "/src"


def test_a_passwd_symlinked_to_the_host_is_not_read(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    layout.tag(
        layout.image([[Entry("etc/passwd", "symlink", link="/etc/passwd")]], {"User": "root"})
    )
    (tmp_path / "root").mkdir()
    # The host's /etc/passwd names root; the image's own (the link, resolved inside) is missing.
    with pytest.raises(ImageError, match="not in its /etc/passwd"):
        unpack(layout.path, tmp_path / "root", max_bytes=MIB)


def test_a_layer_the_disk_cannot_hold_is_refused_not_a_crash(tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * 30) + "/f"  # longer than PATH_MAX once under the target
    with pytest.raises(LayerRefused, match="File name too long"):
        _unpack(tmp_path, [Entry(deep, data=b"x")])


def test_a_truncated_layer_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    descriptor = layout.image([[Entry("a", data=os.urandom(100_000))]])
    layout.tag(descriptor)
    manifest = json.loads(
        (layout.path / "blobs/sha256" / descriptor["digest"].removeprefix("sha256:")).read_bytes()
    )
    blob = layout.path / "blobs/sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes()[:5000])
    (tmp_path / "root").mkdir()
    with pytest.raises(LayerRefused):
        unpack(layout.path, tmp_path / "root", max_bytes=MIB)
