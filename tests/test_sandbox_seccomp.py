"""The seccomp filter of every architecture it is built for, run here by a small classic-BPF
interpreter: the sandbox tests run only the host's, and bwrap says nothing of what it refuses."""

from __future__ import annotations

import struct

import pytest

from bot.sandbox import seccomp

ALLOW = seccomp.RET_ALLOW
EPERM = seccomp.RET_ERRNO | seccomp.EPERM
ENOSYS = seccomp.RET_ERRNO | seccomp.ENOSYS
O_CREAT, O_TMPFILE = 0o100, 0o20000000
# Each call's arguments as its man page names them: where the mode is, and for an open call
# the flags, that the filter reads.
SIGNATURES = {
    "open": "path flags mode",
    "openat": "dirfd path flags mode",
    "creat": "path mode",
    "chmod": "path mode",
    "fchmod": "fd mode",
    "fchmodat": "dirfd path mode",
    "fchmodat2": "dirfd path mode flags",
    "mknod": "path mode dev",
    "mknodat": "dirfd path mode dev",
    "mkdir": "path mode",
    "mkdirat": "dirfd path mode",
}
CALLS = [(machine, call) for machine, (_, numbers, _) in seccomp.ARCHES.items() for call in numbers]


def verdict(machine: str, nr: int, args: dict[str, int] | None = None, arch: int = 0) -> int:
    """What the machine's filter returns for syscall `nr` with `args` (named as in SIGNATURES)."""
    audit_arch, numbers, _ = seccomp.ARCHES[machine]
    names = next((SIGNATURES[c].split() for c, n in numbers.items() if n == nr), [])
    values = [(args or {}).get(name, 0) for name in names] + [0] * (6 - len(names))
    data = struct.pack("<IIQ6Q", nr, arch or audit_arch, 0, *values)
    program = seccomp.program(machine)
    code = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    acc = pc = 0
    while True:
        op, jump_true, jump_false, k = code[pc]
        pc += 1
        if op == seccomp.RET:
            return k
        if op == seccomp.LD_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            continue
        taken = {seccomp.JEQ: acc == k, seccomp.JGE: acc >= k, seccomp.JSET: acc & k}[op]
        pc += jump_true if taken else jump_false


@pytest.mark.parametrize(("machine", "call"), CALLS)
def test_a_setuid_or_setgid_mode_is_refused_a_plain_one_allowed(machine: str, call: str) -> None:
    nr = seccomp.ARCHES[machine][1][call]
    creating = {"flags": O_CREAT} if "open" in call else {}
    for mode in (0o4755, 0o2755, 0o6777):
        assert verdict(machine, nr, {"mode": mode, **creating}) == EPERM
    assert verdict(machine, nr, {"mode": 0o755, **creating}) == ALLOW


@pytest.mark.parametrize("machine", list(seccomp.ARCHES))
def test_an_open_that_does_not_create_may_name_any_mode(machine: str) -> None:
    nr = seccomp.ARCHES[machine][1]["openat"]
    assert verdict(machine, nr, {"flags": 0, "mode": 0o4755}) == ALLOW
    assert verdict(machine, nr, {"flags": O_TMPFILE, "mode": 0o4755}) == EPERM


@pytest.mark.parametrize("machine", list(seccomp.ARCHES))
def test_other_calls_pass_and_another_architecture_is_refused(machine: str) -> None:
    _, numbers, missing = seccomp.ARCHES[machine]
    for nr in missing:
        assert verdict(machine, nr) == ENOSYS
    assert verdict(machine, 0) == ALLOW
    assert verdict(machine, numbers["fchmod"], {"mode": 0o4755}, arch=0x40000003) == EPERM


def test_x32_calls_are_refused_on_x86_64() -> None:
    assert verdict("x86_64", seccomp.X32_BIT | 0) == EPERM
