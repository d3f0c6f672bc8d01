"""Issue 16: what a file or folder someone else controls can make infercap do.

- the catalog parse cache (infercap/yamlio.py) is data only (JSON), keyed by the SHA-256 of each
  file's bytes, written atomically and trusted only when it and its folder are the user's own
  and not group/other-writable;
- ``lengths_csv`` (measurement cases, scenarios) reads only regular files inside the YAML
  file's folder, or under ``--allow-paths``, and quotes at most a short escaped excerpt;
- ``--output`` replaces a regular file atomically (through a symbolic link: its target),
  writes devices and FIFOs in place, and refuses the rest with one line.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pickle
import stat
import threading
from pathlib import Path

import pytest
import yaml

from conftest import assert_clean_error, copy_shipped

OTHER_UID = 54321  # a uid that is not the test's own (chown needs root: skipped otherwise)


# ---------------------------------------------------------------- the parse cache

@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("INFERCAP_NO_CACHE", raising=False)
    monkeypatch.setenv("INFERCAP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _folder_key(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def _cache_file(cache: Path, root: Path) -> Path:
    from infercap.yamlio import CACHE_FORMAT

    return cache / f"catalog-{_folder_key(root)}.v{CACHE_FORMAT}.json"


def _forge(cache: Path, root: Path, yaml_file: Path, **changes) -> Path:
    """Rewrite the cache entry of ``yaml_file`` so that it carries ``changes``: what someone
    who can write the cache would do. Returns the cache file."""
    from infercap.yamlio import _KEY_PREFIX

    path = _cache_file(cache, root)
    doc = json.loads(path.read_text(encoding="utf-8"))
    data = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    data.update(changes)
    key = hashlib.sha256(_KEY_PREFIX + yaml_file.read_bytes()).hexdigest()
    assert key in doc["entries"]
    doc["entries"][key] = [False, json.dumps(data)]
    path.write_text(json.dumps(doc), encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def _tdp(cat: Path) -> float:
    from infercap.catalog import load_catalog

    return load_catalog([cat]).gpu("h100-sxm").tdp_w


class _Plant:
    """Unpickling this runs code: it creates the marker folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (self.marker,))


def test_cache_never_unpickles_a_planted_file(tmp_path, cache_dir):
    """A pickle planted under the old cache name (or the new one) is never loaded: no code
    runs, the catalog is what its YAML says."""
    cat = tmp_path / "cat"
    copy_shipped("hardware", "h100-sxm", cat)
    cache_dir.mkdir(mode=0o700)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Plant(marker))
    (cache_dir / f"catalog-{_folder_key(cat)}.pickle").write_bytes(payload)
    _cache_file(cache_dir, cat).write_bytes(payload)
    assert _tdp(cat) == 700
    assert _tdp(cat) == 700
    assert not marker.exists()
    assert not list(cache_dir.glob("*.pickle"))  # the old format is cleared out


def test_cache_forged_entry_is_used_only_when_owned_and_private(tmp_path, cache_dir):
    """A cache entry that disagrees with its YAML is only the user's own doing when the file
    and its folder belong to the user and nobody else can write them: group/other-writable,
    another user's file or folder, and the entry is ignored and the YAML read."""
    cat = tmp_path / "cat"
    target = copy_shipped("hardware", "h100-sxm", cat)
    assert _tdp(cat) == 700  # fills the cache
    path = _forge(cache_dir, cat, target, tdp_w=1)
    assert _tdp(cat) == 1  # the forgery is well formed: the user's own private cache is used
    _forge(cache_dir, cat, target, tdp_w=1)
    os.chmod(path, 0o666)
    assert _tdp(cat) == 700  # world-writable: ignored (and rewritten)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _forge(cache_dir, cat, target, tdp_w=1)
    os.chmod(path, 0o620)
    assert _tdp(cat) == 700  # group-writable
    _forge(cache_dir, cat, target, tdp_w=1)
    os.chmod(cache_dir, 0o777)
    assert _tdp(cat) == 700  # a folder anyone can write
    os.chmod(cache_dir, 0o700)
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    _forge(cache_dir, cat, target, tdp_w=1)
    os.chown(path, OTHER_UID, -1)
    assert _tdp(cat) == 700  # another user's file
    _forge(cache_dir, cat, target, tdp_w=1)
    os.chown(cache_dir, OTHER_UID, -1)
    assert _tdp(cat) == 700  # another user's folder
    os.chown(cache_dir, os.geteuid(), -1)


