"""`hfdinterp batch`: the plan (pure), one process through the CLI, and 2 gloo ranks killed and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from hfdinterp.cli import app
from hfdinterp.errors import HFDError
from hfdinterp.batch import MANIFEST, BatchRequest, Job, list_jobs, pending, read_manifest, share
from hfdinterp.video.pipeline import VideoRequest
from hfdinterp.io.testclip import make_test_clip

FAST = ["--refine-steps", "0", "--quiet"]


def request(source, out, **options) -> BatchRequest:
    return BatchRequest(Path(source), Path(out), VideoRequest(Path(source), Path(out)), **options)


def frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def leftovers(folder: Path) -> list[str]:
    """Files that are not finished outputs: hidden staging or partial files outside the manifest."""
    return sorted(p.name for p in folder.rglob(".*") if p.is_file() and MANIFEST not in p.parts)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-in")
    (root / "sub").mkdir()
    names = ["a.mp4", "b.mkv", "sub/c.mp4", "d.mp4", "e.mp4", "sub/f.mp4"]
    for i, name in enumerate(names):
        make_test_clip(root / name, 64, 48, frames=3 + i % 3, rate=24, audio=False)
    return root, {name: 3 + i % 3 for i, name in enumerate(names)}


def test_jobs_from_a_folder_keep_relative_paths_and_skip_hidden_and_output_files(tmp_path):
    source = tmp_path / "in"
    (source / "deep").mkdir(parents=True)
    for name in ("x.mp4", "deep/y.MOV", ".hidden.mp4", "notes.txt"):
        (source / name).write_bytes(b"0" * 10)
    (source / "out").mkdir()
    (source / "out" / "x.mp4").write_bytes(b"done")  # an earlier output inside the input folder
    jobs = list_jobs(request(source, source / "out"))
    assert [(j.key, j.output) for j in jobs] == [("deep/y.MOV", source / "out" / "deep/y.MOV"),
                                                 ("x.mp4", source / "out" / "x.mp4")]
    assert [j.key for j in list_jobs(request(source, tmp_path / "o", suffix="mkv"))] == ["deep/y.mkv", "out/x.mkv",
                                                                                      "x.mkv"]


def test_jobs_from_a_list_file_and_clear_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/one.mp4", "b/one.mp4", "two.mp4"):
        (tmp_path / name).write_bytes(b"0")
    listing = tmp_path / "list.txt"
    listing.write_text("# clips\na/one.mp4\n\n" + str(tmp_path / "two.mp4") + "\n")
    assert [j.key for j in list_jobs(request(listing, tmp_path / "out"))] == ["one.mp4", "two.mp4"]
    listing.write_text("a/one.mp4\nb/one.mp4\n")
    with pytest.raises(HFDError, match="would both be written to"):
        list_jobs(request(listing, tmp_path / "out"))
    listing.write_text("a/one.mp4\nmissing.mp4\n")
    with pytest.raises(HFDError, match="line 2: missing.mp4: no such file"):
        list_jobs(request(listing, tmp_path / "out"))
    with pytest.raises(HFDError, match="outputs would overwrite the inputs"):
        list_jobs(request(tmp_path / "a", tmp_path / "a"))
    listing.write_text("one.mp4\n")
    (tmp_path / "one.mp4").write_bytes(b"0")
    with pytest.raises(HFDError, match="would overwrite the input"):
        list_jobs(request(listing, tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HFDError, match="no videos found"):
        list_jobs(request(empty, tmp_path / "out"))
    with pytest.raises(HFDError, match="--factor must be"):
        list_jobs(BatchRequest(tmp_path / "a", tmp_path / "out", VideoRequest(Path(), Path(), factor=3)))


def test_every_job_goes_to_exactly_one_rank_and_the_work_is_balanced():
    jobs = [Job(Path(f"{i}.mp4"), Path(f"o/{i}.mp4"), f"{i}.mp4", size) for i, size in
            enumerate([900, 100, 500, 500, 300, 200, 100, 400])]
    for world in (1, 2, 3, 5):
        shares = [share(jobs, rank, world) for rank in range(world)]
        assert sorted(j.key for part in shares for j in part) == sorted(j.key for j in jobs)
        loads = [sum(j.size for j in part) for part in shares]
        assert max(loads) - min(loads) <= 900
    assert [sum(j.size for j in share(jobs, r, 2)) for r in range(2)] == [1500, 1500]


def test_done_means_recorded_with_the_same_options_and_still_there(tmp_path):
    jobs = [Job(Path(f"{k}.mp4"), tmp_path / f"{k}.mp4", f"{k}.mp4", 1) for k in "abcd"]
    for k in "abc":
        (tmp_path / f"{k}.mp4").write_bytes(b"x")
    same, other = {"factor": 2}, {"factor": 4}
    manifest = {"a.mp4": {"status": "done", "options": same}, "b.mp4": {"status": "done", "options": other},
                "c.mp4": {"status": "failed", "options": same}, "d.mp4": {"status": "done", "options": same}}
    todo, done = pending(jobs, manifest, same)
    assert [j.key for j in done] == ["a.mp4"] and [j.key for j in todo] == ["b.mp4", "c.mp4", "d.mp4"]


@pytest.mark.parametrize("bad", [["-w", "no-such-weights.safetensors"], ["--noise", "2"], ["--steps", "2"]])
def test_a_refused_batch_leaves_no_output_folder_behind(clips, tmp_path, tiny_weights, bad):
    """Bad weights or inference options: one error line, and the output folder it would have made is not
    left behind (empty, with an empty manifest folder in it); a folder that was there already stays."""
    root, _ = clips
    out = tmp_path / "new" / "out"
    result = CliRunner().invoke(app, ["batch", str(root), str(out), "-w", tiny_weights, *FAST, *bad])
    assert result.exit_code != 0 and "Traceback" not in result.output and "rror" in result.output, result.output
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    result = CliRunner().invoke(app, ["batch", str(root), str(kept), "-w", tiny_weights, *FAST, *bad])
    assert result.exit_code != 0 and kept.is_dir() and list(kept.iterdir()) == []


def test_one_process_writes_every_file_records_failures_and_skips_on_rerun(clips, tmp_path, tiny_weights):
    root, frames = clips
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.mp4", "b.mkv"):
        (source / name).write_bytes((root / name).read_bytes())
    (source / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    args = ["batch", str(source), str(out), "-w", tiny_weights, *FAST, "--json", str(tmp_path / "s.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["files"], summary["done"], summary["failed"]) == (3, 2, 1)
    broken = [r for r in summary["results"] if r["status"] == "failed"]
    assert broken[0]["key"] == "broken.mp4" and broken[0]["error"]
    assert frame_count(out / "a.mp4") == 2 * frames["a.mp4"] and frame_count(out / "b.mkv") == 2 * frames["b.mkv"]
    assert not (out / "broken.mp4").exists() and leftovers(out) == []
    (source / "broken.mp4").unlink()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["files"], summary["done"], summary["skipped"]) == (2, 0, 2)
    for other_options in (["--factor", "4"], ["--noise", "1"]):  # other options: not done, and not replaced
        other = CliRunner().invoke(app, args + other_options)
        summary = json.loads((tmp_path / "s.json").read_text())
        assert other.exit_code == 1 and summary["failed"] == 2 and "--overwrite" in summary["results"][0]["error"]
        assert frame_count(out / "a.mp4") == 2 * frames["a.mp4"]


def _torchrun(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "hfdinterp", *map(str, args)]


def _done_records(out: Path) -> list[dict]:
    records = []
    for path in (out / MANIFEST).glob("rank-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # being written right now
                pass
    return [r for r in records if r["status"] == "done"]


def _children(pid: int) -> list[int]:
    """torchrun starts each rank in its own session: find them by parent."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks through /proc")
