#!/bin/sh
# The registry's own health endpoint (storage driver included) when the debug server listens on
# 127.0.0.1:5001 as in the kit's config.yml; otherwise the API itself (/v2/ without auth).
busybox wget -q -O /dev/null http://127.0.0.1:5001/debug/health 2>/dev/null \
  || exec busybox wget -q -O /dev/null http://127.0.0.1:5000/v2/