def test_cache_rereads_a_file_changed_with_the_same_size_and_mtime(tmp_path, cache_dir):
    cat = tmp_path / "cat"
    target = copy_shipped("hardware", "h100-sxm", cat)
    st = target.stat()
    assert _tdp(cat) == 700
    text = target.read_text(encoding="utf-8")
    assert "tdp_w: 700" in text
    target.write_text(text.replace("tdp_w: 700", "tdp_w: 650"), encoding="utf-8")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    assert _tdp(cat) == 650


def test_cache_is_private_atomic_and_leaves_no_temp_files(tmp_path, cache_dir, monkeypatch):
    from infercap import yamlio

    cat = tmp_path / "cat"
    target = copy_shipped("hardware", "h100-sxm", cat)
    assert _tdp(cat) == 700
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    names = sorted(p.name for p in cache_dir.iterdir())
    assert names and all(n.startswith("catalog-") and n.endswith(".json") for n in names), names
    assert all(stat.S_IMODE((cache_dir / n).stat().st_mode) == 0o600 for n in names)
    # a write that fails half-way leaves no temp file, and the run goes on without the cache
    target.write_text(target.read_text(encoding="utf-8").replace("tdp_w: 700", "tdp_w: 690"),
                      encoding="utf-8")

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(yamlio.os, "replace", boom)
        assert _tdp(cat) == 690
    assert sorted(p.name for p in cache_dir.iterdir()) == names
    # a temp file a killed run left behind is cleared once it is old
    stale = cache_dir / ".catalog-killed.tmp"
    stale.write_text("{", encoding="utf-8")
    os.utime(stale, (1, 1))
    target.write_text(target.read_text(encoding="utf-8").replace("tdp_w: 690", "tdp_w: 680"),
                      encoding="utf-8")
    assert _tdp(cat) == 680
    assert sorted(p.name for p in cache_dir.iterdir()) == names


def test_cache_is_bounded(tmp_path, cache_dir):
    from infercap.yamlio import CACHE_FORMAT, CACHE_MAX_FILES

    cache_dir.mkdir(mode=0o700)
    now = datetime.datetime.now().timestamp()
    old = [cache_dir / f"catalog-{i:016x}.v{CACHE_FORMAT}.json" for i in range(80)]
    for i, p in enumerate(old):
        p.write_text("{}", encoding="utf-8")
        os.utime(p, (now - 3600 - i, now - 3600 - i))
    ancient = cache_dir / f"catalog-{'f' * 16}.v{CACHE_FORMAT}.json"
    ancient.write_text("{}", encoding="utf-8")
    os.utime(ancient, (now - 90 * 86400, now - 90 * 86400))
    cat = tmp_path / "cat"
    copy_shipped("hardware", "h100-sxm", cat)
    assert _tdp(cat) == 700
    left = list(cache_dir.iterdir())
    assert len(left) <= CACHE_MAX_FILES
    assert _cache_file(cache_dir, cat) in left
    assert not ancient.exists()
    assert old[0] in left and old[-1] not in left  # the most recent are kept


def test_cache_round_trips_exactly_or_not_at_all():
    """Dates (an unquoted price date) come back as dates; what JSON cannot carry exactly
    (sets, bytes, timestamps, non-text keys) is not cached."""
    from infercap.yamlio import _decode, _encode

    data = {"a": datetime.date(2026, 5, 22), "b": [1, 2.5, True, None, "x\u0000\ud800"],
            "c": {"d": -0.0, "e": 10**30}}
    enc = _encode(data)
    assert enc is not None
    back = _decode(list(enc))
    assert back == data and type(back["a"]) is datetime.date
    assert type(back["b"][0]) is int and type(back["b"][2]) is bool
    for bad in ({"a": {1, 2}}, {"a": b"x"}, {1: "a"}, {"a": datetime.datetime(2026, 1, 1)},
                {"a": (1, 2)}, {"\x00infercap:date": "2026-01-01"}):
        assert _encode(bad) is None, bad


