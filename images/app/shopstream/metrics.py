"""Prometheus metrics in the text exposition format: counters and histograms per route and status."""

import threading

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs):
    if not pairs:
        return ""
    text = ",".join(
        '{}="{}"'.format(k, str(v).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")) for k, v in pairs
    )
    return "{" + text + "}"


class Metrics:
    """Counters, gauges and histograms, rendered in the Prometheus text format 0.0.4."""

    def __init__(self):
        self._lock = threading.Lock()
        self._meta = {}  # name -> (type, help)
        self._values = {}  # (name, labels) -> float or histogram [bucket counts..., sum, count]
        self._gauge_fns = {}

    def _declare(self, name, kind, help_text):
        self._meta.setdefault(name, (kind, help_text))

    def inc(self, name, help_text, amount=1.0, **labels):
        self._declare(name, "counter", help_text)
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name, help_text, value, **labels):
        self._declare(name, "gauge", help_text)
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = float(value)

    def gauge_fn(self, name, help_text, fn):
        self._declare(name, "gauge", help_text)
        self._gauge_fns[name] = fn

    def observe(self, name, help_text, value, **labels):
        self._declare(name, "histogram", help_text)
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            hist = self._values.setdefault(key, [0] * len(BUCKETS) + [0.0, 0])
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    hist[i] += 1
            hist[-2] += value
            hist[-1] += 1

    def render(self):
        lines = []
        with self._lock:
            values = {k: (list(v) if isinstance(v, list) else v) for k, v in self._values.items()}
        for name, (kind, help_text) in sorted(self._meta.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            if name in self._gauge_fns:
                lines.append(f"{name} {float(self._gauge_fns[name]())}")
            for (vname, labels), value in sorted(values.items()):
                if vname != name:
                    continue
                if kind != "histogram":
                    lines.append(f"{name}{_labels(labels)} {value}")
                    continue
                for bound, count in zip(BUCKETS, value[: len(BUCKETS)]):
                    lines.append(f"{name}_bucket{_labels(labels + (('le', repr(bound)),))} {count}")
                lines.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {value[-1]}")
                lines.append(f"{name}_sum{_labels(labels)} {value[-2]}")
                lines.append(f"{name}_count{_labels(labels)} {value[-1]}")
        return "\n".join(lines) + "\n"
