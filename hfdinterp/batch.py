"""``hfdinterp batch``: a folder (or a list file) of videos, shared between the ranks of torchrun.

  plan    — (pure) the inputs as jobs; the ones the manifest has done with the same options are
            skipped; the rest go to the ranks, largest file first to the least-loaded rank
  run     — each rank interpolates its share one file at a time through the video pipeline
  summary — the ranks' results gathered, the same on every rank

The manifest is ``OUT_DIR/.hfdinterp-batch/rank-N.jsonl``: one JSON line per finished file,
flushed and fsynced, one writer per file, so ranks never write to the same file and any number of
ranks (on a folder all nodes see) can resume any other run. A file is written under a hidden
staging name, recorded in the manifest, and only then renamed to its own name: an output under
its own name is always complete and done, and a crash loses at most the file in flight.
"""

from __future__ import annotations

import json
import os
import signal
import time as clock
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from .errors import HFDError, Stopped
from .video.pipeline import interpolate_video
from .video.request import VideoRequest, check_options, check_paths

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mxf", ".ts", ".y4m")
MANIFEST = ".hfdinterp-batch"
RANK_TIMEOUT = timedelta(days=7)  # the slowest rank's share, which the others wait for at the end


@dataclass
class BatchRequest:
    input: Path  # a folder of videos (searched recursively) or a text file naming one per line
    output: Path  # a folder; created; outputs keep their path relative to the input folder
    video: VideoRequest  # options for every file; its input and output are replaced per file
    options: dict = field(default_factory=dict)  # model options (weights, steps, …): part of "same options"
    suffix: str | None = None  # output container (".mkv"); default each input's own
    device: str = "auto"  # under torchrun, auto gives rank r of a node its GPU r

    def __post_init__(self):
        if self.suffix is not None and not self.suffix.startswith("."):
            self.suffix = f".{self.suffix}"  # "mkv" means ".mkv"


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path
    key: str  # the output's path inside OUT_DIR, as recorded in the manifest
    size: int  # bytes of the input: the work estimate for sharing


@dataclass
class FileResult:
    key: str
    input: str
    status: str  # done, skipped (done by an earlier run) or failed
    rank: int = 0
    frames_in: int = 0
    frames_out: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchSummary:
    input: str
    output: str
    files: int
    done: int
    skipped: int
    failed: int
    frames_in: int
    frames_out: int
    seconds: float
    ranks: int
    results: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


# -- plan ------------------------------------------------------------------------------------------
def list_jobs(request: BatchRequest) -> list[Job]:
    """Every input with its output path; one clear error for a bad folder, list or collision."""
    source, out = request.input, request.output
    if not source.exists():
        raise HFDError(f"{source}: no such file or folder")
    if out.exists() and not out.is_dir():
        raise HFDError(f"{out}: not a folder")
    if request.suffix is not None and request.suffix.lower() not in VIDEO_SUFFIXES:
        raise HFDError(f"--suffix must be one of {', '.join(VIDEO_SUFFIXES)}")
    _check_options(request.video)
    if source.is_dir() and out.resolve() == source.resolve():
        raise HFDError(f"{out}: is the input folder; the outputs would overwrite the inputs")
    if source.is_dir():
        inside = out.resolve()
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(source).parts)
                       and inside not in p.resolve().parents)
        named = [(p, p.relative_to(source)) for p in files]
    else:
        named = []
        for number, line in enumerate(source.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line) if Path(line).is_absolute() else source.parent / line
            if not path.is_file():
                raise HFDError(f"{source}, line {number}: {line}: no such file")
            named.append((path, Path(path.name)))
    if not named:
        raise HFDError(f"{source}: no videos found ({', '.join(VIDEO_SUFFIXES)})")
    jobs, seen = [], {}
    for path, relative in named:
        if request.suffix:
            relative = relative.with_suffix(request.suffix)
        key = relative.as_posix()
        if key in seen:
            raise HFDError(f"{seen[key]} and {path} would both be written to {out / key}")
        seen[key] = path
        if (out / relative).resolve() == path.resolve():
            raise HFDError(f"{path}: the output would overwrite the input (give another output folder)")
        jobs.append(Job(path, out / relative, key, path.stat().st_size))
    return jobs