def test_cache_serves_unquoted_dates_validated(tmp_path, cache_dir):
    from infercap.catalog import load_catalog

    cat = tmp_path / "cat"
    target = copy_shipped("hardware", "h100-sxm", cat)
    text = target.read_text(encoding="utf-8")
    assert "date: '2026-05-22'" in text
    target.write_text(text.replace("date: '2026-05-22'", "date: 2026-05-22"), encoding="utf-8")
    first = load_catalog([cat]).gpu("h100-sxm").price
    second = load_catalog([cat]).gpu("h100-sxm").price
    assert first == second and str(second.date) == "2026-05-22"


# ---------------------------------------------------------------- lengths_csv

CASE = {"id": "t-lens", "source": "unit test", "model": "llama-3.1-8b", "gpu": "h100-sxm",
        "gpus": 1, "tp": 1, "pp": 1, "weights": "bf16", "scenario": "offline",
        "num_requests": 100, "metric": "tpot_ms", "value": 40.0, "engine": "vllm"}

SCENARIO = """\
model: llama-3.1-8b
gpus: [h100-sxm]
precisions: [fp8]
serving: aggregated
traffic:
  peak_requests_per_s: 5
  lengths_csv: {csv}
slo:
  tpot_ms: {{p99: 50}}
"""

SECRET = "SECRET-do-not-echo"


