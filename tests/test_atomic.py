import os

import pytest

from vpseg._atomic import atomic_open, write_json


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b'{"half": ')
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_interrupted_rewrite_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"garbage")
            raise RuntimeError("killed")
    assert target.read_text() == '{"v": 1}'


def test_finished_file_has_normal_permissions(tmp_path):
    target = tmp_path / "x.json"
    write_json(target, [])
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