def _check_options(video: VideoRequest) -> None:
    """The options every file would refuse, refused once before any file starts."""
    check_options(video)


def fingerprint(request: BatchRequest) -> dict:
    """What makes two runs' outputs the same: the video and model options, not paths or devices."""
    video = asdict(replace(request.video, input=Path(), output=Path(), overwrite=False))
    del video["input"], video["output"], video["overwrite"]
    return json.loads(json.dumps({"video": video, "model": request.options, "suffix": request.suffix}, default=str))


def read_manifest(out: Path) -> dict[str, dict]:
    """The latest record of every key over all ranks' manifests (a torn last line is ignored)."""
    records: list[dict] = []
    for path in sorted((out / MANIFEST).glob("rank-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return {r["key"]: r for r in sorted(records, key=lambda r: r.get("finished", 0))}


def pending(jobs: list[Job], manifest: dict[str, dict], options: dict) -> tuple[list[Job], list[Job]]:
    """(to do, done earlier): done means recorded done with the same options and still there."""
    todo, done = [], []
    for job in jobs:
        record = manifest.get(job.key)
        finished = record is not None and record["status"] == "done" and record.get("options") == options
        (done if finished and job.output.is_file() else todo).append(job)
    return todo, done


def share(jobs: list[Job], rank: int, world: int) -> list[Job]:
    """Rank ``rank``'s jobs: largest first, each to the rank with the least work so far. Every job
    goes to exactly one rank; the same inputs give the same shares on every rank."""
    loads, owner = [0] * world, {}
    for job in sorted(jobs, key=lambda j: (-j.size, j.key)):
        least = min(range(world), key=lambda r: (loads[r], r))
        loads[least] += max(job.size, 1)
        owner[job.key] = least
    return [job for job in jobs if owner[job.key] == rank]


def staging_path(job: Job) -> Path:
    """Where a file is written before it is recorded done and renamed to its own name."""
    return job.output.with_name(f".{job.output.stem}.batch{job.output.suffix}")


def _temporaries(job: Job) -> tuple[Path, Path]:
    staging = staging_path(job)  # and the video sink's own temporary beside it
    return staging, staging.with_name(f".{staging.stem}.partial{staging.suffix}")


# -- run -------------------------------------------------------------------------------------------
def _process_group() -> tuple[int, int, bool]:
    """(rank, world size, whether we joined): under torchrun a gloo group (small messages, any device)."""
    joined = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if joined:
        dist.init_process_group("gloo", timeout=RANK_TIMEOUT)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), joined
    return 0, 1, False


def rank_device(device: str) -> str:
    """``auto`` under torchrun on a CUDA node: this rank's own GPU (LOCAL_RANK)."""
    if device == "auto" and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return device


@contextmanager
def _terminate_as_interrupt():
    """torchrun stops the other ranks with SIGTERM when one fails: clean up as on Ctrl-C."""
    def interrupt(signum, frame):
        raise Stopped(signum)
    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _append(manifest: Path, record: dict) -> None:
    with open(manifest, "a") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _broadcast(value, world: int):
    if world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(values: list, world: int) -> list:
    if world == 1:
        return values
    everyone: list = [None] * world
    dist.all_gather_object(everyone, values)
    return [v for part in everyone for v in part]


def _plan(request: BatchRequest, options: dict, rank: int, world: int) -> tuple[list[Job], list[Job], list[Path]]:
    """(to do, done earlier, folders this call created): one rank plans, so every rank shares out the
    same list; only that rank creates folders."""
    plan, created = None, []
    if rank == 0:
        try:
            jobs = list_jobs(request)
            for folder in (request.output, request.output / MANIFEST):
                if not folder.is_dir():
                    folder.mkdir(parents=True, exist_ok=True)
                    created.append(folder)
            plan = pending(jobs, read_manifest(request.output), options)
        except (HFDError, OSError) as error:
            plan = HFDError(str(error))
    plan = _broadcast(plan, world)
    if isinstance(plan, HFDError):
        raise plan
    return (*plan, created)


def _remove_if_empty(created: list[Path]) -> None:
    """Undo the folders a batch created before it stopped with nothing written (bad weights or options)."""
    for folder in reversed(created):
        try:
            folder.rmdir()  # only an empty folder goes
        except OSError:
            return


def _run_file(job: Job, interpolator, request: BatchRequest, rank: int, on_warning) -> FileResult:
    """One file to its staging name; a failure is its result, not an exception (Ctrl-C aside)."""
    for stale in _temporaries(job):
        stale.unlink(missing_ok=True)  # left by a run that was killed on this file
    started = clock.time()
    result = FileResult(job.key, str(job.input), "failed", rank)
    try:
        if job.output.exists() and not request.video.overwrite:
            raise HFDError(f"{job.output}: exists already, and the manifest has no record of it done with these "
                           "options (use --overwrite to replace it)")
        job.output.parent.mkdir(parents=True, exist_ok=True)
        video = replace(request.video, input=job.input, output=staging_path(job), overwrite=True)
        check_paths(video)
        summary = interpolate_video(interpolator, video, on_warning=on_warning)
        result.status, result.frames_in, result.frames_out = "done", summary.frames_in, summary.frames_out
    except HFDError as error:
        result.error = str(error)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - one broken file must not stop a thousand
        result.error = f"{type(error).__name__}: {error}"
    result.seconds = clock.time() - started
    return result


def run_batch(load: Callable[[str], object], request: BatchRequest,
              on_file: Callable[[FileResult, int, int], None] | None = None,
              on_warning: Callable[[str], None] | None = None) -> BatchSummary:
    """Interpolate every pending file of ``request`` (this rank's share under torchrun).

    ``load(device)`` gives the Interpolator; it is called once, and only if this rank has work.
    A file that fails is recorded and the batch goes on; bad options or weights stop it at once."""
    started = clock.time()
    rank, world, joined = _process_group()
    options = fingerprint(request)
    todo, earlier, created = _plan(request, options, rank, world)
    mine = share(todo, rank, world)
    manifest = request.output / MANIFEST / f"rank-{rank}.jsonl"
    results: list[FileResult] = []
    try:
        interpolator = load(rank_device(request.device)) if mine else None  # bad weights: one error, not one per file
    except BaseException:
        _remove_if_empty(created)  # a refused run leaves no empty output folder behind
        raise
    with _terminate_as_interrupt():
        for number, job in enumerate(mine, 1):
            result = _run_file(job, interpolator, request, rank, on_warning)
            _append(manifest, {**asdict(result), "options": options, "finished": clock.time()})
            if result.status == "done":
                os.replace(staging_path(job), job.output)  # complete and recorded: now under its own name
            results.append(result)
            if on_file:
                on_file(result, number, len(mine))
    results += [FileResult(job.key, str(job.input), "skipped", rank) for job in (earlier if rank == 0 else [])]
    everything = sorted(_gather([asdict(r) for r in results], world), key=lambda r: r["key"])
    if joined:
        dist.destroy_process_group()
    count = lambda status: sum(r["status"] == status for r in everything)  # noqa: E731
    return BatchSummary(
        input=str(request.input), output=str(request.output), files=len(everything), done=count("done"),
        skipped=count("skipped"), failed=count("failed"), frames_in=sum(r["frames_in"] for r in everything),
        frames_out=sum(r["frames_out"] for r in everything), seconds=clock.time() - started, ranks=world,
        results=everything)
