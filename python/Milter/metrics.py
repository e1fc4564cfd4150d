"""The engine's counters for a milter that already uses prometheus_client.

Any milter gets them over HTTP with no code at all: set
PMCORE_METRICS=inet:PORT@ADDR in its environment and scrape GET /metrics
there (docs/metrics.md lists the series).  A milter that serves its own
prometheus_client registry can add them to it instead::

    import Milter.metrics
    Milter.metrics.register()          # the default REGISTRY

The collector reads milter.metrics_text() at each scrape, so it reports
the server that milter.main() (or Milter.runmilter) is running in this
process, and nothing while none runs.
"""
import milter

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('Milter.metrics needs prometheus_client: '
                      'pip install prometheus_client') from e

__all__ = ['PmcoreCollector', 'register']


class PmcoreCollector(object):
    """A prometheus_client collector of the running server's counters."""

    def collect(self):
        text = milter.metrics_text()
        if text is None:
            return
        for family in text_string_to_metric_families(text):
            yield family

    def describe(self):
        # Nothing up front: the series exist only while a server runs.
        return []


def register(registry=None):
    """Add a PmcoreCollector to registry (default: prometheus_client's
    REGISTRY) and return it."""
    if registry is None:
        from prometheus_client import REGISTRY as registry
    collector = PmcoreCollector()
    registry.register(collector)
    return collector