def _inputs(folder: Path, csv_path: str) -> list[tuple[list[str], Path, str]]:
    """(command, YAML file, key) for a measurement file and a scenario naming ``csv_path``."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = folder / "runs.yaml"
    runs.write_text(yaml.safe_dump({"cases": [dict(CASE, lengths_csv=csv_path)]}),
                    encoding="utf-8")
    scen = folder / "s.yaml"
    scen.write_text(SCENARIO.format(csv=json.dumps(csv_path)), encoding="utf-8")
    return [(["validate", str(runs), "-f", "csv"], runs, "lengths_csv"),
            (["size", str(scen), "-f", "csv"], scen, "traffic.lengths_csv"),
            (["check", str(scen)], scen, "traffic.lengths_csv")]


def _refused(run_cli, cmd, yaml_file, key, env=None) -> str:
    line = assert_clean_error(*run_cli(cmd, env=env, timeout=60))
    assert str(yaml_file) in line and f"key '{key}'" in line, line
    assert "refusing to read" in line, line
    assert SECRET not in line and "root:" not in line, line
    return line


@pytest.mark.parametrize("where", ["proc", "dotdot", "absolute", "symlink"])
def test_lengths_csv_outside_the_yaml_folder_is_refused(run_cli, tmp_path, where):
    secret = tmp_path / "secret.csv"
    secret.write_text(f"{SECRET},x\n1,2\n", encoding="utf-8")
    folder = tmp_path / "in"
    folder.mkdir()
    value = {"proc": "/proc/self/environ", "dotdot": "../secret.csv",
             "absolute": str(secret), "symlink": "link.csv"}[where]
    if where == "symlink":
        (folder / "link.csv").symlink_to(secret)
    for cmd, yaml_file, key in _inputs(folder, value):
        _refused(run_cli, cmd, yaml_file, key, env={"INFERCAP_TEST_SECRET": SECRET})


def test_lengths_csv_etc_passwd_escape_is_refused(run_cli, tmp_path):
    cmd, yaml_file, key = _inputs(tmp_path / "a" / "b", "../../" * 20 + "etc/passwd")[0]
    _refused(run_cli, cmd, yaml_file, key)


def test_allow_paths_lets_a_csv_outside_the_folder_through(run_cli, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "lens.csv").write_text("input_tokens,output_tokens\n400,200\n800,100\n",
                                     encoding="utf-8")
    cases = _inputs(tmp_path / "in", "../shared/lens.csv")
    for cmd, yaml_file, key in cases[:2]:
        _refused(run_cli, cmd, yaml_file, key)
        rc, out, err = run_cli(cmd + ["--allow-paths", shared])
        assert rc == 0, err
        assert out
    # /proc stays out even when allowed
    cmd, yaml_file, key = _inputs(tmp_path / "p", "/proc/self/environ")[0]
    _refused(run_cli, cmd + ["--allow-paths", "/proc"], yaml_file, key,
             env={"INFERCAP_TEST_SECRET": SECRET})
    line = assert_clean_error(*run_cli(cases[0][0] + ["--allow-paths", tmp_path / "nope"]))
    assert "key '--allow-paths'" in line


def test_allow_paths_in_process(tmp_path):
    from infercap.errors import MeasurementError
    from infercap.measurements import load_cases
    from infercap.scenario import ScenarioError, load_scenario

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "lens.csv").write_text("input_tokens,output_tokens\n400,200\n", encoding="utf-8")
    (_, runs, _), (_, scen, _), _ = _inputs(tmp_path / "in", str(shared / "lens.csv"))
    with pytest.raises(MeasurementError, match="refusing to read"):
        load_cases([runs])
    with pytest.raises(ScenarioError, match="refusing to read"):
        load_scenario(scen)
    assert load_cases([runs], allow_paths=[shared])[0].lengths == ((400.0, 200.0),)
    assert load_scenario(scen, allow_paths=[shared / "lens.csv"]).lengths_rows == [(400, 200)]


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_lengths_csv_must_be_a_regular_file(run_cli, tmp_path, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    if kind == "fifo":
        os.mkfifo(folder / "lens.csv")  # opening it to read would wait for a writer forever
    else:
        (folder / "lens.csv").mkdir()
    cmd, yaml_file, key = _inputs(folder, "lens.csv")[0]
    line = assert_clean_error(*run_cli(cmd, timeout=60))
    assert str(yaml_file) in line and f"key '{key}'" in line
    assert "not a regular file" in line


def test_lengths_csv_bad_lines_are_quoted_short_and_escaped(run_cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    csv = folder / "lens.csv"
    cmd = _inputs(folder, "lens.csv")[0][0]
    long_value = "\x1b[31m" + "A" * 5000 + "\r\u202e"
    csv.write_text(f"input_tokens,output_tokens\n10,{long_value}\n", encoding="utf-8")
    line = assert_clean_error(*run_cli(cmd))
    assert str(csv) in line and "line 2: expected two numbers, got " in line
    quoted = line.split("got ", 1)[1]
    assert len(quoted) <= 60 and quoted.endswith("..."), quoted
    assert "\x1b" not in line and "\r" not in line and "\u202e" not in line
    assert "\\x1b" in quoted
    # a header that is not one: the same
    csv.write_text("\x07" + "B" * 5000 + "\n1,2\n", encoding="utf-8")
    line = assert_clean_error(*run_cli(cmd))
    quoted = line.split("got ", 1)[1]
    assert "expected a header" in line and len(quoted) <= 60 and "\x07" not in line
    # one field beyond the csv module's limit is an error line, not a traceback
    csv.write_text("input_tokens,output_tokens\n1,\"" + "9" * 200_000 + "\"\n", encoding="utf-8")
    line = assert_clean_error(*run_cli(cmd))
    assert "malformed CSV" in line and len(line) < 300


def test_lengths_csv_size_and_row_caps(tmp_path, monkeypatch):
    from infercap import scenario
    from infercap.scenario import ScenarioError, load_scenario

    (_, _, _), (_, scen, _), _ = _inputs(tmp_path, "lens.csv")
    (tmp_path / "lens.csv").write_text("input_tokens,output_tokens\n" + "10,20\n" * 50,
                                       encoding="utf-8")
    monkeypatch.setattr(scenario, "LENGTHS_MAX_ROWS", 10)
    with pytest.raises(ScenarioError, match="at most 10 request rows"):
        load_scenario(scen)
    monkeypatch.setattr(scenario, "LENGTHS_MAX_BYTES", 100)
    with pytest.raises(ScenarioError, match="larger than"):
        load_scenario(scen)


def test_excerpt():
    from infercap.errors import excerpt

    assert excerpt("abc") == "'abc'"
    long = excerpt("x" * 500)
    assert len(long) <= 60 and long.endswith("...")
    esc = excerpt("\n" * 500)
    assert len(esc) <= 60 and "\n" not in esc and esc.startswith("'\\n")


# ---------------------------------------------------------------- --output

GPUS = ["gpus", "-f", "csv"]


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], \
        list(folder.iterdir())


def _char_device(tmp_path: Path) -> Path:
    """A character device like /dev/null (the same major/minor) inside the test folder, so a
    broken --output replaces only that; /dev/null itself where nodes cannot be made."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(node, "w"):
            pass
    except (OSError, AttributeError):
        return Path("/dev/null")
    return node


