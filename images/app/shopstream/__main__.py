"""python3 -m shopstream SERVICE; the service may also come from SHOPSTREAM_SERVICE."""

import importlib
import logging
import os
import sys

from . import config

SERVICES = ("auth", "gateway", "product", "order", "notification")


def main(argv):
    name = argv[0] if argv else os.environ.get("SHOPSTREAM_SERVICE", "")
    if name not in SERVICES:
        print(
            f"usage: python3 -m shopstream {{{'|'.join(SERVICES)}}} (or set SHOPSTREAM_SERVICE)",
            file=sys.stderr,
        )
        return 64
    config.setup_logging(name)
    log = logging.getLogger("shopstream")
    try:
        app = importlib.import_module(f"shopstream.{name}").build()
        port = config.env_int("PORT", 8080, 1)
    except config.ConfigError as exc:
        log.error("cannot start: %s", exc)
        return 2
    return app.run(port=port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
