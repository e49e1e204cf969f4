"""`shipmate image pull|ls|prune`: the image cache, by hand (the operator's view of it)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bot.config import Settings
from bot.sandbox.environment import Environments
from bot.sandbox.image import ImageError

MIB = 1024 * 1024


def image_command(args: argparse.Namespace, settings: Settings) -> int:
    store = Environments.from_settings(settings).store
    try:
        if args.image_command == "pull":
            started = time.monotonic()
            done = asyncio.run(store.pull(args.reference))
            verb = "pulled" if done.pulled else "cached"
            print(
                f"{verb} {done.image.reference} {done.image.digest} "
                f"{done.image.size_bytes / MIB:.1f} MiB in {time.monotonic() - started:.2f} s"
            )
            return 0
        if args.image_command == "ls":
            names = store.references()
            for image in store.images():
                used = time.strftime("%Y-%m-%d %H:%M", time.localtime(image.last_used))
                refs = ", ".join(sorted(names.get(image.digest, [image.reference])))
                print(f"{image.digest}  {image.size_bytes / MIB:8.1f} MiB  {used}  {refs}")
            return 0
        if args.image_command == "prune":
            removed = store.evict(0 if args.all else store.limit_bytes)
            for digest in removed:
                print(f"evicted {digest}")
            print(f"{len(removed)} evicted, {len(store.images())} kept")
            return 0
    except ImageError as exc:
        print(f"shipmate image: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.image_command)