def test_output_to_a_character_device_keeps_it(run_cli, tmp_path):
    dev = _char_device(tmp_path)
    rc, out, err = run_cli(GPUS + ["-o", dev])
    assert rc == 0, err
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    if dev.parent == tmp_path:
        _no_temp_files(tmp_path)


def test_output_to_dev_null_keeps_it(run_cli):
    rc, out, err = run_cli(GPUS + ["-o", "/dev/null"])
    assert rc == 0, err
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout")
def test_output_to_dev_stdout_reaches_the_pipe(run_cli):
    """/dev/stdout is a link to /proc/self/fd/1, here a pipe: written in place."""
    rc, out, err = run_cli(GPUS + ["-o", "/dev/stdout"])
    assert rc == 0, err
    assert out.startswith("id,name,vendor")


def test_output_through_a_symlink_writes_its_target(run_cli, tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n", encoding="utf-8")
    os.chmod(real, 0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real.name)
    rc, out, err = run_cli(GPUS + ["-o", link])
    assert rc == 0, err
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_text(encoding="utf-8").startswith("id,name,vendor")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # its permissions kept
    _no_temp_files(tmp_path)


@pytest.mark.parametrize("kind, words", [("loop", "symbolic links"),
                                         ("dangling", "missing file"),
                                         ("folder", "a directory"),
                                         ("no-folder", "no folder")])
def test_output_that_cannot_be_written_is_one_line(run_cli, tmp_path, kind, words):
    target = tmp_path / "out.csv"
    if kind == "loop":
        target.symlink_to(tmp_path / "other")
        (tmp_path / "other").symlink_to(target)
    elif kind == "dangling":
        target.symlink_to(tmp_path / "missing" / "x.csv")
    elif kind == "folder":
        target.mkdir()
    else:
        target = tmp_path / "missing" / "out.csv"
    for cmd in (GPUS, ["size", Path(__file__).parents[1] / "examples" / "chat-70b.yaml"]):
        line = assert_clean_error(*run_cli(cmd + ["-o", target]))
        assert str(target) in line and words in line, line
    _no_temp_files(tmp_path)


def test_output_to_a_fifo_reaches_its_reader(run_cli, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rc, out, err = run_cli(GPUS + ["-o", fifo], timeout=60)
    reader.join(30)
    assert rc == 0, err
    assert got and got[0].startswith(b"id,name,vendor")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _no_temp_files(tmp_path)


def test_output_write_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    from infercap import render
    from infercap.errors import UsageError

    target = tmp_path / "out.csv"
    target.write_text("old\n", encoding="utf-8")

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(render.os, "replace", boom)
        with pytest.raises(UsageError, match="No space left on device"):
            render.write_output("new\n", target)
    assert target.read_text(encoding="utf-8") == "old\n"
    _no_temp_files(tmp_path)
