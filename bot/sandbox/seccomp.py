"""The seccomp filter every sandbox command runs under (bwrap `--seccomp`): no file gets a
setuid or setgid bit from inside, whichever call would set it.

The sandbox's uid is never host root (bot/sandbox/identity.py) and every mount it can write is
nosuid, so a planted setuid file would give nothing inside and only the sandbox uid outside;
this filter makes sure there is no such file at all on a host folder the sandbox writes (the
workdir, the dependency cache). It refuses with EPERM: chmod, fchmod, fchmodat(2), and mknod,
mkdir, open, openat and creat creating with S_ISUID or S_ISGID in the mode; openat2 (its mode
is behind a pointer a filter cannot read) and io_uring (which bypasses seccomp) answer ENOSYS,
so callers fall back to openat. Calls of another architecture (i386 or x32 on x86_64) are
refused. A classic BPF program, assembled here: no libseccomp needed.
"""

from __future__ import annotations

import functools
import platform
import struct

S_ISUID_OR_ISGID = 0o6000
O_CREAT_OR_TMPFILE = 0o100 | 0o20000000
EPERM, ENOSYS = 1, 38
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
X32_BIT = 0x40000000

# The calls that can give a file a mode, and where they take it: (the mode's argument, and for
# the open calls the flags' argument, as they set a mode only when creating; else None). Where
# is the same on every architecture; the calls' numbers are not (ARCHES).
ARGUMENTS: dict[str, tuple[int, int | None]] = {
    "open": (2, 1),
    "openat": (3, 2),
    "creat": (1, None),
    "chmod": (1, None),
    "fchmod": (1, None),
    "fchmodat": (2, None),
    "fchmodat2": (2, None),
    "mknod": (1, None),
    "mknodat": (2, None),
    "mkdir": (1, None),
    "mkdirat": (2, None),
}

# (audit arch, {call: its number there} for the calls it has, syscalls answered ENOSYS)
ARCHES: dict[str, tuple[int, dict[str, int], tuple[int, ...]]] = {
    "x86_64": (
        0xC000003E,
        {
            "open": 2,
            "openat": 257,
            "creat": 85,
            "chmod": 90,
            "fchmod": 91,
            "fchmodat": 268,
            "fchmodat2": 452,
            "mknod": 133,
            "mknodat": 259,
            "mkdir": 83,
            "mkdirat": 258,
        },
        (437, 425),  # openat2, io_uring_setup
    ),
    "aarch64": (
        0xC00000B7,
        {
            "openat": 56,
            "fchmod": 52,
            "fchmodat": 53,
            "fchmodat2": 452,
            "mknodat": 33,
            "mkdirat": 34,
        },
        (437, 425),
    ),
}


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of argument `index` in struct seccomp_data (little-endian)."""
    return 16 + 8 * index


def _block(number: int, mode_arg: int, flags_arg: int | None) -> list[tuple[int, int, int, int]]:
    """Instructions that, with the syscall number loaded, refuse `number` when its mode has a
    setuid or setgid bit (and, for open calls, it creates a file), and else fall through."""
    body: list[tuple[int, int, int, int]] = []
    if flags_arg is not None:
        # Not creating: allowed (skip the mode test: 3 instructions, and the final allow).
        body += [(LD_ABS, 0, 0, _arg_low(flags_arg)), (JSET, 0, 3, O_CREAT_OR_TMPFILE)]
    body += [
        (LD_ABS, 0, 0, _arg_low(mode_arg)),
        (JSET, 0, 1, S_ISUID_OR_ISGID),
        (RET, 0, 0, RET_ERRNO | EPERM),
        (RET, 0, 0, RET_ALLOW),
    ]
    return [(JEQ, 0, len(body), number), *body]


@functools.cache
def program(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as bwrap reads it (sock_filter array)."""
    name = machine or platform.machine()
    if name not in ARCHES:
        raise ValueError(f"no seccomp filter for the {name} architecture")
    arch, numbers, missing = ARCHES[name]
    code: list[tuple[int, int, int, int]] = [
        (LD_ABS, 0, 0, 4),  # arch
        (JEQ, 1, 0, arch),
        (RET, 0, 0, RET_ERRNO | EPERM),
        (LD_ABS, 0, 0, 0),  # nr
    ]
    if name == "x86_64":
        code += [(JGE, 0, 1, X32_BIT), (RET, 0, 0, RET_ERRNO | EPERM)]
    for number in missing:
        code += [(JEQ, 0, 1, number), (RET, 0, 0, RET_ERRNO | ENOSYS)]
    for call, number in numbers.items():
        code += _block(number, *ARGUMENTS[call])  # a block that does not match keeps nr
    code.append((RET, 0, 0, RET_ALLOW))
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)
