"""Milter.greylist (shelve) and Milter.greysql (sqlite3): the same
greylisting rules, which a milter's TEMPFAIL/accept decision rests on."""
import io

import pytest

import Milter.greylist
import Milter.greysql

MIN, HOUR, DAY = 60, 3600, 86400


@pytest.fixture(params=['shelve', 'sqlite'])
def grey(request, tmp_path):
    cls = {'shelve': Milter.greylist.Greylist,
           'sqlite': Milter.greysql.Greylist}[request.param]
    g = cls(str(tmp_path / 'grey.db'), grey_time=10, grey_expire=4,
            grey_retain=36)
    yield g
    g.close()


def test_delay_then_pass(grey):
    t = ('192.0.2.1', 'a@example.com', 'b@example.org')
    assert grey.check(*t) == 0                       # new: defer
    assert grey.check(*t, timeinc=5 * MIN) == 0      # still too early
    assert grey.check(*t, timeinc=10 * MIN) == 0     # 5 s of slack
    assert grey.check(*t, timeinc=11 * MIN) == 1     # retried: pass
    assert grey.check(*t, timeinc=2 * DAY) == 2      # and from now on
    other = ('192.0.2.2',) + t[1:]
    assert grey.check(*other, timeinc=2 * DAY) == 0  # triples are separate


def test_late_retry_starts_over(grey):
    t = ('192.0.2.1', 'a@example.com', 'b@example.org')
    assert grey.check(*t) == 0
    assert grey.check(*t, timeinc=5 * HOUR) == 0     # past grey_expire
    assert grey.check(*t, timeinc=5 * HOUR + 11 * MIN) == 1


def test_retention_and_clean(grey):
    t = ('192.0.2.1', 'a@example.com', 'b@example.org')
    grey.check(*t)
    assert grey.check(*t, timeinc=11 * MIN) == 1
    # Not seen for more than 36 days: a new triple again.
    assert grey.check(*t, timeinc=40 * DAY) == 0
    assert grey.clean(timeinc=40 * DAY) == 0
    assert grey.clean(timeinc=80 * DAY) == 1
    assert grey.check(*t, timeinc=80 * DAY) == 0


def test_shelve_keys_quote_addresses(tmp_path):
    g = Milter.greylist.Greylist(str(tmp_path / 'g'))
    try:
        g.check('2001:db8::1', '.odd user@example.com', 'x:y@example.org')
        g.check('192.0.2.9', 'b@example.com', 'c@example.org',
                timeinc=-40 * DAY)
        out = io.StringIO()
        g.export_csv(out)
        rows = [r.split(',') for r in out.getvalue().splitlines()]
        assert [r[:3] for r in rows] == [
            ['2001:db8::1', '%2eodd%20user@example.com', 'x%3Ay@example.org']]
        assert rows[0][5] == '0'
        key = '2001:db8::1:%2eodd%20user@example.com:x%3Ay@example.org'
        assert str(g.dbp[key]).startswith('Grey[')
    finally:
        g.close()
    # The data survive a reopen.
    g = Milter.greylist.Greylist(str(tmp_path / 'g'))
    try:
        assert g.check('2001:db8::1', '.odd user@example.com',
                       'x:y@example.org', timeinc=11 * MIN) == 1
    finally:
        g.close()
    assert Milter.greylist.quoteAddress('~a+b!c%d') == '~a+b!c%d'


def test_record():
    r = Milter.greylist.Record(timeinc=-10)
    assert r.cnt == 0 and r.umis is None and r.firstseen == r.lastseen
    with pytest.raises(AttributeError):
        r.other = 1
    assert str(r).startswith('Grey[') and str(r).endswith(':None:0]')
