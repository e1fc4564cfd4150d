"""Milter.config.MilterConfigParser: pymilter's ConfigParser for milter
configuration files.

Defaults given to the constructor are looked up by option name in any
section, but only when the file does not set the option; unlike
ConfigParser's own defaults they do not appear in every section's options
and never override the file.  Address lists are comma separated; an item
`file:NAME` reads whitespace-separated entries from NAME (relative to `dir`).
"""
import os.path
from configparser import ConfigParser

__all__ = ['MilterConfigParser']


class MilterConfigParser(ConfigParser):

    def __init__(self, defaults=None):
        ConfigParser.__init__(self)
        self.defaults = dict(defaults or {})

    def get(self, sect, opt, fallback=None, **kwds):
        if fallback is None and opt in self.defaults and \
                not self.has_option(sect, opt):
            return self.defaults[opt]
        return ConfigParser.get(self, sect, opt, fallback=fallback, **kwds)

    def getdefault(self, sect, opt, default=None):
        """The option's value, or `default` when the file does not set it."""
        if self.has_option(sect, opt):
            return self.get(sect, opt)
        return default

    def getintdefault(self, sect, opt, default=None):
        if self.has_option(sect, opt):
            return self.getint(sect, opt)
        return default

    def getlist(self, sect, opt):
        """A comma-separated option as a list of stripped items ([] when
        unset)."""
        if not self.has_option(sect, opt):
            return []
        return [item.strip() for item in self.get(sect, opt).split(',')]

    def getaddrset(self, sect, opt, dir=''):
        """{domain: [user, ...]} from `user@domain` items; `file:DOMAIN`
        adds the users listed in the file DOMAIN."""
        result = {}
        for item in self.getlist(sect, opt):
            if item.startswith('file:'):
                domain = item[5:].lower()
                with open(os.path.join(dir, domain)) as fp:
                    result.setdefault(domain, []).extend(fp.read().split())
            else:
                user, domain = item.split('@')
                result.setdefault(domain.lower(), []).append(user)
        return result

    def getaddrdict(self, sect, opt, dir=''):
        """{address: name}: `opt` lists option names of the same section,
        each holding addresses (or `file:NAME` items) that map to it."""
        result = {}
        for name in self.getlist(sect, opt):
            if not self.has_option(sect, name):
                continue
            for addr in self.getlist(sect, name):
                if addr.startswith('file:'):
                    with open(os.path.join(dir, addr[5:])) as fp:
                        for a in fp.read().split():
                            result[a] = name
                else:
                    result[addr] = name
        return result
