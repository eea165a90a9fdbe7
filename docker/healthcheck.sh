#!/bin/sh
# The image's HEALTHCHECK: GET /v2/health/ready on the address gtmsmd listens
# on (GTMSM_LISTEN, so a container started with another port stays checked).
# 200 means ready: the store is open and writable, a model is loaded, not
# shutting down.
listen=${GTMSM_LISTEN:-127.0.0.1:8080}
port=${listen##*:}
host=${listen%:*}
case "$host" in
  "" | 0.0.0.0) host=127.0.0.1 ;;
  "[::]") host="[::1]" ;;
esac
exec curl -fsS -o /dev/null --max-time 2 "http://$host:$port/v2/health/ready"