def test_two_ranks_share_the_files_resume_after_a_kill_and_leave_no_partial_file(clips, tmp_path, tiny_weights):
    root, frames = clips
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = _torchrun("batch", root, out, "-w", tiny_weights, *FAST, "--json", tmp_path / "summary.json")
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while first.poll() is None and time.time() < deadline and \
            not any((out / r["key"]).is_file() for r in _done_records(out)):  # one file done and renamed
        time.sleep(0.02)
    for pid in _children(first.pid) + [first.pid]:  # both ranks and the launcher, at once, mid-batch
        os.kill(pid, signal.SIGKILL)
    first.wait()
    recorded = {r["key"] for r in _done_records(out)}
    before = {key for key in recorded if (out / key).is_file()}  # (recorded, but killed before the rename: redone)
    assert before and len(before) < len(frames), "the kill came too late to test a resume"
    finished = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and MANIFEST not in p.parts
                and not p.name.startswith(".")}
    assert finished == before
    for name in finished:  # whatever is under its own name is complete
        assert frame_count(out / name) == 2 * frames[name]

    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["files"] == len(frames) and summary["failed"] == 0
    statuses = {r["key"]: r["status"] for r in summary["results"]}
    assert statuses == {name: "skipped" if name in before else "done" for name in frames}  # each file once
    assert {r["rank"] for r in summary["results"] if r["status"] == "done"} == {0, 1}
    done = sorted(r["key"] for r in _done_records(out))
    assert done == sorted(list(frames) + list(recorded - before))  # nothing done before was done again
    for name, count in frames.items():
        assert frame_count(out / name) == 2 * count
    assert leftovers(out) == []
    assert read_manifest(out).keys() == frames.keys()
