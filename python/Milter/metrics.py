"""The engine's counters, for a milter that wants them in its own code.

Any milter gets them over HTTP with no code at all: set
PMCORE_METRICS=inet:PORT@ADDR in its environment and scrape GET /metrics
there (docs/metrics.md lists the series).  In code::

    import Milter.metrics
    Milter.metrics.text()              # Prometheus text, or None
    Milter.metrics.register()          # prometheus_client's REGISTRY

Both report the server that milter.main() (or Milter.runmilter) is running
in this process, and nothing while none runs.  register() and
PmcoreCollector need prometheus_client (pip install
pmcore-milter[metrics]); text() needs nothing.
"""
import milter

__all__ = ['text', 'PmcoreCollector', 'register']


def text():
    """The running server's counters in Prometheus's text format, or None
    outside main()."""
    return milter._metrics_text()


def _parser():
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as e:
        raise ImportError('Milter.metrics: the collector needs '
                          'prometheus_client: pip install '
                          'pmcore-milter[metrics]') from e
    return text_string_to_metric_families


class PmcoreCollector(object):
    """A prometheus_client collector of the running server's counters,
    read at each scrape."""

    def __init__(self):
        self._families = _parser()

    def collect(self):
        t = text()
        if t is None:
            return
        for family in self._families(t):
            yield family

    def describe(self):
        # Nothing up front: the series exist only while a server runs.
        return []


def register(registry=None):
    """Add a PmcoreCollector to registry (default: prometheus_client's
    REGISTRY) and return it."""
    collector = PmcoreCollector()
    if registry is None:
        from prometheus_client import REGISTRY as registry
    registry.register(collector)
    return collector
