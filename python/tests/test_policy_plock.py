"""Milter.policy (Sendmail access map lookups) and Milter.plock (the
lock, write, rename update of a file)."""
import dbm
import os
import threading

import pytest

import Milter.plock
import Milter.policy
from Milter.policy import MTAPolicy

# Sendmail's access file as `tr : ! < access | makemap -N hash access`
# turns it into keys (lower case, NUL-terminated).
ACCESS = {
    'spf-pass!example.com': 'OK',
    'spf-neutral!example.com': 'REJECT',
    'spf-permerror!foo@bad.example.com': 'OK',
    'spf-permerror!': 'REJECT',
    'smtp-auth!good@example.com': 'OK',
    'smtp-auth!example.com': 'REJECT',
    'smtp-test': 'WILDCARD',
}


class Conf(object):
    def __init__(self, path, nulls=True):
        self.access_file = path
        self.access_file_nulls = nulls


@pytest.fixture(params=[True, False], ids=['nulls', 'plain'])
def access(request, tmp_path):
    nul = b'\0' if request.param else b''
    path = str(tmp_path / 'access')
    with dbm.open(path, 'n') as db:
        for k, v in ACCESS.items():
            db[k.encode() + nul] = v.encode() + nul
    return Conf(path, request.param)


def policy(conf, sender, tag):
    with MTAPolicy(sender, conf=conf) as p:
        return p.getPolicy(tag)


def test_most_specific_entry_wins(access):
    assert policy(access, 'good@example.com', 'smtp-auth') == 'OK'
    assert policy(access, 'bad@example.com', 'smtp-auth') == 'REJECT'
    assert policy(access, 'Bad@EXAMPLE.com', 'smtp-auth') == 'REJECT'
    assert policy(access, 'bad@bad.example.com', 'smtp-auth') is None
    assert policy(access, 'foo@bad.example.com', 'spf-permerror') == 'OK'
    assert policy(access, 'x@other.example', 'spf-permerror') == 'REJECT'
    # "TAG" alone is the last resort.
    assert policy(access, 'any@random.com', 'smtp-test') == 'WILDCARD'
    assert policy(access, 'a@example.com', 'spf-pass') == 'OK'
    assert policy(access, 'a@example.com', 'spf-fail') is None


def test_nul_convention_must_match(access):
    other = Conf(access.access_file, not access.access_file_nulls)
    assert policy(other, 'good@example.com', 'smtp-auth') is None


def test_no_map_and_missing_map(tmp_path, capsys):
    assert policy(Conf(None), 'good@example.com', 'smtp-auth') is None
    missing = str(tmp_path / 'nothere')
    with pytest.raises(Exception):
        policy(Conf(missing), 'good@example.com', 'smtp-auth')
    assert 'nothere: Cannot open for reading' in capsys.readouterr().out
    # An explicit access_file overrides the configuration's.
    p = MTAPolicy('a@b.example', Conf('/unused'), access_file='/other')
    assert p.access_file == '/other' and p.domain == 'b.example'


def test_dbmopen_is_read_only(access):
    db = Milter.policy.dbmopen(access.access_file, 'r')
    try:
        nul = b'\0' if access.access_file_nulls else b''
        assert db[b'smtp-test' + nul].rstrip(b'\0') == b'WILDCARD'
        with pytest.raises(KeyError):
            db[b'nothing']
    finally:
        db.close()
    with pytest.raises(ValueError):
        Milter.policy.dbmopen(access.access_file, 'c')


def test_plock_commit_replaces_file(tmp_path):
    path = tmp_path / 'aliases'
    path.write_text('old\n')
    os.chmod(str(path), 0o640)
    lock = Milter.plock.PLock(str(path))
    fp = lock.lock()
    assert (tmp_path / 'aliases.lock').exists()
    fp.write('new\n')
    # Readers see the old version until the commit.
    assert path.read_text() == 'old\n'
    lock.commit(str(tmp_path / 'aliases.bak'))
    assert path.read_text() == 'new\n'
    assert (tmp_path / 'aliases.bak').read_text() == 'old\n'
    assert not (tmp_path / 'aliases.lock').exists()
    # Permission bits of the old file are kept (and the lock's 0o660).
    assert os.stat(str(path)).st_mode & 0o777 == 0o660
    with pytest.raises(IOError, match='not locked'):
        lock.commit()


def test_plock_is_exclusive_and_unlock_abandons(tmp_path):
    path = str(tmp_path / 'data')
    first = Milter.plock.PLock(path)
    fp = first.lock()
    fp.write('half')
    with pytest.raises(OSError):
        Milter.plock.PLock(path).lock()
    first.unlock()
    assert not os.path.exists(path + '.lock')
    assert not os.path.exists(path)
    # A waiting writer gets the lock once the holder lets go.
    second = Milter.plock.PLock(path)
    first.lock()
    got = []
    t = threading.Thread(target=lambda: got.append(second.wlock()))
    t.start()
    t.join(0.5)
    assert not got
    first.unlock()
    t.join(10)
    assert got and not t.is_alive()
    got[0].write('x')
    second.commit()
    with open(path) as f:
        assert f.read() == 'x'


def test_plock_strict_perms_without_file(tmp_path):
    # No file to take the group from: fine unless strict_perms.
    path = str(tmp_path / 'fresh')
    lock = Milter.plock.PLock(path)
    with pytest.raises(OSError):
        lock.lock(strict_perms=True)
    assert not os.path.exists(path + '.lock')
    lock.lock(lockname=path + '.new').write('1')
    lock.commit()
    with open(path) as f:
        assert f.read() == '1'
