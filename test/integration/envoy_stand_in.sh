#!/bin/sh
# A stand-in for an `envoy` binary, for the bench_smoke_envoy test: bench/run.py
# starts Envoy with Envoy's own command line and configs, and legate accepts both,
# so running legate under that name exercises the harness's Envoy path (start,
# measure, report) on a machine without Envoy. It measures nothing about Envoy.
exec "${LEGATE_BIN:?LEGATE_BIN names the legate binary}" "$@"
