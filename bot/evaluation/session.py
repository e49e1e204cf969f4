"""One `shipmate eval`: the tasks (the repository test, or with `--deploy` the deploy test),
where the answers come from, the run, the table and the JSON line.

With a model, every answer is recorded under the eval's folder (printed), so the same eval
replays offline with `--replay DIR`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.agent.model import AnthropicModel, Model, ModelUnavailable
from bot.config import Settings
from bot.evaluation.answers import OracleModel, RecordingModel, ReplayModel
from bot.evaluation.deploy import run_deploy_task
from bot.evaluation.deploy_tasks import DeployTask, load_deploy_tasks
from bot.evaluation.harness import (
    Answerable,
    EvalSettings,
    RunOne,
    TaskResult,
    run_eval,
    run_task,
    summary,
)
from bot.evaluation.tasks import EvalTask, TaskFileError, load_tasks
from bot.runs.local_run import settings_caps
from bot.sandbox.checkout import CheckoutCache

HEADER = f"{'task':<40} {'resolved':>8} {'status':>11} {'steps':>5} {'cost':>9} {'wall':>8}"


def table_row(result: TaskResult) -> str:
    return (
        f"{result.instance_id:<40} {'yes' if result.resolved else 'no':>8} {result.status:>11} "
        f"{result.steps:>5} {'$' + format(result.cost_usd, '.4f'):>9} {result.wall_s:>7.1f}s"
    )


ModelFor = Callable[[Answerable], Model]


def _model_source(
    args: argparse.Namespace, settings: Settings, record_dir: Path
) -> tuple[ModelFor, AnthropicModel | None]:
    """A function task -> Model, and the model to close afterwards (None: nothing to close)."""
    if args.oracle:
        gold = args.oracle == "gold"
        return (lambda task: OracleModel(settings.model, task.patch if gold else "")), None
    if args.replay:
        replay = Path(args.replay)
        return (
            lambda task: ReplayModel(settings.model, replay / f"{task.instance_id}.jsonl")
        ), None
    model = AnthropicModel.from_settings(settings)
    return (lambda task: RecordingModel(model, record_dir / f"{task.instance_id}.jsonl")), model


def _tasks(args: argparse.Namespace) -> tuple[list[Any], RunOne[Any]]:
    """The task file as repository-test or (`--deploy`) deploy-test tasks, and how each runs."""
    if args.deploy:
        deploys: list[DeployTask] = load_deploy_tasks(Path(args.tasks))
        return deploys, run_deploy_task
    repository: list[EvalTask] = load_tasks(Path(args.tasks))
    return repository, run_task


def eval_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        tasks, run = _tasks(args)
    except TaskFileError as exc:
        print(f"shipmate eval: {exc}", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    record_dir = Path(args.record) if args.record else settings.data_dir / "evals" / stamp
    record_dir.mkdir(parents=True, exist_ok=True)
    try:
        model_for, closing = _model_source(args, settings, record_dir)
    except ModelUnavailable as exc:
        print(f"shipmate eval: {exc}", file=sys.stderr)
        return 2
    eval_settings = EvalSettings(
        settings_caps(settings), CheckoutCache(settings.data_dir / "cache"), record_dir
    )
    out = sys.stderr if args.json else sys.stdout
    print(HEADER, file=out, flush=True)

    async def go() -> list[TaskResult]:
        try:
            return await run_eval(
                tasks,
                model_for,
                eval_settings,
                run,
                workers=args.workers,
                on_result=lambda result: print(table_row(result), file=out, flush=True),
            )
        finally:
            if closing is not None:
                await closing.close()

    started = time.monotonic()
    results = asyncio.run(go())
    totals = summary(results, time.monotonic() - started)
    print(
        f"resolved {totals['resolved']} of {totals['tasks']} ({totals['resolved_rate']:.0%}), "
        f"cost ${totals['cost_usd']:.4f}, {totals['wall_s']:.1f} s; answers and transcripts in "
        f"{record_dir}",
        file=out,
    )
    (record_dir / "results.json").write_text(
        json.dumps({"summary": totals, "tasks": [r.row() for r in results]}, indent=2)
    )
    if args.json:
        print(json.dumps(totals))
    return 0
