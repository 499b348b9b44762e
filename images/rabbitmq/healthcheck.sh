#!/bin/sh
# The node runs and its AMQP listener is up (the official docs' "stage 2" check) in one CLI run:
# check_port_connectivity fails when it cannot reach a running node, and each run starts an Erlang
# VM, seconds of CPU on a loaded host.
exec rabbitmq-diagnostics -q check_port_connectivity
