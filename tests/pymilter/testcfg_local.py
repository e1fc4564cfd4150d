"""Milter.config against the pysrs.cfg of pymilter's test data (run by
run_suite.sh in the unpacked sdist).  pymilter's own testcfg.py is not in any
sdist on PyPI, so this file checks what it checks, and a little more."""
import unittest

from Milter.config import MilterConfigParser


class ConfigTestCase(unittest.TestCase):

    def setUp(self):
        self.cp = MilterConfigParser({'miltername': 'fallback',
                                      'datadir': '/tmp/d'})
        self.assertEqual(self.cp.read(['test/pysrs.cfg']), ['test/pysrs.cfg'])

    def testConfig(self):
        cp = self.cp
        self.assertEqual(cp.getdefault('srsmilter', 'socketname', '/x'),
                         '/var/run/milter/srsmilter')
        self.assertEqual(cp.getdefault('srsmilter', 'nosuch', 'dflt'), 'dflt')
        self.assertFalse(cp.getboolean('srsmilter', 'miltersrs'))
        self.assertTrue(cp.getboolean('srsmilter', 'reject_spoofed'))

    def testDefaultsDoNotLeak(self):
        cp = self.cp
        # Set in the file: the file wins; unset: the constructor's default,
        # which never shows up among the section's options.
        self.assertEqual(cp.get('srsmilter', 'miltername'), 'pysrsfilter')
        self.assertEqual(cp.get('srsmilter', 'datadir'), '/tmp/d')
        self.assertNotIn('datadir', cp.options('srsmilter'))
        self.assertEqual(cp.getlist('srsmilter', 'internal_connect'),
                         ['192.168.*.*', '127.0.0.1', '::1'])
        self.assertEqual(cp.getlist('srs', 'sign'), [])


def suite():
    return unittest.defaultTestLoader.loadTestsFromTestCase(ConfigTestCase)
