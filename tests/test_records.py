from solstice.core.records import RunRecord


def test_partial_last_line_is_dropped_and_repaired(tmp_path):
    rec = RunRecord(tmp_path)
    rec.append_sample({"sample_id": "a"})
    rec.append_sample({"sample_id": "b"})
    rec.close()
    with open(rec.samples_path, "a") as f:
        f.write('{"sample_id": "c", "out')
    assert [r["sample_id"] for r in rec.load_samples()] == ["a", "b"]
    rec.load_samples(repair=True)
    assert rec.samples_path.read_text().count("\n") == 2
    rec.append_sample({"sample_id": "c"})
    rec.close()
    assert [r["sample_id"] for r in rec.load_samples()] == ["a", "b", "c"]


def _git(repo, *args):
    import subprocess

    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_resume_after_a_commit_records_two_revisions(tmp_path, toy_env, monkeypatch):
    from solstice.core import env
    from solstice.core.records import provenance
    from solstice.core.runner import run_paper

    repo = tmp_path / "code"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    monkeypatch.setattr(env, "CODE_DIR", repo)
    first = run_paper("toy", out=tmp_path / "runs", sets=["n=6"], argv=["solstice", "run", "toy"])
    rec = RunRecord(first.path)
    run_id = rec.read()["run_id"]
    assert [s["kind"] for s in rec.environments] == ["start"] and not rec.provenance()["spans_revisions"]

    (repo / "a.py").write_text("x = 2\n")
    _git(repo, "commit", "-q", "-am", "two")
    again = run_paper("toy", resume=first.path, argv=["solstice", "run", "toy", "--resume", str(first.path)])
    assert again.status == "completed"
    meta = rec.read()
    segs = rec.environments
    assert [s["kind"] for s in segs] == ["start", "resume"] and segs[1]["samples_before"] == 6
    prov = provenance(meta)
    assert len(prov["revisions"]) == 2 and prov["spans_revisions"] and prov["run_id"] == run_id
    assert segs[0]["git"]["sha"] != segs[1]["git"]["sha"]
    assert prov["config_hash"] == meta["config_hash"]


def test_add_environment_never_rewrites_earlier_segments(tmp_path):
    from solstice.core.records import environment_segment

    rec = RunRecord(tmp_path)
    rec.write({"status": "running", "env": {"python": "3.0", "git": {"sha": "a" * 40, "dirty": False}}})
    assert [s["kind"] for s in rec.environments] == ["start"]  # a schema-1 record reads as one segment
    rec.add_environment(environment_segment("shard", ["solstice", "run"], shard="1/2"))
    segs = rec.environments
    assert segs[0]["python"] == "3.0" and segs[1]["shard"] == "1/2" and len(segs) == 2
    assert rec.provenance()["revisions"][0] == "a" * 12


def test_a_hand_edited_record_is_flagged(tmp_path, toy_env):
    import json

    from solstice.core.runner import run_paper
    from solstice.report.build import load_run, provenance_line

    res = run_paper("toy", out=tmp_path, sets=["n=4"])
    rec = RunRecord(res.path)
    assert rec.verify_seal() == "intact" and "edited" not in provenance_line(load_run(res.path))
    m = json.loads(rec.metrics_path.read_text())
    m["accuracy"]["value"] = 0.99
    rec.metrics_path.write_text(json.dumps(m))
    meta = rec.read()
    meta["timings"]["wall_s"] = 1.0
    rec.run_json.write_text(json.dumps(meta))
    assert rec.verify_seal() == "edited after the run: run.json, metrics.json"
    assert "records edited after the run" in provenance_line(load_run(res.path))
